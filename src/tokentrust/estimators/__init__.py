"""Uncertainty estimators. Each registers itself in ``tokentrust.registry.estimators``."""

from . import claim, consistency, graph, ptrue, relative, sar, sequence, token, verbalized  # noqa: F401  (registration)
from .base import Estimator, TokenColumns, build_estimator

__all__ = ["Estimator", "TokenColumns", "build_estimator"]
