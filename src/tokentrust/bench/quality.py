"""Answer quality: does a model's answer match the gold references, and how closely.

Normalisation (:func:`normalize`, used by the word-level metrics and the match rules):

1. Unicode NFKD, then combining marks are dropped, so matching is **accent-insensitive**
   (``"Bogota"`` matches ``"Bogotá"``, ``"Reykjavik"`` matches ``"Reykjavík"``). The data packages
   and the models disagree about accents far more often than two answers differ only by one.
2. ``casefold`` (Unicode-aware lowercase).
3. Every punctuation or symbol character (Unicode categories ``P*`` and ``S*``) becomes a space,
   so ``"l'Allemagne"`` → ``"l allemagne"`` and ``"St. John's"`` → ``"st john s"``.
4. The English articles *a*, *an*, *the* are removed as whole words (as in SQuAD).
5. Whitespace is collapsed.

Words are whitespace-separated, so scripts written without spaces (Chinese, Japanese, Thai) match
only as whole answers. BLEU and chrF take the raw text (sacrebleu tokenises itself); ROUGE-L uses
rouge-score's tokeniser rule (lowercase, runs of letters and digits) widened from ASCII to every
script, so it equals rouge-score's default on ASCII text and stays meaningful elsewhere.

Correctness rules (``Dataset.correctness``; :func:`judge` applies them):

``contains``
    correct when a normalised reference appears as a whole-word span of the normalised answer
    (``"The capital is Canberra."`` is correct for ``"Canberra"``); quality is 1.0 when correct,
    else the best token F1 against the references (partial credit). Two refinements keep labels honest:

    * **Abbreviations**: ``St``/``Ste``/``Mt``/``Ft`` before another word read as
      Saint/Sainte/Mount/Fort, in answers and references alike (``"St. Paul"`` states ``"Saint Paul"``).
    * **Short references** (symbols and codes: one word of at most :data:`SHORT_REFERENCE` letters, or
      of three capitals such as ``"EUR"``; a word like ``"Yen"`` is not one) must be a whole *claim* of the
      answer, not any word of it. The answer is cut into
      segments at sentence and clause punctuation (``. , ; : ! ? ( ) [ ] " = /``, a spaced dash),
      at ``and``/``or``, and at the copulas ``is``/``are``/``was``/``were``/``am``; a segment
      directly before a copula is the sentence's subject and states nothing. The reference must
      equal a whole remaining segment: ``"The symbol is Co."`` and ``"Co (cobalt)"`` state Co;
      ``"I don't know"``, ``"He is a chemist"``, ``"it is in group 13"`` and ``"Pr-26"`` state
      neither I, He, In nor Pr.
``exact``
    correct when the normalised answer equals a normalised reference; quality is 1.0 or the best
    token F1. When every reference is a number, the answer's number is compared instead (see
    :func:`extract_number`; ``"The answer is 1,234."`` is exact for ``"1234"``) and quality is
    1.0 or 0.0.
``<metric>>=<threshold>``
    ``chrf`` or ``bleu`` (0-100, threshold on that scale, e.g. ``chrf>=50``), ``rouge_l`` or ``f1``
    (0-1, e.g. ``rouge_l>=0.5``): correct when the metric against the references reaches the
    threshold; quality is the metric scaled to [0, 1].

``contains`` and ``exact`` take the option ``:cased`` (``"contains:cased"``): matching keeps letter
case, for datasets of symbols and codes where ``"CO"`` (carbon monoxide) is not ``"Co"`` (cobalt).
A dataset says so in its rule (``currency_codes`` does); a user file can say so per row
(``case_sensitive``), passed to :func:`judge` as ``case_sensitive``. The verdict's ``rule`` is the
rule actually applied. :func:`strict_rule` gives the stricter form of a rule, used by
``tokentrust judge`` to show which labels depend on leniency.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..errors import UserInputError

__all__ = [
    "SHORT_REFERENCE",
    "Quality",
    "bleu",
    "check_rule",
    "chrf",
    "contains_match",
    "exact_match",
    "extract_number",
    "judge",
    "normalize",
    "rouge_l",
    "strict_rule",
    "token_f1",
]

_ARTICLES = frozenset({"a", "an", "the"})
# Threshold rules: metric name -> the top of its scale (scores run from 0 to this).
_THRESHOLD_METRICS = MappingProxyType({"chrf": 100.0, "bleu": 100.0, "rouge_l": 1.0, "f1": 1.0})
_RULE_RE = re.compile(r"^\s*([a-z_0-9]+)\s*>=\s*([0-9]*\.?[0-9]+)\s*$")
_MINUS = "-\u2212\u2013"  # hyphen-minus, minus sign, en dash
_NUMBER_RE = re.compile(rf"[{_MINUS}]?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?")
_WORD_RE = re.compile(r"[^\W_]+")
_CASED = ":cased"
#: The longest reference (in letters, one word) held to the short-reference rule of ``contains``; a word of
#: three capital letters (a code such as ``"EUR"``) is held to it too.
SHORT_REFERENCE = 2
# Abbreviations read as the word they stand for when another word follows ("St. Paul" → "Saint Paul").
# (Not "Pt": it is also platinum's symbol.)
_ABBREVIATIONS = MappingProxyType({"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort"})
_COPULAS = frozenset({"is", "are", "was", "were", "am"})
# Where a claim segment ends: sentence and clause punctuation, a spaced dash, and/or, a copula.
_SEGMENT_RE = re.compile(
    r"""[.,;:!?()\[\]{}"“”«»=/\n]|\s[-\u2013\u2014]\s|(?<![^\W_])(is|are|was|were|am|and|or)(?![^\W_])""",
    re.IGNORECASE,
)


def _words(text: str, *, cased: bool = False) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", text)
    out = []
    for ch in decomposed:
        cat = unicodedata.category(ch)
        if cat.startswith("M"):
            continue
        out.append(" " if cat[0] in "PS" else ch)
    joined = "".join(out)
    words = (joined if cased else joined.casefold()).split()
    return [w for w in words if w.casefold() not in _ARTICLES]


def normalize(text: str) -> str:
    """Normalise ``text`` for matching: accents, case, punctuation, articles, whitespace (see module doc)."""
    return " ".join(_words(text))


def _match_text(text: str, *, cased: bool = False) -> str:
    """:func:`normalize` (keeping case if ``cased``) with abbreviations before another word spelled out."""
    words = _words(text, cased=cased)
    for i, word in enumerate(words[:-1]):
        full = _ABBREVIATIONS.get(word.casefold())
        if full is not None:
            words[i] = full.capitalize() if cased and word[:1].isupper() else full
    return " ".join(words)


def _is_short(reference: str) -> bool:
    """A symbol or a code: one word of letters, at most :data:`SHORT_REFERENCE` long or three capitals."""
    words = _words(reference, cased=True)
    if len(words) != 1 or not words[0].isalpha():
        return False
    word = words[0]
    return len(word) <= SHORT_REFERENCE or (len(word) == 3 and word.isupper())


def _claim_segments(answer: str, *, cased: bool) -> set[str]:
    """The answer's segments that can state a short reference (see module doc), as match text."""
    pieces = _SEGMENT_RE.split(answer)
    # split() with one group alternates: text, copula-or-None, text, …; punctuation yields None
    texts, seps = pieces[0::2], pieces[1::2]
    out: set[str] = set()
    for k, text in enumerate(texts):
        following = seps[k] if k < len(seps) else None
        if following is not None and following.casefold() in _COPULAS:
            continue  # the subject of "X is …" states nothing
        if text is not None and (segment := _match_text(text, cased=cased)):
            out.add(segment)
    return out


def _references(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise UserInputError("references is empty; give at least one reference answer")
    for ref in refs:
        if not isinstance(ref, str):
            raise UserInputError(f"references must be strings, got {type(ref).__name__}: {ref!r}")
    return refs


def exact_match(answer: str, references: str | Sequence[str], *, cased: bool = False) -> bool:
    """True when the normalised answer equals one normalised, non-empty reference (letter case kept if ``cased``)."""
    ans = _match_text(answer, cased=cased)
    return any(ref == ans for ref in (_match_text(r, cased=cased) for r in _references(references)) if ref)


def contains_match(answer: str, references: str | Sequence[str], *, cased: bool = False) -> bool:
    """True when a normalised, non-empty reference is a whole-word span of the normalised answer.

    A short reference (a symbol or code) must instead be a whole claim segment of the answer; ``cased``
    keeps letter case (see the module doc).
    """
    refs = _references(references)
    padded = f" {_match_text(answer, cased=cased)} "
    segments: set[str] | None = None
    for ref in refs:
        target = _match_text(ref, cased=cased)
        if not target:
            continue
        if _is_short(ref):
            segments = _claim_segments(answer, cased=cased) if segments is None else segments
            if target in segments:
                return True
        elif f" {target} " in padded:
            return True
    return False


def _f1(answer_words: list[str], reference_words: list[str]) -> float:
    if not answer_words or not reference_words:
        return float(answer_words == reference_words)
    common = sum((Counter(answer_words) & Counter(reference_words)).values())
    if common == 0:
        return 0.0
    precision = common / len(answer_words)
    recall = common / len(reference_words)
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str, references: str | Sequence[str], *, cased: bool = False) -> float:
    """SQuAD word-overlap F1 of the normalised answer, best over the references, in [0, 1].

    Two empty texts score 1.0; an empty text against a non-empty one scores 0.0. ``cased`` keeps letter case.
    """
    words = _words(answer, cased=cased)
    return max(_f1(words, _words(ref, cased=cased)) for ref in _references(references))


def bleu(answer: str, references: str | Sequence[str]) -> float:
    """Sentence BLEU (sacrebleu defaults: 13a tokeniser, exp smoothing) against all references, 0-100."""
    sacrebleu = _import("sacrebleu")
    return _clip(float(sacrebleu.sentence_bleu(answer, _references(references)).score), 100.0)


def chrf(answer: str, references: str | Sequence[str]) -> float:
    """Sentence chrF (sacrebleu defaults: character 6-grams, beta 2) against all references, 0-100."""
    sacrebleu = _import("sacrebleu")
    return _clip(float(sacrebleu.sentence_chrf(answer, _references(references)).score), 100.0)


def _clip(value: float, top: float) -> float:
    """Clamp float round-off (sacrebleu can return 100.00000000000004) into [0, top]."""
    return min(max(value, 0.0), top)


class _WordTokenizer:
    """rouge-score's default tokeniser rule (lowercase, runs of letters/digits), for every script."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD_RE.findall(text.lower())


def rouge_l(answer: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F-measure (rouge-score, no stemming), best over the references, in [0, 1]."""
    rouge_scorer = _import("rouge_score.rouge_scorer", package="rouge-score")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_WordTokenizer())
    return max(float(scorer.score(ref, answer)["rougeL"].fmeasure) for ref in _references(references))


def _import(module: str, *, package: str | None = None) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module
        raise UserInputError(
            f"this metric needs the optional package {name!r}: pip install 'tokentrust[bench]'"
        ) from exc


def extract_number(text: str) -> int | Decimal | None:
    """The number an answer gives: the first number after the last ``=`` if there is one, else the first.

    Thousands separators (``"1,234"``) and a leading minus (``"-5"``, ``"−5"``) are understood.
    Returns an ``int`` for whole numbers (``"12.0"`` → 12), a ``Decimal`` otherwise, ``None`` if the
    text has no digits. Taking the part after ``=`` means an echoed sum (``"47 + 38 = 85"``) yields 85.
    """
    _, eq, tail = text.rpartition("=")
    for part in (tail, text) if eq else (text,):
        match = _NUMBER_RE.search(part)
        if match is None:
            continue
        token = match.group(0).replace(",", "")
        if token[0] in _MINUS:
            token = "-" + token[1:]
        try:
            value = Decimal(token)
        except InvalidOperation:  # pragma: no cover - the regex only admits valid decimals
            continue
        return int(value) if value == value.to_integral_value() else value
    return None


class Quality(BaseModel):
    """The verdict on one answer: ``correct`` by the dataset's rule, and a continuous ``quality`` in [0, 1]."""

    model_config = ConfigDict(frozen=True)

    correct: bool
    quality: float
    rule: str


def check_rule(rule: str) -> str:
    """Validate a correctness rule (see module doc) and return it in canonical form (``"chrf>=50"``)."""
    if not isinstance(rule, str):
        raise UserInputError(f"correctness rule must be a string, got {type(rule).__name__}")
    text = rule.strip().lower()
    base, colon, option = (part.strip() for part in text.partition(":"))
    if base in ("contains", "exact") and (not colon or option == "cased"):
        return base + (_CASED if colon else "")
    match = _RULE_RE.match(text)
    valid = (
        "'contains', 'exact' (either with ':cased' for case-sensitive matching), or '<metric>>=<threshold>' "
        "with metric chrf/bleu (0-100) or rouge_l/f1 (0-1)"
    )
    if match is None or match.group(1) not in _THRESHOLD_METRICS:
        raise UserInputError(f"unknown correctness rule {rule!r}; valid: {valid}")
    metric, threshold = match.group(1), float(match.group(2))
    top = _THRESHOLD_METRICS[metric]
    if not 0 <= threshold <= top:
        raise UserInputError(
            f"threshold {threshold:g} in rule {rule!r} is outside {metric}'s range 0-{top:g}"
        )
    return f"{metric}>={threshold:g}"


def _as_number(ref: str) -> int | Decimal | None:
    """The number a reference *is* (the whole reference, not a number inside it), else None."""
    stripped = ref.strip()
    match = _NUMBER_RE.fullmatch(stripped)
    return extract_number(stripped) if match else None


def strict_rule(rule: str) -> str:
    """The stricter form of ``rule``: ``contains``/``exact`` become case-sensitive; threshold rules stay."""
    rule = check_rule(rule)
    base = rule.partition(":")[0]
    return base + _CASED if base in ("contains", "exact") else rule


def judge(
    dataset: Any, answer: str, references: str | Sequence[str], *, case_sensitive: bool | None = None
) -> Quality:
    """Judge ``answer`` against ``references`` by ``dataset``'s correctness rule.

    ``dataset`` is a :class:`~tokentrust.bench.datasets.Dataset` (its ``correctness`` is used) or
    a rule string such as ``"contains"`` or ``"chrf>=50"``. ``case_sensitive`` (an item's own flag)
    overrides the rule's ``:cased`` option for ``contains`` and ``exact``; ``None`` keeps the rule's.
    """
    raw_rule = dataset if isinstance(dataset, str) else getattr(dataset, "correctness", None)
    if raw_rule is None:
        raise UserInputError(f"judge needs a Dataset or a rule string, got {type(dataset).__name__}")
    rule = check_rule(raw_rule)
    refs = _references(references)
    if not isinstance(answer, str):
        raise UserInputError(f"answer must be a string, got {type(answer).__name__}")
    if case_sensitive is not None and not isinstance(case_sensitive, bool):
        raise UserInputError(f"case_sensitive must be true, false or None, got {case_sensitive!r}")
    base = rule.partition(":")[0]
    if base in ("contains", "exact") and case_sensitive is not None:
        rule = base + (_CASED if case_sensitive else "")
    cased = rule.endswith(_CASED)

    if base == "contains":
        correct = contains_match(answer, refs, cased=cased)
        return Quality(correct=correct, quality=1.0 if correct else token_f1(answer, refs, cased=cased), rule=rule)
    if base == "exact":
        numbers = [_as_number(ref) for ref in refs]
        if all(n is not None for n in numbers):
            value = extract_number(answer)
            correct = value is not None and value in numbers
            return Quality(correct=correct, quality=float(correct), rule=rule)
        correct = exact_match(answer, refs, cased=cased)
        return Quality(correct=correct, quality=1.0 if correct else token_f1(answer, refs, cased=cased), rule=rule)

    metric, _, threshold_text = rule.partition(">=")
    scorer = {"chrf": chrf, "bleu": bleu, "rouge_l": rouge_l, "f1": token_f1}[metric]
    value = scorer(answer, refs)
    top = _THRESHOLD_METRICS[metric]
    quality = _clip(value / top, 1.0)
    return Quality(correct=value >= float(threshold_text), quality=quality, rule=rule)
