"""Shared plumbing for metrics: the registering decorator and input validation.

Every metric takes ``(correct, confidence_or_prob, *, ...)``; the helpers here turn those
into validated float arrays without touching the caller's objects, and raise
:class:`~tokentrust.errors.UserInputError` naming the offending index and value.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from .. import registry as _registry
from ..errors import UndefinedMetricWarning, UserInputError
from ..registry import Registry, snake_case
from .info import Column, MetricInfo, Target

F = TypeVar("F", bound=Callable[..., Any])


def metric(
    *,
    higher_is_better: bool,
    needs_probability: bool,
    target: Target,
    label: str | None = None,
    bench: bool | Sequence[Column] = True,
    terminal: bool = True,
    note: str = "",
    aliases: tuple[str, ...] = (),
    registry: Registry[Any] | None = None,
) -> Callable[[F], F]:
    """Register ``fn`` as a scalar metric and attach its :class:`~tokentrust.metrics.info.MetricInfo`.

    ``needs_probability=True`` means the second argument must lie in ``[0, 1]`` (ECE, Brier);
    ``False`` means any real-valued, higher-is-more-trustworthy confidence works. ``target`` is what
    the first argument is: the binary ``"correct"`` label or the continuous ``"quality"``.
    ``bench=True`` reports the metric with default parameters as one column headed ``label``
    (default: the id); a sequence of :class:`~tokentrust.metrics.info.Column` reports those instead;
    ``False`` leaves it out of benchmark tables. ``terminal=False`` keeps it out of the short terminal
    table only. ``registry`` defaults to :data:`tokentrust.registry.metrics`. The function also gets
    ``higher_is_better``, ``needs_probability`` and ``info`` attributes.
    """

    def decorate(fn: F) -> F:
        key = snake_case(fn.__name__)
        shown = label or key
        if bench is True:
            columns: tuple[Column, ...] = (Column(key=key, label=shown),)
        elif bench is False:
            columns = ()
        else:
            columns = tuple(bench)
        info = MetricInfo(
            id=key, label=shown, target=target, higher_is_better=higher_is_better,
            needs_probability=needs_probability, columns=columns, terminal=terminal, note=note,
        )
        (registry if registry is not None else _registry.metrics).register(fn, name=key, aliases=aliases)
        fn.info = info  # type: ignore[attr-defined]
        fn.higher_is_better = higher_is_better  # type: ignore[attr-defined]
        fn.needs_probability = needs_probability  # type: ignore[attr-defined]
        return fn

    return decorate


def _as_1d(values: Any, name: str) -> np.ndarray:
    """A fresh 1-D float64 copy of ``values`` (never a view of the caller's array)."""
    try:
        arr = np.array(values, dtype=np.float64, copy=True)
    except (TypeError, ValueError) as exc:
        raise UserInputError(
            f"{name} must be a 1-D sequence of numbers; got {type(values).__name__}"
        ) from exc
    if arr.ndim != 1:
        raise UserInputError(f"{name} must be 1-D; got an array of shape {arr.shape}")
    if arr.size == 0:
        raise UserInputError(f"{name} is empty; a metric needs at least one item")
    return arr


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def check_pair(
    correct: Any,
    confidence: Any,
    *,
    binary: bool = True,
    confidence_name: str = "confidence",
    allow_inf: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and copy ``(correct, confidence)``.

    ``binary=True`` requires ``correct`` in {0, 1} (bools allowed); ``False`` accepts any finite
    quality. NaN confidences are always rejected; ``±inf`` only when ``allow_inf`` is false.
    """
    y = _as_1d(correct, "correct")
    c = _as_1d(confidence, confidence_name)
    if y.shape != c.shape:
        raise UserInputError(
            f"correct and {confidence_name} must have the same length; got {y.size} and {c.size}"
        )
    bad = ~np.isfinite(y)
    if bad.any():
        i = _first_bad(bad)
        raise UserInputError(
            f"correct[{i}] = {float(y[i])!r} is not a finite number; drop unlabelled items first"
        )
    if binary:
        bad = (y != 0) & (y != 1)
        if bad.any():
            i = _first_bad(bad)
            raise UserInputError(
                f"correct[{i}] = {float(y[i])!r} is not binary; this metric needs correct in {{0, 1}} "
                "(threshold a continuous quality first, or use prr/spearman/pearson/kendall)"
            )
    bad = np.isnan(c)
    if bad.any():
        i = _first_bad(bad)
        raise UserInputError(f"{confidence_name}[{i}] is NaN; every item needs a score")
    if not allow_inf:
        bad = ~np.isfinite(c)
        if bad.any():
            i = _first_bad(bad)
            raise UserInputError(
                f"{confidence_name}[{i}] = {float(c[i])!r} is not finite; this metric needs finite values"
            )
    return y, c


def check_probability(prob: np.ndarray, name: str = "prob") -> None:
    """Reject values outside ``[0, 1]``: ECE and Brier are statements about probabilities only."""
    bad = (prob < 0) | (prob > 1)
    if bad.any():
        i = _first_bad(bad)
        raise UserInputError(
            f"{name}[{i}] = {float(prob[i])!r} is outside [0, 1]; ECE and Brier only apply to probabilities "
            "(map raw scores with a calibrator from tokentrust.calibration first)"
        )


def finite_ranks(confidence: np.ndarray) -> np.ndarray:
    """Map ``+inf``/``-inf`` to ``max+1``/``min-1`` of the finite values (LM-Polygraph's rule).

    Order-preserving, so any rank-based metric is unchanged; returns a new array.
    """
    out = confidence.copy()
    finite = np.isfinite(out)
    if finite.all():
        return out
    hi = float(out[finite].max()) if finite.any() else 0.0
    lo = float(out[finite].min()) if finite.any() else 0.0
    out[out == np.inf] = hi + 1.0
    out[out == -np.inf] = lo - 1.0
    return out


def undefined(reason: str, *, stacklevel: int = 3) -> float:
    """Warn that a metric is undefined on this input and return NaN.

    The default ``stacklevel`` points the warning at the caller of the public metric.
    """
    warnings.warn(reason, UndefinedMetricWarning, stacklevel=stacklevel)
    return float("nan")
