"""Lin et al.'s similarity-graph scores (METHODS.md §3.3): EigV, Deg, Ecc per question; C_Deg, C_Ecc per answer.

``W`` is the symmetric similarity matrix of the answers (unit diagonal), ``D`` its degree matrix and
``L = I − D^{−1/2} W D^{−1/2}`` the normalised Laplacian. The per-question scores use the ``n_samples``
samples; the per-answer ones add the trace's own answer as node 0 and score it against the samples.
``values`` are oriented higher = more trustworthy; ``raw`` is the paper's uncertainty (or confidence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserInputError
from ..registry import estimators
from ..scores import Level, Scores
from ..stat import Context
from ._sampled import ComparedEstimator


def laplacian(w: np.ndarray) -> np.ndarray:
    """Symmetric normalised Laplacian ``D^{−1/2}(D − W)D^{−1/2}`` (rows summing to 0 are guarded)."""
    w = np.asarray(w, dtype=float)
    deg = w.sum(axis=1)
    inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    return inv_sqrt[:, None] * (np.diag(deg) - w) * inv_sqrt[None, :]


def eigv(w: np.ndarray) -> float:
    """``U_EigV = Σ_k max(0, 1 − λ_k)``: a continuous number of clusters."""
    lam = np.linalg.eigvalsh(laplacian(w))
    return float(np.clip(1.0 - lam, 0.0, None).sum())


def degree_uncertainty(w: np.ndarray) -> float:
    """``U_Deg = trace(m·I − D) / m²``."""
    m = len(w)
    return float((m * m - np.asarray(w).sum()) / (m * m))


def spectral_embedding(w: np.ndarray, threshold: float) -> np.ndarray:
    """Rows ``v_j``: the answers' coordinates on the Laplacian eigenvectors with eigenvalue < ``threshold``."""
    lam, vec = np.linalg.eigh(laplacian(w))
    return vec[:, lam < threshold]


def eccentricities(w: np.ndarray, threshold: float = 0.9) -> np.ndarray:
    """``‖v_j − v̄‖`` per answer (zeros when no eigenvalue is below ``threshold``)."""
    v = spectral_embedding(w, threshold)
    if v.shape[1] == 0:
        return np.zeros(len(w))
    return np.linalg.norm(v - v.mean(axis=0), axis=1)


@dataclass(frozen=True, kw_only=True)
class _Graph(ComparedEstimator):
    level = Level.SEQUENCE


@estimators.register(aliases=("eigv",))
@dataclass(frozen=True, kw_only=True)
class EigValLaplacian(_Graph):
    """``U_EigV = Σ max(0, 1 − λ_k)`` of the samples' similarity graph; ``values`` = −U, ``raw`` = U."""

    def compute(self, ctx: Context) -> Scores:
        u = eigv(self.similarity_matrix(ctx))
        return self._scores(ctx, -u, u)


@estimators.register(aliases=("deg",))
@dataclass(frozen=True, kw_only=True)
class DegMat(_Graph):
    """``U_Deg = trace(mI − D)/m²``, the mean dissimilarity of the samples; ``values`` = 1 − U ∈ [0, 1]."""

    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        u = degree_uncertainty(self.similarity_matrix(ctx))
        return self._scores(ctx, 1.0 - u, u)


@dataclass(frozen=True, kw_only=True)
class _Eccentric(_Graph):
    eigv_threshold: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.eigv_threshold <= 2:
            raise UserInputError(f"eigv_threshold must lie in (0, 2], got {self.eigv_threshold}")


@estimators.register(aliases=("ecc",))
@dataclass(frozen=True, kw_only=True)
class Eccentricity(_Eccentric):
    """``U_Ecc = ‖(‖v_1 − v̄‖, …, ‖v_m − v̄‖)‖₂`` over eigenvectors with λ < ``eigv_threshold``; ``values`` = −U."""

    def compute(self, ctx: Context) -> Scores:
        u = float(np.linalg.norm(eccentricities(self.similarity_matrix(ctx), self.eigv_threshold)))
        return self._scores(ctx, -u, u)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class CDeg(_Graph):
    """``C_Deg`` of the trace's answer: its degree in the graph of answer + samples over the node count."""

    is_probability = True

    def compute(self, ctx: Context) -> Scores:
        w = self.similarity_matrix(ctx, include_answer=True)
        c = float(w[0].sum() / len(w))
        return self._scores(ctx, c, c)


@estimators.register
@dataclass(frozen=True, kw_only=True)
class CEcc(_Eccentric):
    """``C_Ecc = −‖v_0 − v̄‖`` of the trace's answer (node 0) in the graph of answer + samples."""

    def compute(self, ctx: Context) -> Scores:
        c = -float(eccentricities(self.similarity_matrix(ctx, include_answer=True), self.eigv_threshold)[0])
        return self._scores(ctx, c, c)
