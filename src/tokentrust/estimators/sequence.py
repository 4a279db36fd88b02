"""Sequence-level white-box scores (METHODS.md §2.1–2.5, 2.8): one value per answer.

``raw`` keeps LM-Polygraph's uncertainty where it defines one (MSP, perplexity, entropy, PMI), so numbers
can be checked against it; otherwise the natural quantity. All answer tokens count, the end-of-turn
token included (as LM-Polygraph does: the model's confidence that the answer ends there is information).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from .base import Estimator, TokenColumns
from .token import (
    _FORCED,
    _FULL,
    TokenCpmi,
    TokenEntropy,
    TokenKurtosis,
    TokenMargin,
    TokenPmi,
    TokenProbability,
    _CpmiParams,
    cpmi_values,
    pmi_terms,
)


def _logprobs(ctx: Context) -> np.ndarray:
    return ctx.get(TokenColumns()).logprobs


@estimators.register(aliases=("msp",))
@dataclass(frozen=True, kw_only=True)
class MaximumSequenceProbability(Estimator):
    """``p(y|x) = exp(Σ ℓ_t)`` (Chow-Sum). ``raw`` = ``−Σ ℓ_t``. Penalises long answers."""

    level = Level.SEQUENCE
    token_form = TokenProbability
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        total = _logprobs(ctx).sum()
        return self._scores(ctx, np.exp(total), -total)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class Perplexity(Estimator):
    """Mean token log-prob (Chow-Average). ``raw`` = ``−mean ℓ_t`` = log-perplexity, as LM-Polygraph reports."""

    level = Level.SEQUENCE
    token_form = TokenProbability

    def compute(self, ctx: Context) -> Scores:
        mean = _logprobs(ctx).mean()
        return self._scores(ctx, mean, -mean)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class GeometricMeanTokenProbability(Estimator):
    """``exp(mean ℓ_t)``, the geometric mean of the token probabilities (= ``exp(−log-perplexity)``)."""

    level = Level.SEQUENCE
    token_form = TokenProbability
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        gm = np.exp(_logprobs(ctx).mean())
        return self._scores(ctx, gm, gm)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class ArithmeticMeanTokenProbability(Estimator):
    """``mean exp(ℓ_t)``, the arithmetic mean of the token probabilities."""

    level = Level.SEQUENCE
    token_form = TokenProbability
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        am = np.exp(_logprobs(ctx)).mean()
        return self._scores(ctx, am, am)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class MinimumTokenProbability(Estimator):
    """The least probable token's probability: one doubtful token makes the answer doubtful."""

    level = Level.SEQUENCE
    token_form = TokenProbability
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        low = np.exp(_logprobs(ctx).min())
        return self._scores(ctx, low, low)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class LogprobQuantile(Estimator):
    """Chow-Quantile-α: the α-quantile of the token log-probs (α = 0 is the minimum); length-robust (§2.8)."""

    level = Level.SEQUENCE
    token_form = TokenProbability
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise UserInputError(f"alpha must be in [0, 1], got {self.alpha}")

    def compute(self, ctx: Context) -> Scores:
        q = np.quantile(_logprobs(ctx), self.alpha)
        return self._scores(ctx, q, q)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class MeanTokenEntropy(Estimator):
    """Mean entropy of the raw next-token distributions, in nats. ``values`` = ``−raw``."""

    level = Level.SEQUENCE
    needs = _FULL
    token_form = TokenEntropy

    def compute(self, ctx: Context) -> Scores:
        h = ctx.get(TokenColumns()).entropy.mean()
        return self._scores(ctx, -h, h)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class MeanKurtosis(Estimator):
    """Mean excess kurtosis of the step distributions (Park et al.); higher = more peaked."""

    level = Level.SEQUENCE
    needs = _FULL
    token_form = TokenKurtosis

    def compute(self, ctx: Context) -> Scores:
        k = ctx.get(TokenColumns()).kurtosis.mean()
        return self._scores(ctx, k, k)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class MeanMargin(Estimator):
    """Mean top-1 minus top-2 probability over the answer's steps."""

    level = Level.SEQUENCE
    needs = _FULL
    token_form = TokenMargin

    def compute(self, ctx: Context) -> Scores:
        m = ctx.get(TokenColumns()).margin.mean()
        return self._scores(ctx, m, m)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class Pmi(Estimator):
    """Mean pointwise mutual information between prompt and answer tokens. ``raw`` = ``−mean pmi_t``."""

    level = Level.SEQUENCE
    needs = _FORCED
    token_form = TokenPmi

    def compute(self, ctx: Context) -> Scores:
        lp, uncond = pmi_terms(ctx)
        mean = (lp - uncond).mean()
        return self._scores(ctx, mean, -mean)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class Cpmi(_CpmiParams):
    """Mean conditional PMI (defaults ``τ = 0.0656``, ``λ = 3.599``). ``raw`` = ``−mean cpmi_t``."""

    level = Level.SEQUENCE
    needs = _FORCED | _FULL
    token_form = TokenCpmi

    def compute(self, ctx: Context) -> Scores:
        mean = cpmi_values(ctx, self.tau, self.lam).mean()
        return self._scores(ctx, mean, -mean)
