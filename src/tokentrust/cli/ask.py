"""``tokentrust ask``, ``score`` and ``estimators``: answer or score one question, list the scores."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated as Arg

import typer
from rich.console import Console

from .options import ClaimsModelOpt, ColourOpt, EstimatorOpt, JsonOpt, ModelOpt, RawOpt, TopKOpt

CalibratorOpt = Arg[Path | None, typer.Option(
    "--calibrator", help="Calibrator JSON (tokentrust calibrate): decide on its probability of being right.")]
PolicyOpt = Arg[Path | None, typer.Option(
    "--policy", help="Policy JSON (tokentrust calibrate --target-risk): when to answer, hedge or abstain.")]


def _show(result: object, as_json: bool, colour_by: str | None) -> None:
    from ..annotated import Annotated
    from ..estimators.base import build_estimator
    from ..render.terminal import render_rich

    assert isinstance(result, Annotated)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    colour = result[build_estimator(colour_by).id] if colour_by else None
    Console().print(render_rich(result, colour_by=colour))


def _estimators_with_colour(estimators: list[str] | None, colour_by: str | None) -> list[str] | None:
    if colour_by is None:
        return estimators
    from ..annotated import DEFAULT_ESTIMATORS

    return [*(estimators or DEFAULT_ESTIMATORS), colour_by]


def ask(
    prompt: Arg[str, typer.Argument(help="The question to ask the model.")],
    model: ModelOpt = None,
    estimator: EstimatorOpt = None,
    max_new_tokens: Arg[int, typer.Option("--max-new-tokens", "-n", help="Longest answer, in tokens.")] = 64,
    temperature: Arg[float, typer.Option(help="0 = greedy; > 0 samples (scores still use the raw distribution).")] = 0.0,
    top_p: Arg[float, typer.Option("--top-p", help="Nucleus sampling mass, in (0, 1].")] = 1.0,
    seed: Arg[int, typer.Option(help="Random seed for sampling.")] = 0,
    top_k: TopKOpt = 10,
    raw: RawOpt = False,
    colour_by: ColourOpt = None,
    claims_model: ClaimsModelOpt = None,
    json: JsonOpt = False,
    calibrator: CalibratorOpt = None,
    policy: PolicyOpt = None,
) -> None:
    """Ask the model a question; show every token coloured by confidence, with alternatives and scores.

    Claim-level scores (-e ccp, -e claim_probability) cut the answer into claims and score each one.

    --calibrator / --policy: compute the scores they need and show, under the answer, the probability and
    whether to answer, hedge ("I'm not sure, but …") or abstain.

    Example: tokentrust ask "What is the capital of Australia?" -e msp -e mean_token_entropy
    """
    from .. import annotate, load
    from ..annotated import resolve_estimators
    from ..capability import check_compatible
    from ..config import GenerationConfig
    from ..estimators.claim import with_claims_model

    config = GenerationConfig(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, top_k=top_k, chat=not raw
    )
    deciding = calibrator is not None or policy is not None
    if deciding:  # read and check the files before loading the model
        from ..decide.decision import check_pairing, load_pair, scores_needed

        rule, cal = load_pair(calibrator, policy)
    specs = _estimators_with_colour(estimator, colour_by)
    chosen = with_claims_model(resolve_estimators(specs), claims_model)
    backend = load(model)
    if estimator is None:  # the defaults this backend can serve (a server shows no full distribution)
        chosen = [e for e in chosen if set(e.requires) <= set(backend.capabilities)] or chosen
    if deciding:
        check_pairing(rule, cal, backend.model_id)
        chosen += [e for e in resolve_estimators(scores_needed(rule, cal)) if e not in chosen]
    check_compatible(chosen, backend)
    trace = backend.generate(prompt, config)
    result = annotate(trace, chosen, backend=backend)
    _show(result.decided(rule, cal) if deciding else result, json, colour_by)


def score(
    prompt: Arg[str, typer.Option("--prompt", "-p", help="The question the answer replies to.")],
    answer: Arg[str, typer.Option("--answer", "-a", help="The answer to score (teacher-forced).")],
    model: ModelOpt = None,
    estimator: EstimatorOpt = None,
    top_k: TopKOpt = 10,
    raw: RawOpt = False,
    colour_by: ColourOpt = None,
    claims_model: ClaimsModelOpt = None,
    json: JsonOpt = False,
) -> None:
    """Score an answer you already have: how sure would the model have been of each of its tokens?

    Example: tokentrust score --prompt "What is the capital of Australia?" --answer "Sydney."
    """
    from .. import annotate, load
    from ..annotated import resolve_estimators
    from ..capability import check_compatible
    from ..estimators.claim import with_claims_model

    chosen = with_claims_model(resolve_estimators(_estimators_with_colour(estimator, colour_by)), claims_model)
    backend = load(model)
    check_compatible(chosen, backend)
    trace = backend.score(prompt, answer, chat=not raw, top_k=top_k)
    _show(annotate(trace, chosen, backend=backend), json, colour_by)


def list_estimators(json: JsonOpt = False) -> None:
    """List every estimator: id, level, what it needs, and what it measures."""
    import json as _json
    from dataclasses import fields

    from ..registry import estimators as registry

    rows = []
    for name, cls in registry.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        params = {f.name: f.default for f in fields(cls)}
        aliases = registry.aliases_of(name)
        rows.append(
            {"id": name, "aliases": aliases, "level": cls.level.value, "requires": sorted(c.value for c in cls().requires),
             "parameters": params, "description": doc}
        )
    if json:
        sys.stdout.write(_json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("id", "level", "needs", "parameters", "description", show_lines=False)
    for r in rows:
        name = r["id"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        params = ", ".join(f"{k}={v}" for k, v in r["parameters"].items())
        table.add_row(name, r["level"], ", ".join(r["requires"]), params, r["description"])
    Console().print(table)




def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(score)
    app.command("estimators")(list_estimators)
