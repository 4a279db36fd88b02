"""Calibrate one score of a finished run: fit a map on one split, measure it on the other.

The measures are the registered metrics that need probabilities (ECE and Brier among them), each under
its benchmark column key, so ``before`` and ``after`` read like a row of ``metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .layout import load_items
from .table import MetricColumn, metric_columns

__all__ = ["calibrate_run", "probability_columns"]


def probability_columns() -> tuple[MetricColumn, ...]:
    """The benchmark columns of the metrics that only apply to probabilities (``ece``, ``brier``, …)."""
    return tuple(c for c in metric_columns() if c.info.needs_probability)


def _measure(correct: np.ndarray, quality: np.ndarray, prob: np.ndarray | None) -> dict[str, float | None]:
    """Each probability metric of ``prob``; every value ``None`` when ``prob`` is not a probability."""
    return {c.key: None if prob is None else c.compute(correct, quality, prob) for c in probability_columns()}


def calibrate_run(
    run_dir: str | Path, estimator: str, *, method: str = "platt", test_size: float = 0.5, seed: int = 0
) -> dict[str, Any]:
    """Fit ``method`` on ``1 - test_size`` of the run's items, evaluate on the rest, save the calibrator.

    The split is stratified by correctness when both classes have at least two items. ``before`` and
    ``after`` map each probability metric's column key (``ece``, ``brier``) to its value on the held-out
    split; ``before`` holds ``None`` for scores that are not probabilities (those metrics do not apply
    to them), and so does any value undefined on the split. The calibrator
    is saved as ``calibrator-<estimator>-<method>.json`` in the run folder.
    """
    from sklearn.model_selection import train_test_split

    from ..calibration import make_calibrator
    from ..estimators.base import build_estimator

    if not 0.0 < test_size < 1.0:
        raise UserInputError(f"test_size must be in (0, 1), got {test_size}")
    from .claims import measured_rows

    run_dir = Path(run_dir)
    items = measured_rows(run_dir, load_items(run_dir))  # at claim level: the labelled claims
    eid = build_estimator(estimator).id
    present = sorted({k for r in items for k in r["scores"]})
    rows = [(r["scores"][eid]["value"], r["correct"], r["quality"], r["scores"][eid]["is_probability"])
            for r in items if eid in r["scores"]]
    if not rows:
        raise UserInputError(f"{run_dir} has no scores for {eid!r}; present: {', '.join(present) or 'none'}")
    values = np.array([r[0] for r in rows], dtype=float)
    correct = np.array([r[1] for r in rows], dtype=float)
    quality = np.array([r[2] for r in rows], dtype=float)
    keep = np.isfinite(values)
    values, correct, quality = values[keep], correct[keep], quality[keep]
    is_probability = bool(rows[0][3])
    n_test = round(test_size * values.size)
    if n_test < 1 or values.size - n_test < 2:
        raise UserInputError(f"{values.size} scored items are too few to split with test_size={test_size}")
    stratify = correct if min(correct.sum(), (1 - correct).sum()) >= 2 else None
    fit_v, test_v, fit_y, test_y, _, test_q = train_test_split(
        values, correct, quality, test_size=test_size, random_state=seed, stratify=stratify
    )
    kwargs = {"score_type": "prob"} if method == "temperature" and is_probability else {}
    calibrator = make_calibrator(method, **kwargs).fit(fit_v, fit_y)
    path = run_dir / f"calibrator-{eid}-{method}.json"
    calibrator.save(path)
    return {
        "estimator": eid,
        "method": method,
        "test_size": test_size,
        "seed": seed,
        "n_fit": int(fit_v.size),
        "n_test": int(test_v.size),
        "before": _measure(test_y, test_q, test_v if is_probability else None),
        "after": _measure(test_y, test_q, calibrator.transform(test_v)),
        "calibrator": json.loads(calibrator.to_json()),
        "path": str(path),
    }
