"""Calibrate a finished run: fit a map on one split and measure it on the other, or learn a confidence
from several scores and measure it by cross-fitting.

The measures are the registered metrics that need probabilities (ECE and Brier among them), each under
its benchmark column key, so ``before`` and ``after`` read like a row of ``metrics.json``; the learned
confidence adds ROC-AUC. Every saved map records the run's model id and the score ids it reads.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .layout import load_items
from .table import MetricColumn, metric_columns

__all__ = ["calibrate_run", "cross_fit", "learned_rows", "probability_columns", "run_model", "summary"]


def probability_columns() -> tuple[MetricColumn, ...]:
    """The benchmark columns of the metrics that only apply to probabilities (``ece``, ``brier``, …)."""
    return tuple(c for c in metric_columns() if c.info.needs_probability)


def _measure(correct: np.ndarray, quality: np.ndarray, prob: np.ndarray | None) -> dict[str, float | None]:
    """Each probability metric of ``prob``; every value ``None`` when ``prob`` is not a probability."""
    return {c.key: None if prob is None else c.compute(correct, quality, prob) for c in probability_columns()}


def run_model(run_dir: Path, items: Sequence[dict[str, Any]]) -> str | None:
    """The model id a run folder's answers come from (``run.json``, else the first trace)."""
    from .layout import META_FILE

    meta = run_dir / META_FILE
    if meta.exists():
        return json.loads(meta.read_text(encoding="utf-8")).get("model")
    return next((r["trace"].get("model_id") for r in items if r.get("trace")), None)


def _one_class_check(run_dir: Path, correct: np.ndarray) -> None:
    n_pos = int(correct.sum())
    if n_pos in (0, correct.size):
        which = "correct" if n_pos else "wrong"
        raise UserInputError(f"{run_dir}: all {correct.size} scored items are {which}; calibration needs both "
                             "correct and wrong answers (run more or harder items)")


def calibrate_run(
    run_dir: str | Path, estimator: str | Sequence[str], *, method: str = "platt", test_size: float = 0.5,
    seed: int = 0, out: str | Path | None = None, folds: int = 5, model: str = "lr",
) -> dict[str, Any]:
    """Fit ``method`` on ``1 - test_size`` of the run's items, evaluate on the rest, save the calibrator.

    ``method="learned"`` takes several estimators instead and goes to :func:`learned_run` (``folds``-fold
    cross-fitting, ``model`` ``"lr"`` or ``"gbt"``). ``out`` is where the calibrator is saved.

    The split is stratified by correctness when both classes have at least two items. ``before`` and
    ``after`` map each probability metric's column key (``ece``, ``brier``) to its value on the held-out
    split; ``before`` holds ``None`` for scores that are not probabilities (those metrics do not apply
    to them), and so does any value undefined on the split. The calibrator
    is saved as ``calibrator-<estimator>-<method>.json`` in the run folder.
    """
    from sklearn.model_selection import train_test_split

    from ..calibration import calibrators, make_calibrator
    from ..estimators.base import build_estimator

    if method != "learned" and method not in calibrators.names():
        raise UserInputError(f"unknown method {method!r}; use {', '.join(calibrators.names())} or learned")
    estimators = [estimator] if isinstance(estimator, str) else list(estimator)
    if method == "learned":
        return learned_run(run_dir, estimators, model=model, folds=folds, seed=seed, out=out)
    if len(estimators) != 1:
        raise UserInputError(f"--method {method} calibrates one score (one -e); use --method learned to "
                             f"combine {len(estimators)}")
    estimator = estimators[0]
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
    _one_class_check(run_dir, correct)
    n_test = round(test_size * values.size)
    if n_test < 1 or values.size - n_test < 2:
        raise UserInputError(f"{values.size} scored items are too few to split with test_size={test_size}")
    stratify = correct if min(correct.sum(), (1 - correct).sum()) >= 2 else None
    fit_v, test_v, fit_y, test_y, _, test_q = train_test_split(
        values, correct, quality, test_size=test_size, random_state=seed, stratify=stratify
    )
    kwargs = {"score_type": "prob"} if method == "temperature" and is_probability else {}
    calibrator = make_calibrator(method, **kwargs).fit(fit_v, fit_y)
    calibrator.bind(model=run_model(run_dir, items), score=eid)
    path = Path(out) if out is not None else run_dir / f"calibrator-{eid}-{method}.json"
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


# --------------------------------------------------------------------------- learned confidence


def learned_rows(run_dir: str | Path, estimators: Sequence[str]) -> tuple[list[dict[str, Any]], list[str], int]:
    """A run's answers that have a finite value of every estimator: ``(rows, estimator ids, n left out)``.

    Refuses claim-level runs (their rows are claims without a trace of their own) and unknown scores.
    """
    from ..calibration import _canonical
    from .claims import measured_rows

    run_dir = Path(run_dir)
    items = load_items(run_dir)
    if measured_rows(run_dir, items) is not items:
        raise UserInputError(f"{run_dir} is a claim-level run; learned confidence needs answer-level runs")
    if not estimators:
        raise UserInputError("give at least one score with -e (e.g. -e msp -e mean_token_entropy)")
    eids = list(dict.fromkeys(_canonical(e) for e in estimators))
    present = sorted({k for r in items for k in r["scores"]})
    absent = [e for e in eids if e not in present]
    if absent:
        raise UserInputError(f"{run_dir} has no scores for {', '.join(absent)}; present: {', '.join(present) or 'none'}")

    def usable(r: dict[str, Any]) -> bool:
        return all(e in r["scores"] and r["scores"][e]["value"] is not None
                   and np.isfinite(r["scores"][e]["value"]) for e in eids)

    rows = [r for r in items if usable(r)]
    return rows, eids, len(items) - len(rows)


def summary(correct: np.ndarray, prob: np.ndarray | None, *, score: np.ndarray | None = None) -> dict[str, float | None]:
    """ROC-AUC of ``score`` (default ``prob``) and ECE and Brier of ``prob``; ``None`` where undefined."""
    from ..metrics import brier, ece, roc_auc

    def value(fn: Callable[..., float], s: np.ndarray | None) -> float | None:
        if s is None or (fn is roc_auc and correct.min() == correct.max()):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn(correct, s))
        return None if np.isnan(v) else v

    return {"roc_auc": value(roc_auc, prob if score is None else score), "ece": value(ece, prob),
            "brier": value(brier, prob)}


def cross_fit(n: int, correct: np.ndarray, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], *,
              folds: int, seed: int) -> np.ndarray:
    """Out-of-fold predictions: stratified ``folds``-fold (fewer when a class has fewer items), each fold
    predicted by ``fit_predict(train_idx, test_idx)`` fitted on the others. Needs two items of each class."""
    from sklearn.model_selection import StratifiedKFold

    smaller = int(min(correct.sum(), correct.size - correct.sum()))
    if smaller < 2:
        raise UserInputError(f"cross-fitting needs at least 2 correct and 2 wrong answers; the smaller class has "
                             f"{smaller}")
    k = min(folds, smaller)
    if k < 2:
        raise UserInputError(f"folds must be ≥ 2, got {folds}")
    out = np.full(n, np.nan)
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), correct):
        out[test] = fit_predict(train, test)
    return out


def learned_run(run_dir: str | Path, estimators: Sequence[str], *, model: str = "lr", folds: int = 5, seed: int = 0,
                out: str | Path | None = None) -> dict[str, Any]:
    """Learn a confidence from ``estimators`` and the token statistics of a run; measure it by cross-fitting.

    ``before`` is the best single score (by ROC-AUC; ECE/Brier only if it is a probability), ``platt``
    that score Platt-scaled on the same folds, ``after`` the learned confidence's out-of-fold predictions.
    The map refitted on every usable answer is saved to ``out`` (default
    ``<run>/calibrator-learned-<model>.json``).
    """
    from ..calibration import LearnedConfidence, PlattCalibrator

    run_dir = Path(run_dir)
    rows, eids, n_dropped = learned_rows(run_dir, estimators)
    if not rows:
        raise UserInputError(f"{run_dir} has no answer with a finite value of every score ({', '.join(eids)})")
    y = np.array([float(r["correct"]) for r in rows])
    _one_class_check(run_dir, y)
    values = {e: np.array([r["scores"][e]["value"] for r in rows], dtype=float) for e in eids}
    is_prob = {e: bool(rows[0]["scores"][e]["is_probability"]) for e in eids}
    single = {e: summary(y, None, score=v)["roc_auc"] for e, v in values.items()}
    best = max(eids, key=lambda e: -1.0 if single[e] is None else single[e])

    def make() -> LearnedConfidence:
        return LearnedConfidence(scores=tuple(eids), model=model)

    final = make().fit(rows)  # refuses bad rows (entropies, models) before the folds do
    learned = cross_fit(len(rows), y, lambda tr, te: make().fit([rows[i] for i in tr], y[tr]).transform(
        [rows[i] for i in te]), folds=folds, seed=seed)
    bv = values[best]
    platt = cross_fit(len(rows), y, lambda tr, te: PlattCalibrator().fit(bv[tr], y[tr]).transform(bv[te]),
                      folds=folds, seed=seed)
    path = Path(out) if out is not None else run_dir / f"calibrator-learned-{model}.json"
    final.save(path)
    return {
        "estimators": eids, "method": "learned", "model": model, "model_id": final.model_id_,
        "folds": folds, "seed": seed, "n": len(rows), "n_dropped": n_dropped, "accuracy": float(y.mean()),
        "features": final.features_, "single": single, "best": best,
        "before": summary(y, bv if is_prob[best] else None, score=bv),
        "platt": summary(y, platt), "after": summary(y, learned), "path": str(path),
    }
