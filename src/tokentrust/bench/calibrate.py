"""Calibrate one score of a finished run: fit a map on one split, measure ECE and Brier on the other."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UndefinedMetricWarning, UserInputError

__all__ = ["calibrate_run"]


def _ece_brier(correct: np.ndarray, prob: np.ndarray) -> dict[str, float | None]:
    from ..metrics import brier, ece

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return {"ece": float(ece(correct, prob)), "brier": float(brier(correct, prob))}


def calibrate_run(
    run_dir: str | Path, estimator: str, *, method: str = "platt", test_size: float = 0.5, seed: int = 0
) -> dict[str, Any]:
    """Fit ``method`` on ``1 - test_size`` of the run's items, evaluate on the rest, save the calibrator.

    The split is stratified by correctness when both classes have at least two items. ``before`` is
    ``None`` for scores that are not probabilities (ECE and Brier do not apply to them). The calibrator
    is saved as ``calibrator-<estimator>-<method>.json`` in the run folder.
    """
    from sklearn.model_selection import train_test_split

    from ..calibration import make_calibrator
    from ..estimators.base import build_estimator
    from .runner import load_items

    if not 0.0 < test_size < 1.0:
        raise UserInputError(f"test_size must be in (0, 1), got {test_size}")
    run_dir = Path(run_dir)
    items = load_items(run_dir)
    eid = build_estimator(estimator).id
    present = sorted({k for r in items for k in r["scores"]})
    rows = [(r["scores"][eid]["value"], r["correct"], r["scores"][eid]["is_probability"])
            for r in items if eid in r["scores"]]
    if not rows:
        raise UserInputError(f"{run_dir} has no scores for {eid!r}; present: {', '.join(present) or 'none'}")
    values = np.array([r[0] for r in rows], dtype=float)
    correct = np.array([r[1] for r in rows], dtype=float)
    keep = np.isfinite(values)
    values, correct = values[keep], correct[keep]
    is_probability = bool(rows[0][2])
    n_test = round(test_size * values.size)
    if n_test < 1 or values.size - n_test < 2:
        raise UserInputError(f"{values.size} scored items are too few to split with test_size={test_size}")
    stratify = correct if min(correct.sum(), (1 - correct).sum()) >= 2 else None
    fit_v, test_v, fit_y, test_y = train_test_split(
        values, correct, test_size=test_size, random_state=seed, stratify=stratify
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
        "before": _ece_brier(test_y, test_v) if is_probability else {"ece": None, "brier": None},
        "after": _ece_brier(test_y, calibrator.transform(test_v)),
        "calibrator": json.loads(calibrator.to_json()),
        "path": str(path),
    }
