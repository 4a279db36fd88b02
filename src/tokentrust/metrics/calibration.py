"""Calibration metrics: does a stated probability match the observed accuracy? (METHODS §11.6–11.7)

Only for scores meant as probabilities (verbalised %, P(True), calibrated outputs): inputs
outside ``[0, 1]`` are rejected, never rescaled. Map raw scores with
:mod:`tokentrust.calibration` first, and never evaluate on the split the map was fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import UserInputError
from ._base import check_pair, check_probability, metric

__all__ = ["ECE_BINS", "ReliabilityDiagram", "brier", "ece", "reliability_diagram"]

Strategy = Literal["uniform", "quantile"]
#: Bins of :func:`ece` and :func:`reliability_diagram` unless told otherwise (one number, so a plotted
#: diagram shows the bins its ECE was computed on).
ECE_BINS = 15


def _check_probs(correct: Any, prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y, p = check_pair(correct, prob, confidence_name="prob", allow_inf=False)
    check_probability(p)
    return y, p


def _bin_edges(prob: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """``n_bins + 1`` edges: equal width on [0, 1], or equal mass (quantiles of ``prob``)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise UserInputError(f"n_bins={n_bins!r} must be a positive integer")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "quantile":
        return np.quantile(prob, np.linspace(0.0, 1.0, n_bins + 1))
    raise UserInputError(f"strategy={strategy!r} is not valid; use 'uniform' or 'quantile'")


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: first bin ``[e0, e1]``, then ``(e_{i}, e_{i+1}]`` (LM-Polygraph's convention)."""
    return np.searchsorted(edges[1:-1], values, side="left")


@dataclass(frozen=True, kw_only=True, eq=False)
class ReliabilityDiagram:
    """Per-bin mean stated probability vs observed accuracy.

    ``bin_edges`` has ``n_bins + 1`` entries; ``mean_confidence``, ``accuracy`` and ``counts``
    one per bin (NaN confidence/accuracy for empty bins, which ECE skips).
    """

    bin_edges: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    strategy: str

    def __post_init__(self) -> None:
        for name in ("bin_edges", "mean_confidence", "accuracy", "counts"):
            getattr(self, name).setflags(write=False)

    @property
    def n_bins(self) -> int:
        return int(self.counts.size)

    @property
    def ece(self) -> float:
        """``Σ_b (|B_b|/N)·|acc(B_b) − conf(B_b)|`` over non-empty bins."""
        full = self.counts > 0
        gaps = np.abs(self.accuracy[full] - self.mean_confidence[full])
        return float(np.sum(self.counts[full] * gaps) / self.counts.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN for empty bins becomes ``None``)."""

        def clean(a: np.ndarray) -> list[Any]:
            return [None if np.isnan(v) else float(v) for v in a]

        return {
            "strategy": self.strategy,
            "bin_edges": self.bin_edges.tolist(),
            "mean_confidence": clean(self.mean_confidence),
            "accuracy": clean(self.accuracy),
            "counts": self.counts.tolist(),
        }


def _reliability(y: np.ndarray, p: np.ndarray, n_bins: int, strategy: str) -> ReliabilityDiagram:
    edges = _bin_edges(p, n_bins, strategy)
    idx = _bin_index(p, edges)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(idx, weights=p, minlength=n_bins) / counts
        acc = np.bincount(idx, weights=y, minlength=n_bins) / counts
    return ReliabilityDiagram(
        bin_edges=edges, mean_confidence=conf, accuracy=acc, counts=counts, strategy=strategy
    )


def reliability_diagram(
    correct: Any, prob: Any, *, n_bins: int = ECE_BINS, strategy: Strategy = "uniform"
) -> ReliabilityDiagram:
    """Bin ``prob`` (equal-width ``"uniform"`` or equal-mass ``"quantile"``) and compare to accuracy."""
    y, p = _check_probs(correct, prob)
    return _reliability(y, p, n_bins, strategy)


@metric(
    higher_is_better=False, needs_probability=True, target="correct", label="ECE", note=f"{ECE_BINS} equal-width bins"
)
def ece(correct: Any, prob: Any, *, n_bins: int = ECE_BINS, strategy: Strategy = "uniform") -> float:
    """Expected calibration error over ``n_bins`` bins; empty bins are skipped.

    ``strategy="uniform"``: equal-width bins on [0, 1] (first bin closed, later ``(lo, hi]``);
    ``"quantile"``: equal-mass bins at the quantiles of ``prob``. Always report ``n_bins``.
    Raises :class:`UserInputError` for any ``prob`` outside [0, 1].
    """
    y, p = _check_probs(correct, prob)
    return _reliability(y, p, n_bins, strategy).ece


@metric(higher_is_better=False, needs_probability=True, target="correct", label="Brier")
def brier(correct: Any, prob: Any) -> float:
    """Brier score ``mean((prob − correct)²)``: a proper scoring rule, preferred over ECE for selection.

    Raises :class:`UserInputError` for any ``prob`` outside [0, 1].
    """
    y, p = _check_probs(correct, prob)
    return float(np.mean((p - y) ** 2))
