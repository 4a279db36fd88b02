"""Option types shared by every command: one definition of ``--model``, ``--estimator``, ``--json`` …"""

from __future__ import annotations

from typing import Annotated as Arg

import typer

ModelOpt = Arg[
    str | None,
    typer.Option(
        "--model", "-m",
        help="The model: a local folder or hub id (transformers, in process), openai:<base_url>#<model> for an "
        "OpenAI-compatible server (key from OPENAI_API_KEY), or replay:<traces.jsonl> for recorded answers. "
        "Default: the embedded SmolLM2-135M-Instruct.",
    ),
]
EstimatorOpt = Arg[
    list[str] | None,
    typer.Option(
        "--estimator", "-e",
        help="Score to compute, repeatable, with parameters as name:key=value "
        "(e.g. -e msp -e logprob_quantile:alpha=0.05). See `tokentrust estimators`.",
    ),
]
JsonOpt = Arg[bool, typer.Option("--json", help="Print JSON instead of tables (schema in the README).")]
TopKOpt = Arg[int, typer.Option("--top-k", help="Alternatives recorded per token.", min=0)]
RawOpt = Arg[bool, typer.Option("--raw", help="Send the prompt as plain text, without the chat template.")]
ColourOpt = Arg[
    str | None,
    typer.Option("--colour-by", help="Token-level score that colours the text (default: token_probability)."),
]
ClaimsModelOpt = Arg[
    str | None,
    typer.Option(
        "--claims-model",
        help="Model that cuts the answer into claims (a backend spec, e.g. openai:<base_url>#<model>); "
        "default: the offline sentence and clause splitter.",
    ),
]
