"""Faithfulness of an attribution on plain tensors (METHODS §5.1): soft-normalised sufficiency and
comprehensiveness, and the log-prob drop when the top-k sources are deleted.

Importances ``(T, A, G)``: for each of ``T`` targets, ``A`` attributions (the method's and random ones) over
``G`` sources, each source a group of input positions. Soft masking keeps every embedding *element* of a
source's tokens with its normalised importance (sufficiency) or one minus it (comprehensiveness).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def distance(logp: Any, logq: Any) -> Any:
    """``D(p, q) = Σ_v (√p_v − √q_v)² / √2`` over the last axis, from log-probs (METHODS §5.1: √2 × the squared
    Hellinger distance, no outer square root, as the reference code)."""
    import torch

    return ((torch.exp(logp / 2) - torch.exp(logq / 2)) ** 2).sum(-1) / math.sqrt(2)


def normalise(scores: Any) -> Any:
    """Importances in ``[0, 1]`` per row: negatives clipped to 0 (a source that pushed the target down is no
    part of its rationale), then divided by the row's maximum (METHODS §5.1 pitfall: softmax importances are
    tiny); an all-nonpositive row becomes zeros."""
    import torch

    pos = scores.clamp(min=0)
    top = pos.amax(-1, keepdim=True)
    return torch.where(top > 0, pos / torch.where(top > 0, top, torch.ones_like(top)), torch.zeros_like(pos))


def membership(groups: Sequence[Sequence[int]], n_inputs: int) -> Any:
    """``(G, n_inputs)`` 0/1: which input positions each source covers."""
    import torch

    member = torch.zeros(len(groups), n_inputs, dtype=torch.float64)
    for g, tokens in enumerate(groups):
        member[g, list(tokens)] = 1.0
    return member


def soft_faithfulness(
    dist: Callable[[Any], Any],
    embeds: Any,
    importance: Any,
    groups: Sequence[Sequence[int]],
    *,
    draws: int,
    generator: Any,
    baseline: Any = None,
) -> dict[str, Any]:
    """Soft-normalised sufficiency and comprehensiveness of ``importance`` ``(T, A, G)``.

    ``dist(masked (R, n, d)) -> (R, T)`` is each target's ``D`` between the masked and the unperturbed
    next-token distributions; it is called once on every row. Each score is the mean over ``draws`` Bernoulli
    masks. ``SS = 1 − D``, ``SC = D``, ``SS(0)`` = everything masked (METHODS §5.1);
    ``soft_ns = max(0, SS − SS(0)) / (1 − SS(0))``, ``soft_nc = SC / (1 − SS(0))``. Positions in no group are
    always kept. Returns ``{"soft_ns": (T, A), "soft_nc": (T, A), "ss0": (T,)}`` (float64).
    """
    import torch

    n_targets, n_attr, _ = importance.shape
    n, d = embeds.shape
    member = membership(groups, n)
    outside = (1 - member.sum(0)).clamp(min=0)
    a = normalise(importance.double())
    keep_suff = (a @ member + outside).clamp(max=1)  # (T, A, n)
    keep_comp = ((1 - a) @ member + outside).clamp(max=1)
    probs = torch.stack([keep_suff, keep_comp], 2)[:, :, :, None].expand(-1, -1, -1, draws, -1)  # (T, A, 2, draws, n)
    probs = probs.reshape(-1, n)
    kept = torch.rand(probs.shape[0], n, d, generator=generator, dtype=torch.float64) < probs[..., None]
    kept = torch.cat([kept, torch.zeros(1, n, d, dtype=torch.bool)])  # the last row: SS(0), all masked
    kept = kept.to(embeds.device)
    base = torch.zeros_like(embeds) if baseline is None else baseline.expand_as(embeds)
    masked = torch.where(kept, embeds[None], base[None])
    out = dist(masked).double().cpu()  # (R, T)
    d0 = out[-1]  # D(everything masked) = 1 − SS(0), per target
    own = out[:-1].reshape(n_targets, n_attr, 2, draws, n_targets)
    own = own[torch.arange(n_targets), :, :, :, torch.arange(n_targets)].mean(-1)  # (T, A, 2)
    suff_d, comp_d = own[..., 0], own[..., 1]
    denom = torch.where(d0 > 0, d0, torch.nan)[:, None]  # the empty prompt changes nothing: undefined (NaN)
    soft_ns = (denom - suff_d).clamp(min=0) / denom  # max(0, SS − SS0)/(1 − SS0) with SS = 1 − D
    soft_nc = comp_d / denom
    return {"soft_ns": soft_ns, "soft_nc": soft_nc, "ss0": 1 - d0}


def deletion(score: Callable[[Any], Any], importance: Any, groups: Sequence[Sequence[int]], k: int,
             n_inputs: int) -> Any:
    """``(T, A)``: each target's log-prob drop when the ``k`` highest-scored sources of each attribution are
    removed. ``score(keep (R, n_inputs) bool) -> (R, T)`` log-probs, called once on ``1 + T·A`` masks (the
    first keeps everything). Ties rank the earlier source first."""
    import torch

    n_targets, n_attr, n_groups = importance.shape
    member = membership(groups, n_inputs).bool()
    top = torch.argsort(importance.double(), dim=-1, descending=True, stable=True)[..., : min(k, n_groups)]
    removed = member[top].any(-2)  # (T, A, n_inputs)
    keep = torch.cat([torch.ones(1, n_inputs, dtype=torch.bool), ~removed.reshape(-1, n_inputs)])
    out = score(keep).double().cpu()
    rows = out[1:].reshape(n_targets, n_attr, n_targets)[torch.arange(n_targets), :, torch.arange(n_targets)]
    return out[0][:, None] - rows
