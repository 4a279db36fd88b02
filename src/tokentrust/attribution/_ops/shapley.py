"""Shapley values of a cooperative game over ``n`` players (METHODS §5.2).

``φ_i = Σ_{S ⊆ N∖{i}} |S|!(n−|S|−1)!/n! · [v(S ∪ {i}) − v(S)]``, computed exactly from all ``2^n`` coalitions
(up to :data:`EXACT_LIMIT` players) or estimated by antithetic permutation sampling: each random ordering
and its reverse credit every player its marginal change; the pair's mean is one sample, and sampling stops
once the largest standard error is at most ``tolerance`` (or ``max_permutations`` is spent). Every
permutation's marginals telescope to ``v(N) − v(∅)``, so efficiency holds for both estimators.

The game is ``value(present)``: a ``(B, n)`` boolean tensor of coalitions (``True`` = player present) to
``(B, T)`` values, one per target. :class:`Game` memoises coalitions by their bitmask and sends every new
coalition of a step to ``value`` in one call (in chunks of ``chunk`` rows), so exact Shapley costs exactly
``2^n`` evaluations and sampling never evaluates a coalition twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np

from ...errors import UserInputError

EXACT_LIMIT = 20  # players: 2^20 ≈ 10^6 coalitions
AUTO_EXACT = 10  # players: exact by default up to here (1024 coalitions), sampling beyond

Value = Callable[[Any], Any]


class Game:
    """A memoised characteristic function: coalition bitmask → ``(T,)`` values, counting evaluations."""

    def __init__(self, value: Value, n: int, *, chunk: int | None = None) -> None:
        self.value, self.n = value, n
        self.chunk = chunk
        self.cache: dict[bytes, np.ndarray] = {}
        self.evaluations = 0

    def values(self, present: np.ndarray) -> np.ndarray:
        """``(B, T)`` values of the coalitions ``present`` (``(B, n)`` bool); only unseen ones are evaluated."""
        import torch

        keys = [row.tobytes() for row in np.packbits(present, axis=-1)]
        new = {k: i for i, k in enumerate(keys) if k not in self.cache}
        rows = present[list(new.values())]
        step = self.chunk or max(1, len(rows))
        for start in range(0, len(rows), step):
            part = torch.from_numpy(np.ascontiguousarray(rows[start : start + step]))
            out = torch.as_tensor(self.value(part)).detach().double().cpu().numpy().reshape(len(part), -1)
            for key, v in zip(list(new)[start : start + step], out, strict=True):
                self.cache[key] = v
            self.evaluations += len(part)
        return np.stack([self.cache[k] for k in keys])


@dataclass(frozen=True)
class ShapleyResult:
    """``values`` and ``standard_errors`` ``(T, n)``; ``value_all``/``value_empty`` ``(T,)`` = ``v(N)``/``v(∅)``."""

    values: np.ndarray
    standard_errors: np.ndarray
    value_all: np.ndarray
    value_empty: np.ndarray
    exact: bool
    permutations: int
    evaluations: int

    @property
    def efficiency_gap(self) -> float:
        """``max_t |Σ_i φ_ti − (v_t(N) − v_t(∅))|`` (0 up to rounding for both estimators)."""
        gap = np.abs(self.values.sum(-1) - (self.value_all - self.value_empty))
        return float(gap.max()) if gap.size else 0.0


def exact_values(game: Game) -> np.ndarray:
    """``(T, n)`` exact Shapley values from all ``2^n`` coalitions (one batched evaluation)."""
    n = game.n
    if n > EXACT_LIMIT:
        raise UserInputError(f"{n} players; exact Shapley is limited to {EXACT_LIMIT}, use sampling")
    codes = np.arange(2**n)
    present = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
    v = game.values(present)
    size = present.sum(1)
    weight = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = np.empty((v.shape[1], n))
    for i in range(n):
        without = codes[~present[:, i]]
        phi[:, i] = (weight[size[without]][:, None] * (v[without | (1 << i)] - v[without])).sum(0)
    return phi


def sampled_values(game: Game, *, max_permutations: int, tolerance: float, seed: int | None,
                   pairs_per_step: int = 4) -> tuple[np.ndarray, np.ndarray, int]:
    """``(φ (T, n), standard errors (T, n), permutations used)`` by antithetic permutation sampling.

    Each step draws ``pairs_per_step`` orderings, adds their reverses and evaluates all their prefix
    coalitions at once; sampling stops when the largest standard error over players and targets is at most
    ``tolerance`` (from 2 pairs on) or after ``max_permutations`` (rounded down to even, at least 4)."""
    n, rng = game.n, np.random.default_rng(seed)
    pairs_max = max(2, max_permutations // 2)
    samples: list[np.ndarray] = []  # per pair: (n, T) mean marginal contributions
    se = np.full(1, np.inf)
    while len(samples) < pairs_max:
        k = min(pairs_per_step, pairs_max - len(samples))
        perms = np.stack([rng.permutation(n) for _ in range(k)])
        perms = np.concatenate([perms, perms[:, ::-1]])
        rows = np.arange(2 * k)[:, None]
        rank = np.empty_like(perms)
        rank[rows, perms] = np.arange(n)
        present = rank[:, None, :] < np.arange(n + 1)[None, :, None]  # (2k, n+1, n): prefixes of each ordering
        v = game.values(present.reshape(-1, n)).reshape(2 * k, n + 1, -1)
        marginal = np.empty((2 * k, n, v.shape[-1]))
        marginal[rows, perms] = np.diff(v, axis=1)  # indexed by player
        samples.extend(0.5 * (marginal[:k] + marginal[k:]))
        if len(samples) >= 2:
            se = np.stack(samples).std(0, ddof=1) / np.sqrt(len(samples))
            if se.max() <= tolerance:
                break
    stacked = np.stack(samples)
    return stacked.mean(0).T, se.T, 2 * len(samples)


def shapley(value: Value, n: int, *, exact: bool | None = None, max_permutations: int = 64,
            tolerance: float = 0.05, seed: int | None = 0, chunk: int | None = None) -> ShapleyResult:
    """Shapley values of the game ``value`` over ``n`` players: exact when ``exact`` (or, by default, when
    ``n ≤`` :data:`AUTO_EXACT`), else sampled (see :func:`sampled_values`)."""
    if n < 1:
        raise UserInputError("Shapley values need at least one player (source)")
    game = Game(value, n, chunk=chunk)
    use_exact = n <= AUTO_EXACT if exact is None else bool(exact)
    if use_exact:
        phi, permutations = exact_values(game), 0
        se = np.zeros_like(phi)
    else:
        phi, se, permutations = sampled_values(game, max_permutations=max_permutations, tolerance=tolerance,
                                               seed=seed)
    ends = game.values(np.array([[True] * n, [False] * n]))  # memoised: both are in every enumeration
    return ShapleyResult(values=phi, standard_errors=se, value_all=ends[0], value_empty=ends[1], exact=use_exact,
                         permutations=permutations, evaluations=game.evaluations)
