"""Metrics that test whether a confidence score is useful (METHODS §11).

One signature throughout: ``metric(correct, confidence, *, ...)`` with confidence oriented
higher = more trustworthy. Scalar metrics are registered in :data:`tokentrust.registry.metrics`
and carry ``higher_is_better`` and ``needs_probability`` attributes. Degenerate input (one
class, constant values) gives NaN and an :class:`~tokentrust.errors.UndefinedMetricWarning`.
"""

from ._base import metric
from .calibration import ReliabilityDiagram, brier, ece, reliability_diagram
from .ranking import (
    RejectionCurve,
    auarc,
    kendall,
    pearson,
    pr_auc,
    prr,
    rejection_curve,
    roc_auc,
    selective_accuracy,
    spearman,
)

__all__ = [
    "RejectionCurve",
    "ReliabilityDiagram",
    "auarc",
    "brier",
    "ece",
    "kendall",
    "metric",
    "pearson",
    "pr_auc",
    "prr",
    "rejection_curve",
    "reliability_diagram",
    "roc_auc",
    "selective_accuracy",
    "spearman",
]
