"""Scores: estimator output aligned to spans of trace tokens, at token, claim or sequence level."""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

from pydantic import Field, model_validator

from .config import Float, Record


class Level(str, Enum):
    """Granularity of a score: one per token, per claim (a set of tokens) or per answer."""

    TOKEN = "token"
    CLAIM = "claim"
    SEQUENCE = "sequence"


class Scores(Record):
    """One estimator's scores over a trace.

    ``values`` are oriented *higher = more trustworthy*, so any two scores rank answers the same way round;
    ``raw`` keeps the method's natural quantity (an entropy in nats, LM-Polygraph's uncertainty, …) as its
    docstring states. Perplexity, for instance, has ``raw`` = the log-perplexity (≥ 0, lower is better) and
    ``value`` = −raw, which is why its value prints as a negative number. ``spans[i]`` lists
    the token indices that ``values[i]`` covers: one index per token score, all indices for a sequence,
    a claim's tokens for a claim score (empty when the claim matched no token; its value is then NaN).
    ``extras`` holds per-value columns a method explains itself with (CCP's alternatives that would change
    the claim, the share of positions where every alternative was neutral), each as long as ``values``.
    """

    estimator: str
    level: Level
    spans: list[list[int]]
    values: list[Float]
    raw: list[Float]
    is_probability: bool = False
    extras: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Scores:
        if not len(self.spans) == len(self.values) == len(self.raw):
            raise ValueError(
                f"spans ({len(self.spans)}), values ({len(self.values)}) and raw ({len(self.raw)}) differ in length"
            )
        bad_extras = [k for k, v in self.extras.items() if len(v) != len(self.values)]
        if bad_extras:
            raise ValueError(f"extras {bad_extras} must have one entry per value ({len(self.values)})")
        if self.level is Level.SEQUENCE and len(self.values) != 1:
            raise ValueError(f"a sequence-level score has exactly one value, got {len(self.values)}")
        if self.is_probability:
            bad = [v for v in self.values if not (math.isnan(v) or 0.0 <= v <= 1.0)]
            if bad:
                raise ValueError(f"is_probability=True but values {bad[:3]} lie outside [0, 1]")
        return self

    def __repr__(self) -> str:
        """One line: the estimator, its level and its value (or a summary of its values), never the spans."""
        if self.level is Level.SEQUENCE:
            return f"Scores({self.estimator!r}, sequence, value={self.values[0]:.4g}, raw={self.raw[0]:.4g})"
        finite = [v for v in self.values if not math.isnan(v)]
        summary = (f"min={min(finite):.4g}, mean={math.fsum(finite) / len(finite):.4g}, max={max(finite):.4g}"
                   if finite else "no finite value")
        return f"Scores({self.estimator!r}, {self.level.value}, {len(self.values)} values, {summary})"

    __str__ = __repr__

    @property
    def value(self) -> float:
        """The single value of a sequence-level score."""
        if self.level is not Level.SEQUENCE:
            raise AttributeError(f"{self.estimator} is {self.level.value}-level; use .values")
        return self.values[0]
