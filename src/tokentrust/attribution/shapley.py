"""Shapley values of the prompt's sources (METHODS §5.2): components by default, tokens or words allowed.

A coalition keeps its players' prompt tokens and replaces every other source's tokens by the baseline (zero
embeddings, :meth:`~.forward.TargetScorer.masked`); its value is each target's log-prob. Exact enumeration
(``2^n`` forwards, each coalition once) up to 10 players, antithetic permutation sampling beyond, with a
standard-error stopping rule; the maths is in :mod:`._ops.shapley`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..registry import attributors
from .forward import TargetScorer
from .methods import Attributor, _target_scores
from .record import Span


@attributors.register
@dataclass(frozen=True, kw_only=True)
class Shapley(Attributor):
    """Shapley values over the sources. ``exact``: ``None`` = exact up to 10 players, else sampled; ``True``
    forces enumeration (at most 20 players); ``False`` forces sampling. Sampling draws antithetic pairs of
    permutations until the largest standard error is at most ``tolerance`` (log-prob units) or
    ``max_permutations`` are used; ``seed`` fixes the orderings. ``extras``: ``standard_errors`` (targets ×
    sources), ``permutations``, ``forwards`` (coalitions evaluated), ``efficiency_gap``
    ``max |Σφ − (v(all) − v(∅))|``, ``value_all`` and ``value_empty`` per target."""

    exact: bool | None = None
    max_permutations: int = 64
    tolerance: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.exact not in (None, True, False):
            raise ValueError(f"exact must be true, false or null, got {self.exact!r}")
        if not isinstance(self.max_permutations, int) or self.max_permutations < 4:
            raise ValueError(f"max_permutations must be an integer ≥ 4 (2 antithetic pairs), got {self.max_permutations!r}")
        if not isinstance(self.tolerance, int | float) or not self.tolerance >= 0:
            raise ValueError(f"tolerance must be ≥ 0, got {self.tolerance!r}")

    def attribute(self, scorer: TargetScorer, targets: Sequence[Span], groups: Sequence[Sequence[int]]
                  ) -> tuple[np.ndarray, dict[str, Any]]:
        import torch

        from ._ops.shapley import shapley

        if not targets:  # nothing visible to explain: no forwards
            return np.zeros((0, len(groups))), {"forwards": 0, "permutations": 0, "efficiency_gap": 0.0}
        score = _target_scores(scorer, targets)
        member = torch.zeros(len(groups), scorer.n_prompt)
        for g, tokens in enumerate(groups):
            member[g, list(tokens)] = 1.0
        outside = member.sum(0) == 0  # tokens in no source are always kept

        def value(present: Any) -> Any:
            return score((present.float() @ member > 0) | outside)

        result = shapley(value, len(groups), exact=self.exact, max_permutations=self.max_permutations,
                         tolerance=self.tolerance, seed=self.seed, chunk=16 * scorer.batch_size)
        return result.values, {
            "standard_errors": result.standard_errors.tolist(),
            "exact": result.exact,
            "permutations": result.permutations,
            "forwards": result.evaluations,
            "coalitions": result.evaluations,
            "efficiency_gap": result.efficiency_gap,
            "value_all": result.value_all.tolist(),
            "value_empty": result.value_empty.tolist(),
        }
