"""Critical tokens (Critical Tokens Matter, METHODS.md §10): which tokens of a wrong answer made it wrong.

For each position ``t`` of an answer, ``k`` continuations are sampled from the prompt plus the answer's first
``t`` tokens followed by (a) the emitted token ``y_t`` and (b) each of its top alternatives, and every finished
answer is checked by a verifier. ``success_before[t]`` is the success rate of continuations from ``y_<t``
(position 0: from the prompt alone), ``success_with[t]`` from ``y_≤t``; the **drop** at ``t`` is their
difference, and the critical token is the one with the largest drop (earliest on ties), i.e. the token after
which correct endings stop being reached, with the alternatives' success rates showing which choice would
have kept them. Costs ``len(answer) × (1 + alternatives) × k`` continuations; an expensive diagnostic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import GenerationConfig
from ..errors import UserInputError
from ..trace import Trace

#: ``rollout(prefix_ids, k)`` → ``k`` full answer texts continuing the answer tokens ``prefix_ids``.
Rollout = Callable[[list[int], int], list[str]]


@dataclass(frozen=True)
class PositionResult:
    """Rollout success rates at one answer position."""

    index: int
    token: str
    success_before: float
    success_with: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)

    @property
    def drop(self) -> float:
        return self.success_before - self.success_with


@dataclass(frozen=True)
class CriticalReport:
    """Per-position results over the answer and the critical position (``None`` when no position drops)."""

    answer: str
    correct: bool
    positions: list[PositionResult]
    critical: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "correct": self.correct, "critical": self.critical,
                "positions": [{"index": p.index, "token": p.token, "success_before": p.success_before,
                               "success_with": p.success_with, "drop": p.drop,
                               "alternatives": [{"token": t, "success": s} for t, s in p.alternatives]}
                              for p in self.positions]}


def find_critical(trace: Trace, rollout: Rollout, verify: Callable[[str], bool], *, k: int = 16,
                  alternatives: int = 2, positions: Sequence[int] | None = None) -> CriticalReport:
    """Roll out every (non-special) position of ``trace`` with its emitted token and top ``alternatives``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserInputError(f"--rollouts must be an integer ≥ 1, got {k!r}")
    if alternatives < 0:
        raise UserInputError(f"--alternatives must be ≥ 0, got {alternatives}")
    ids = list(trace.token_ids)
    chosen = [i for i in (positions if positions is not None else range(len(ids))) if not trace.special[i]]

    def rate(prefix: list[int]) -> float:
        return sum(bool(verify(text)) for text in rollout(prefix, k)) / k

    memo: dict[int, float] = {}

    def with_prefix(n: int) -> float:  # success from the answer's first n tokens
        if n not in memo:
            memo[n] = rate(ids[:n])
        return memo[n]

    results = []
    for i in chosen:
        alts = [(trace.top_tokens[i][j], rate([*ids[:i], tid]))
                for j, tid in enumerate(trace.top_ids[i]) if tid != ids[i]][:alternatives]
        results.append(PositionResult(i, trace.tokens[i], with_prefix(i), with_prefix(i + 1), alts))
    drops = [r.drop for r in results]
    critical = results[drops.index(max(drops))].index if drops and max(drops) > 0 else None
    return CriticalReport(trace.text, bool(verify(trace.text)), results, critical)


def model_rollout(backend: Any, prompt: Any, *, chat: bool = True, temperature: float = 1.0,
                  max_new_tokens: int = 32, seed: int = 0) -> Rollout:
    """Continuations on an in-process model: the prompt's tokens plus the answer prefix are one prompt whose
    cache every one of the ``k`` rows shares (row ``j`` samples with seed ``seed + j``)."""
    if getattr(backend, "engine", None) is None or getattr(backend, "model", None) is None:
        from ..errors import CapabilityError

        raise CapabilityError(f"rollouts from a token prefix need an in-process model; "
                              f"{getattr(backend, 'model_id', 'this backend')} cannot continue given tokens")
    from ..backends.base import RenderedPrompt

    rendered = backend.render(prompt, chat=chat)
    config = GenerationConfig(temperature=temperature, max_new_tokens=max_new_tokens, chat=chat, top_k=0)

    def rollout(prefix: list[int], k: int) -> list[str]:
        ids = [*(rendered.token_ids or []), *prefix]
        forced = RenderedPrompt(prompt=rendered.prompt, text=rendered.text, token_ids=ids)
        rows = [backend.row(prompt, config.model_copy(update={"seed": seed + j}), rendered=forced)
                for j in range(k)]
        for start in range(0, k, backend.batch_size):
            batch = backend.engine()
            batch.admit(rows[start : start + backend.batch_size], shared_prompt=True)
            while len(batch):
                batch.step()
        with backend.tokenizer_lock:
            return [backend.tokenizer.decode([*prefix, *r.ids], skip_special_tokens=True) for r in rows]

    return rollout


_ARITHMETIC = re.compile(r"(-?\d+)\s*([+\-*×x/])\s*(-?\d+)")


def arithmetic_reference(question: str) -> str | None:
    """The value of the one ``a op b`` in ``question`` (``+ - * × x``; ``/`` when exact), else ``None``."""
    found = _ARITHMETIC.findall(question)
    if len(found) != 1:
        return None
    a, op, b = int(found[0][0]), found[0][1], int(found[0][2])
    if op == "/":
        return str(a // b) if b and a % b == 0 else None
    return str({"+": a + b, "-": a - b}.get(op, a * b))


def contrastive_scores(trace: Trace, negative: Any, positive: Any) -> list[float]:
    """Per-token ``log p_neg(y_t | ·) − log p_pos(y_t | ·)`` of the answer, teacher-forced under a model tuned on
    incorrect answers (``negative``) and one tuned on correct answers (``positive``); high = likely critical.
    Both must share the trace's tokenizer (same vocabulary), else :class:`UserInputError`. Unnormalised:
    the paper's exact normalisation was not retrieved."""
    for backend in (negative, positive):
        tokenizer = getattr(backend, "tokenizer", None)
        if tokenizer is None:
            raise UserInputError(f"{getattr(backend, 'model_id', backend)!r} has no local tokenizer; contrastive "
                                 "scores need two in-process models sharing one vocabulary")
    if negative.tokenizer.get_vocab() != positive.tokenizer.get_vocab():
        raise UserInputError(f"{negative.model_id!r} and {positive.model_id!r} have different vocabularies; "
                             "contrastive scores compare one token sequence under both")
    neg = negative.score(trace.prompt, trace.token_ids, chat=trace.config.chat, top_k=0).logprobs
    pos = positive.score(trace.prompt, trace.token_ids, chat=trace.config.chat, top_k=0).logprobs
    return [float(a - b) for a, b in zip(neg, pos, strict=True)]
