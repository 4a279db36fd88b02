"""``tokentrust explain``: which parts of the prompt made the model say its answer (or a given one)."""

from __future__ import annotations

import json as _json
import math
import string
import sys
from typing import Annotated as Arg
from typing import Any

import typer
from rich.console import Console

from ..attribution.explain import DEFAULT_METHOD
from ..errors import UserInputError
from ..registry import attributors
from .options import JsonOpt, ModelOpt, RawOpt

GRANULARITIES = ("token", "word", "component")


def fill_template(template: str, fields: list[str]) -> tuple[str, dict[str, str]]:
    """The prompt ``template`` filled with ``fields`` (``name=value`` each) and the fields as a dict.

    Every placeholder needs exactly one non-empty field and every field a placeholder."""
    given: dict[str, str] = {}
    for item in fields:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise UserInputError(f"--field {item!r} must read name=value")
        if name in given:
            raise UserInputError(f"--field {name} is given twice")
        if not value.strip():
            raise UserInputError(f"--field {name} is empty; give it a value")
        given[name] = value
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise UserInputError(f"bad --template: {exc} (write a literal brace as {{{{ or }}}})") from None
    bad = next((f for f in names if not f.isidentifier()), None)
    if bad is not None:
        raise UserInputError(f"template placeholder {{{bad}}} must be a name, like {{item}}")
    unused = [n for n in given if n not in names]
    if unused:
        listed = ", ".join(dict.fromkeys(names)) or "none"
        raise UserInputError(f"--field {unused[0]} is not in the template; its placeholders: {listed}")
    missing = [n for n in dict.fromkeys(names) if n not in given]
    if missing:
        raise UserInputError(f"template placeholder {{{missing[0]}}} has no --field {missing[0]}=…")
    return template.format_map(given), given


def _method_help() -> str:
    return ("Attribution method, with parameters as name:key=value (e.g. integrated_gradients:steps=32). "
            f"Registered: {', '.join(attributors.names())}.")


def _plain(value: Any) -> Any:
    """JSON-safe copy (numpy numbers and arrays become floats and lists)."""
    return _json.loads(_json.dumps(value, default=lambda x: x.tolist() if hasattr(x, "tolist") else str(x)))


def _faithfulness(attribution: Any, backend: Any, trace: Any) -> dict[str, Any] | None:
    try:
        from ..attribution.faithfulness import faithfulness
    except ImportError:
        return None
    return _plain(faithfulness(attribution, backend, trace))


def _show_faithfulness(numbers: dict[str, Any] | None) -> None:
    """Each score with its random baseline and ratio (> 1: better than random), then the settings; the
    per-target rows are in ``--json``."""
    from rich.table import Table

    console = Console()
    if numbers is None:
        console.print("faithfulness: not available in this installation", style="dim")
        return

    def cell(x: Any) -> str:
        return f"{x:.4g}" if isinstance(x, int | float) and not (isinstance(x, float) and math.isnan(x)) else "–"

    names = [k[: -len("_ratio")] for k in numbers if k.endswith("_ratio")]
    table = Table("faithfulness", "value", "random", "ratio", box=None, header_style="bold", pad_edge=False)
    for name in names:
        table.add_row(name, cell(numbers.get(name)), cell(numbers.get(f"{name}_random")), cell(numbers[f"{name}_ratio"]))
    used = {f"{n}{suffix}" for n in names for suffix in ("", "_random", "_ratio")}
    rest = [f"{k}={v}" for k, v in numbers.items() if k not in used and isinstance(v, str | int | float)]
    console.print(table)
    if rest:
        console.print(", ".join(rest), style="dim", highlight=False)


def explain(
    prompt: Arg[str | None, typer.Argument(help="The question (leave out with --template).")] = None,
    model: ModelOpt = None,
    method: Arg[str, typer.Option("--method", help=_method_help())] = DEFAULT_METHOD,
    target: Arg[str | None, typer.Option(
        "--target", "-t", help="Explain only this part of the answer (default: every answer token).")] = None,
    answer: Arg[str | None, typer.Option(
        "--answer", "-a", help="Explain this answer (teacher-forced) instead of generating one.")] = None,
    granularity: Arg[str | None, typer.Option(
        "--granularity", "-g", help="Sources: token, word or component (named parts: system prompt, chat "
        "template, user text, template fields). Default: word, or component with --template.")] = None,
    template: Arg[str | None, typer.Option(
        "--template", help="A prompt with {placeholders}, filled by --field; each field is a component.")] = None,
    field: Arg[list[str] | None, typer.Option(
        "--field", "-f", help="A template field as name=value, repeatable.")] = None,
    max_new_tokens: Arg[int, typer.Option("--max-new-tokens", "-n", help="Longest answer, in tokens.")] = 64,
    faithfulness: Arg[bool, typer.Option(
        "--faithfulness", help="Also measure how faithful the attribution is (sufficiency, comprehensiveness, "
        "deleting the top sources), each against random sources.")] = False,
    raw: RawOpt = False,
    json: JsonOpt = False,
) -> None:
    """Which parts of the prompt made the model say this: each source scored for each answer token.

    Example: tokentrust explain "What is the capital of Australia?" --method integrated_gradients --json
    """
    from ..attribution.methods import make_attributor

    fields: dict[str, str] | None = None
    if template is not None:
        if prompt is not None:
            raise UserInputError("give either a prompt or --template, not both")
        prompt, fields = fill_template(template, field or [])
    elif field:
        raise UserInputError("--field fills a --template; give the template too")
    if prompt is None or not prompt.strip():
        raise UserInputError("prompt is empty; give a question or --template with --field name=value")
    granularity = granularity or ("component" if template is not None else "word")
    if granularity not in GRANULARITIES:
        raise UserInputError(f"--granularity must be token, word or component, got {granularity!r}")
    attributor = make_attributor(method)
    if answer is not None and target is not None and target.strip() and target.strip() not in answer:
        raise UserInputError(f"target {target.strip()!r} is not in the answer {answer!r}; give a part of it")

    from .. import explain as run_explain
    from .. import load
    from ..capability import check_compatible
    from ..config import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, chat=not raw)
    backend = load(model)
    check_compatible([attributor], backend)
    trace = backend.score(prompt, answer, chat=not raw) if answer is not None else backend.generate(prompt, config)
    result = run_explain(trace, attributor, backend=backend, target=target, granularity=granularity,  # type: ignore[arg-type]
                         fields=fields)
    numbers = _faithfulness(result, backend, trace) if faithfulness else None
    if json:
        if faithfulness:
            result = result.model_copy(update={"extras": {**result.extras, "faithfulness": numbers}})
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    from ..render.attribution import render_attribution_rich

    Console().print(render_attribution_rich(result))
    if faithfulness:
        _show_faithfulness(numbers)


def register(app: typer.Typer) -> None:
    app.command()(explain)
