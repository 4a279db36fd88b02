"""Leave-one-out occlusion: a source's score is how much the target's log-prob drops when it is removed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def leave_one_out(score: Callable[[Any], Any], groups: Sequence[Sequence[int]], n_inputs: int) -> tuple[Any, Any]:
    """``(full, drops)``: ``full`` = ``score(all kept)`` of shape ``(T,)``; ``drops[:, g]`` = ``full − score(group g
    removed)``, shape ``(T, G)``. ``score`` maps a ``(B, n_inputs)`` boolean keep-mask to ``(B, T)`` target
    log-probs and is called once on all ``1 + G`` masks (it batches them itself)."""
    import torch

    keep = torch.ones(1 + len(groups), n_inputs, dtype=torch.bool)
    for g, members in enumerate(groups):
        keep[g + 1, list(members)] = False
    out = score(keep)
    full = out[0]
    return full, (full[None] - out[1:]).T
