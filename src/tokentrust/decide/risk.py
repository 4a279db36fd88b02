"""Thresholds with a guarantee (METHODS.md §9.2): risk-controlled abstention and conformal claim filtering.

**Abstention with a risk guarantee** (Learn-then-Test with fixed-sequence testing). Answer iff the
probability ``p ≥ τ``. For a grid of thresholds fixed in advance (default ``1, 0.999, …, 0``, high to low),
count on the calibration set the answered items ``n_τ`` and the wrong ones among them ``e_τ``, and take
the one-sided Clopper–Pearson upper bound ``U(τ) = Beta⁻¹(1 − δ; e_τ + 1, n_τ − e_τ)`` on the error rate
among answered items ``R(τ) = P(wrong | p ≥ τ)``. Scanning the grid from high to low, every threshold with
``U(τ) ≤ α`` is accepted until the first that fails; the result is the last one accepted (the lowest, so
the most answers). Then ``P(R(τ̂) ≤ α) ≥ 1 − δ`` over the draw of ``n`` exchangeable calibration items:
``U(τ) ≤ α`` is the exact binomial test of ``H₀: R(τ) > α`` at level δ given ``n_τ`` (``e_τ ~ Bin(n_τ,
R(τ))``), and fixed-sequence testing keeps the family-wise error at δ without a multiplicity correction.

The first tests decide everything (the scan stops at the first failure), and at the top of the grid
few items are answered: a threshold answering fewer than :func:`min_answered` items (``m₀ = ⌈ln δ / ln(1 −
α)⌉``) cannot pass even with no error, and one answering barely more fails at its first error. So the scan
starts at the first grid threshold answering at least :func:`start_size` items, ``max(m₀, min(m½, ⌊n/4⌋))``
with ``m½`` the fewest answered items that pass at an observed error rate of α/2 (α = 0.1, δ = 0.05: m₀ =
29, m½ = 76). The start depends on counts only, never on labels; where the error rate ``R`` decreases with
τ (a calibrated probability) the family-wise error stays ≤ δ: a false acceptance needs the first tested
null to pass, an exact level-δ test given the counts (the simulation test checks it). When no threshold
passes, the calibration set is too small (or the model too often wrong) for α: :func:`risk_threshold`
refuses, saying why.

This is mapie's ``BinaryClassificationController(risk="precision", target_level=1 − α, confidence_level=1
− δ, fwer_method="fixed_sequence")``, whose binary Hoeffding–Bentkus p-value ``min(exp(−n·h₁),
BinomCDF(e; n, α))`` equals the exact binomial p-value here (the Hoeffding term is never smaller), and
``p ≤ δ ⇔ U ≤ α``. Two differences: mapie's scan starts at the top of its grid and so stops at once where
the top answers too few items (this one starts at :func:`start_size` answered); and mapie orders its grid by
the direction of the observed risk, this one always tests high to low. Where the grid's top threshold
answers enough items and the observed risk decreases with τ, both accept the same thresholds (mapie 1.6
counts errors as ``⌈n·(e/n)⌉``, which floating point sometimes makes ``e + 1``, e.g. 15 of 232: there it
is slightly more conservative).

**Conformal claim filtering** (Mohri & Hashimoto 2024). For each calibration answer ``i`` with labelled
claims, ``r_i`` = the highest score of a false claim (``−∞`` if none is false): keeping only claims scored
``> t`` leaves no false claim iff ``t ≥ r_i``. With ``t̂`` = the ``⌈(n + 1)(1 − ε)⌉``-th smallest ``r_i``,
a new exchangeable answer keeps only true claims with probability ≥ 1 − ε (marginally, over calibration
and test answer). Claims with no score (matched no token) are always removed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import UserInputError

__all__ = [
    "ClaimFilter",
    "RiskControl",
    "claim_filter",
    "claim_filter_from_rows",
    "clopper_pearson_upper",
    "default_grid",
    "min_answered",
    "risk_threshold",
    "start_size",
]


def default_grid() -> np.ndarray:
    """Thresholds ``1, 0.999, …, 0``: fixed before seeing data, high to low (no cost to a fine grid)."""
    return np.round(np.linspace(1.0, 0.0, 1001), 3)


def clopper_pearson_upper(errors: int, n: int, delta: float) -> float:
    """One-sided ``1 − δ`` Clopper–Pearson upper bound on a rate with ``errors`` out of ``n`` (1 when n = 0)."""
    from scipy.stats import beta

    if n <= 0 or errors >= n:
        return 1.0
    return float(beta.ppf(1.0 - delta, errors + 1, n - errors))


def _upper_bounds(errors: np.ndarray, n: np.ndarray, delta: float) -> np.ndarray:
    """:func:`clopper_pearson_upper` for arrays of counts."""
    from scipy.stats import beta

    out = np.ones(n.shape, dtype=float)
    ok = (n > 0) & (errors < n)
    out[ok] = beta.ppf(1.0 - delta, errors[ok] + 1, n[ok] - errors[ok])
    return out


def min_answered(alpha: float, delta: float) -> int:
    """Fewest answered items whose bound can reach α at all (none of them wrong): ``⌈ln δ / ln(1 − α)⌉``."""
    _check_levels(alpha, delta)
    return math.ceil(math.log(delta) / math.log1p(-alpha) - 1e-12)


def start_size(alpha: float, delta: float, n: int) -> int:
    """Answered items at the first tested threshold: ``max(m₀, min(m½, ⌊n/4⌋))`` (module docstring)."""
    m0 = min_answered(alpha, delta)
    return max(m0, min(_half_size(alpha, delta, m0), n // 4))


@lru_cache(maxsize=64)
def _half_size(alpha: float, delta: float, m0: int) -> int:
    """Fewest answered items that pass with ``⌊k·α/2⌋`` errors (about ``3.6·m0``; searched up to ``64·m0``)."""
    k = np.arange(m0, 64 * m0 + 1)
    ok = np.flatnonzero(_upper_bounds(np.floor(k * alpha / 2).astype(int), k, delta) <= alpha)
    return int(k[ok[0]]) if ok.size else 64 * m0


def _check_levels(alpha: float, delta: float) -> None:
    for name, v in (("target risk α", alpha), ("δ", delta)):
        if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
            raise UserInputError(f"{name} must lie in (0, 1), got {v!r}")


@dataclass(frozen=True)
class RiskControl:
    """The chosen threshold and what it achieved on the calibration data.

    ``coverage`` = answered share ``n_answered / n``; ``risk`` = error rate among answered; ``upper`` = its
    Clopper–Pearson bound; ``tested`` = ``(τ, n_τ, e_τ, U(τ))`` for each threshold tested, in scan order.
    """

    threshold: float
    alpha: float
    delta: float
    n: int
    n_answered: int
    n_errors: int
    upper: float
    tested: tuple[tuple[float, int, int, float], ...] = ()

    @property
    def coverage(self) -> float:
        return self.n_answered / self.n

    @property
    def risk(self) -> float:
        return self.n_errors / self.n_answered


def _probabilities(probability: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probability, dtype=float).ravel()
    y = np.asarray(correct, dtype=float).ravel()
    if p.shape != y.shape:
        raise UserInputError(f"{p.size} probabilities but {y.size} correctness labels")
    if not np.isin(y, (0.0, 1.0)).all():
        raise UserInputError("correctness labels must be 0/1 (or booleans)")
    keep = ~np.isnan(p)  # an undefined probability is never answered: it cannot reach any threshold
    if ((p[keep] < 0) | (p[keep] > 1)).any():
        raise UserInputError("risk control needs probabilities in [0, 1]; calibrate the score first")
    return p, y


def risk_threshold(
    probability: Any, correct: Any, *, alpha: float, delta: float, grid: Sequence[float] | None = None,
    start: int | None = None,
) -> RiskControl:
    """The lowest threshold τ with ``P(error rate among answered ≤ α) ≥ 1 − δ`` (answer iff ``p ≥ τ``).

    Fixed-sequence testing with Clopper–Pearson bounds over ``grid`` (default :func:`default_grid`),
    scanned high to low from the first threshold answering ``start`` items (default :func:`start_size`;
    ``start=0`` tests from the top of the grid). Raises :class:`~tokentrust.errors.UserInputError` when no
    threshold passes.
    """
    _check_levels(alpha, delta)
    p, y = _probabilities(probability, correct)
    thresholds = default_grid() if grid is None else np.sort(np.asarray(grid, dtype=float))[::-1]
    valid = ~np.isnan(p)
    need, n_valid = min_answered(alpha, delta), int(valid.sum())
    first = start_size(alpha, delta, n_valid) if start is None else start
    order = np.sort(p[valid])
    wrong_sorted = np.sort(p[valid & (y == 0)])
    n_all = (order.size - np.searchsorted(order, thresholds, side="left")).astype(int)  # answered: p >= tau
    e_all = (wrong_sorted.size - np.searchsorted(wrong_sorted, thresholds, side="left")).astype(int)
    begin = int(np.argmax(n_all >= first)) if (n_all >= first).any() else n_all.size
    bounds = _upper_bounds(e_all[begin:], n_all[begin:], delta)
    fails = np.flatnonzero(bounds > alpha)
    stop = int(fails[0]) if fails.size else bounds.size  # fixed sequence: stop at the first failure
    tested = [(float(t), int(n), int(e), float(u)) for t, n, e, u in zip(
        thresholds[begin:begin + stop + 1], n_all[begin:], e_all[begin:], bounds, strict=False)]
    best = tested[stop - 1] if stop > 0 else None
    if best is None:
        if n_valid < need:
            why = f"it has {n_valid} items; α = {alpha:g} at δ = {delta:g} needs at least {need} answered, none wrong"
        elif not tested:
            why = f"no threshold of the grid answers the {first} items testing starts at"
        else:
            tau, n_tau, e_tau, upper = tested[0]
            why = (f"at the first tested threshold {tau:g}, {e_tau} errors among {n_tau} answered give a "
                   f"{1 - delta:.0%} upper bound of {upper:.3f} > α")
        raise UserInputError(
            f"no threshold keeps the error rate among answered questions ≤ {alpha:g} with probability "
            f"≥ {1 - delta:g} on this calibration set: {why}. Use more calibration items, a larger target risk "
            f"or a larger δ"
        )
    tau, n_tau, e_tau, upper = best
    return RiskControl(threshold=tau, alpha=float(alpha), delta=float(delta), n=int(p.size), n_answered=n_tau,
                       n_errors=e_tau, upper=upper, tested=tuple(tested))


# --------------------------------------------------------------------------- conformal claim filtering


@dataclass(frozen=True)
class ClaimFilter:
    """Keep a claim iff its ``score`` is ``> threshold``; on ``n`` calibration answers, a new answer keeps
    only true claims with probability ≥ ``1 − epsilon``. ``kept_share`` = claims kept on the calibration
    data, ``answers_all_true`` = share of calibration answers whose kept claims are all true."""

    score: str
    threshold: float
    epsilon: float
    n: int
    kept_share: float
    answers_all_true: float

    def keep(self, values: Sequence[float]) -> list[bool]:
        """For each claim value: kept? (an undefined value is removed)."""
        return [not math.isnan(v) and v > self.threshold for v in values]


def _nonconformity(values: Sequence[float], true: Sequence[bool]) -> float:
    false = [(-math.inf if math.isnan(v) else v) for v, t in zip(values, true, strict=True) if not t]
    return max(false, default=-math.inf)


def claim_filter(
    answers: Sequence[tuple[Sequence[float], Sequence[bool]]], *, epsilon: float, score: str = "score"
) -> ClaimFilter:
    """The conformal claim filter from calibration answers, each ``(claim values, claim is true)``."""
    if not 0.0 < epsilon < 1.0:
        raise UserInputError(f"ε must lie in (0, 1), got {epsilon!r}")
    n = len(answers)
    k = math.ceil((n + 1) * (1.0 - epsilon))
    if k > n:
        raise UserInputError(
            f"{n} calibration answers are too few for ε = {epsilon:g}: conformal claim filtering needs at least "
            f"{math.ceil(1 / epsilon - 1)} (n ≥ 1/ε − 1); with fewer every claim would be removed"
        )
    r = np.sort([_nonconformity(v, t) for v, t in answers])
    t_hat = float(r[k - 1])
    kept = [[not math.isnan(x) and x > t_hat for x in v] for v, _ in answers]
    n_claims = sum(len(m) for m in kept)
    kept_share = sum(sum(m) for m in kept) / n_claims if n_claims else math.nan
    all_true = sum(all(t for t, m in zip(ts, ms, strict=True) if m) for (_, ts), ms in zip(answers, kept)) / n
    return ClaimFilter(score=score, threshold=t_hat, epsilon=float(epsilon), n=n, kept_share=kept_share,
                       answers_all_true=all_true)


def claim_filter_from_rows(rows: Sequence[Mapping[str, Any]], score: str, *, epsilon: float) -> ClaimFilter:
    """:func:`claim_filter` on a claim-level run's rows (``tokentrust.bench.claims.measured_rows``: one row
    per labelled claim, id ``"<answer id>#<k>"``), grouping claims by answer. Answers with no labelled
    claim are not in the rows (unverifiable claims are left out), so they do not count in ``n``."""
    groups: dict[str, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    for r in rows:
        if score not in r["scores"]:
            present = sorted({k for row in rows for k in row["scores"]})
            raise UserInputError(f"claim rows have no scores for {score!r}; present: {', '.join(present)}")
        values, labels = groups[str(r["id"]).rsplit("#", 1)[0]]
        values.append(float(r["scores"][score]["value"]))
        labels.append(bool(r["correct"]))
    return claim_filter(list(groups.values()), epsilon=epsilon, score=score)
