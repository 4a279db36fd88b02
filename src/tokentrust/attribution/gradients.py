"""Gradient methods: gradient × input and integrated gradients of each target's log-prob with respect to the
prompt's embeddings (maths in :mod:`._ops.gradients`).

Both compute one score per prompt token (``per_token``; words and components sum them). A target is one
answer token or a span (the sum of its tokens' log-probs); each target is its own row through the model, so
all targets are explained in one batched pass. Integrated gradients integrates along the straight line
from the zero-embedding baseline (the one occlusion uses) with Gauss–Legendre nodes (Captum's default; not
the trapezoid rule, whose end node is the zero embedding, where SmolLM2's gradient is NaN), and reports its
completeness gap per target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import attributors
from .forward import TargetScorer
from .methods import Attributor
from .record import Span


def target_function(scorer: TargetScorer, targets: Sequence[Span]) -> Callable[[Any], Any]:
    """Prompt embeddings ``(B, n_prompt, d)`` → each target's log-prob ``(B, T)``, differentiable."""
    spans = [t.tokens for t in targets]
    return lambda embeds: scorer.target_logprob(scorer.logprobs(embeds, grad=True), spans)


def group_sum(scores: Any, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """``(T, G)`` numpy: per-token scores ``(T, n)`` summed over each group's tokens."""
    s = scores.detach().double().cpu().numpy()
    return np.stack([s[:, list(g)].sum(-1) for g in groups], axis=-1) if groups else s[:, :0]


def _floats(t: Any) -> list[float]:
    return [float(v) for v in t.detach().double().cpu()]


@attributors.register
@dataclass(frozen=True, kw_only=True)
class GradientXInput(Attributor):
    """Gradient × input: ``(∂ log p(target) / ∂ e_j) · e_j`` summed over the embedding dimension, for each prompt
    token ``j``. One forward and one backward per chunk of targets."""

    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.FORCED_SCORING, Capability.GRADIENTS})
    per_token: ClassVar[bool] = True

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        from ._ops.gradients import gradient_x_input

        scores, values, backwards = gradient_x_input(target_function(scorer, targets), scorer.prompt_embeds,
                                                     len(targets), chunk=scorer.batch_size)
        scorer.backwards += backwards
        return group_sum(scores, groups), {"logprob_input": _floats(values)}


#: Most path points of integrated gradients: their Gauss–Legendre nodes cost steps³ time and steps² memory
#: (4,000 take 18 s of CPU), far beyond the few hundred where the quadrature stops improving.
MAX_STEPS = 1000


@attributors.register
@dataclass(frozen=True, kw_only=True)
class IntegratedGradients(Attributor):
    """Integrated gradients (Sundararajan et al. 2017) from the zero-embedding baseline with ``steps``
    Gauss–Legendre path points (Captum's default method). ``extras``: per target the completeness gap
    ``|Σ scores − (f(x) − f(baseline))|`` and both ends' log-probs. A large gap means too few steps, or a path
    the quadrature cannot follow: on RMSNorm models the log-prob jumps between the zero embedding and any
    small multiple of the prompt's, a jump no node sees."""

    steps: int = 32

    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.FORCED_SCORING, Capability.GRADIENTS})
    per_token: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise UserInputError(f"integrated_gradients steps must be an integer >= 1 and <= {MAX_STEPS} "
                                 f"(path points), got {self.steps!r}")

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        from ._ops.gradients import integrated_gradients

        ig = integrated_gradients(target_function(scorer, targets), scorer.prompt_embeds, scorer.baseline,
                                  len(targets), steps=self.steps, chunk=scorer.batch_size)
        scorer.backwards += ig.backwards
        extras = {"completeness_gap": _floats(ig.gap), "logprob_input": _floats(ig.f_input),
                  "logprob_baseline": _floats(ig.f_baseline)}
        return group_sum(ig.attributions, groups), extras
