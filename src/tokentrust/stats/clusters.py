"""Semantic clusters of answers (METHODS.md §3.1 step 1): greedy, order-dependent, first member as representative.

Equivalence of two answers depends on the similarity's kind:

* entailment similarities (``nli:<model>``): ``rule="strict"`` — both directions' argmax is *entail* (Kuhn et
  al.'s paper definition, Farquhar et al.'s default); ``rule="lenient"`` — neither direction's argmax is
  *contradict* (non-contradiction, Kuhn et al.'s code and Lin et al.);
* every other similarity: similarity ≥ ``threshold`` (default: the kind's ``default_threshold``, e.g.
  embedding 0.8, lexical 0.5, judge 0.5).

A ``rule`` other than strict without an entailment similarity, or a ``threshold`` with one, would be ignored
and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import UserInputError
from ..registry import similarities
from ..stat import Context, Stat
from .sampling import AnswerTexts
from .similarity import NliProbabilities, SimilarityMatrix, make_similarity

RULES = ("strict", "lenient")


def greedy_clusters(m: int, equivalent: Callable[[int, int], bool]) -> np.ndarray:
    """Cluster id per item: each joins the first cluster whose first member it is equivalent to, else a new one."""
    heads: list[int] = []
    ids = np.zeros(m, dtype=int)
    for i in range(m):
        for c, head in enumerate(heads):
            if equivalent(head, i):
                ids[i] = c
                break
        else:
            ids[i] = len(heads)
            heads.append(i)
    return ids


def nli_equivalent(p: np.ndarray, rule: str) -> Callable[[int, int], bool]:
    """Equivalence from directional NLI probabilities ``p[i, j] = (entail, neutral, contradict)``."""
    arg = p.argmax(axis=-1)
    if rule == "strict":
        return lambda i, j: bool(arg[i, j] == 0 and arg[j, i] == 0)
    return lambda i, j: bool(arg[i, j] != 2 and arg[j, i] != 2)


@dataclass(frozen=True, kw_only=True)
class SemanticClusters(Stat[np.ndarray]):
    """Cluster id of each answer in ``texts`` (ids number clusters in order of first appearance)."""

    texts: AnswerTexts = field(default_factory=AnswerTexts)
    similarity: str = "embedding"
    rule: Literal["strict", "lenient"] = "strict"
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise UserInputError(f"clustering rule must be 'strict' or 'lenient', got {self.rule!r}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise UserInputError(f"clustering threshold must lie in [0, 1], got {self.threshold}")
        sim = make_similarity(self.similarity)
        if sim.entailment and self.threshold is not None:
            by_threshold = ", ".join(name for name, kind in similarities.items() if not kind.entailment)
            raise UserInputError(f"threshold={self.threshold!r} applies only to similarities clustered by a "
                                 f"threshold ({by_threshold}); {self.similarity!r} clusters by rule")
        if not sim.entailment and self.rule != "strict":
            raise UserInputError(f"rule={self.rule!r} applies only to entailment similarities (nli:<model>); "
                                 f"{self.similarity!r} clusters by threshold")

    def compute(self, ctx: Context) -> np.ndarray:
        sim = make_similarity(self.similarity)
        m = len(ctx.get(self.texts))
        if sim.entailment:
            p = ctx.get(NliProbabilities(texts=self.texts, similarity=self.similarity))
            return greedy_clusters(m, nli_equivalent(p, self.rule))
        w = ctx.get(SimilarityMatrix(texts=self.texts, similarity=self.similarity))
        thr = self.threshold if self.threshold is not None else sim.default_threshold
        return greedy_clusters(m, lambda i, j: bool(w[i, j] >= thr))
