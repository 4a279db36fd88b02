"""Option types shared by every command: one definition of ``--model``, ``--estimator``, ``--json`` …"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from typing import Annotated as Arg

import typer

if TYPE_CHECKING:
    from ..config import GenerationConfig
    from ..estimators.base import Estimator

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
        "(e.g. -e msp -e logprob_quantile:alpha=0.05); -e all: every score the model supports that loads no other "
        "model (sampling ones included, so slower). See `tokentrust estimators`.",
    ),
]
JsonOpt = Arg[bool, typer.Option("--json", help="Print JSON instead of tables (schema in the README).")]
TopKOpt = Arg[int, typer.Option("--top-k", help="Alternatives recorded per token.", min=0, max=1000)]
RawOpt = Arg[bool, typer.Option("--raw", help="Send the prompt as plain text, without the chat template.")]
ColourOpt = Arg[
    str | None,
    typer.Option("--colour-by", show_default="token_probability",
                 help="Token-level score that colours the text (or a claim-level one, which colours the claims)."),
]
ClaimsModelOpt = Arg[
    str | None,
    typer.Option(
        "--claims-model",
        help="Model that cuts the answer into claims (a backend spec, e.g. openai:<base_url>#<model>); "
        "default: the offline sentence and clause splitter.",
    ),
]


def _prompt_text(value: str) -> str:
    if not value.strip():
        from ..errors import UserInputError

        raise UserInputError("the prompt is empty; give the question, e.g. \"What is the capital of Australia?\"")
    return value


PromptArg = Arg[str, typer.Argument(help="The question to ask the model.", callback=_prompt_text)]
PromptOpt = Arg[str, typer.Option("--prompt", "-p", help="The question the answer replies to.", callback=_prompt_text)]


def _answer_text(value: str) -> str:
    if not value.strip():
        from ..errors import UserInputError

        raise UserInputError("the answer is empty; give the answer to score with --answer (-a)")
    return value


AnswerOpt = Arg[str, typer.Option("--answer", "-a", help="The answer to score (teacher-forced).",
                                  callback=_answer_text)]

#: The flag of each generation setting, for messages about a bad value.
_FLAGS = {"max_new_tokens": "--max-new-tokens (-n)", "temperature": "--temperature", "top_p": "--top-p",
          "top_k": "--top-k", "seed": "--seed"}


def generation_config(**settings: Any) -> GenerationConfig:
    """A :class:`~tokentrust.GenerationConfig` from the command's flags, checked before any model loads; a bad
    value is reported under its flag (``--max-new-tokens (-n) must be ≥ 1, got 0``), not the field's name."""
    from ..config import GenerationConfig
    from ..errors import UserInputError

    try:
        return GenerationConfig(**settings)
    except UserInputError as exc:
        raise UserInputError(flag_message(str(exc))) from None


def flag_message(message: str) -> str:
    """A :class:`~tokentrust.GenerationConfig` error told in flags: ``invalid GenerationConfig: max_new_tokens must
    be ≥ 1, got 0`` → ``--max-new-tokens (-n) must be ≥ 1, got 0``; any other message unchanged."""
    prefix = "invalid GenerationConfig: "
    if not message.startswith(prefix):
        return message
    message = message.removeprefix(prefix)
    for field, flag in _FLAGS.items():
        message = message.replace(field, flag)
    return message


def colour_score(spec: str | None) -> str | None:
    """Check ``--colour-by`` before any model loads: it must name a score with a value per token (or per claim,
    which colours the claims); an answer-level score, one value for the whole answer, is refused with the
    scores that are valid."""
    if spec is None:
        return None
    from ..errors import UserInputError
    from ..estimators.base import build_estimator
    from ..registry import estimators
    from ..scores import Level

    est = build_estimator(spec)
    if est.level is Level.SEQUENCE:
        def named(level: Level) -> str:
            return ", ".join(name for name, cls in estimators.items() if cls.level is level)

        form = f" (its token-level form is {est.token_form.registry_id})" if est.token_form is not None else ""
        raise UserInputError(f"--colour-by {spec}: {est.registry_id} is one score for the whole answer{form}; "
                             f"colour by a token-level score ({named(Level.TOKEN)}) or a claim-level one "
                             f"({named(Level.CLAIM)})")
    return spec


def asks_for_all(specs: list[str] | None) -> bool:
    """True for ``-e all`` (given alone); ``all`` among other estimators is refused."""
    if not specs or "all" not in specs:
        return False
    if len(specs) > 1:
        from ..errors import UserInputError

        raise UserInputError("'all' cannot be combined with other estimators; give -e all alone")
    return True


def every_estimator(backend: Any, extra: Sequence[Estimator] = ()) -> list[Estimator]:
    """``-e all`` for one answer: every registered estimator, of every level, that ``backend`` supports and that
    loads no other model (an NLI or embedding model), with default parameters; then ``extra`` (the colouring
    score, scores a policy needs). Sampling scores are included, so this takes longer than the defaults."""
    from ..registry import estimators

    supported = set(backend.capabilities)
    chosen = [est for _, cls in estimators.items()
              if (est := cls()).requires <= supported and not est.uses_models]
    return [*chosen, *(e for e in extra if e not in chosen)]
