"""``tokentrust serve``: the web page and the OpenAI-compatible confidence proxy."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated as Arg

import typer

from .ask import CalibratorOpt
from .options import ModelOpt


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    model: ModelOpt = None,
    upstream: Arg[str | None, typer.Option(help="Base URL of an OpenAI-compatible server that returns logprobs "
                                           "(e.g. http://127.0.0.1:8080/v1); requests go there instead.")] = None,
    upstream_model: Arg[str | None, typer.Option("--upstream-model", help="Model name to request upstream "
                                                 "(default: the first one its /models lists).")] = None,
    upstream_api_key: Arg[str | None, typer.Option("--upstream-api-key", envvar="TOKENTRUST_UPSTREAM_API_KEY",
                                                   help="Bearer key for the upstream server.")] = None,
    host: Arg[str, typer.Option(help="Interface to bind. Only this machine can connect unless you change it.")]
    = "127.0.0.1",
    port: Arg[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    api_key: Arg[str | None, typer.Option("--api-key", envvar="TOKENTRUST_API_KEY",
                                          help="Require 'Authorization: Bearer KEY' on every API route.")] = None,
    runs: Arg[str, typer.Option(help="Folder of bench runs whose reports the page lists.")] = "runs",
    max_tokens: Arg[int, typer.Option("--max-tokens", help="Largest max_tokens a request may ask for.", min=1)]
    = 512,
    max_body_bytes: Arg[int, typer.Option("--max-body-bytes", help="Largest request body accepted, in bytes.",
                                          min=1)] = 1_000_000,
    top_k: Arg[int, typer.Option("--top-k", help="Alternatives recorded per token (upstream: at most 20).",
                                 min=0, max=20)] = 10,
    max_samples: Arg[int, typer.Option("--max-samples", help="Largest n_samples (or n_brainstorm, matchups) an "
                                       "estimator of a request may ask for.", min=1)] = 32,
    max_pass_tokens: Arg[int, typer.Option("--max-pass-tokens", help="Most tokens one request may generate over "
                                           "all passes (its answer plus every sampled answer).", min=1)] = 16_384,
    request_timeout: Arg[float, typer.Option("--request-timeout", help="Wall-clock seconds one request may take "
                                             "(then 504 and its work stops).", min=0.001)] = 300.0,
    policy_score: Arg[str, typer.Option("--policy-score", help="Sequence-level probability that decides "
                                        "answer / hedge / abstain.")] = "geometric_mean_token_probability",
    hedge_below: Arg[float, typer.Option("--hedge-below", help="Hedge (\"I'm not sure, but …\") when the "
                                         "policy score is below this.", min=0, max=1)] = 0.8,
    abstain_below: Arg[float, typer.Option("--abstain-below", help="Abstain when the policy score is below "
                                           "this.", min=0, max=1)] = 0.3,
    calibrator: CalibratorOpt = None,
    policy_file: Arg[Path | None, typer.Option("--policy", help="Policy JSON (tokentrust calibrate --target-risk); "
                                               "replaces --policy-score, --hedge-below and --abstain-below.")]
    = None,
    defer_to: Arg[str | None, typer.Option("--defer-to", help="Large model the cascade defers doubtful answers "
                                           "to: a backend spec (openai:<url>#<model>, a local folder) or a server "
                                           "URL. Default rule: chow_average below --defer-below.")] = None,
    cascade_policy: Arg[Path | None, typer.Option("--cascade-policy", help="Cascade policy JSON (tokentrust "
                                                  "cascade writes policy.json): its rule and threshold decide; its "
                                                  "large model is used unless --defer-to names one.")] = None,
    defer_below: Arg[float | None, typer.Option("--defer-below", help="Without --cascade-policy: defer when the "
                                                "answer's mean token log-prob is below this (default ln 0.8 = "
                                                "-0.223; inf: always, -inf: never).")] = None,
    metrics: Arg[bool, typer.Option("--metrics", help="Serve Prometheus metrics at GET /metrics (behind "
                                    "--api-key when set).")] = False,
) -> None:
    """Serve the web page and an OpenAI-compatible API that adds confidence to every answer.

    Any model works: the embedded default or a local one in process (concurrent requests are decoded \
in one batch), an OpenAI-compatible server (--upstream, or --model openai:<url>#<model>), or recorded \
traces (--model replay:<file.jsonl>).

    Examples: tokentrust serve  ·  tokentrust serve --upstream http://127.0.0.1:8080/v1 --upstream-model foo
    """
    import uvicorn

    from ..decide.decision import load_pair
    from ..decide.policy import Policy
    from ..errors import UserInputError
    from ..estimators.base import build_estimator
    from ..serve import Limits, create_app

    if model is not None and upstream is not None:
        raise UserInputError("give --model (served in process) or --upstream, not both")
    if defer_below is not None and cascade_policy is not None:
        raise UserInputError("give --cascade-policy or --defer-below, not both (the policy holds its threshold)")
    if defer_below is not None and defer_to is None:
        raise UserInputError("--defer-below needs --defer-to (the large model to defer to)")
    cascade = None
    if cascade_policy is not None:
        from ..decide.cascade import CascadePolicy

        cascade = CascadePolicy.load(cascade_policy)
    elif defer_to is not None:
        from ..serve.cascade import default_cascade_policy

        cascade = default_cascade_policy(defer_to, defer_below)
    if calibrator is not None or policy_file is not None:  # checked before the model loads
        policy, cal = load_pair(calibrator, policy_file)
    else:
        policy, cal = Policy(score=build_estimator(policy_score).id, hedge_below=hedge_below,
                             abstain_below=abstain_below), None
    limits = Limits(max_body_bytes=max_body_bytes, max_tokens=max_tokens,
                    default_max_tokens=min(128, max_tokens), top_k=top_k, max_samples=max_samples,
                    max_pass_tokens=max_pass_tokens, request_timeout=request_timeout)
    name = None
    if upstream is not None:
        from ..backends.openai import OpenAIBackend

        backend = OpenAIBackend.upstream(upstream, upstream_model, api_key=upstream_api_key)
        name = backend.model
    else:
        from .. import load

        backend = load(model)
    app = create_app(backend, name=name, api_key=api_key, runs_dir=runs, limits=limits, policy=policy,
                     calibrator=cal, defer_to=defer_to, cascade_policy=cascade, metrics=metrics)
    shown = f"[{host}]" if ":" in host else host
    sys.stderr.write(f"tokentrust serving {app.state.tt.name} on http://{shown}:{port}  "
                     f"(OpenAI base URL http://{shown}:{port}/v1)\n")
    uvicorn.run(app, host=host, port=port, log_level="warning")
