"""Bases shared by the estimators over sampled answers.

:class:`SampledEstimator` holds what draws the samples; :class:`ComparedEstimator` adds the ``similarity``
that compares them. An estimator that never compares samples (lexical similarity has its own metric) derives
from the first, so it has no ``similarity`` parameter that would change its id but not its value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..stat import Context
from ..stats.sampling import AnswerTexts, Samples
from ..stats.similarity import SimilarityMatrix, make_similarity
from .base import Estimator

SAMPLING = frozenset({Capability.SAMPLING})
SAMPLING_WITH_LOGPROBS = frozenset({Capability.SAMPLING, Capability.LOGPROBS})


@dataclass(frozen=True, kw_only=True)
class SampledEstimator(Estimator):
    """An estimator over ``n_samples`` answers drawn at ``temperature`` / ``top_p`` (``max_new_tokens``: the
    trace's own budget when ``None``)."""

    needs = SAMPLING
    n_samples: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise UserInputError(f"n_samples must be ≥ 1, got {self.n_samples}")
        self.samples  # noqa: B018  (validates temperature and top_p)

    @property
    def samples(self) -> Samples:
        return Samples(n=self.n_samples, temperature=self.temperature, top_p=self.top_p,
                       max_new_tokens=self.max_new_tokens)

    def texts(self, include_answer: bool = False) -> AnswerTexts:
        return AnswerTexts(samples=self.samples, include_answer=include_answer)


@dataclass(frozen=True, kw_only=True)
class UsesSimilarity(Estimator):
    """An estimator that compares texts with ``similarity``, a spec: ``embedding`` (default, offline),
    ``embedding:<model>``, ``nli:<model>``, ``lexical[:rougeL|jaccard]`` or ``judge`` (see
    :mod:`tokentrust.stats.similarity`). The spec is normalised, so ``lexical`` and ``lexical:rougeL`` are one
    estimator (one id); what the similarity needs is added to :attr:`requires`.
    """

    similarity: str = "embedding"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "similarity", make_similarity(self.similarity).spec)

    @property
    def requires(self) -> frozenset[Capability]:
        """The estimator's needs plus the similarity's (the judge asks the generating model)."""
        return self.needs | make_similarity(self.similarity).requires

    @property
    def uses_models(self) -> bool:
        """True when the similarity loads a model (embedding, nli)."""
        return make_similarity(self.similarity).uses_models


@dataclass(frozen=True, kw_only=True)
class ComparedEstimator(UsesSimilarity, SampledEstimator):
    """A sampled estimator that compares its answers with ``similarity`` (fields: the sampling ones, then
    ``similarity``)."""

    def similarity_matrix(self, ctx: Context, include_answer: bool = False) -> np.ndarray:
        return ctx.get(SimilarityMatrix(texts=self.texts(include_answer), similarity=self.similarity))


def sequence_logprobs(ctx: Context, samples: Samples, *, normalise: bool) -> np.ndarray:
    """Log-likelihood of each sample (sum of token log-probs, or their mean when ``normalise``)."""
    out = []
    for t in ctx.get(samples):
        lp = np.asarray(t.logprobs, dtype=float)
        out.append((lp.mean() if normalise else lp.sum()) if lp.size else 0.0)
    return np.asarray(out)
