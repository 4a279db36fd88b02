"""``tokentrust critical``: which tokens of a wrong answer made it wrong (rollouts per position)."""

from __future__ import annotations

import json as _json
import sys
from typing import Annotated as Arg

import typer
from rich.console import Console

from .options import JsonOpt, ModelOpt, RawOpt


def critical(
    prompt: Arg[str | None, typer.Argument(help="The question (or use --dataset with --item).")] = None,
    rollouts: Arg[int, typer.Option("--rollouts", "-k", help="Continuations per prefix.")] = 16,
    alternatives: Arg[int, typer.Option("--alternatives", help="Top alternative tokens tried per position.")] = 2,
    reference: Arg[list[str] | None, typer.Option(
        "--reference", "-r", help="A correct answer (repeatable); 'a op b' arithmetic questions need none.")] = None,
    rule: Arg[str, typer.Option("--rule", help="Correctness rule for --reference (see tokentrust bench).")] = "contains",
    dataset: Arg[str | None, typer.Option("--dataset", "-d", help="Take the question, references and rule "
                                          "from this dataset's --item.")] = None,
    item: Arg[str | None, typer.Option("--item", help="Item id or 0-based index in --dataset.")] = None,
    max_new_tokens: Arg[int, typer.Option("--max-new-tokens", "-n", help="Longest answer, in tokens.")] = 32,
    temperature: Arg[float, typer.Option(help="Temperature of the rollouts (> 0).")] = 1.0,
    seed: Arg[int, typer.Option(help="Seed of the first rollout of each prefix.")] = 0,
    model: ModelOpt = None,
    negative_model: Arg[str | None, typer.Option("--negative-model", help="A model tuned on wrong answers: adds the "
                                                 "contrastive score log p_neg − log p_pos per token.")] = None,
    positive_model: Arg[str | None, typer.Option("--positive-model", help="A model tuned on right answers "
                                                 "(with --negative-model).")] = None,
    raw: RawOpt = False,
    json: JsonOpt = False,
) -> None:
    """Answer greedily, then for each answer token sample continuations with that token and with its top
    alternatives, verify them, and report the success-rate drop per position and the critical token.

    Example: tokentrust critical "What is 17 * 23?" --rollouts 16
    """
    from .. import load
    from ..bench.quality import check_rule, judge
    from ..decoding.critical import find_critical, model_rollout
    from ..errors import UserInputError

    if rollouts < 1:
        raise UserInputError(f"--rollouts must be an integer ≥ 1, got {rollouts}")
    if not temperature > 0:
        raise UserInputError(f"--temperature must be > 0 (rollouts are sampled), got {temperature}")
    if (negative_model is None) != (positive_model is None):
        raise UserInputError("give both --negative-model and --positive-model (or neither)")
    question, refs, how = _question(prompt, reference, rule, dataset, item, check_rule)
    backend = load(model)
    trace = backend.generate(question, max_new_tokens=max_new_tokens, chat=not raw, top_k=max(alternatives + 1, 1))
    roll = model_rollout(backend, question, chat=not raw, temperature=temperature, max_new_tokens=max_new_tokens,
                         seed=seed)
    report = find_critical(trace, roll, lambda text: judge(how, text, refs).correct, k=rollouts,
                           alternatives=alternatives)
    contrast = None
    if negative_model is not None:
        from ..decoding.critical import contrastive_scores

        contrast = contrastive_scores(trace, load(negative_model), load(positive_model))
    if json:
        out = report.to_dict()
        if contrast is not None:
            out["contrastive"] = contrast
        sys.stdout.write(_json.dumps(out, indent=2) + "\n")
        return
    from rich.table import Table

    console = Console()
    console.print(f"answer: {report.answer!r} — {'correct' if report.correct else 'wrong'} "
                  f"(references {', '.join(refs)}; rule {how})", highlight=False)
    table = Table("#", "token", "success before", "with token", "drop", "alternatives (success)",
                  *(["log p_neg − log p_pos"] if contrast is not None else []), title=f"{rollouts} rollouts per prefix")
    for p in report.positions:
        mark = " ◀ critical" if p.index == report.critical else ""
        alts = ", ".join(f"{t!r} {s:.2f}" for t, s in p.alternatives)
        table.add_row(str(p.index), repr(p.token) + mark, f"{p.success_before:.2f}", f"{p.success_with:.2f}",
                      f"{p.drop:+.2f}", alts, *([f"{contrast[p.index]:+.3f}"] if contrast is not None else []))
    console.print(table)


def _question(prompt, reference, rule, dataset, item, check_rule):  # type: ignore[no-untyped-def]
    """(question, references, rule) from the arguments; one clear error when nothing can verify the answer."""
    from ..decoding.critical import arithmetic_reference
    from ..errors import UserInputError

    if dataset is not None:
        from ..bench.datasets import load_dataset

        if prompt is not None or item is None:
            raise UserInputError("with --dataset give --item (an id or 0-based index) and no question")
        data = load_dataset(dataset)
        chosen = next((i for i in data.items if i.id == item), None)
        if chosen is None and item.isdigit() and int(item) < len(data.items):
            chosen = data.items[int(item)]
        if chosen is None:
            raise UserInputError(f"--item {item!r} is not an id or index of {data.name} ({len(data.items)} items)")
        if not chosen.references:
            raise UserInputError(f"{data.name} item {chosen.id!r} has no reference answer to verify rollouts with")
        return chosen.prompt, list(chosen.references), data.correctness
    if prompt is None:
        raise UserInputError("give a question, or --dataset with --item")
    refs = list(reference or [])
    if not refs:
        derived = arithmetic_reference(prompt)
        if derived is None:
            raise UserInputError(f"no verifier for {prompt!r}: give --reference with a correct answer (checked by "
                                 "--rule), or --dataset with --item; only 'a op b' arithmetic is verified by itself")
        refs = [derived]
    return prompt, refs, check_rule(rule)


def register(app: typer.Typer) -> None:
    app.command()(critical)
