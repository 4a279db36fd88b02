"""Token-level white-box scores (METHODS.md §2.1, 2.3, 2.4, 2.5): one value per answer token.

Every token is scored, special ones (end of turn) included; renderers hide special tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capability import Capability
from ..errors import CapabilityError, UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context, Stat
from .base import Estimator, TokenColumns

_FULL = frozenset({Capability.LOGPROBS, Capability.FULL_DISTRIBUTION})
_FORCED = frozenset({Capability.LOGPROBS, Capability.FORCED_SCORING})


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenProbability(Estimator):
    """``p_t = exp(ℓ_t)``, the probability of each chosen token. ``raw`` = ``−ℓ_t`` (nats)."""

    level = Level.TOKEN
    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        lp = ctx.get(TokenColumns()).logprobs
        return self._scores(ctx, np.exp(lp), -lp)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenEntropy(Estimator):
    """Entropy ``H_t`` of the raw next-token distribution, in nats. ``values`` = ``−H_t``, ``raw`` = ``H_t``."""

    level = Level.TOKEN
    needs = _FULL

    def compute(self, ctx: Context) -> Scores:
        h = ctx.get(TokenColumns()).entropy
        return self._scores(ctx, -h, h)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenMargin(Estimator):
    """Top-1 minus top-2 probability of each step's raw distribution (both ``values`` and ``raw``)."""

    level = Level.TOKEN
    needs = _FULL

    def compute(self, ctx: Context) -> Scores:
        m = ctx.get(TokenColumns()).margin
        return self._scores(ctx, m, m)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenKurtosis(Estimator):
    """Excess (Fisher, biased) kurtosis of each step's full probability vector; higher = more peaked.

    Scale depends on the vocabulary size, so it is not comparable across tokenizers (METHODS.md §2.5).
    """

    level = Level.TOKEN
    needs = _FULL

    def compute(self, ctx: Context) -> Scores:
        k = ctx.get(TokenColumns()).kurtosis
        return self._scores(ctx, k, k)


@dataclass(frozen=True, kw_only=True)
class UnconditionalLogprobs(Stat[np.ndarray]):
    """``log p(y_t | y_<t)`` with the prompt (and chat template) removed, aligned with the trace's tokens.

    Position ``t`` scores token ``t`` given the answer tokens before it; position 0 has no context and is 0,
    as METHODS.md §2.4 defines. Needs the backend for one extra teacher-forced pass over the answer ids.
    """

    def compute(self, ctx: Context) -> np.ndarray:
        if ctx.backend is None:
            raise CapabilityError("PMI needs a backend with forced_scoring for its prompt-free pass; none given")
        rest = ctx.backend.token_logprobs(ctx.trace.token_ids)
        return np.concatenate([[0.0], np.asarray(rest, dtype=float)])


def pmi_terms(ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(chosen log-probs ``ℓ_t``, prompt-free log-probs) for PMI-style scores."""
    return ctx.get(TokenColumns()).logprobs, ctx.get(UnconditionalLogprobs())


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenPmi(Estimator):
    """Pointwise mutual information ``pmi_t = ℓ_t − log p(y_t | y_<t)`` (prompt removed). ``raw`` = ``−pmi_t``."""

    level = Level.TOKEN
    needs = _FORCED

    def compute(self, ctx: Context) -> Scores:
        lp, uncond = pmi_terms(ctx)
        pmi = lp - uncond
        return self._scores(ctx, pmi, -pmi)


def cpmi_values(ctx: Context, tau: float, lam: float) -> np.ndarray:
    """Conditional PMI (van der Poel et al. 2022): subtract ``λ·log p(y_t|y_<t)`` only where ``t > 0`` and ``H_t ≥ τ``."""
    lp, uncond = pmi_terms(ctx)
    entropy = ctx.get(TokenColumns()).entropy
    apply = (np.arange(len(lp)) > 0) & (entropy >= tau)
    return np.where(apply, lp - lam * uncond, lp)


@dataclass(frozen=True, kw_only=True)
class _CpmiParams(Estimator):
    tau: float = 0.0656
    lam: float = 3.599

    def __post_init__(self) -> None:
        if self.tau < 0 or self.lam < 0:
            raise UserInputError(f"cpmi needs tau ≥ 0 and lam ≥ 0, got tau={self.tau}, lam={self.lam}")
        if self.lam == 0 and self.tau != _CpmiParams.tau:
            raise UserInputError(f"tau={self.tau!r} applies only when lam > 0 (with lam=0 nothing is subtracted)")


@estimators.register
@dataclass(frozen=True, kw_only=True)
class TokenCpmi(_CpmiParams):
    """Conditional PMI per token (defaults ``τ = 0.0656``, ``λ = 3.599``). ``raw`` = ``−cpmi_t``."""

    level = Level.TOKEN
    needs = _FORCED | _FULL

    def compute(self, ctx: Context) -> Scores:
        c = cpmi_values(ctx, self.tau, self.lam)
        return self._scores(ctx, c, -c)
