"""User dataset files: one question per row in ``.jsonl`` or ``.csv``.

A row holds ``question`` (or chat ``messages``) and ``answer`` / ``answers`` / ``references`` (text or
a list; in CSV, ``|`` separates aliases), and optionally ``id`` (default ``line-<n>``); other fields go
to ``Item.metadata``. A ``reference`` text (a paragraph of true facts) is what ``bench --level claim`` checks
each claim against (:mod:`tokentrust.verify`); a row with a reference needs no answer. ``case_sensitive``
(``true``/``false``; in CSV also ``yes``/``no``/``1``/``0``) makes the judge keep letter case for that row
(element symbols, codes), stored as ``Item.metadata["case_sensitive"]``. A bad row is skipped and recorded, never fatal: :func:`load_file` lists it in
``Dataset.skipped`` with its 1-based line number and names it in a warning.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ...errors import UserInputError
from . import Dataset, Item, Prompt, SkippedRow, _unique

__all__ = ["load_file"]


class _BadRow(Exception):
    """A row of a user file cannot become an Item; the message is the reason."""


_ANSWER_FIELDS = ("answer", "answers", "references")
_KNOWN_FIELDS = frozenset({"id", "question", "messages", *_ANSWER_FIELDS})


def _text_list(value: Any, field: str, *, split_pipes: bool) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        raise _BadRow(f"{field!r} must be text, got {value!r}")
    if isinstance(value, (int, float)):
        return [str(value)]
    if isinstance(value, str):
        return value.split("|") if split_pipes else [value]
    if isinstance(value, list):
        out = []
        for element in value:
            if isinstance(element, bool) or not isinstance(element, (str, int, float)):
                raise _BadRow(f"{field!r} must hold text, got {element!r}")
            out.append(str(element))
        return out
    raise _BadRow(f"{field!r} must be text or a list of text, got {type(value).__name__}")


_TRUE, _FALSE = frozenset({"true", "yes", "1"}), frozenset({"false", "no", "0"})


def _flag(value: Any, field: str) -> bool | None:
    """A yes/no field: JSON booleans, or the words of :data:`_TRUE` / :data:`_FALSE`; empty is ``None``."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text == "":
        return None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _BadRow(f"{field!r} must be true or false, got {value!r}")


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _BadRow(f"'messages' is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, list) or not value:
        raise _BadRow("'messages' must be a non-empty list of {'role': ..., 'content': ...} objects")
    for i, message in enumerate(value):
        if not (
            isinstance(message, dict)
            and set(message) == {"role", "content"}
            and all(isinstance(v, str) for v in message.values())
        ):
            raise _BadRow(f"message {i} must be an object with text fields 'role' and 'content' only")
        if not message["content"].strip():
            raise _BadRow(f"message {i} has empty content")
    return value


def _row_item(row: dict[str, Any], line: int, *, split_pipes: bool) -> Item:
    if all(v is None or (isinstance(v, str) and not v.strip()) for v in row.values()):
        raise _BadRow("empty row")
    question, messages = row.get("question"), row.get("messages")
    has_question = question is not None and not (isinstance(question, str) and not question.strip())
    has_messages = messages is not None and not (isinstance(messages, str) and not messages.strip())
    if has_question and has_messages:
        raise _BadRow("has both 'question' and 'messages'; give one")
    if has_messages:
        prompt: Prompt = _messages(messages)
    elif has_question:
        if not isinstance(question, str):
            raise _BadRow(f"'question' must be text, got {type(question).__name__}")
        prompt = question
    else:
        raise _BadRow("missing question (give 'question' or 'messages')")
    references = _unique(
        ref for field in _ANSWER_FIELDS for ref in _text_list(row.get(field), field, split_pipes=split_pipes)
    )
    reference = row.get("reference")
    if reference is not None and (not isinstance(reference, str) or not reference.strip()):
        raise _BadRow(f"'reference' must be a non-empty text, got {reference!r}")
    if not references and reference is not None:
        references = [reference.strip()]
    if not references:
        raise _BadRow("missing answer (give 'answer', 'answers', 'references' or a 'reference' text)")
    raw_id = row.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        item_id = f"line-{line}"
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise _BadRow(f"'id' must be text or an integer, got {raw_id!r}")
    else:
        item_id = str(raw_id).strip()
    extra = {k: v for k, v in row.items() if k not in _KNOWN_FIELDS and v is not None}
    if "case_sensitive" in extra:
        flag = _flag(extra.pop("case_sensitive"), "case_sensitive")
        if flag is not None:
            extra["case_sensitive"] = flag
    try:
        return Item(id=item_id, prompt=prompt, references=references, metadata={**extra, "line": line})
    except ValidationError as exc:
        raise _BadRow("; ".join(e["msg"] for e in exc.errors())) from exc


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | _BadRow]]:
    lines = text.split("\n")  # not splitlines(): JSON strings may hold U+2028 and friends
    if lines and lines[-1] == "":
        lines.pop()
    for line, raw in enumerate(lines, start=1):
        if not raw.strip():
            yield line, _BadRow("empty line")
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, _BadRow(f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield line, row if isinstance(row, dict) else _BadRow(f"not a JSON object but {type(row).__name__}")


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any] | _BadRow]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if not {"question", "messages"} & set(header) or not {*_ANSWER_FIELDS, "reference"} & set(header):
        raise UserInputError(
            f"{path}: the CSV header must name a 'question' (or 'messages') column and an 'answer' "
            f"(or 'answers' / 'references' / 'reference') column; found {header}"
        )
    start = reader.line_num + 1
    for fields in reader:
        line, start = start, reader.line_num + 1  # a quoted field may span several lines
        if not any(f.strip() for f in fields):
            yield line, _BadRow("empty line")
        elif len(fields) > len(header):
            yield line, _BadRow(f"{len(fields)} fields but the header has {len(header)} columns")
        else:
            values: list[str | None] = [f.strip() for f in fields]
            values += [None] * (len(header) - len(fields))
            yield line, dict(zip(header, values, strict=True))


@dataclass(frozen=True, kw_only=True)
class _Loaded:
    items: list[Item]
    skipped: list[SkippedRow]


def _parse_file(path: Path, text: str) -> _Loaded:
    suffix = path.suffix.lower()
    rows = _jsonl_rows(text) if suffix == ".jsonl" else _csv_rows(text, path)
    items: list[Item] = []
    skipped: list[SkippedRow] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        try:
            if isinstance(row, _BadRow):
                raise row
            item = _row_item(row, line, split_pipes=suffix == ".csv")
            if item.id in first_line:
                raise _BadRow(f"duplicate id {item.id!r} (first on line {first_line[item.id]})")
        except _BadRow as bad:
            skipped.append(SkippedRow(line=line, reason=str(bad)))
            continue
        first_line[item.id] = line
        items.append(item)
    return _Loaded(items=items, skipped=skipped)


def load_file(path: Path, *, limit: int | None, correctness: str) -> Dataset:
    """The items of a ``.jsonl`` or ``.csv`` file; bad rows go to ``Dataset.skipped`` with a warning."""
    if path.suffix.lower() not in (".jsonl", ".csv"):
        raise UserInputError(f"{path}: unsupported file type {path.suffix!r}; use a .jsonl or .csv file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"cannot read dataset file {path}: {exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path} is not UTF-8 text: {exc}") from exc
    loaded = _parse_file(path, text)
    if loaded.skipped:
        shown = "; ".join(f"line {s.line}: {s.reason}" for s in loaded.skipped[:10])
        more = f"; and {len(loaded.skipped) - 10} more" if len(loaded.skipped) > 10 else ""
        warnings.warn(
            f"{path}: skipped {len(loaded.skipped)} bad row(s) (see Dataset.skipped): {shown}{more}",
            UserWarning,
            stacklevel=3,
        )
    if not loaded.items:
        reasons = "; ".join(f"line {s.line}: {s.reason}" for s in loaded.skipped[:5]) or "the file is empty"
        raise UserInputError(f"{path} has no valid rows ({reasons})")
    return Dataset(
        name=path.name,
        version="sha256-" + hashlib.sha256(data).hexdigest()[:16],
        items=loaded.items[:limit],
        correctness=correctness,
        skipped=loaded.skipped,
    )

