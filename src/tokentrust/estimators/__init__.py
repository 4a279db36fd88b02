"""Uncertainty estimators. Each registers itself in ``tokentrust.registry.estimators``."""

from . import (  # noqa: F401  (registration)
    claim,
    consistency,
    ethicist,
    graph,
    overtrust,
    ptrue,
    refusal,
    relative,
    sar,
    sequence,
    token,
    verbalized,
)
from .base import Estimator, TokenColumns, build_estimator

__all__ = ["Estimator", "TokenColumns", "build_estimator"]
