"""Does a learned confidence transfer? Fit it on each run, test it on every other; and export a run as
``(prompt, answer, confidence, correct)`` rows for training elsewhere.

:func:`transfer` returns matrices (rows = the run fitted on, columns = the run tested on) of ROC-AUC, ECE
and Brier; the diagonal is cross-fitted (:func:`~tokentrust.bench.calibrate.cross_fit`), so no cell is
measured on the answers it was fitted on. A cell is NaN when it cannot be measured: a run with one class
cannot be fitted on (its whole row), and ROC-AUC is undefined on a test run with one class. Runs from
different models are refused: a learned confidence is model-specific.

Beside it, the fair single-score baseline: the score with the best ROC-AUC on the *fit* run (what a user
without the test run's labels would pick), Platt-scaled on the fit run and tested the same way; and each
score's own ROC-AUC on every run (the best of these on a test run is chosen by looking at that run's labels,
so it is an upper bound no fitted method is promised to reach).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .calibrate import cross_fit, learned_rows, run_model, summary
from .layout import load_items

__all__ = ["EXPORT_FIELDS", "export_rows", "transfer"]

METRICS = ("roc_auc", "ece", "brier")

#: The keys of each exported row, in order.
EXPORT_FIELDS = ("id", "prompt", "answer", "confidence", "correct", "estimator", "model")


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def transfer(run_dirs: Sequence[str | Path], estimators: Sequence[str], *, model: str = "lr", folds: int = 5,
             seed: int = 0) -> dict[str, Any]:
    """Fit a :class:`~tokentrust.calibration.LearnedConfidence` on each run and evaluate it on every run.

    Returns ``runs`` (folder names), ``model_id``, ``estimators`` (ids), ``n`` and ``accuracy`` per run,
    ``roc_auc``/``ece``/``brier`` as lists of rows (fit run) of columns (test run), ``C``: the L2 strength
    each fit chose (``None`` for ``gbt`` or an unfittable run), ``single``: each score's own ROC-AUC on each
    run, and ``baseline``: ``estimator`` (per fit run, the score with the best ROC-AUC there) with its
    ``roc_auc`` and Platt-scaled ``ece``/``brier`` matrices shaped like the learned ones. Undefined cells are NaN.
    """
    from ..calibration import LearnedConfidence, PlattCalibrator

    if len(run_dirs) < 2:
        raise UserInputError(f"give at least two runs to compare (got {len(run_dirs)})")
    paths = [Path(p) for p in run_dirs]
    loaded = [learned_rows(p, estimators) for p in paths]
    eids = loaded[0][1]
    models = {str(p): run_model(p, rows) for p, (rows, _, _) in zip(paths, loaded, strict=True)}
    if len(set(models.values())) > 1:
        listing = ", ".join(f"{p} → {m}" for p, m in models.items())
        raise UserInputError(f"runs come from different models ({listing}); a learned confidence is fitted per model")
    for p, (rows, _, _) in zip(paths, loaded, strict=True):
        if not rows:
            raise UserInputError(f"{p} has no answer with a finite value of every score ({', '.join(eids)})")
    data = [(rows, np.array([float(r["correct"]) for r in rows])) for rows, _, _ in loaded]

    def make() -> LearnedConfidence:
        return LearnedConfidence(scores=tuple(eids), model=model)

    values = [{e: np.array([r["scores"][e]["value"] for r in rows], dtype=float) for e in eids} for rows, _ in data]
    single = {e: [_nan(summary(y, None, score=v[e])["roc_auc"]) for (_, y), v in zip(data, values, strict=True)]
              for e in eids}
    k = len(paths)
    cells = {m: [[math.nan] * k for _ in range(k)] for m in METRICS}
    base = {m: [[math.nan] * k for _ in range(k)] for m in METRICS}
    chosen_c: list[float | None] = [None] * k
    best: list[str | None] = [None] * k
    for i, (rows_i, y_i) in enumerate(data):
        if y_i.min() == y_i.max():
            continue  # one class: nothing to fit on
        fitted = make().fit(rows_i, y_i)
        chosen_c[i] = fitted.state_["lr"]["C"] if "lr" in fitted.state_ else None
        best[i] = e = max(eids, key=lambda s: -1.0 if math.isnan(single[s][i]) else single[s][i])
        platt = PlattCalibrator().fit(values[i][e], y_i)
        two_each = min(y_i.sum(), y_i.size - y_i.sum()) >= 2
        for j, (rows_j, y_j) in enumerate(data):
            if i == j:
                if not two_each:
                    continue
                prob = cross_fit(y_i.size, y_i, lambda tr, te, r=rows_i, y=y_i: make().fit(
                    [r[t] for t in tr], y[tr]).transform([r[t] for t in te]), folds=folds, seed=seed)
                base_prob = cross_fit(y_i.size, y_i, lambda tr, te, v=values[i][e], y=y_i: PlattCalibrator().fit(
                    v[tr], y[tr]).transform(v[te]), folds=folds, seed=seed)
            else:
                prob, base_prob = fitted.transform(rows_j), platt.transform(values[j][e])
            for m, v in summary(y_j, prob).items():
                cells[m][i][j] = _nan(v)
            for m, v in summary(y_j, base_prob, score=values[j][e]).items():
                base[m][i][j] = _nan(v)
    return {
        "runs": [p.name for p in paths], "paths": [str(p) for p in paths], "model_id": next(iter(models.values())),
        "estimators": eids, "model": model, "folds": folds, "seed": seed,
        "n": [int(y.size) for _, y in data], "accuracy": [float(y.mean()) for _, y in data],
        **cells, "C": chosen_c, "single": single, "baseline": {"estimator": best, **base},
    }


def export_rows(run_dir: str | Path, estimator: str | None = None, *, calibrator: str | Path | None = None
                ) -> Iterator[dict[str, Any]]:
    """One dict per answer of a run: ``id, prompt, answer, confidence, correct, estimator, model``.

    ``confidence`` is the value of ``estimator`` (default: the run's first probability-valued score, else its
    first score), or with ``calibrator`` (a saved map) the calibrated probability; ``None`` where undefined.
    ``prompt`` is the question as asked: a string, or a list of chat messages.
    """
    from ..calibration import CALIBRATED_ID, LearnedConfidence, _canonical, load_calibrator

    run_dir = Path(run_dir)
    items = load_items(run_dir)
    model_id = run_model(run_dir, items)
    order = list(dict.fromkeys(k for r in items for k in r["scores"]))
    if calibrator is not None:
        cal = load_calibrator(calibrator)
        if cal.model_id_ is not None and model_id is not None and cal.model_id_ != model_id:
            raise UserInputError(f"{calibrator} was fitted on model {cal.model_id_!r}, but {run_dir} holds answers "
                                 f"of {model_id!r}")
        if isinstance(cal, LearnedConfidence):  # an answer lacking a score (it failed) gets no confidence
            confidence = np.full(len(items), np.nan)
            has = [i for i, r in enumerate(items) if all(e in r["scores"] for e in cal.score_ids_)]
            if has:
                confidence[has] = cal.transform([items[i] for i in has])
        else:
            eid = cal.score_id_ or (_canonical(estimator) if estimator else None)
            if eid is None:
                raise UserInputError(f"{calibrator} does not record its score; name it with -e")
            confidence = np.array([_value(r, eid) for r in items], dtype=float)
            ok = ~np.isnan(confidence)
            if ok.any():
                confidence[ok] = cal.transform(confidence[ok])
        name = CALIBRATED_ID
    else:
        if estimator is not None:
            name = _canonical(estimator)
            if name not in order:
                raise UserInputError(f"{run_dir} has no scores for {name!r}; present: {', '.join(order) or 'none'}")
        else:
            prob = [k for k in order if any(r["scores"].get(k, {}).get("is_probability") for r in items)]
            if not order:
                raise UserInputError(f"{run_dir} has no scores to export")
            name = (prob or order)[0]
        confidence = np.array([_value(r, name) for r in items], dtype=float)
    for r, c in zip(items, confidence, strict=True):
        yield {"id": r["id"], "prompt": r["prompt"], "answer": r["answer"],
               "confidence": None if not np.isfinite(c) else float(c), "correct": bool(r["correct"]),
               "estimator": name, "model": model_id}


def _value(row: dict[str, Any], eid: str) -> float:
    s = row["scores"].get(eid)
    return math.nan if s is None or s["value"] is None else float(s["value"])
