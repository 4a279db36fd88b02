"""Gradient × input and integrated gradients of a batched function of input embeddings.

``f`` maps inputs ``(B, n, d)`` to target values ``(B, T)`` (log-probs) and treats rows independently (a model
without padding does). Rows go through ``f`` in chunks, one forward and one backward per chunk; gradients
are taken with respect to the inputs only (``torch.autograd.grad``: no parameter's ``.grad`` is touched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

Fn = Callable[[Any], Any]


class Integrated(NamedTuple):
    """Integrated gradients of ``T`` targets over ``n`` inputs, with the completeness check's parts."""

    attributions: Any  # (T, n): summed over the embedding dimension
    f_input: Any  # (T,) f(x)
    f_baseline: Any  # (T,) f(baseline)
    gap: Any  # (T,) |Σ_j attributions − (f(x) − f(baseline))|
    backwards: int


def weighted_gradients(f: Fn, points: Any, point: Any, which: Any, weights: Any, n_targets: int, *, chunk: int
                       ) -> tuple[Any, Any, int]:
    """``(grads (T, n, d), values (B,), backwards)`` over ``B`` rows, row ``b`` being ``points[point[b]]`` (``points``:
    ``(P, n, d)``, so a row is built only when its chunk runs): ``grads[t] = Σ_{b: which[b]=t} weights[b] · ∇f_t``
    at that row, ``values[b]`` = ``f_{which[b]}`` there, and the number of backward passes (one per ``chunk`` rows)."""
    import torch

    total = torch.zeros(n_targets, *points.shape[1:], dtype=points.dtype, device=points.device)
    values, backwards, step = [], 0, max(1, chunk)
    for start in range(0, len(point), step):
        x = points[point[start : start + step]].detach().requires_grad_(True)
        rows = which[start : start + step].to(x.device)
        with torch.enable_grad():
            picked = f(x).gather(1, rows[:, None]).squeeze(1)
            (grad,) = torch.autograd.grad(picked.sum(), x)
        backwards += 1
        w = weights[start : start + step].to(grad)
        total.index_add_(0, rows, grad * w[:, None, None])
        values.append(picked.detach())
    return total, torch.cat(values), backwards


def gradient_x_input(f: Fn, x: Any, n_targets: int, *, chunk: int = 16) -> tuple[Any, Any, int]:
    """``(attributions (T, n), f(x) (T,), backwards)``: ``(∂ f_t / ∂ x_j) · x_j`` summed over the embedding
    dimension, for ``x`` of shape ``(n, d)``; one row per target, batched."""
    import torch

    which = torch.arange(n_targets)
    grads, values, backwards = weighted_gradients(f, x[None], torch.zeros(n_targets, dtype=torch.long), which,
                                                  torch.ones(n_targets), n_targets, chunk=chunk)
    return (grads * x).sum(-1), values, backwards


def gauss_legendre(steps: int) -> tuple[list[float], list[float]]:
    """``(alphas, weights)``: Gauss–Legendre quadrature of ``∫_0^1 g(α) dα`` with ``steps`` nodes, Captum's default
    (identical nodes and weights). Exact for polynomial integrands of degree ``< 2·steps``; no node is an end of
    the path, where a model's gradient may be undefined (SmolLM2's is NaN at the all-zero input)."""
    import numpy as np

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"integrated gradients need an integer steps >= 1, got {steps!r}")
    nodes, w = np.polynomial.legendre.leggauss(steps)
    return (0.5 * (1 + nodes)).tolist(), (0.5 * w).tolist()


def integrated_gradients(f: Fn, x: Any, baseline: Any, n_targets: int, *, steps: int = 32, chunk: int = 16
                         ) -> Integrated:
    """Integrated gradients on the straight path from ``baseline`` (broadcast to ``x``'s ``(n, d)``) to ``x``:
    ``(x − b) · Σ_k w_k ∇f(b + α_k (x − b))`` with Gauss–Legendre nodes ``α_k`` and weights ``w_k``, summed over
    the embedding dimension. The ``steps × T`` path rows are batched ``chunk`` at a time; ``f(x)`` and
    ``f(baseline)`` come from one extra forward of 2 rows."""
    import torch

    alphas, weights = gauss_legendre(steps)
    baseline = baseline.to(x).expand_as(x)
    delta = x - baseline
    a = torch.tensor(alphas, dtype=x.dtype, device=x.device)
    path = baseline[None] + a[:, None, None] * delta[None]  # (steps, n, d); rows are (step, target) pairs
    point = torch.arange(steps).repeat_interleave(n_targets)
    which = torch.arange(n_targets).repeat(steps)
    w = torch.tensor(weights, dtype=torch.float64).repeat_interleave(n_targets)
    grads, _, backwards = weighted_gradients(f, path, point, which, w, n_targets, chunk=chunk)
    attributions = (grads * delta).sum(-1)
    with torch.no_grad():
        ends = f(torch.stack([x, baseline]))
    gap = (attributions.sum(-1) - (ends[0] - ends[1])).abs()
    return Integrated(attributions, ends[0], ends[1], gap, backwards)
