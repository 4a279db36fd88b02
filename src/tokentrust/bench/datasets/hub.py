"""Hugging Face Hub datasets, registered as ``hf:<name>`` beside the built-in ones.

Each adapter (``hf:trivia_qa``, ``hf:sciq``, ``hf:gsm8k``, ``hf:wmt19``) names a Hub dataset, its
default config and split, its correctness rule, and how one row becomes a question with references.
``hf:<name>`` is the generic adapter: ``load_dataset("hf:owner/name[:config]")`` reads the ``test``
split of any Hub dataset whose rows have the user-file columns (``question``/``messages`` and
``answer``/``answers``/``references``).

Registering costs nothing: the optional ``datasets`` package is imported, and the Hub reached, only
when a dataset is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar

from ...errors import UserInputError
from ...registry import datasets as _registry
from . import Dataset, Item, Prompt, _check_limit, _check_seed, _offline_hint, _unique
from .files import _BadRow, _row_item

__all__ = ["GENERIC", "HubDataset", "gsm8k", "load_hub", "sciq", "trivia_qa", "wmt19"]

#: ``(row, index, config) -> (item id, prompt, references)``
Converter = Callable[[dict[str, Any], int, str | None], tuple[str, Prompt, list[str]]]


@dataclass(frozen=True, kw_only=True)
class HubDataset:
    """A Hub dataset and how its rows become items; registered as ``hf:<name>``.

    ``hub_id=None`` marks the generic adapter, whose Hub id comes from the spec and whose rows are
    read like a user file. Calling an adapter loads it like any registered dataset
    (``hub.gsm8k(limit=10)`` is ``load_dataset("hf:gsm8k", limit=10)``).
    """

    source: ClassVar[str] = "hub"

    name: str
    hub_id: str | None
    config: str | None
    split: str
    correctness: str
    convert: Converter | None = None

    @property
    def description(self) -> str:
        """What the dataset is, for listings."""
        if self.hub_id is None:
            return "any Hub dataset with question and answer columns: hf:<owner/name>[:<config>]"
        return (self.convert.__doc__ or "").strip().splitlines()[0] if self.convert else self.hub_id

    def __call__(self, limit: int | None = None, seed: int = 0) -> Dataset:
        limit, _ = _check_limit(limit), _check_seed(seed)
        if self.hub_id is None:
            raise UserInputError(
                "the generic Hub adapter needs a dataset id: load 'hf:<owner/name>[:<config>]', "
                "e.g. load_dataset('hf:allenai/sciq')"
            )
        return load_hub(self.name, limit=limit, correctness=None)


def _adapter(
    *, hub_id: str, config: str | None, split: str, correctness: str
) -> Callable[[Converter], HubDataset]:
    """Register a row converter as the adapter ``hf:<function name>``."""

    def register(convert: Converter) -> HubDataset:
        adapter = HubDataset(
            name=convert.__name__, hub_id=hub_id, config=config, split=split, correctness=correctness,
            convert=convert,
        )
        _registry.register(adapter, name=f"hf:{adapter.name}")
        return adapter

    return register


@_adapter(hub_id="mandarjoshi/trivia_qa", config="rc.nocontext", split="validation", correctness="contains")
def trivia_qa(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    """TriviaQA questions without context; the answer and its aliases are references."""
    answer = row["answer"]
    refs = _unique([answer["value"], *answer.get("aliases", [])])
    return row.get("question_id") or str(index), f"{row['question']} Answer with a short phrase only.", refs


@_adapter(hub_id="allenai/sciq", config=None, split="test", correctness="contains")
def sciq(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    """SciQ science questions, asked open-ended (the distractors are not shown)."""
    return str(index), f"{row['question']} Answer with a short phrase only.", [row["correct_answer"]]


@_adapter(hub_id="openai/gsm8k", config="main", split="test", correctness="exact")
def gsm8k(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    """GSM8K grade-school maths; the reference is the final number after ``####``."""
    final = row["answer"].rpartition("####")[2].strip().replace(",", "")
    return str(index), f"{row['question']}\nGive the final answer as a number only.", [final]


@_adapter(hub_id="wmt/wmt19", config="de-en", split="validation", correctness="chrf>=50")
def wmt19(row: dict[str, Any], index: int, config: str | None) -> tuple[str, Prompt, list[str]]:
    """WMT19 translation in the config's direction (``de-en`` translates German into English)."""
    source, _, target = (config or "de-en").partition("-")
    pair = row["translation"]
    prompt = (
        f"Translate this text from the language with code '{source}' into the language with code "
        f"'{target}'. Answer with the translation only.\n\n{pair[source]}"
    )
    return str(index), prompt, [pair[target]]


GENERIC = HubDataset(name="<name>", hub_id=None, config=None, split="test", correctness="contains")
_registry.register(GENERIC, name="hf:<name>")


def _adapter_for(name: str) -> HubDataset | None:
    """The registered adapter ``hf:<name>``, or ``None`` for the generic one."""
    key = f"hf:{name}"
    entry = _registry.get(key) if key in _registry else None
    return entry if isinstance(entry, HubDataset) and entry.hub_id is not None else None


def load_hub(spec: str, *, limit: int | None, correctness: str | None) -> Dataset:
    """``<name>[:<config>]`` (what follows ``hf:``): a registered adapter, else generic columns."""
    name, _, config = spec.partition(":")
    if not name:
        raise UserInputError(
            f"empty Hub dataset name in 'hf:{spec}'; e.g. 'hf:trivia_qa' or 'hf:wmt19:de-en'"
        )
    try:
        hf_datasets = importlib.import_module("datasets")
    except ImportError as exc:
        raise UserInputError(
            f"'hf:{spec}' needs the optional 'datasets' package (pip install 'tokentrust[hub]'), which is not "
            f"installed, and network access to the Hugging Face Hub; {_offline_hint()}"
        ) from exc
    adapter = _adapter_for(name)
    hub_id = adapter.hub_id if adapter else name
    hub_config = config or (adapter.config if adapter else None)
    split = adapter.split if adapter else GENERIC.split
    split_spec = f"{split}[:{limit}]" if limit else split
    try:
        rows = hf_datasets.load_dataset(hub_id, hub_config, split=split_spec)
    except (OSError, ConnectionError) as exc:
        raise UserInputError(
            f"could not load {hub_id!r} from the Hugging Face Hub (offline, or no such dataset?): {exc}; "
            f"{_offline_hint()}"
        ) from exc
    except ValueError as exc:
        raise UserInputError(
            f"could not load {hub_id!r} (config {hub_config!r}, split {split!r}): {exc}"
        ) from exc

    items = []
    for index, row in enumerate(rows):
        if adapter and adapter.convert:
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
    rule = correctness or (adapter.correctness if adapter else GENERIC.correctness)
    return Dataset(name=f"hf:{spec}", version=version, items=items, correctness=rule)
