"""Uncertainty estimators. Each registers itself in ``tokentrust.registry.estimators``."""

from . import sequence, token  # noqa: F401  (registration)
from .base import Estimator, TokenColumns, build_estimator

__all__ = ["Estimator", "TokenColumns", "build_estimator"]
