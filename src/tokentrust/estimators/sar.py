"""Shifting Attention to Relevance (Duan et al., METHODS.md §2.7): TokenSAR, SentSAR, SAR.

Token relevance ``R(z_i) = 1 − g(x ⊕ s, x ⊕ s∖z_i)``: ``g`` is the similarity backend (default the offline
sentence encoder instead of the paper's ``stsb-roberta-large`` cross-encoder; ``similarity=`` picks another),
``s∖z_i`` deletes token *i by position* (not every occurrence of its text, as the reference code does) and
``⊕`` joins question and answer with a space. Special tokens (and tokens without text) have relevance 0.
Relevances are normalised to sum to 1 (uniform over the tokens with text when they are all 0). What the
similarity needs (a model of its own, or the generating model for ``judge``) is part of each estimator's
``requires`` / ``uses_models``.

``raw`` is the SAR uncertainty (nats), ``values`` its negation. SentSAR's sample similarity is the shared
answer-similarity matrix (the answers themselves; NLI prefixes the question, the judge shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..capability import Capability
from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from ..stats.sampling import Samples, question_text
from ..stats.similarity import paired_similarity
from ..trace import Trace
from ._sampled import SAMPLING_WITH_LOGPROBS, ComparedEstimator, UsesSimilarity, sequence_logprobs


def token_relevance(trace: Trace, question: str, similarity: str, backend: object = None) -> np.ndarray:
    """Normalised relevance of each token of ``trace``: how much the answer's meaning changes without it."""
    return token_relevances([trace], question, similarity, backend)[0]


def token_relevances(traces: list[Trace], question: str, similarity: str, backend: object = None) -> list[np.ndarray]:
    """:func:`token_relevance` of several answers with one batched similarity call."""
    full, without, where = [], [], []
    for n, trace in enumerate(traces):
        text = trace.text
        for i, ((a, b), special) in enumerate(zip(trace.offsets, trace.special, strict=True)):
            if b > a and not special:
                full.append(f"{question} {text}")
                without.append(f"{question} {text[:a]}{text[b:]}")
                where.append((n, i))
    g = paired_similarity(similarity, full, without, backend=backend, question="")
    out = [np.zeros(len(t)) for t in traces]
    counted = [np.zeros(len(t), dtype=bool) for t in traces]
    for (n, i), gi in zip(where, g, strict=True):
        out[n][i] = max(1.0 - gi, 0.0)
        counted[n][i] = True
    for n, r in enumerate(out):
        total = r.sum()
        if total > 0:
            out[n] = r / total
        else:  # no token changes the meaning: uniform over the tokens with text (all tokens if none has)
            share = counted[n] if counted[n].any() else np.ones(len(r), dtype=bool)
            out[n] = share / max(share.sum(), 1)
    return out


def token_sar_value(trace: Trace, relevance: np.ndarray) -> float:
    """``E_T = Σ_i −ℓ_i · R̃_i`` (relevance-weighted negative log-likelihood)."""
    return float(np.sum(-np.asarray(trace.logprobs, dtype=float) * relevance))


def sentence_sar(log_p: np.ndarray, sim: np.ndarray, t: float) -> float:
    """``mean_j −log(p_j + (1/t) Σ_{k≠j} g_jk p_k)`` with ``p = exp(log_p)``."""
    p = np.exp(np.asarray(log_p, dtype=float))
    g = np.asarray(sim, dtype=float).copy()
    np.fill_diagonal(g, 0.0)
    inner = p + (g @ p) / t
    return float(np.mean(-np.log(np.maximum(inner, 1e-300))))


@dataclass(frozen=True, kw_only=True)
class TokenRelevance(Stat[np.ndarray]):
    """Normalised token relevance of the trace's own answer."""

    similarity: str = "embedding"

    def compute(self, ctx: Context) -> np.ndarray:
        return token_relevance(ctx.trace, question_text(ctx.trace), self.similarity, ctx.backend)


@dataclass(frozen=True, kw_only=True)
class SampleTokenSar(Stat[np.ndarray]):
    """``E_T`` of every sample."""

    samples: Samples = field(default_factory=Samples)
    similarity: str = "embedding"

    def compute(self, ctx: Context) -> np.ndarray:
        samples = list(ctx.get(self.samples))
        rel = token_relevances(samples, question_text(ctx.trace), self.similarity, ctx.backend)
        return np.asarray([token_sar_value(s, r) for s, r in zip(samples, rel, strict=True)])


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenSar(UsesSimilarity):
    """TokenSAR of the trace's own answer (white-box, no sampling): relevance-weighted NLL; ``raw`` = ``E_T``."""

    level = Level.SEQUENCE
    needs = frozenset({Capability.LOGPROBS})

    def compute(self, ctx: Context) -> Scores:
        e = token_sar_value(ctx.trace, ctx.get(TokenRelevance(similarity=self.similarity)))
        return self._scores(ctx, -e, e)


@dataclass(frozen=True, kw_only=True)
class _SarBase(ComparedEstimator):
    level = Level.SEQUENCE
    needs = SAMPLING_WITH_LOGPROBS
    t: float = 0.001

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.t <= 0:
            raise UserInputError(f"SAR temperature t must be > 0, got {self.t}")


@estimators.register
@dataclass(frozen=True, kw_only=True)
class SentSar(_SarBase):
    """SentSAR: ``mean_j −log(p(s_j) + (1/t) Σ_{k≠j} g(s_j,s_k) p(s_k))`` with full-sequence probabilities."""

    def compute(self, ctx: Context) -> Scores:
        u = sentence_sar(sequence_logprobs(ctx, self.samples, normalise=False), self.similarity_matrix(ctx), self.t)
        return self._scores(ctx, -u, u)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class Sar(_SarBase):
    """SAR: SentSAR with ``p(s_j)`` replaced by ``exp(−E_T(s_j))`` (TokenSAR of each sample)."""

    def compute(self, ctx: Context) -> Scores:
        e_t = ctx.get(SampleTokenSar(samples=self.samples, similarity=self.similarity))
        u = sentence_sar(-e_t, self.similarity_matrix(ctx), self.t)
        return self._scores(ctx, -u, u)
