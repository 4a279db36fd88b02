"""Attention attribution: how much the positions predicting a target attend to each prompt token (maths in
:mod:`._ops.attention`).

``mode="last"``: the last layer's attention, averaged over heads; ``mode="rollout"``: attention rollout
through every layer. Attention weights are not log-prob contributions (they are non-negative and ignore the
values they mix), so they rank sources rather than split the target's log-prob; word and component scores
are the attention mass on their tokens. Weights are collected only for this method: one extra forward pass
with the model switched to eager attention (SDPA returns none) and switched back afterwards, also on error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..capability import Capability
from ..errors import CapabilityError, UserInputError
from ..registry import attributors
from .forward import TargetScorer
from .gradients import group_sum
from .methods import Attributor
from .record import Span

MODES: tuple[str, ...] = ("last", "rollout")
_SWITCH = threading.RLock()  # one switch at a time (a concurrent one would see "eager" and restore nothing)


@contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run ``model`` with eager attention (which can return its weights) inside the block, then restore its
    attention implementation, also on error. The switch is on this model instance: other threads generating
    with it meanwhile run eager attention too (the same results up to float rounding)."""
    with _SWITCH:
        before = getattr(model.config, "_attn_implementation", None)
        if before == "eager":
            yield
            return
        setter = getattr(model, "set_attn_implementation", None) if isinstance(before, str) else None
        if setter is not None:  # recent transformers: also switches sub-models
            setter("eager")
        else:  # older transformers: the config attribute is read at every forward
            model.config._attn_implementation = "eager"
        try:
            yield
        finally:
            if setter is not None:
                setter(before)
            else:
                model.config._attn_implementation = before


def attention_forward(scorer: TargetScorer) -> tuple[list[Any], Any]:
    """``(attentions, logprobs)``: each layer's attention ``(H, L, L)`` over the prompt and answer, and the answer
    tokens' log-probs ``(n_answer,)`` from the same forward pass (counted in ``scorer.forwards``)."""
    import torch

    model, n = scorer.model, scorer.n_prompt
    positions = torch.arange(scorer.embeds.shape[0], device=scorer.embeds.device)[None]
    with eager_attention(model), torch.no_grad():
        out = model(inputs_embeds=scorer.embeds[None], position_ids=positions, output_attentions=True)
    scorer.forwards += 1
    attentions = getattr(out, "attentions", None)
    if not attentions or any(a is None for a in attentions):
        raise CapabilityError(f"{getattr(scorer.backend, 'model_id', 'the model')} returned no attention weights "
                              "even with eager attention")
    logp = torch.log_softmax(out.logits[0, n - 1 : -1].float(), dim=-1)
    return [a[0] for a in attentions], logp.gather(-1, scorer.ids[n:, None]).squeeze(-1)


@attributors.register
@dataclass(frozen=True, kw_only=True)
class Attention(Attributor):
    """Attention from each target's predicting positions (the one before each of its tokens; a span: their
    mean) to the prompt tokens: the last layer's head mean (``mode="last"``) or the rollout (``"rollout"``)."""

    mode: str = "last"

    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.FORCED_SCORING, Capability.ATTENTIONS})
    per_token: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserInputError(f"attention mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        from ._ops.attention import head_mean, rollout, target_rows

        attentions, logp = attention_forward(scorer)
        matrix = head_mean(attentions[-1]) if self.mode == "last" else rollout(attentions)
        rows = [[scorer.n_prompt + i - 1 for i in t.tokens] for t in targets]
        scores = target_rows(matrix, rows, scorer.n_prompt)
        logprob_input = [float(logp[list(t.tokens)].sum()) for t in targets]
        return group_sum(scores, groups), {"logprob_input": logprob_input}
