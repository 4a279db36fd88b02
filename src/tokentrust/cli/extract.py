"""``tokentrust extract``: memorisation audit; which suffixes the model reproduces, and how sure it is."""

from __future__ import annotations

import json as _json
import math
import sys
from pathlib import Path
from typing import Annotated as Arg

import typer
from rich.console import Console

from .options import JsonOpt, ModelOpt


def extract(
    prefixes: Arg[Path | None, typer.Option(
        "--prefixes", help="JSON lines of {\"prefix\": ..., \"suffix\": ...} (suffix optional). "
        "Default: a built-in set of well-known sequences.")] = None,
    samples: Arg[int, typer.Option("--samples", "-k", help="Continuations sampled per prefix.")] = 20,
    max_new_tokens: Arg[int, typer.Option(
        "--max-new-tokens", "-n", help="Continuation length when a prefix has no suffix (else its length + 2).")] = 16,
    seed: Arg[int, typer.Option(help="Seed of the first sample (sample k uses seed + k).")] = 0,
    model: ModelOpt = None,
    json: JsonOpt = False,
) -> None:
    """Sample K continuations per prefix, pick the one with the highest locally normalised confidence C
    (Ethicist), and report precision/recall of extraction at C thresholds with the calibration of C.

    Example: tokentrust extract --prefixes prefixes.jsonl --samples 20
    """
    from .. import load
    from ..decoding.extraction import BUILTIN_PREFIXES, Prefix, audit, read_prefixes, report
    from ..errors import UserInputError

    if samples < 1:
        raise UserInputError(f"--samples must be an integer ≥ 1, got {samples}")
    items = read_prefixes(prefixes) if prefixes is not None else [Prefix(p, s) for p, s in BUILTIN_PREFIXES]
    backend = load(model)
    result = report(audit(backend, items, samples=samples, max_new_tokens=max_new_tokens, seed=seed))
    if json:
        sys.stdout.write(_json.dumps(result, indent=2) + "\n")
        return
    from rich.table import Table

    console = Console()
    table = Table("prefix", "pick", "C", "distinct", "reproduced", title=f"{samples} samples per prefix")
    for r in result["items"]:
        shown = {True: "yes", False: "no", None: "—"}[r["correct"]]
        table.add_row(r["prefix"], r["pick"], f"{r['confidence']:.3f}", str(r["distinct"]), shown)
    console.print(table)
    thresholds = Table("C ≥", "predicted", "correct", "precision", "recall", title="extraction at thresholds")
    for row in result["thresholds"]:
        prec = "—" if math.isnan(row["precision"]) else f"{row['precision']:.2f}"
        rec = "—" if math.isnan(row["recall"]) else f"{row['recall']:.2f}"
        thresholds.add_row(f"{row['threshold']:.2f}", str(row["predicted"]), str(row["correct"]), prec, rec)
    console.print(thresholds)
    cal = result["calibration"]
    console.print(f"calibration of C: ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}, "
                  f"accuracy {cal['accuracy']:.2f}, mean C {cal['mean_confidence']:.2f}")


def register(app: typer.Typer) -> None:
    app.command()(extract)
