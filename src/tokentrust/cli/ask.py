"""``tokentrust ask`` and ``score``: answer or score one question (``estimators`` lists the scores: :mod:`.catalogue`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated as Arg

import typer
from rich.console import Console

from ..render.colors import PALETTES
from .options import (
    AnswerOpt,
    ClaimsModelOpt,
    ColourOpt,
    EstimatorOpt,
    JsonOpt,
    ModelOpt,
    PromptArg,
    PromptOpt,
    RawOpt,
    TopKOpt,
    asks_for_all,
    colour_score,
    every_estimator,
    generation_config,
)

CalibratorOpt = Arg[Path | None, typer.Option(
    "--calibrator", help="Calibrator JSON (tokentrust calibrate): decide on its probability of being right.")]
PolicyOpt = Arg[Path | None, typer.Option(
    "--policy", help="Policy JSON (tokentrust calibrate --target-risk): when to answer, hedge or abstain.")]


def _palette_name(name: str | None) -> str | None:
    if name is not None and name not in PALETTES:
        raise typer.BadParameter(f"unknown palette {name!r}; choose one of: {', '.join(PALETTES)}")
    return name


PaletteOpt = Arg[str | None, typer.Option(
    "--palette", callback=_palette_name,
    help="Colours: blue-orange (default, readable with colour blindness) or red-green.")]


def _show(result: object, as_json: bool, colour_by: str | None, palette: str | None = None) -> None:
    from ..annotated import Annotated
    from ..estimators.base import build_estimator
    from ..render.terminal import render_rich

    assert isinstance(result, Annotated)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    colour = result[build_estimator(colour_by).id] if colour_by else None
    Console().print(render_rich(result, colour_by=colour, palette=palette))


def _estimators_with_colour(estimators: list[str] | None, colour_by: str | None) -> list[str] | None:
    if colour_by is None:
        return estimators
    from ..annotated import DEFAULT_ESTIMATORS

    return [*(estimators or DEFAULT_ESTIMATORS), colour_by]


def ask(
    prompt: PromptArg,
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
    palette: PaletteOpt = None,
    decoding: Arg[str, typer.Option("--decoding", help="greedy, or opera: over-trust penalty with "
                                    "retrospection (in-process models; shows the overtrust diagnostic).")] = "greedy",
    beams: Arg[int | None, typer.Option("--beams", help="Beams for --decoding opera (default 5; 1 = greedy).")] = None,
    ensemble: Arg[list[str] | None, typer.Option("--ensemble", help="Repeatable: write the answer byte by byte from "
                  "the mean next-byte distribution of these models (tokenizers may differ; 'default' = the embedded "
                  "model; -n then counts bytes).")] = None,
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
    from ..decoding.opera import decoding_plan
    from ..estimators.claim import with_claims_model

    config = generation_config(  # every check that needs no model comes before it loads
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, top_k=top_k, chat=not raw
    )
    colour_by = colour_score(colour_by)
    if ensemble:  # byte-level ensemble of models with different tokenizers
        from .bytes import ensemble_answer

        _show(ensemble_answer(prompt, ensemble, chat=not raw, max_bytes=max_new_tokens, temperature=temperature,
                              seed=seed, estimators=estimator, colour_by=colour_by), json, colour_by, palette)
        return
    every = asks_for_all(estimator)
    deciding = calibrator is not None or policy is not None
    if deciding:  # read and check the files before loading the model
        from ..decide.decision import check_pairing, load_pair, scores_needed

        rule, cal = load_pair(calibrator, policy)
    specs = _estimators_with_colour(None if every else estimator, colour_by)
    chosen = with_claims_model(resolve_estimators(specs), claims_model)
    chosen, generate = decoding_plan(decoding, beams, chosen, temperature)
    backend = load(model)
    if every:
        supported = [e for e in chosen if set(e.requires) <= set(backend.capabilities)]
        chosen = with_claims_model(every_estimator(backend, supported), claims_model)
    elif estimator is None:  # the defaults this backend can serve (a server shows no full distribution)
        chosen = [e for e in chosen if set(e.requires) <= set(backend.capabilities)] or chosen
    if deciding:
        check_pairing(rule, cal, backend.model_id)
        chosen += [e for e in resolve_estimators(scores_needed(rule, cal)) if e not in chosen]
    check_compatible(chosen, backend)
    trace = generate(backend, prompt, config)
    result = annotate(trace, chosen, backend=backend)
    _show(result.decided(rule, cal) if deciding else result, json, colour_by, palette)


def score(
    prompt: PromptOpt,
    answer: AnswerOpt,
    model: ModelOpt = None,
    estimator: EstimatorOpt = None,
    top_k: TopKOpt = 10,
    raw: RawOpt = False,
    colour_by: ColourOpt = None,
    claims_model: ClaimsModelOpt = None,
    json: JsonOpt = False,
    palette: PaletteOpt = None,
    byte_level: Arg[bool, typer.Option("--byte-level", help="Per-character log-probabilities from the exact "
                    "byte-level model: independent of tokenization, comparable across models.")] = False,
) -> None:
    """Score an answer you already have: how sure would the model have been of each of its tokens?

    Example: tokentrust score --prompt "What is the capital of Australia?" --answer "Sydney."
    """
    from .. import annotate, load
    from ..annotated import resolve_estimators
    from ..capability import check_compatible
    from ..estimators.claim import with_claims_model

    colour_by = colour_score(colour_by)
    if byte_level:
        from .bytes import byte_level_score

        _show(byte_level_score(prompt, answer, model=model, chat=not raw, estimators=estimator, colour_by=colour_by),
              json, colour_by, palette)
        return
    every = asks_for_all(estimator)
    chosen = with_claims_model(resolve_estimators(_estimators_with_colour(None if every else estimator, colour_by)),
                               claims_model)
    backend = load(model)
    if every:
        supported = [e for e in chosen if set(e.requires) <= set(backend.capabilities)]
        chosen = with_claims_model(every_estimator(backend, supported), claims_model)
    check_compatible(chosen, backend)
    trace = backend.score(prompt, answer, chat=not raw, top_k=top_k)
    _show(annotate(trace, chosen, backend=backend), json, colour_by, palette)


def register(app: typer.Typer) -> None:
    app.command()(ask)
    app.command()(score)
