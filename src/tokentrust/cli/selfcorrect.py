"""``tokentrust selfcorrect``: Confidence Level and Critique Score of a reflect-and-revise loop on a dataset."""

from __future__ import annotations

import json as _json
import math
import sys
from typing import Annotated as Arg

import typer
from rich.console import Console

from .options import JsonOpt, ModelOpt


def selfcorrect(
    dataset: Arg[str, typer.Option("--dataset", "-d", help="Dataset name or file (see tokentrust bench).")],
    limit: Arg[int, typer.Option("--limit", help="Questions to use (the first ones).")] = 20,
    samples: Arg[int, typer.Option("--samples", "-k", help="First answers sampled per question.")] = 4,
    temperature: Arg[float, typer.Option(help="Temperature of the first answers (> 0).")] = 1.0,
    max_new_tokens: Arg[int, typer.Option("--max-new-tokens", "-n", help="Longest answer, in tokens.")] = 32,
    seed: Arg[int, typer.Option(help="Seed of the first sample (sample k uses seed + k).")] = 0,
    model: ModelOpt = None,
    json: JsonOpt = False,
) -> None:
    """Sample first answers, ask the model to review and revise each once, and report Acc_1, Acc_2, the
    Confidence Level CL (right stays right), the Critique Score CS (wrong becomes right), the check of
    Acc_2 = Acc_1·CL + (1−Acc_1)·CS, and whether to accept revisions (CS > 1 − CL).

    Example: tokentrust selfcorrect --dataset arithmetic --limit 20 --samples 4
    """
    from .. import load
    from ..bench.datasets import load_dataset
    from ..decoding.selfcorrect import metrics, run
    from ..errors import UserInputError

    if samples < 1:
        raise UserInputError(f"--samples must be an integer ≥ 1, got {samples}")
    if not temperature > 0:
        raise UserInputError(f"--temperature must be > 0 (first answers are sampled), got {temperature}")
    data = load_dataset(dataset, limit=limit)
    backend = load(model)
    items = run(backend, data, samples=samples, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    result = metrics(items)
    if json:
        rows = [{"id": i.item_id, "pairs": i.pairs, "first_answers": i.first_answers, "revisions": i.revisions}
                for i in items]
        sys.stdout.write(_json.dumps({"metrics": result, "items": rows}, indent=2) + "\n")
        return

    def fmt(x: float) -> str:
        return "—" if math.isnan(x) else f"{x:.3f}"

    Console().print(
        f"{data.name}: {len(items)} questions × {samples} first answers\n"
        f"Acc_1 {fmt(result['acc_1'])} → Acc_2 {fmt(result['acc_2'])}\n"
        f"Confidence Level CL {fmt(result['confidence_level'])} · Critique Score CS {fmt(result['critique_score'])}\n"
        f"Acc_1·CL + (1−Acc_1)·CS − Acc_2 = {result['identity_gap']:+.2e}\n"
        f"revise policy (CS > 1 − CL): {'accept revisions' if result['revise'] else 'keep first answers'}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command()(selfcorrect)
