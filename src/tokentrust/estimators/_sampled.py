"""Fields and helpers shared by the estimators that compare sampled answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..stat import Context
from ..stats.sampling import AnswerTexts, Samples
from ..stats.similarity import SimilarityMatrix, split_spec
from .base import Estimator

SAMPLING = frozenset({Capability.SAMPLING})
SAMPLING_WITH_LOGPROBS = frozenset({Capability.SAMPLING, Capability.LOGPROBS})


@dataclass(frozen=True, kw_only=True)
class SampledEstimator(Estimator):
    """An estimator over ``n_samples`` answers drawn at ``temperature`` and compared with ``similarity``.

    ``similarity`` is a spec: ``embedding`` (default, offline), ``embedding:<model>``, ``nli:<model>``,
    ``lexical[:rougeL|jaccard]`` or ``judge`` (see :mod:`tokentrust.stats.similarity`).
    """

    needs = SAMPLING
    n_samples: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None
    similarity: str = "embedding"

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise UserInputError(f"n_samples must be ≥ 1, got {self.n_samples}")
        split_spec(self.similarity)
        self.samples  # noqa: B018  (validates temperature and top_p)

    @property
    def samples(self) -> Samples:
        return Samples(n=self.n_samples, temperature=self.temperature, top_p=self.top_p,
                       max_new_tokens=self.max_new_tokens)

    def texts(self, include_answer: bool = False) -> AnswerTexts:
        return AnswerTexts(samples=self.samples, include_answer=include_answer)

    def similarity_matrix(self, ctx: Context, include_answer: bool = False) -> np.ndarray:
        return ctx.get(SimilarityMatrix(texts=self.texts(include_answer), similarity=self.similarity))


def sequence_logprobs(ctx: Context, samples: Samples, *, normalise: bool) -> np.ndarray:
    """Log-likelihood of each sample (sum of token log-probs, or their mean when ``normalise``)."""
    out = []
    for t in ctx.get(samples):
        lp = np.asarray(t.logprobs, dtype=float)
        out.append((lp.mean() if normalise else lp.sum()) if lp.size else 0.0)
    return np.asarray(out)
