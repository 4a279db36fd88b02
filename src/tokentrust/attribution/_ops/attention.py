"""Attention attribution from per-layer attention weights: the last layer's, or their rollout.

Inputs are a model's attention tensors, one per layer, ``(H, L, L)`` (or ``(1, H, L, L)``) with rows the
attending (query) positions. A target is read at the positions that *predict* it (the one before each of its
tokens), over the first ``n_sources`` positions (the prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def head_mean(attention: Any) -> Any:
    """``(L, L)``: one layer's attention averaged over heads (float32 or wider)."""
    a = attention[0] if attention.dim() == 4 else attention
    return a.float().mean(0) if a.dim() == 3 else a.float()


def rollout(layers: Sequence[Any]) -> Any:
    """Attention rollout (Abnar & Zuidema 2020): each layer's head mean plus the identity (the residual
    stream), rows renormalised, multiplied from the last layer down: ``R = Â_N · … · Â_1``; ``R[i, j]`` is how
    much position ``i`` at the top draws, through every path, on input position ``j``."""
    import torch

    result = None
    for layer in layers:
        a = head_mean(layer)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result
    if result is None:
        raise ValueError("rollout needs at least one layer")
    return result


def target_rows(matrix: Any, rows: Sequence[Sequence[int]], n_sources: int) -> Any:
    """``(T, n_sources)``: for each target the mean of ``matrix``'s rows ``rows[t]`` (its predicting positions)
    over the first ``n_sources`` columns."""
    import torch

    return torch.stack([matrix[list(r), :n_sources].mean(0) for r in rows])
