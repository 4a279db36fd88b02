"""Per-step statistics of raw next-token distributions, reduced where the logits live.

Only these small columns leave the device: chosen log-prob, top-k ids and log-probs, entropy (nats),
max probability, margin (top-1 minus top-2 probability), 1-based rank of the chosen token and
excess kurtosis of the probability vector (METHODS.md §2.5, scipy's default: Fisher, biased).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class StepStats:
    """Columns for N positions (lists, ready for a Trace)."""

    logprobs: list[float]
    top_ids: list[list[int]]
    top_logprobs: list[list[float]]
    entropy: list[float]
    max_prob: list[float]
    margin: list[float]
    rank: list[int]
    kurtosis: list[float]


@torch.no_grad()
def step_stats(logits: torch.Tensor, chosen: torch.Tensor, top_k: int) -> StepStats:
    """Reduce raw logits ``(N, V)`` and the chosen ids ``(N,)`` to per-position statistics.

    Written for few passes over the vocabulary (this runs for every generated token): rank is read off
    the top-k when the chosen token is in it,
    kurtosis from float32 central moments (relative error ~1e-6 against scipy's float64).
    """
    z = logits.float()
    logp = torch.log_softmax(z, dim=-1)
    probs = logp.exp()
    chosen_lp = logp.gather(-1, chosen[:, None]).squeeze(-1)
    k = max(top_k, 2)
    top_lp, top_id = logp.topk(k, dim=-1)
    entropy = -(probs * logp).sum(-1)  # log_softmax is finite for finite logits, so no 0·(−inf)
    rank = (top_lp > chosen_lp[:, None]).sum(-1) + 1
    outside = chosen_lp < top_lp[:, -1]
    if outside.any():
        rank[outside] = (logp[outside] > chosen_lp[outside, None]).sum(-1) + 1
    centred = probs - 1.0 / logp.shape[-1]
    sq = centred * centred
    kurt = (sq * sq).mean(-1) / sq.mean(-1).square() - 3.0
    top_p = top_lp[:, :2].exp()
    return StepStats(
        logprobs=chosen_lp.tolist(),
        top_ids=top_id[:, :top_k].tolist(),
        top_logprobs=top_lp[:, :top_k].tolist(),
        entropy=entropy.tolist(),
        max_prob=top_p[:, 0].tolist(),
        margin=(top_p[:, 0] - top_p[:, 1]).tolist(),
        rank=rank.tolist(),
        kurtosis=kurt.tolist(),
    )
