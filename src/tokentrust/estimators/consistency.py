"""Consistency of sampled answers (METHODS.md §3.1–3.3): semantic entropy, lexical similarity, NumSemSets.

All are per question: they say how scattered the model's answers are, not which one is right. ``values``
are oriented higher = more trustworthy (the negated entropy / count); ``raw`` is the natural quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from ..stats.clusters import SemanticClusters
from ..stats.lexical import LexicalSimilarity as _Lexical
from ._sampled import SAMPLING, SAMPLING_WITH_LOGPROBS, ComparedEstimator, SampledEstimator, sequence_logprobs


def cluster_entropy(ids: np.ndarray, log_weights: np.ndarray | None = None) -> float:
    """Entropy (nats) of the cluster distribution: frequencies ``|c|/M``, or normalised ``Σ_{s∈c} exp(w_s)``."""
    from scipy.special import logsumexp  # imported here: scipy.special is slow to load

    ids = np.asarray(ids)
    if log_weights is None:
        p = np.bincount(ids) / len(ids)
    else:
        w = np.asarray(log_weights, dtype=float)
        per_cluster = np.array([logsumexp(w[ids == c]) for c in range(ids.max() + 1)])
        p = np.exp(per_cluster - logsumexp(per_cluster))
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True, kw_only=True)
class _Clustered(ComparedEstimator):
    """Clusters the samples by meaning: ``rule`` for entailment similarities, ``threshold`` for the others
    (see :mod:`tokentrust.stats.clusters`; the one that does not apply is refused)."""

    rule: Literal["strict", "lenient"] = "strict"
    threshold: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.semantic_clusters  # noqa: B018  (validates rule and threshold against the similarity)

    @property
    def semantic_clusters(self) -> SemanticClusters:
        return SemanticClusters(texts=self.texts(), similarity=self.similarity, rule=self.rule,
                                threshold=self.threshold)

    def clusters(self, ctx: Context) -> np.ndarray:
        return ctx.get(self.semantic_clusters)


@estimators.register(aliases=("se",))
@dataclass(frozen=True, kw_only=True)
class SemanticEntropy(_Clustered):
    """Semantic entropy, probability-weighted (Farquhar et al.): Rao entropy over meaning clusters with
    ``p(c) ∝ Σ_{s∈c} exp(mean token log-prob of s)``, normalised over the samples. ``raw`` = entropy in nats.

    Needs the samples' log-probs; :class:`DiscreteSemanticEntropy` is the black-box form.
    """

    level = Level.SEQUENCE
    needs = SAMPLING_WITH_LOGPROBS

    def compute(self, ctx: Context) -> Scores:
        h = cluster_entropy(self.clusters(ctx), sequence_logprobs(ctx, self.samples, normalise=True))
        return self._scores(ctx, -h, h)


@estimators.register(aliases=("dse",))
@dataclass(frozen=True, kw_only=True)
class DiscreteSemanticEntropy(_Clustered):
    """Discrete semantic entropy: entropy of cluster frequencies ``|c|/M`` (black-box). ``raw`` in nats."""

    level = Level.SEQUENCE
    needs = SAMPLING

    def compute(self, ctx: Context) -> Scores:
        h = cluster_entropy(self.clusters(ctx))
        return self._scores(ctx, -h, h)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class NumSemSets(_Clustered):
    """Number of meaning clusters among the samples (Lin et al.). ``values`` = −count, ``raw`` = count."""

    level = Level.SEQUENCE
    needs = SAMPLING

    def compute(self, ctx: Context) -> Scores:
        k = int(self.clusters(ctx).max()) + 1
        return self._scores(ctx, -k, k)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class LexicalSimilarity(SampledEstimator):
    """Mean pairwise ROUGE-L F (``metric="rougeL"``) or word Jaccard of the samples over pairs i<j.

    It compares by its own ``metric``, so it takes no ``similarity``.

    ``values`` = mean similarity in [0, 1]; ``raw`` = its negation, LM-Polygraph's uncertainty. One sample → 1.
    """

    level = Level.SEQUENCE
    needs = SAMPLING
    is_probability = True
    metric: Literal["rougeL", "jaccard"] = "rougeL"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.metric not in ("rougeL", "jaccard"):
            raise UserInputError(f"metric must be 'rougeL' or 'jaccard', got {self.metric!r}")

    def compute(self, ctx: Context) -> Scores:
        texts = list(ctx.get(self.texts()))
        pair = _Lexical(metric=self.metric).pair
        sims = [pair(texts[i], texts[j]) for i in range(len(texts)) for j in range(i + 1, len(texts))]
        mean = float(np.mean(sims)) if sims else 1.0
        return self._scores(ctx, mean, -mean)
