"""Ranking metrics: does a higher confidence pick out the better answers? (METHODS §11.1–11.4, §11.8)

All functions take ``(correct, confidence, *, ...)`` with ``confidence`` oriented higher = more
trustworthy (negate an uncertainty before calling; no metric flips signs on its own).
``correct`` is binary except for :func:`prr` and the correlations, which take any real quality.

Ties in confidence. Sorting-based metrics (PRR, AUARC, rejection curve, selective accuracy)
give tied items their *expected* value under a random tie-break (each tied block is replaced
by its mean quality), so results do not depend on input order. Without ties this is exactly
the sorted-order computation of LM-Polygraph / UQ-NLG.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import UserInputError
from ._base import check_pair, finite_ranks, metric, undefined
from .info import Column

__all__ = [
    "RejectionCurve",
    "auarc",
    "kendall",
    "pearson",
    "pr_auc",
    "prr",
    "rejection_curve",
    "roc_auc",
    "selective_accuracy",
    "spearman",
]


# --------------------------------------------------------------------------- kernels


def _sorted_quality(quality: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Quality ordered most-confident first, each block of tied confidences replaced by its mean."""
    order = np.argsort(-confidence, kind="stable")
    q = quality[order]
    c = confidence[order]
    starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
    if starts.size == c.size:  # no ties
        return q
    sums = np.add.reduceat(q, starts)
    sizes = np.diff(np.r_[starts, c.size])
    return np.repeat(sums / sizes, sizes)


def _running_mean(sorted_quality: np.ndarray) -> np.ndarray:
    """``a[k-1]`` = mean quality of the ``k`` first items, ``k = 1..N``."""
    return np.cumsum(sorted_quality) / np.arange(1, sorted_quality.size + 1)


def _pra(sorted_quality: np.ndarray, n_rejections: int) -> float:
    """Prediction-rejection area: mean over ``k = N-R+1..N`` of the mean quality of the top ``k``."""
    return float(_running_mean(sorted_quality)[-n_rejections:].mean())


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` (what ``sklearn.metrics.auc`` computes for sorted ``x``)."""
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def _minmax(quality: np.ndarray) -> np.ndarray:
    """LM-Polygraph's target normalisation: to [0, 1]; a constant target is widened by ±1."""
    lo, hi = float(quality.min()), float(quality.max())
    if np.isclose(lo, hi):
        lo, hi = lo - 1.0, hi + 1.0
    return (quality - lo) / (hi - lo)


def _random_pra(quality: np.ndarray, n_rejections: int, n_permutations: int, seed: int) -> float:
    """PRA averaged over random orders, following LM-Polygraph's ``get_random_scores``.

    As there, one ``arange`` is shuffled in place each round by the legacy generator seeded
    with ``seed`` (a private ``RandomState``, so global state is untouched) and used as the
    uncertainty. Unlike there, the shuffles act on the items in ascending-quality order rather
    than input order, so the baseline, like every metric here, does not depend on item order;
    the two differ only by Monte-Carlo noise (its expectation is exactly ``mean(quality)``).
    """
    quality = np.sort(quality)
    rng = np.random.RandomState(seed)
    uncertainty = np.arange(quality.size)
    total = 0.0
    for _ in range(n_permutations):
        rng.shuffle(uncertainty)
        total += _pra(quality[np.argsort(uncertainty)], n_rejections)
    return total / n_permutations


# --------------------------------------------------------------------------- ROC / PR


@metric(higher_is_better=True, needs_probability=False, target="correct", label="ROC-AUC", aliases=("auroc",))
def roc_auc(correct: Any, confidence: Any) -> float:
    """Area under the ROC curve for telling correct (positive) from incorrect items.

    The probability that a random correct item outranks a random incorrect one (ties ½).
    ``±inf`` confidences become ``max+1``/``min-1`` of the finite ones, as in LM-Polygraph.
    NaN with :class:`UndefinedMetricWarning` when only one class is present (never 0.5).
    """
    from sklearn.metrics import roc_auc_score  # imported here: sklearn takes most of a second to load

    y, c = check_pair(correct, confidence)
    if y.min() == y.max():
        return undefined(f"roc_auc is undefined: every item has correct={int(y[0])}")
    return float(roc_auc_score(y.astype(int), finite_ranks(c)))


@metric(
    higher_is_better=True, needs_probability=False, target="correct", label="PR-AUC",
    note="correct = positive", aliases=("average_precision",),
)
def pr_auc(correct: Any, confidence: Any, *, positive: Literal["correct", "incorrect"] = "correct") -> float:
    """Average precision (area under the precision-recall curve).

    ``positive="correct"`` (AUPRC-Positive): retrieve correct items by high confidence.
    ``positive="incorrect"`` (AUPRC-Negative): retrieve errors by *low* confidence, i.e. the
    errors are the positives and the ranking score is the uncertainty ``-confidence``; this is
    the documented definition of that variant, not a hidden orientation change.
    A random score scores the positive class's prevalence, so report the base rate alongside.
    NaN with :class:`UndefinedMetricWarning` when only one class is present.
    """
    from sklearn.metrics import average_precision_score

    if positive not in ("correct", "incorrect"):
        raise UserInputError(f"positive={positive!r} is not valid; use 'correct' or 'incorrect'")
    y, c = check_pair(correct, confidence)
    if y.min() == y.max():
        return undefined(f"pr_auc is undefined: every item has correct={int(y[0])}")
    c = finite_ranks(c)
    if positive == "incorrect":
        return float(average_precision_score(1 - y.astype(int), -c))
    return float(average_precision_score(y.astype(int), c))


# --------------------------------------------------------------------------- rejection


@metric(higher_is_better=True, needs_probability=False, target="quality", label="PRR")
def prr(
    correct: Any,
    confidence: Any,
    *,
    max_rejection: float = 1.0,
    n_permutations: int = 1000,
    seed: int = 42,
) -> float:
    """Prediction Rejection Ratio, LM-Polygraph's definition (METHODS §11.3).

    ``correct`` may be any real quality (ROUGE-L, AlignScore, …); it is min-max normalised.
    ``PRR = (PRA - PRA_random) / (PRA_oracle - PRA_random)`` where PRA averages, over
    ``k = N-R+1..N`` with ``R = floor(max_rejection·N)``, the mean quality of the ``k`` most
    confident items; the oracle sorts by quality, the random baseline averages
    ``n_permutations`` shuffles seeded with ``seed``. 1 is perfect, 0 random, < 0 worse.

    Deviations, both for order invariance and the NaN contract: tied confidences count at their
    block's mean quality; the random shuffles act on a quality-sorted copy (see
    ``_random_pra``); and where LM-Polygraph returns the raw PRA when oracle = random
    (constant quality), a number on another scale, this returns NaN with
    :class:`UndefinedMetricWarning`.
    """
    if not 0.0 < max_rejection <= 1.0:
        raise UserInputError(f"max_rejection={max_rejection!r} must be in (0, 1]")
    if n_permutations < 1:
        raise UserInputError(f"n_permutations={n_permutations!r} must be >= 1")
    q, c = check_pair(correct, confidence, binary=False)
    n_rej = math.floor(max_rejection * q.size)
    if n_rej < 1:
        raise UserInputError(
            f"max_rejection={max_rejection!r} rejects no item out of {q.size}; raise it or add items"
        )
    if np.isclose(q.min(), q.max()):
        return undefined("prr is undefined: quality is constant, so the oracle equals the random baseline")
    q = _minmax(q)
    pra = _pra(_sorted_quality(q, c), n_rej)
    oracle = _pra(np.sort(q)[::-1], n_rej)
    random = _random_pra(q, n_rej, n_permutations, seed)
    if np.isclose(oracle, random, rtol=1e-12, atol=1e-12):  # e.g. R = 1: every order has PRA = mean
        return undefined("prr is undefined: the oracle equals the random baseline; raise max_rejection")
    return float((pra - random) / (oracle - random))


@metric(higher_is_better=True, needs_probability=False, target="correct", label="AUARC")
def auarc(correct: Any, confidence: Any) -> float:
    """Area under the accuracy-rejection (accuracy-coverage) curve, UQ-NLG's definition.

    Items sorted most confident first; ``a(k)`` = accuracy of the first ``k``; the area is the
    trapezoidal integral of ``a`` over ``x = linspace(0, 1, N)`` (METHODS §11.4).
    NaN with :class:`UndefinedMetricWarning` for a single item (no area).
    """
    y, c = check_pair(correct, confidence)
    if y.size < 2:
        return undefined("auarc is undefined for a single item")
    acc = _running_mean(_sorted_quality(y, c))
    return _trapezoid(acc, np.linspace(0.0, 1.0, y.size))


#: Benchmarks report selective accuracy at these coverages (in %), one column each.
_BENCH_COVERAGES = (50, 80, 90)


@metric(
    higher_is_better=True, needs_probability=False, target="correct", label="Selective accuracy",
    bench=[
        Column(key=f"selective_accuracy@{p}", label=f"acc@{p}%", params={"coverage": p / 100})
        for p in _BENCH_COVERAGES
    ],
    terminal=False,
    note=f"accuracy of the {'/'.join(map(str, _BENCH_COVERAGES))} % most confident answers",
)
def selective_accuracy(correct: Any, confidence: Any, *, coverage: float = 0.8) -> float:
    """Accuracy of the ``ceil(coverage·N)`` most confident items (METHODS §11.4).

    Items tied at the cut contribute their block's mean accuracy (the expected value under a
    random tie-break), so the realised coverage is exactly ``ceil(coverage·N)/N``.
    """
    if not 0.0 < coverage <= 1.0:
        raise UserInputError(f"coverage={coverage!r} must be in (0, 1]")
    y, c = check_pair(correct, confidence)
    k = max(1, math.ceil(coverage * y.size - 1e-9))  # 1e-9: 0.7*10 must give 7, not 8
    return float(_running_mean(_sorted_quality(y, c))[k - 1])


@dataclass(frozen=True, kw_only=True, eq=False)
class RejectionCurve:
    """Accuracy as a function of coverage when keeping the most confident items first.

    Arrays have one entry per ``k = 1..N`` kept items: ``coverage = k/N``; ``accuracy`` the
    score's curve; ``oracle`` the best possible order; ``random`` the expected accuracy of a
    random order (the base rate); ``threshold`` the lowest confidence kept at that point.
    """

    coverage: np.ndarray
    accuracy: np.ndarray
    oracle: np.ndarray
    random: np.ndarray
    threshold: np.ndarray

    def __post_init__(self) -> None:
        for name in ("coverage", "accuracy", "oracle", "random", "threshold"):
            getattr(self, name).setflags(write=False)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready dict of plain lists."""
        return {
            name: getattr(self, name).tolist()
            for name in ("coverage", "accuracy", "oracle", "random", "threshold")
        }


def rejection_curve(correct: Any, confidence: Any) -> RejectionCurve:
    """Accuracy-coverage curve with oracle and random reference lines (see :class:`RejectionCurve`)."""
    y, c = check_pair(correct, confidence)
    n = y.size
    return RejectionCurve(
        coverage=np.arange(1, n + 1) / n,
        accuracy=_running_mean(_sorted_quality(y, c)),
        oracle=_running_mean(np.sort(y)[::-1]),
        random=np.full(n, y.mean()),
        threshold=np.sort(c)[::-1],
    )


# --------------------------------------------------------------------------- correlations


def _correlation(name: str, function: str, correct: Any, confidence: Any, *, allow_inf: bool) -> float:
    """``scipy.stats.<function>(quality, confidence).statistic`` with the shared checks and NaN rules."""
    from scipy import stats  # imported here: scipy.stats is slow to load

    q, c = check_pair(correct, confidence, binary=False, allow_inf=allow_inf)
    if q.size < 2:
        return undefined(f"{name} is undefined for fewer than two items", stacklevel=4)
    if q.min() == q.max() or c.min() == c.max():
        which = "correct" if q.min() == q.max() else "confidence"
        return undefined(f"{name} is undefined: {which} is constant", stacklevel=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        return float(getattr(stats, function)(q, finite_ranks(c)).statistic)


@metric(higher_is_better=True, needs_probability=False, target="quality", label="Spearman", terminal=False)
def spearman(correct: Any, confidence: Any) -> float:
    """Spearman rank correlation between quality and confidence (positive = good).

    ``±inf`` confidences are ranked first/last. NaN with a warning on constant input.
    """
    return _correlation("spearman", "spearmanr", correct, confidence, allow_inf=True)


@metric(higher_is_better=True, needs_probability=False, target="quality", label="Pearson", bench=False)
def pearson(correct: Any, confidence: Any) -> float:
    """Pearson linear correlation between quality and confidence; confidences must be finite.

    NaN with :class:`UndefinedMetricWarning` on constant input.
    """
    return _correlation("pearson", "pearsonr", correct, confidence, allow_inf=False)


@metric(higher_is_better=True, needs_probability=False, target="quality", label="Kendall", bench=False)
def kendall(correct: Any, confidence: Any) -> float:
    """Kendall's tau-b between quality and confidence (positive = good).

    NaN with :class:`UndefinedMetricWarning` on constant input.
    """
    return _correlation("kendall", "kendalltau", correct, confidence, allow_inf=True)
