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
    else the best token F1 against the references (partial credit).
``exact``
    correct when the normalised answer equals a normalised reference; quality is 1.0 or the best
    token F1. When every reference is a number, the answer's number is compared instead (see
    :func:`extract_number`; ``"The answer is 1,234."`` is exact for ``"1234"``) and quality is
    1.0 or 0.0.
``<metric>>=<threshold>``
    ``chrf`` or ``bleu`` (0-100, threshold on that scale, e.g. ``chrf>=50``), ``rouge_l`` or ``f1``
    (0-1, e.g. ``rouge_l>=0.5``): correct when the metric against the references reaches the
    threshold; quality is the metric scaled to [0, 1].
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
    "token_f1",
]

_ARTICLES = frozenset({"a", "an", "the"})
# Threshold rules: metric name -> the top of its scale (scores run from 0 to this).
_THRESHOLD_METRICS = MappingProxyType({"chrf": 100.0, "bleu": 100.0, "rouge_l": 1.0, "f1": 1.0})
_RULE_RE = re.compile(r"^\s*([a-z_0-9]+)\s*>=\s*([0-9]*\.?[0-9]+)\s*$")
_MINUS = "-\u2212\u2013"  # hyphen-minus, minus sign, en dash
_NUMBER_RE = re.compile(rf"[{_MINUS}]?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:\.\d+)?")
_WORD_RE = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Normalise ``text`` for matching: accents, case, punctuation, articles, whitespace (see module doc)."""
    decomposed = unicodedata.normalize("NFKD", text)
    out = []
    for ch in decomposed:
        cat = unicodedata.category(ch)
        if cat.startswith("M"):
            continue
        out.append(" " if cat[0] in "PS" else ch)
    words = "".join(out).casefold().split()
    return " ".join(w for w in words if w not in _ARTICLES)


def _references(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else list(references)
    if not refs:
        raise UserInputError("references is empty; give at least one reference answer")
    for ref in refs:
        if not isinstance(ref, str):
            raise UserInputError(f"references must be strings, got {type(ref).__name__}: {ref!r}")
    return refs


def exact_match(answer: str, references: str | Sequence[str]) -> bool:
    """True when the normalised answer equals one normalised, non-empty reference."""
    ans = normalize(answer)
    return any(ref == ans for ref in map(normalize, _references(references)) if ref)


def contains_match(answer: str, references: str | Sequence[str]) -> bool:
    """True when a normalised, non-empty reference is a whole-word span of the normalised answer."""
    padded = f" {normalize(answer)} "
    return any(f" {ref} " in padded for ref in map(normalize, _references(references)) if ref)


def _f1(answer_words: list[str], reference_words: list[str]) -> float:
    if not answer_words or not reference_words:
        return float(answer_words == reference_words)
    common = sum((Counter(answer_words) & Counter(reference_words)).values())
    if common == 0:
        return 0.0
    precision = common / len(answer_words)
    recall = common / len(reference_words)
    return 2 * precision * recall / (precision + recall)


def token_f1(answer: str, references: str | Sequence[str]) -> float:
    """SQuAD word-overlap F1 of the normalised answer, best over the references, in [0, 1].

    Two empty texts score 1.0; an empty text against a non-empty one scores 0.0.
    """
    words = normalize(answer).split()
    return max(_f1(words, normalize(ref).split()) for ref in _references(references))


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
    if text in ("contains", "exact"):
        return text
    match = _RULE_RE.match(text)
    valid = (
        "'contains', 'exact', or '<metric>>=<threshold>' with metric chrf/bleu (0-100) or rouge_l/f1 (0-1)"
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


def judge(dataset: Any, answer: str, references: str | Sequence[str]) -> Quality:
    """Judge ``answer`` against ``references`` by ``dataset``'s correctness rule.

    ``dataset`` is a :class:`~tokentrust.bench.datasets.Dataset` (its ``correctness`` is used) or
    a rule string such as ``"contains"`` or ``"chrf>=50"``.
    """
    raw_rule = dataset if isinstance(dataset, str) else getattr(dataset, "correctness", None)
    if raw_rule is None:
        raise UserInputError(f"judge needs a Dataset or a rule string, got {type(dataset).__name__}")
    rule = check_rule(raw_rule)
    refs = _references(references)
    if not isinstance(answer, str):
        raise UserInputError(f"answer must be a string, got {type(answer).__name__}")

    if rule == "contains":
        correct = contains_match(answer, refs)
        return Quality(correct=correct, quality=1.0 if correct else token_f1(answer, refs), rule=rule)
    if rule == "exact":
        numbers = [_as_number(ref) for ref in refs]
        if all(n is not None for n in numbers):
            value = extract_number(answer)
            correct = value is not None and value in numbers
            return Quality(correct=correct, quality=float(correct), rule=rule)
        correct = exact_match(answer, refs)
        return Quality(correct=correct, quality=1.0 if correct else token_f1(answer, refs), rule=rule)

    metric, _, threshold_text = rule.partition(">=")
    scorer = {"chrf": chrf, "bleu": bleu, "rouge_l": rouge_l, "f1": token_f1}[metric]
    value = scorer(answer, refs)
    top = _THRESHOLD_METRICS[metric]
    quality = _clip(value / top, 1.0)
    return Quality(correct=value >= float(threshold_text), quality=quality, rule=rule)
