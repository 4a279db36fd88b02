"""``tokentrust bench``, ``report`` and ``calibrate``: measure which scores predict the model's errors."""

from __future__ import annotations

import json as _json
import sys
from pathlib import Path
from typing import Annotated as Arg
from typing import Any

import typer
from rich.console import Console

from .options import ClaimsModelOpt, ModelOpt, flag_message


def _dataset_help() -> str:
    """The ``--dataset`` help, listing what the dataset registry holds (built-ins offline, hub adapters)."""
    from ..bench.datasets import sources

    found = sources()
    builtin = ", ".join(n for n, src in found.items() if src == "builtin")
    hub = ", ".join(n for n, src in found.items() if src == "hub")
    return f"Built-in dataset ({builtin}), a Hugging Face dataset when online ({hub}) or a .jsonl/.csv file."


_DATASET_HELP = _dataset_help()


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _print_table(metrics: dict[str, Any], report: Path) -> None:
    """The columns of the metrics marked ``terminal`` (see :mod:`tokentrust.bench.table`), best in bold."""
    from rich.table import Table

    from ..bench.table import best_values, metric_columns

    columns = [c for c in metric_columns() if c.info.terminal]
    rows = metrics["estimators"]
    best = best_values(rows.values(), columns)
    ds = metrics["dataset"]
    title = (f"{ds['name']} ({ds.get('version')}) · {metrics['model']} · {metrics['n_items']} items · "
             f"accuracy {_fmt(metrics['accuracy'])}")
    if metrics.get("level") == "claim":
        c = metrics["claims"]
        title = (f"{ds['name']} ({ds.get('version')}) · {metrics['model']} · {metrics['n_items']} answers · "
                 f"{c['n_claims']} claims, {c['n_true'] + c['n_false']} labelled ({_fmt(c['labelled_share'])}), "
                 f"{c['n_dropped']} dropped · share true {_fmt(metrics['accuracy'])}")
    lower = any(not c.info.higher_is_better for c in columns)
    table = Table(title=title, caption="↓ lower is better" if lower else None)
    table.add_column("estimator", overflow="fold")
    for c in columns:
        table.add_column(c.label if c.info.higher_is_better else f"{c.label} ↓", justify="right")
    for eid, row in rows.items():
        cells = [_fmt(row.get(c.key)) for c in columns]
        cells = [f"[bold]{cell}[/]" if c.key in best and row.get(c.key) == best[c.key] else cell
                 for c, cell in zip(columns, cells, strict=True)]
        table.add_row(eid, *cells)
    console = Console()
    if not console.is_terminal:  # piped or redirected: do not cut estimator ids at 80 columns
        console.width = max(console.width, 100)
    console.print(table)
    if ctx := metrics.get("context"):
        console.print(f"context policy {ctx['policy']}: Acc_t {_fmt(ctx['Acc_t'])} (correct document, "
                      f"n={ctx['n_t']}) · Acc_f {_fmt(ctx['Acc_f'])} (wrong document, n={ctx['n_f']}) · situated faithfulness "
                      f"{_fmt(ctx['situated_faithfulness'])} = (Acc_t + Acc_f)/2 · source context "
                      f"{ctx['sources']['context']}, internal {ctx['sources']['internal']}",
                      highlight=False, soft_wrap=True)
    if metrics["failures"]:
        console.print(f"[yellow]{len(metrics['failures'])} failure(s) recorded in metrics.json (estimator errors, refused generations)[/]")
    console.print(f"report: {report}", highlight=False, soft_wrap=True)


def bench(
    dataset: Arg[str | None, typer.Option("--dataset", "-d", help=_DATASET_HELP)] = None,
    limit: Arg[int | None, typer.Option("--limit", "-l", show_default="every item",
                                        help="Keep the first N items.")] = None,
    estimator: Arg[list[str] | None, typer.Option(
        "--estimator", "-e", help="Answer-level score, repeatable, as name:key=value. Default: every white-box score "
        "that needs only the trace; `-e all`: every answer-level score the model supports.")] = None,
    model: ModelOpt = None,
    max_new_tokens: Arg[int | None, typer.Option("--max-new-tokens", "-n", show_default="24",
                                                         help="Longest answer, in tokens.")] = None,
    batch_size: Arg[int | None, typer.Option("--batch-size", "-b", help="Answers decoded at once.",
                                             show_default="chosen from the model's size and free memory")] = None,
    concurrency: Arg[int | None, typer.Option(
        "--concurrency", "-c", min=1, show_default="8", help="Requests in flight to an openai:<base_url>#<model> "
        "server; also the questions per generate call unless --batch-size is given.")] = None,
    seed: Arg[int | None, typer.Option(show_default="0", help="Seed for generated datasets and sampling.")] = None,
    out: Arg[str | None, typer.Option("--out", "-o", help="Run folder. Default runs/<dataset>-<model>-<time>; an "
                                      "existing folder with the same spec is resumed.")] = None,
    cache: Arg[str | None, typer.Option("--cache", help="Generation cache file.",
                                        show_default="~/.cache/tokentrust/generations.sqlite")] = None,
    spec: Arg[Path | None, typer.Option("--spec", help="TOML run spec; options given here override its values.")] = None,
    level: Arg[str | None, typer.Option(
        "--level", show_default="sequence", help="sequence: one score per answer; claim: score each claim of long answers, label "
        "claims by the dataset's facts (country_facts) or each item's 'reference' text, pool them over answers.",
    )] = None,
    claims_model: ClaimsModelOpt = None,
    claim_judge: Arg[str | None, typer.Option(
        "--claim-judge", show_default="auto", help="How claims are checked against an item's 'reference' text at "
        "--level claim: auto (the model as judge), embedding, judge or nli:<path or hub id>.")] = None,
    context_policy: Arg[str | None, typer.Option(
        "--context-policy", show_default="none", help="For datasets with a context document per question "
        "(capitals_in_context, currencies_in_context): none (answer with the document), rcr (rule: the answer with or without "
        "the document, by confidence; rcr:score=<estimator>,theta=<x>) or scr (one self-reasoning prompt). "
        "Reports Acc_t, Acc_f and situated faithfulness.")] = None,
    json: Arg[bool, typer.Option("--json", help="Print metrics.json instead of the table.")] = False,
    no_progress: Arg[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    self_correct: Arg[bool, typer.Option("--self-correct", help="Measure a reflect-and-revise loop instead: "
                                         "Confidence Level and Critique Score (as tokentrust selfcorrect, with its "
                                         "defaults for what is not given here).")] = False,
) -> None:
    """Run a benchmark: answer every question, score and judge each answer, measure each score.

    With --level claim: cut each answer into claims, label them, measure claim scores (ROC-AUC, PR-AUC, PRR)
    over the claims of every answer. Example: tokentrust bench --dataset country_facts --level claim

    Writes results.parquet, metrics.json and report.html into the run folder. Interrupt it at any time
    (Ctrl-C) and run the same command again: finished items are kept and nothing is generated twice.

    Example: tokentrust bench --dataset capitals --limit 200

    --self-correct: Acc_1, Acc_2, Confidence Level and Critique Score of one review-and-revise round.
    Example: tokentrust bench --dataset arithmetic --limit 20 --self-correct
    """
    if self_correct:
        from ..errors import UserInputError
        from .selfcorrect import selfcorrect

        if dataset is None:
            raise UserInputError("--self-correct needs --dataset (a dataset with a correctness rule)")
        return selfcorrect(dataset=dataset, limit=20 if limit is None else limit,
                           max_new_tokens=32 if max_new_tokens is None else max_new_tokens,
                           seed=0 if seed is None else seed, model=model, json=json)
    from ..bench.runner import run
    from ..bench.spec import RunSpec, load_spec
    from ..errors import UserInputError

    claims = None
    if claims_model is not None:
        from ..stats.claims import make_extractor

        claims = make_extractor(f"llm:model={claims_model}").spec
    options = {"dataset": dataset, "limit": limit, "estimators": estimator, "model": model,
               "max_new_tokens": max_new_tokens, "batch_size": batch_size, "seed": seed, "out": out, "cache": cache,
               "level": level, "claims": claims, "claim_judge": claim_judge, "context_policy": context_policy}
    if spec is None and dataset is None:
        raise UserInputError("give --dataset (e.g. --dataset capitals) or --spec run.toml")
    try:  # every value is checked here, before any model loads
        run_spec = load_spec(spec, **options) if spec is not None else \
            RunSpec(**{k: v for k, v in options.items() if v is not None})
    except UserInputError as exc:
        raise UserInputError(flag_message(str(exc))) from None
    backend = None
    if concurrency is not None:
        if not (run_spec.model or "").startswith("openai:"):
            raise UserInputError("--concurrency applies to openai:<base_url>#<model> servers; "
                                 "in-process models batch with --batch-size")
        from ..loading import load

        backend = load(run_spec.model, concurrency=concurrency)
        if batch_size is None:  # give the server enough questions at once to keep `concurrency` requests busy
            run_spec = run_spec.model_copy(update={"batch_size": max(run_spec.batch_size or 0, concurrency)})
    result = run(run_spec, backend=backend, progress=not no_progress and not json)
    if json:
        sys.stdout.write(_json.dumps({**result.metrics, "out": str(result.out), "report": str(result.report_path)},
                                     indent=2) + "\n")
        return
    Console(stderr=True).print(
        f"{result.n_items} items in {result.seconds:.1f} s: {result.n_resumed} already done, "
        f"{result.n_cached} answers from the cache, {result.n_generated} generated", highlight=False)
    _print_table(result.metrics, result.report_path)


def report(
    run_dir: Arg[Path, typer.Argument(help="A run folder written by `tokentrust bench`.")],
) -> None:
    """Re-render a run folder's report.html (and metrics) from its saved items; print the path.

    Works on an unfinished run too. Opens nothing.
    """
    from ..bench.runner import REPORT_FILE, finalize

    finalize(run_dir)
    sys.stdout.write(f"{run_dir / REPORT_FILE}\n")


def calibrate(
    run_dir: Arg[Path, typer.Argument(help="A run folder written by `tokentrust bench`.")],
    estimator: Arg[list[str] | None, typer.Option(
        "--estimator", "-e", help="The score to calibrate (e.g. msp); repeat it with --method learned.")] = None,
    method: Arg[str, typer.Option(help="platt, isotonic, temperature, histogram, or learned (several scores "
                                  "plus token log-prob/entropy quantiles).")] = "platt",
    out: Arg[Path | None, typer.Option("--out", "-o", help="Where to save the calibrator JSON (default: in the "
                                       "run folder).")] = None,
    learner: Arg[str, typer.Option("--learner", help="With --method learned: lr (logistic regression) or gbt "
                                   "(gradient-boosted trees).")] = "lr",
    folds: Arg[int, typer.Option("--folds", help="With --method learned: cross-fitting folds.")] = 5,
    test_size: Arg[float, typer.Option("--test-size", help="Held-out fraction for evaluation, in (0, 1).")] = 0.5,
    seed: Arg[int, typer.Option(help="Seed of the split.")] = 0,
    json: Arg[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    target_risk: Arg[float | None, typer.Option("--target-risk", help="Fit an answer policy instead: abstain so "
                                                "the error rate among answered is at most this.")] = None,
    delta: Arg[float, typer.Option("--delta", help="With --target-risk: allowed chance the guarantee fails.")] = 0.05,
    calibrator: Arg[Path | None, typer.Option("--calibrator", help="With --target-risk: threshold this "
                                              "calibrator's probability instead of -e.")] = None,
    policy: Arg[Path | None, typer.Option("--policy", help="With --target-risk on a claim-level run: add the "
                                          "claim filter to this answer policy.")] = None,
) -> None:
    """Fit a calibration map on one split of a run, report ECE and Brier before/after on the other.

    Saves the calibrator as JSON in the run folder (or --out). Example: tokentrust calibrate runs/r1 -e msp

    --method learned: one probability from several scores plus token log-prob and entropy quantiles.

    It reports ROC-AUC, ECE and Brier of the best single score and of the learned map by k-fold cross-fitting.

    Example: tokentrust calibrate runs/r1 -e msp -e mean_token_entropy -e pmi --method learned --out conf.json

    --target-risk α [--delta δ]: fit an answer policy (answer / hedge / abstain) on the run instead, so that
    with probability ≥ 1 − δ the error rate among answered questions is ≤ α (--out, default
    RUN/answer-policy.json).

    Example: tokentrust calibrate runs/r2 --target-risk 0.1 --calibrator conf.json --out policy.json

    On a claim-level run (bench --level claim), --target-risk ε -e <claim score> fits a conformal claim
    filter instead: a new answer keeps only true claims with probability ≥ 1 − ε; removed claims are cut
    from the answer ask and serve show.

    Example: tokentrust calibrate runs/facts --target-risk 0.2 -e ccp --policy policy.json --out policy.json
    """
    if target_risk is not None or calibrator is not None:  # an answer policy with a guarantee (decide/fit.py)
        from ..decide.fit import policy_command

        return policy_command(run_dir, estimator, calibrator, target_risk, delta, out, json, policy)
    if not estimator:
        raise typer.BadParameter("give the score to calibrate, e.g. -e msp", param_hint="--estimator")
    from ..bench.calibrate import calibrate_run

    result = calibrate_run(run_dir, estimator, method=method, test_size=test_size, seed=seed, out=out,
                           folds=folds, model=learner)
    if json:
        sys.stdout.write(_json.dumps(result, indent=2) + "\n")
        return
    from rich.table import Table

    console = Console()
    if method == "learned":
        table = Table("cross-fitted", "ROC-AUC", "ECE ↓", "Brier ↓", title=f"learned confidence ({result['model']}) "
                      f"· {result['n']} answers · accuracy {_fmt(result['accuracy'])} · {result['folds']}-fold",
                      caption="↓ lower is better")
        for label, key in ((f"best single score: {result['best']}", "before"), ("  Platt-scaled", "platt"),
                           ("learned confidence", "after")):
            table.add_row(label, *(_fmt(result[key][m]) for m in ("roc_auc", "ece", "brier")))
        console.print(table)
        console.print("single scores' ROC-AUC: " + ", ".join(f"{e} {_fmt(v)}" for e, v in result["single"].items()),
                      highlight=False, soft_wrap=True)
        if result["n_dropped"]:
            console.print(f"{result['n_dropped']} answer(s) without a finite value of every score were left out")
        console.print(f"calibrator: {result['path']}", highlight=False, soft_wrap=True)
        return
    from ..bench.calibrate import probability_columns

    columns = probability_columns()
    table = Table("held-out split", *(c.label for c in columns), title=f"{result['estimator']} · "
                  f"{result['method']} · fit on {result['n_fit']}, evaluated on {result['n_test']}")
    for split in ("before", "after"):
        table.add_row(split, *(_fmt(result[split].get(c.key)) for c in columns))
    console.print(table)
    if all(v is None for v in result["before"].values()):
        labels = "/".join(c.label for c in columns)
        console.print(f"({result['estimator']} is not a probability, so it has no {labels} before calibration)")
    console.print(f"calibrator: {result['path']}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command()(bench)
    app.command()(report)
    app.command()(calibrate)
