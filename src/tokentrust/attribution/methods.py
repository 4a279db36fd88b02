"""Registered attribution methods: each a frozen dataclass of its parameters that turns a
:class:`~.forward.TargetScorer`, the targets and the source groups into a ``targets × sources`` matrix.

The maths lives in :mod:`._ops` (tensors only); a method here wires it to the scorer and says what it
needs from the backend (``requires``) and at which granularity it computes (``native``: a gradient
method computes per token and its scores are summed into words or components; a perturbation method
removes whole words or components at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from ..capability import Capability
from ..registry import attributors, instantiate, parse_spec, snake_case
from .forward import TargetScorer
from .record import Span


@dataclass(frozen=True, kw_only=True)
class Attributor:
    """Base: subclasses set ``requires`` and implement :meth:`attribute`. The id is the snake_case class name
    plus every non-default parameter (``integrated_gradients(steps=64)``)."""

    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.FORCED_SCORING})
    per_token: ClassVar[bool] = False  # computes per prompt token (then summed into coarser sources)
    registry_id: ClassVar[str] = "attributor"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.registry_id = snake_case(cls.__name__).lstrip("_")

    @property
    def id(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"{self.registry_id}({', '.join(changed)})" if changed else self.registry_id

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        """``(scores (T, G), extras)`` for ``targets`` (answer-token spans) and source ``groups``."""
        raise NotImplementedError(f"{type(self).__name__}.attribute")


def _target_scores(scorer: TargetScorer, targets: Sequence[Span]) -> Any:
    """A function of a ``(B, n_prompt)`` keep-mask giving each target's log-prob ``(B, T)``, batched."""
    spans = [t.tokens for t in targets]

    def score(keep: Any) -> Any:
        return scorer.target_logprob(scorer.logprobs(scorer.masked(keep)), spans)

    return score


@attributors.register
@dataclass(frozen=True, kw_only=True)
class Occlusion(Attributor):
    """Leave-one-out: a source's score is the drop of the target's log-prob when the source is replaced by the
    baseline (zero embedding). One batched pass over ``1 + #sources`` prompts."""

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        from ._ops.occlusion import leave_one_out

        full, drops = leave_one_out(_target_scores(scorer, targets), groups, scorer.n_prompt)
        return drops.cpu().numpy(), {"perturbed_logprob_full": full.cpu().numpy().tolist()}


def make_attributor(spec: str | Attributor) -> Attributor:
    """The method named by ``spec`` (``name`` or ``name:key=value,...``), validated."""
    if isinstance(spec, Attributor):
        return spec
    name, kwargs = parse_spec(spec)
    cls = attributors.get(name)
    return instantiate(cls, kwargs, what=f"attribution method {cls.registry_id!r}")
