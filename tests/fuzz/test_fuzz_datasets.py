"""Fuzz user dataset files (.jsonl and .csv rows): every row is loaded or skipped with its line and reason.

Property: ``load_dataset(file)`` returns a Dataset or raises one :class:`TokentrustError`; never another
exception. A JSONL file's lines are each either an item or a skipped row, and loaded items are valid.
"""

from __future__ import annotations

import csv
import io
import json
import warnings

from _strategies import FUZZ, JSON, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrust.bench.datasets import load_dataset
from tokentrust.bench.quality import judge
from tokentrust.errors import TokentrustError

ROW = {"id": "q1", "question": "What is the capital of France?", "answers": ["Paris", "paris"],
       "case_sensitive": False, "reference": "Paris is the capital of France.", "topic": "geo"}
CHAT_ROW = {"messages": [{"role": "user", "content": "Capital of Peru?"}], "answer": "Lima"}
KEYS = ["id", "question", "messages", "answer", "answers", "references", "reference", "case_sensitive"]
LINE = st.one_of(
    mutated(ROW, keys=KEYS).map(json.dumps),
    mutated(CHAT_ROW, keys=KEYS).map(json.dumps),
    JSON.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t),
)


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_dataset(str(path))


def _check(data) -> None:
    ids = [item.id for item in data.items]
    assert len(ids) == len(set(ids))
    for item in data.items:
        assert item.references and all(r.strip() for r in item.references)
        flag = item.metadata.get("case_sensitive")
        assert flag is None or isinstance(flag, bool)
        judge(data, "Paris", item.references, case_sensitive=flag)  # every loaded row can be judged


@settings(FUZZ, max_examples=150)
@given(st.lists(LINE, min_size=1, max_size=6))
def test_jsonl_rows_load_or_are_skipped(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        data = _load(path)
    except TokentrustError as exc:
        assert "no valid rows" in str(exc)
        return
    assert len(data.items) + len(data.skipped) == len(lines)
    _check(data)


CELL = st.one_of(st.sampled_from(["", " ", "Paris", "Paris|Lyon", "|", "yes", "no", "maybe", "1", "[1,2]",
                                  '[{"role": "user", "content": "hi"}]', '"', "a,b", "line\nbreak"]),
                 st.text(max_size=12))
HEADER = st.lists(st.sampled_from(KEYS + ["extra", "", "question"]) | st.text(max_size=6), min_size=1, max_size=5)


@settings(FUZZ, max_examples=150)
@given(HEADER, st.lists(st.lists(CELL, max_size=6), max_size=5), st.booleans())
def test_csv_rows_load_or_are_skipped(tmp_path_factory, header, rows, raw_text):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    text = buffer.getvalue()
    if raw_text:  # also arbitrary text cut out of it: broken quotes, stray separators
        text = text.replace('"', "", 1)
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_text(text, encoding="utf-8")
    try:
        data = _load(path)
    except TokentrustError:
        return
    _check(data)


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=60), st.sampled_from([".jsonl", ".csv"]))
def test_arbitrary_bytes_are_refused_clearly(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"rows{suffix}"
    path.write_bytes(data)
    try:
        _check(_load(path))
    except TokentrustError:
        pass
