"""``tokentrust transfer`` and ``export``: does a learned confidence carry over between datasets, and a
run's answers with their confidence as JSON lines for training elsewhere."""

from __future__ import annotations

import json as _json
import math
import sys
from pathlib import Path
from typing import Annotated as Arg
from typing import Any

import typer
from rich.console import Console

from .options import JsonOpt

EXPORT_HELP = (
    "Write a run's answers as JSON lines to stdout, one object per answer: {\"id\": item id, \"prompt\": the "
    "question (a string or a list of chat messages), \"answer\": the model's answer, \"confidence\": the chosen "
    "score's value or, with --calibrator, the calibrated probability (null where undefined), \"correct\": "
    "true/false as the run judged it, \"estimator\": the score's id (calibrated_confidence with --calibrator), "
    "\"model\": the model id}.\n\nExample: tokentrust export runs/r1 --format jsonl -e msp > calib_train.jsonl"
)


def _fmt(v: float) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.3f}"


def _clean(obj: Any) -> Any:
    """NaN → ``None`` for strict JSON."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def transfer(
    runs: Arg[list[Path], typer.Argument(help="Two or more run folders of the same model.")],
    estimator: Arg[list[str], typer.Option("--estimator", "-e", help="Answer-level score to combine, repeatable.")],
    learner: Arg[str, typer.Option("--learner", help="lr (logistic regression) or gbt (gradient-boosted trees).")
                 ] = "lr",
    folds: Arg[int, typer.Option("--folds", help="Cross-fitting folds for the diagonal.")] = 5,
    seed: Arg[int, typer.Option(help="Seed of the folds.")] = 0,
    json: JsonOpt = False,
) -> None:
    """Fit a learned confidence on each run and test it on every run: ROC-AUC, ECE and Brier matrices.

    Rows are the run fitted on, columns the run tested on; the diagonal is cross-fitted. Beside them, the
    baseline a user could pick without the test labels: the single score best on the fit run, Platt-scaled there.

    "–" marks a cell that cannot be measured: a run with one class cannot be fitted on, ROC-AUC needs both.

    Example: tokentrust transfer runs/capitals runs/currencies -e msp -e mean_token_entropy
    """
    from ..bench.transfer import METRICS
    from ..bench.transfer import transfer as run_transfer

    result = run_transfer(runs, estimator, model=learner, folds=folds, seed=seed)
    if json:
        sys.stdout.write(_json.dumps(_clean(result), indent=2) + "\n")
        return
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 120)
    names = result["runs"]
    for m in METRICS:
        label = {"roc_auc": "ROC-AUC", "ece": "ECE ↓", "brier": "Brier ↓"}[m]
        table = Table("fit \\ test", *names, title=f"{label} · learned confidence ({learner}) · {result['model_id']}")
        for name, row in zip(names, result[m], strict=True):
            table.add_row(name, *(_fmt(v) for v in row))
        console.print(table)
    for m in ("roc_auc", "ece"):
        label = {"roc_auc": "ROC-AUC", "ece": "ECE ↓"}[m]
        table = Table("fit \\ test", *names, "score", title=f"{label} · best single score of the fit run (Platt)")
        for name, row, eid in zip(names, result["baseline"][m], result["baseline"]["estimator"], strict=True):
            table.add_row(name, *(_fmt(v) for v in row), eid or "–")
        console.print(table)
    table = Table("single score ROC-AUC", *names)
    table.add_row("n · accuracy", *(f"{n} · {_fmt(a)}" for n, a in zip(result["n"], result["accuracy"], strict=True)))
    for eid, row in result["single"].items():
        table.add_row(eid, *(_fmt(v) for v in row))
    console.print(table)


def export(
    run_dir: Arg[Path, typer.Argument(help="A run folder written by `tokentrust bench`.")],
    fmt: Arg[str, typer.Option("--format", "-f", help="Output format: jsonl.")] = "jsonl",
    estimator: Arg[str | None, typer.Option(
        "--estimator", "-e", help="The score written as confidence (default: the run's first probability score).")
    ] = None,
    calibrator: Arg[Path | None, typer.Option(
        "--calibrator", help="A calibrator JSON (from `tokentrust calibrate`): write its probability instead.")
    ] = None,
) -> None:
    from ..bench.transfer import export_rows
    from ..errors import UserInputError

    if fmt != "jsonl":
        raise UserInputError(f"unknown format {fmt!r}; use jsonl")
    rows = list(export_rows(run_dir, estimator, calibrator=calibrator))  # errors before any output
    sys.stdout.write("".join(_json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


export.__doc__ = EXPORT_HELP


def register(app: typer.Typer) -> None:
    app.command()(transfer)
    app.command()(export)
