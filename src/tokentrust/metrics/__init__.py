"""Metrics that test whether a confidence score is useful (METHODS §11).

One signature throughout: ``metric(correct, confidence, *, ...)`` with confidence oriented
higher = more trustworthy. Scalar metrics are registered in :data:`tokentrust.registry.metrics`
and carry ``higher_is_better`` and ``needs_probability`` attributes and a :class:`MetricInfo`
(``fn.info``: label, target, the columns benchmarks report) that drives every table of results.
Degenerate input (one class, constant values) gives NaN and an
:class:`~tokentrust.errors.UndefinedMetricWarning`. Importing this package loads neither
scikit-learn nor ``scipy.stats``; the metrics that use them import them when called.
"""

from ._base import metric
from .calibration import ReliabilityDiagram, brier, ece, reliability_diagram
from .info import Column, MetricInfo
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
    "Column",
    "MetricInfo",
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
