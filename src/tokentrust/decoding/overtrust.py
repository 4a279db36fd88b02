"""OPERA's over-trust pattern (METHODS.md §4.1) on a last-layer attention map, in log space.

The map is the last layer's attention, max over heads, each row renormalised to sum to 1. The local window
is the square block of rows and columns from the response start on. Column ``c`` of the window scores
``log φ_c = Σ_{i ≥ c} log(σ·ω_{i,c}) − 7·log 10`` (the product down the column, computed as a sum of logs so
long answers neither overflow nor underflow); the pattern score is ``φ = max_c φ_c`` at ``c* = argmax_c φ_c``.
A high ``φ`` means the newest token was written while every token since ``c*`` kept attending to ``c*`` (a
"summary" token) instead of the context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CapabilityError

#: Published defaults (OPERA README / ``generate()`` signature).
SCALE_FACTOR = 50.0
LOG_FLOOR = -7.0 * math.log(10.0)  # the constant 1e-7 in front of every column product


def normalised_rows(attention: np.ndarray) -> np.ndarray:
    """Max over heads of a ``(heads, L, L)`` attention map, each row renormalised to sum to 1."""
    a = np.asarray(attention, dtype=np.float64)
    a = a.max(axis=0) if a.ndim == 3 else a
    sums = a.sum(axis=-1, keepdims=True)
    return np.divide(a, sums, out=np.zeros_like(a), where=sums > 0)


def log_column_terms(window: np.ndarray, scale: float = SCALE_FACTOR) -> np.ndarray:
    """``log(σ·ω_{i,c})`` on and below the diagonal of a square window, 0 above it (``−inf`` where ``ω = 0``)."""
    w = np.asarray(window, dtype=np.float64)
    with np.errstate(divide="ignore"):
        terms = np.log(scale * w)
    return np.where(np.tril(np.ones(w.shape, dtype=bool)), terms, 0.0)


def column_log_scores(window: np.ndarray, scale: float = SCALE_FACTOR) -> np.ndarray:
    """``log φ_c`` for every column of a square window whose last row is the newest token."""
    return log_column_terms(window, scale).sum(axis=0) + LOG_FLOOR


def pattern(window: np.ndarray, scale: float = SCALE_FACTOR) -> tuple[float, int]:
    """``(log φ, c*)`` of a square window: the strongest column product and its column (window index)."""
    scores = column_log_scores(window, scale)
    c = int(np.argmax(scores))
    return float(scores[c]), c


def running_patterns(window: np.ndarray, scale: float = SCALE_FACTOR) -> tuple[np.ndarray, np.ndarray]:
    """``(log φ_t, c*_t)`` for every prefix ``window[:t+1, :t+1]`` at once (cumulative column sums: O(L²)).

    Row ``t`` of the window is token ``t`` of the response, so entry ``t`` is what OPERA would have
    seen when token ``t`` was the candidate.
    """
    terms = log_column_terms(window, scale)
    n = terms.shape[0]
    running = np.cumsum(terms, axis=0) + LOG_FLOOR
    running = np.where(np.tril(np.ones((n, n), dtype=bool)), running, -np.inf)
    best = running.argmax(axis=1)
    return running[np.arange(n), best], best


@dataclass(frozen=True)
class AttentionMap:
    """The last layer's attention over a token sequence (max over heads, rows renormalised) and where the
    response starts in it."""

    rows: np.ndarray  # (L, L), lower triangular
    response_start: int

    @property
    def window(self) -> np.ndarray:
        """The local window: rows and columns from the response start on."""
        return self.rows[self.response_start :, self.response_start :]


def last_layer_attention(model: Any, token_ids: Sequence[int], response_start: int) -> AttentionMap:
    """One forward pass over ``token_ids`` with eager attention (switched back afterwards), keeping only the
    last layer's weights; raises :class:`CapabilityError` when the model returns none."""
    import torch

    from ..attribution.attention import eager_attention

    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    with eager_attention(model), torch.no_grad():
        out = model(input_ids=ids, output_attentions=True, use_cache=False)
    attentions = getattr(out, "attentions", None)
    if not attentions or attentions[-1] is None:
        raise CapabilityError(f"{type(model).__name__} returned no attention weights even with eager attention")
    return AttentionMap(rows=normalised_rows(attentions[-1][0].float().cpu().numpy()), response_start=response_start)
