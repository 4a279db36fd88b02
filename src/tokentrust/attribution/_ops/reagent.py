"""ReAGent's recursive importance estimation (METHODS §5.1) on plain tensors.

``C`` independent chains (probes) each hold a logit-importance ``s`` over ``G`` sources. One step draws a
random replacement mask, measures ``Δ = p₀ − p(y | x̃)`` and adds ``logit((u + 1)/2)`` with ``u = Δ`` on the
replaced sources and ``−Δ`` on the kept ones; then the stopping test keeps the top-``n`` sources by
``softmax(s)``, replaces the rest and stops the chain if the target is among the top-``k`` predictions.
What a mask does to the model (which tokens replace, which forward) is the caller's ``delta``/``stop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Keeps ``(u + 1)/2`` inside (0, 1) so a certain change (Δ = ±1) cannot give ±inf (the reference has no guard).
_EPS = 1e-9


def update(logit_importance: Any, replaced: Any, delta: Any) -> Any:
    """One ReAGent update (METHODS §5.1 step 2): ``s + logit((u + 1)/2)`` where ``u = Δ`` on replaced sources
    and ``−Δ`` on kept ones. ``logit_importance`` and ``replaced`` are ``(C, G)``, ``delta`` is ``(C,)``."""
    import torch

    d = delta.to(logit_importance.dtype)[:, None]
    u = torch.where(replaced, d, -d)
    return logit_importance + torch.logit((u + 1) / 2, eps=_EPS)


def keep_top(importance: Any, n: int) -> Any:
    """``(C, G)`` bool: the ``n`` most important sources of each row (all of them when ``G ≤ n``), which the
    stopping test keeps while it replaces the rest (METHODS §5.1 step 3)."""
    import torch

    keep = torch.zeros_like(importance, dtype=torch.bool)
    top = torch.argsort(importance, dim=-1, descending=True)[:, : max(0, int(n))]
    return keep.scatter(-1, top, True)


def in_top_k(ranks: Any, k: int) -> Any:
    """``(C,)`` bool: every target token ranks among the ``k`` best predictions (rank 0 = the argmax).
    ``ranks`` is ``(C, n_tokens)``: a multi-token target stops only when all its tokens do."""
    return (ranks < k).all(dim=-1)


def recursive_importance(
    init: Any,
    draw_mask: Callable[[], Any],
    delta: Callable[[Any, Any], Any],
    stop: Callable[[Any, Any], Any],
    *,
    keep_top_n: int,
    max_steps: int,
) -> tuple[Any, Any, Any]:
    """Run the chains from logit-importances ``init`` ``(C, G)`` until all stopped or ``max_steps``.

    ``draw_mask()`` gives the ``(C, G)`` replacement mask of a step; ``delta(mask, active)`` gives ``(C,)``
    ``Δ`` (entries of inactive chains are ignored); ``stop(keep, active)`` gives ``(C,)`` bool for the
    ``(C, G)`` keep mask. A stopped chain is frozen, as in the reference. Returns
    ``(importance = softmax(s) (C, G), stopped (C,), steps (C,) = the step each chain stopped at or max_steps)``.
    """
    import torch

    s = init.clone()
    stopped = torch.zeros(s.shape[0], dtype=torch.bool)
    steps = torch.full((s.shape[0],), int(max_steps), dtype=torch.long)
    for step in range(1, int(max_steps) + 1):
        active = ~stopped
        mask = draw_mask()
        s = torch.where(active[:, None], update(s, mask, delta(mask, active)), s)
        now = stop(keep_top(torch.softmax(s, -1), keep_top_n), active) & active
        steps[now] = step
        stopped |= now
        if bool(stopped.all()):
            break
    return torch.softmax(s, -1), stopped, steps


def aggregate(importance: Any, stopped: Any) -> tuple[Any, bool]:
    """``(scores (G,), converged)``: the mean importance over the chains that stopped (METHODS §5.1 step 4);
    when none did, the mean over all chains, flagged ``converged = False`` (the reference divides by zero)."""
    if bool(stopped.any()):
        return importance[stopped].mean(0), True
    return importance.mean(0), False
