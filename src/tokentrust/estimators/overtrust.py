"""Over-trust diagnostic (METHODS.md §4.1, OPERA's pattern score without changing decoding).

For each answer token ``t``: the column-product score ``log φ_t`` of the last layer's attention window from the
response start to ``t`` (max over heads, rows renormalised, ``σ = scale_factor``) and the column ``c*`` it
peaks at. A high ``φ`` means the token was produced while every token since ``c*`` kept attending to ``c*``
rather than to the question. Using it as a per-token trust score is an extrapolation (METHODS.md [std]); the
paper evaluates it only as a decoding penalty. One extra forward pass with eager attention, only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capability import Capability
from ..decoding.overtrust import SCALE_FACTOR, last_layer_attention, running_patterns
from ..errors import CapabilityError, UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from .base import Estimator


@dataclass(frozen=True, kw_only=True)
class OvertrustPatterns(Stat[tuple[np.ndarray, np.ndarray]]):
    """``(log φ_t, c*_t)`` per answer token from one eager-attention pass over prompt and answer."""

    scale_factor: float = SCALE_FACTOR

    def compute(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        backend, trace = ctx.backend, ctx.trace
        model = getattr(backend, "model", None)
        if model is None:
            raise CapabilityError("overtrust needs an in-process transformers model (attention weights); "
                                  f"{getattr(backend, 'model_id', 'no backend')} gives none")
        if not len(trace):
            return np.zeros(0), np.zeros(0, dtype=int)
        prompt_ids = backend.render(trace.prompt, chat=trace.config.chat).token_ids or []
        amap = last_layer_attention(model, [*prompt_ids, *trace.token_ids], len(prompt_ids))
        return running_patterns(amap.window, self.scale_factor)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class Overtrust(Estimator):
    """OPERA's over-trust pattern per token: ``values = −log φ_t`` (higher = less aggregation), ``raw = log φ_t``;
    ``extras["location"]`` is ``c*`` as an answer-token index. Heuristic (not evaluated as a trust score)."""

    level = Level.TOKEN
    needs = frozenset({Capability.FORCED_SCORING, Capability.ATTENTIONS})
    scale_factor: float = SCALE_FACTOR

    def __post_init__(self) -> None:
        if not self.scale_factor > 0:
            raise UserInputError(f"scale_factor must be > 0, got {self.scale_factor}")

    def compute(self, ctx: Context) -> Scores:
        log_phi, location = ctx.get(OvertrustPatterns(scale_factor=self.scale_factor))
        return self._scores(ctx, -log_phi, log_phi, extras={"location": [int(c) for c in location]})
