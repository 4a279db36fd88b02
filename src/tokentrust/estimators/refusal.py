"""Refusal score (METHODS.md §10, Refusal Tokens): how much probability the model puts on refusing, at the
first answer position, as a per-question abstention score.

A model trained with refusal tokens (a vocabulary entry whose name contains ``refus``, or ones the user names)
is scored by those tokens' probability at the first position, as the paper does. Any other model is scored by
the probability that its answer *begins with* a refusal opener ("I'm sorry", "I can't", …): the sum over the
openers of their teacher-forced probabilities, openers that extend another opener's tokens dropped so no
continuation is counted twice. The opener form is a heuristic (a list of phrasings, not the model's own
notion of refusing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from .base import Estimator

#: Common first words of a refusal in English chat models.
REFUSAL_OPENERS: tuple[str, ...] = (
    "I'm sorry", "I am sorry", "Sorry", "I apologize", "I can't", "I cannot", "I can not", "I won't",
    "I will not", "I'm unable", "I am unable", "I'm not able", "I am not able", "As an AI", "Unfortunately",
)


def refusal_token_ids(backend: Any, names: tuple[str, ...] | None = None) -> list[int]:
    """Vocabulary ids of refusal tokens: the ``names`` given, else added tokens whose text contains ``refus``."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return []
    vocab = tokenizer.get_vocab()
    if names:
        missing = [n for n in names if n not in vocab]
        if missing:
            raise UserInputError(f"refusal token {missing[0]!r} is not in the vocabulary of {backend.model_id}")
        return [int(vocab[n]) for n in names]
    added = getattr(tokenizer, "get_added_vocab", dict)()
    return sorted(int(i) for text, i in added.items() if "refus" in text.lower())


def opener_ids(backend: Any, openers: tuple[str, ...]) -> dict[str, list[int]]:
    """Each opener's answer-start token ids, without openers that extend another's ids (no double count)."""
    with backend.tokenizer_lock:
        ids = {o: list(backend.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in openers}
    return {o: t for o, t in ids.items()
            if t and not any(p != o and len(q) < len(t) and t[: len(q)] == q for p, q in ids.items())}


def continuation_logprobs(backend: Any, prompt: Any, chat: bool, sequences: list[list[int]]) -> list[float]:
    """``log p(sequence | prompt)`` at the first answer position for each token sequence: one right-padded
    batched forward pass on an in-process model, else one teacher-forced score per sequence."""
    model = getattr(backend, "model", None)
    if model is None:
        return [float(sum(backend.score(prompt, seq, chat=chat, top_k=0).logprobs)) for seq in sequences]
    import torch

    prompt_ids = backend.render(prompt, chat=chat).token_ids or []
    n, width = len(prompt_ids), max(len(s) for s in sequences)
    device = next(model.parameters()).device
    ids = torch.full((len(sequences), n + width), backend.pad_id, device=device)
    mask = torch.zeros_like(ids)
    for r, seq in enumerate(sequences):
        ids[r, : n + len(seq)] = torch.tensor([*prompt_ids, *seq], device=device)
        mask[r, : n + len(seq)] = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, n - 1 : -1].float(), dim=-1)
    picked = logp.gather(-1, ids[:, n:, None]).squeeze(-1) * mask[:, n:]
    return picked.sum(-1).tolist()


@dataclass(frozen=True, kw_only=True)
class RefusalMass(Stat[tuple[float, str]]):
    """``(probability of refusing at the first answer position, the most probable opener or token)``."""

    openers: tuple[str, ...]
    tokens: tuple[str, ...]

    def compute(self, ctx: Context) -> tuple[float, str]:
        backend, trace = ctx.backend, ctx.trace
        token_ids = refusal_token_ids(backend, self.tokens)
        if token_ids:
            names = [backend.display(t) for t in token_ids]
            sequences = [[t] for t in token_ids]
        else:
            kept = opener_ids(backend, self.openers)
            names, sequences = list(kept), list(kept.values())
        probs = np.exp(continuation_logprobs(backend, trace.prompt, trace.config.chat, sequences))
        return min(1.0, float(probs.sum())), names[int(np.argmax(probs))]


@estimators.register
@dataclass(frozen=True, kw_only=True)
class RefusalScore(Estimator):
    """Heuristic abstention score: ``raw`` = probability that the answer starts by refusing (refusal tokens if
    the model has them, else refusal openers); ``values = 1 − raw``. ``extras["opener"]``: the likeliest one."""

    level = Level.SEQUENCE
    needs = frozenset({Capability.FORCED_SCORING, Capability.LOGPROBS})
    is_probability = True
    openers: tuple[str, ...] = REFUSAL_OPENERS
    tokens: tuple[str, ...] = ()  # empty: added tokens whose text contains "refus"

    def __post_init__(self) -> None:
        from .base import text_tuple

        object.__setattr__(self, "openers", text_tuple("openers", self.openers))
        if self.tokens:
            object.__setattr__(self, "tokens", text_tuple("tokens", self.tokens))

    def compute(self, ctx: Context) -> Scores:
        mass, opener = ctx.get(RefusalMass(openers=self.openers, tokens=self.tokens))
        return self._scores(ctx, 1.0 - mass, mass, extras={"opener": [opener]})
