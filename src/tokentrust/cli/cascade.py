"""``tokentrust cascade``: how much quality a small→large model cascade keeps at each share deferred."""

from __future__ import annotations

import json as _json
import sys
from typing import Annotated as Arg
from typing import Any

import typer
from rich.console import Console


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _print(result: dict[str, Any]) -> None:
    """The deferral table (cascade, random and oracle quality per share deferred) and the areas."""
    from rich.table import Table

    a = result["areas"]
    table = Table("deferred", "cost", f"cascade {result['measure']}", "random", "oracle")
    for row in result["table"]:
        table.add_row(f"{row['deferred']:.0%}", f"{row['cost']:g}", _fmt(row["quality"]), _fmt(row["random"]),
                      _fmt(row["oracle"]))
    console = Console()
    console.print(f"{result['dataset']} · {result['small']} → {result['large']} · {result['rule']} · evaluated on "
                  f"{result['evaluated_on']}", highlight=False, soft_wrap=True)
    console.print(table)
    console.print(f"area over [0, 1] deferral: cascade {_fmt(a['rule'])} · random {_fmt(a['random'])} · oracle "
                  f"{_fmt(a['oracle'])} · (cascade − random) / (oracle − random) = {_fmt(a['relative'])}",
                  highlight=False)
    others = " · ".join(f"{r} {_fmt(v['area'])}" for r, v in result["rules"].items() if r != result["rule"])
    if others:
        console.print(f"other rules on the same items: {others}", highlight=False)
    p = result["policy"]
    console.print(f"policy (defer below {p['threshold']:.4g}, {_fmt(p['deferred_share'])} deferred here): "
                  f"{result['policy_path']}", highlight=False, soft_wrap=True)
    if result["failures"]:
        console.print(f"[yellow]{len(result['failures'])} item(s) failed; see cascade.json[/]")


def cascade(
    large: Arg[str, typer.Option("--large", help="The large model (any backend spec: openai:<url>#<model>, "
                                 "replay:<traces.jsonl>, a local folder).")],
    dataset: Arg[str, typer.Option("--dataset", "-d", help="Built-in dataset (e.g. capitals) or a .jsonl/.csv "
                                   "file.")],
    small: Arg[str, typer.Option("--small", help="The small model; needs token log-probs.")] = "default",
    limit: Arg[int | None, typer.Option("--limit", "-l", min=1, help="Keep the first N items.")] = None,
    rule: Arg[str, typer.Option("--rule", "-r", help="chow_sum, chow_average, chow_quantile:alpha=0.1 or "
                                "post_hoc_quantile (fitted on one half, drawn on the other).")] = "chow_sum",
    out: Arg[str | None, typer.Option("--out", "-o", help="Run folder, resumed when it holds the same run. "
                                      "Default: runs/cascade-<dataset>-<time>.")] = None,
    cache: Arg[str | None, typer.Option("--cache", help="Generation cache file. "
                                        "Default: ~/.cache/tokentrust/generations.sqlite.")] = None,
    max_new_tokens: Arg[int, typer.Option("--max-new-tokens", "-n", help="Longest answer in tokens.")] = 24,
    cost_small: Arg[float, typer.Option("--cost-small", help="Cost of one small answer.")] = 1.0,
    cost_large: Arg[float, typer.Option("--cost-large", help="Cost of one large answer.")] = 10.0,
    target: Arg[float, typer.Option("--target-deferral", help="Share deferred by the saved policy's "
                                    "threshold.")] = 0.25,
    measure: Arg[str, typer.Option("--measure", help="accuracy (correct or not) or quality (the dataset's "
                                   "graded quality).")] = "accuracy",
    batch_size: Arg[int | None, typer.Option("--batch-size", "-b", min=1, help="Questions per batch.")] = None,
    seed: Arg[int, typer.Option(help="Seed of the dataset and of the post-hoc split.")] = 0,
    json: Arg[bool, typer.Option("--json", help="Print cascade.json instead of the table.")] = False,
    no_progress: Arg[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
) -> None:
    """Answer every question with a small and a large model and draw the deferral curve of a cascade.

    Prints the cascade's quality at 0/10/25/50/100 % deferred beside random deferral and the oracle, and the
    areas; writes cascade.json and policy.json (rule, threshold, large model) into the run folder. A large
    model that fails mid-run records the item as failed; run the same command again to resume.

    Example: tokentrust cascade --large openai:http://host:8000/v1#big --dataset capitals --limit 200
    """
    from ..decide.cascade import run_cascade

    if measure not in ("accuracy", "quality"):
        from ..errors import UserInputError

        raise UserInputError(f"--measure must be accuracy or quality, got {measure!r}")
    run = run_cascade(dataset, large, small=small, limit=limit, rule=rule, out=out, cache=cache,
                      max_new_tokens=max_new_tokens, seed=seed, c_small=cost_small, c_large=cost_large,
                      target_deferral=target, measure=measure,  # type: ignore[arg-type]
                      batch_size=batch_size, progress=not no_progress and not json)
    if json:
        counts = {"n_resumed": run.n_resumed, "n_cached": run.n_cached, "n_generated": run.n_generated}
        payload = {**run.result, "out": str(run.out), **counts}
        sys.stdout.write(_json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    Console(stderr=True).print(
        f"{run.n_items} items: {run.n_resumed} already done, {run.n_cached} answers from the cache, "
        f"{run.n_generated} generated", highlight=False)
    _print(run.result)


def register(app: typer.Typer) -> None:
    app.command()(cascade)
