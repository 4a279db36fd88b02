"""Per-step statistics of raw next-token distributions, reduced where the logits live.

Only these small columns leave the device, in one transfer per call: chosen log-prob, top-k ids and
log-probs, entropy (nats), max probability, margin (top-1 minus top-2 probability), 1-based rank of the
chosen token and excess kurtosis of the probability vector (METHODS.md §2.5, scipy's default: Fisher,
biased). The decoding loop calls this once per step, so full-vocabulary logits never outlive their step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_SCALARS = 6  # logprob, entropy, max_prob, margin, rank, kurtosis


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

    Written for few passes over the vocabulary (this runs for every generated token) and one
    device-to-host copy: ranks are counted against the whole vocabulary with one comparison, kurtosis
    comes from float32 central moments (relative error ~1e-6 against scipy's float64).
    """
    z = logits.float()
    logp = torch.log_softmax(z, dim=-1)
    probs = logp.exp()
    chosen_lp = logp.gather(-1, chosen[:, None].to(logp.device)).squeeze(-1)
    k = min(max(top_k, 2), logp.shape[-1])
    top_lp, top_id = logp.topk(k, dim=-1)
    entropy = -(probs * logp).sum(-1)  # log_softmax is finite for finite logits, so no 0·(−inf)
    rank = (logp > chosen_lp[:, None]).sum(-1) + 1
    centred = probs - 1.0 / logp.shape[-1]
    sq = centred * centred
    kurt = (sq * sq).mean(-1) / sq.mean(-1).square() - 3.0
    top_p = top_lp[:, :2].exp()
    packed = torch.cat(
        [torch.stack([chosen_lp, entropy, top_p[:, 0], top_p[:, 0] - top_p[:, 1], rank.float(), kurt], dim=1),
         top_id.float(), top_lp],
        dim=1,
    ).cpu()  # ids stay exact in float32 below 2**24, far above any vocabulary
    scalars = packed[:, :_SCALARS].tolist()
    ids = packed[:, _SCALARS : _SCALARS + k].long()[:, :top_k].tolist()
    lps = packed[:, _SCALARS + k :][:, :top_k].tolist()
    columns = list(zip(*scalars, strict=True)) if scalars else [()] * _SCALARS
    return StepStats(
        logprobs=list(columns[0]),
        top_ids=ids,
        top_logprobs=lps,
        entropy=list(columns[1]),
        max_prob=list(columns[2]),
        margin=list(columns[3]),
        rank=[int(r) for r in columns[4]],
        kurtosis=list(columns[5]),
    )
