"""What every renderer shows, computed once: per-token colour values and the least confident tokens."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..scores import Level, Scores
from ..trace import Trace


class ScoredAnswer(Protocol):
    """What a renderer reads of a result (:class:`~tokentrust.Annotated` is one): the trace and its scores."""

    @property
    def trace(self) -> Trace: ...

    @property
    def scores(self) -> Sequence[Scores]: ...


@dataclass(frozen=True)
class TokenView:
    index: int
    text: str
    special: bool
    prob: float  # chosen-token probability
    color_value: float  # value in [0, 1] used for the colour
    entropy: float | None
    alternatives: list[tuple[str, float]]  # (token text, probability), most likely first


def color_values(trace: Trace, colour_by: Scores | None) -> list[float]:
    """Per-token values in [0, 1] for colouring: the chosen score if it is a token-level probability,
    a token score min-max scaled over the answer otherwise, else the token probability."""
    probs = [math.exp(lp) for lp in trace.logprobs]
    if colour_by is None or colour_by.level is not Level.TOKEN:
        return probs
    values = list(colour_by.values)
    if colour_by.is_probability:
        return values
    finite = [v for v, s in zip(values, trace.special) if not s and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = hi - lo or 1.0
    return [(v - lo) / span if math.isfinite(v) else math.nan for v in values]


def token_views(trace: Trace, colour_by: Scores | None = None) -> list[TokenView]:
    values = color_values(trace, colour_by)
    views = []
    for i, tok in enumerate(trace.tokens):
        alts = [(t, math.exp(lp)) for t, lp in zip(trace.top_tokens[i], trace.top_logprobs[i])]
        views.append(
            TokenView(
                index=i,
                text=tok,
                special=trace.special[i],
                prob=math.exp(trace.logprobs[i]),
                color_value=values[i],
                entropy=trace.entropy[i] if trace.entropy is not None else None,
                alternatives=alts,
            )
        )
    return views


def least_confident(views: list[TokenView], n: int = 3) -> list[TokenView]:
    """The ``n`` lowest-probability visible tokens, in answer order."""
    visible = [v for v in views if not v.special and v.text.strip()]
    worst = sorted(visible, key=lambda v: v.prob)[:n]
    return sorted(worst, key=lambda v: v.index)
