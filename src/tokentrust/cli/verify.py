"""``tokentrust verify``: check an answer's claims against a reference text, with grounded confidence."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated as Arg

import typer
from rich.console import Console

from .options import ClaimsModelOpt, JsonOpt, ModelOpt, RawOpt

_COLOURS = {"supported": "green", "contradicted": "red", "not_mentioned": "yellow"}


def _number(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}"


def _table(result: object) -> None:
    from rich.table import Table

    from ..verify import Verification

    assert isinstance(result, Verification)
    conf = f", model confidence by {result.estimator}" if result.estimator else ""
    table = Table("claim", "verdict", "support", "model conf.", "grounded", "evidence", show_lines=True,
                  title=f"judge: {result.judge}{conf}; reference sha256 {result.reference_digest[:12]}…")
    for c in result.checks:
        colour = _COLOURS[c.verdict]
        table.add_row(c.claim.text, f"[{colour}]{c.verdict.replace('_', ' ')}[/]", _number(c.support),
                      _number(c.model_confidence), _number(c.grounded), c.evidence or "—")
    counts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in result.counts.items())
    console = Console()
    console.print(table)
    console.print(f"{len(result.checks)} claims: {counts}", highlight=False)


def verify(
    prompt: Arg[str, typer.Option("--prompt", "-p", help="The question the answer replies to.")],
    answer: Arg[str, typer.Option("--answer", "-a", help="The answer to check (scored teacher-forced).")],
    reference: Arg[Path, typer.Option("--reference", "-r", help="UTF-8 text file with the facts to check against "
                                      "(at most 1 MB).")],
    model: ModelOpt = None,
    judge: Arg[str, typer.Option(
        "--judge", help="Who decides each verdict: auto (the model when it can answer new prompts, else "
        "embedding), judge (the model), embedding (sentence similarity; cannot spot contradictions) or "
        "nli:<path or hub id> (an NLI classifier).")] = "auto",
    claims_model: ClaimsModelOpt = None,
    estimator: Arg[str | None, typer.Option(
        "--estimator", "-e", help="Claim-level estimator giving the model's own confidence per claim "
        "(e.g. claim_probability); grounded = support × that confidence.")] = None,
    top_k_evidence: Arg[int, typer.Option("--top-k-evidence", min=1,
                                          help="Reference sentences retrieved per claim.")] = 3,
    raw: RawOpt = False,
    json: JsonOpt = False,
) -> None:
    """Check each claim of an answer against a reference: supported, contradicted or not mentioned.

    Example: tokentrust verify -p "Tell me about Australia." -a "Its capital is Sydney." --reference facts.txt
    """
    from .. import load
    from ..errors import TokentrustError, UserInputError
    from ..stats.claims import make_extractor
    from ..verify import claim_estimator, load_reference, resolve_judge
    from ..verify import verify as run_verify

    # every check that needs no model first, so bad input fails fast and nothing is half-written
    resolve_judge(judge)
    extractor = make_extractor(f"llm:model={claims_model}" if claims_model else "sentences")
    if estimator is not None:
        claim_estimator(estimator, extractor.spec)
    text = load_reference(reference)
    if claims_model:
        try:
            extractor.llm(None).capabilities  # noqa: B018  (loads the model, probes a server now)
        except TokentrustError as exc:
            raise UserInputError(f"--claims-model {claims_model!r}: {exc}") from None
    backend = load(model)
    trace = backend.score(prompt, answer, chat=not raw)
    result = run_verify(trace, text, judge=judge, backend=backend, extractor=extractor.spec, estimator=estimator,
                        top_k=top_k_evidence)
    if json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    _table(result)


def register(app: typer.Typer) -> None:
    app.command()(verify)
