"""``tokentrust bytes``: the next byte (or character) after a text, free of tokenization bias."""

from __future__ import annotations

import json as _json
import re
import sys
from typing import TYPE_CHECKING
from typing import Annotated as Arg

import typer
from rich.console import Console

from ..errors import UserInputError
from .options import JsonOpt, ModelOpt

if TYPE_CHECKING:
    from ..annotated import Annotated
    from ..bytelevel import ByteLM, NextByte
    from ..trace import Trace

_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|n|t|r|\\)")
_SIMPLE = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}


def unescape(text: str) -> bytes:
    """The bytes of ``text`` with ``\\n``, ``\\t``, ``\\r``, ``\\\\`` and ``\\xNN`` (one raw byte) replaced."""
    out, pos = b"", 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        code = m.group(1)
        out += bytes([int(code[1:], 16)]) if code.startswith("x") else _SIMPLE[code]
        pos = m.end()
    return out + text[pos:].encode("utf-8")


def _shown(b: int) -> str:
    return {9: "\\t", 10: "\\n", 13: "\\r", 32: "␣"}.get(b) or (chr(b) if 32 < b < 127 else f"\\x{b:02x}")


def _chars(lm: ByteLM, prefix: bytes, nb: NextByte, top: int) -> list[tuple[str, float]]:
    """Next-character probabilities: ASCII bytes directly, multi-byte characters by following their likely
    lead bytes (each one more next-byte query); what is not followed is reported as one remainder row."""
    rows: list[tuple[str, float]] = []
    probs = nb.probs
    for b in range(128):
        if probs[b] > 0:
            rows.append((_shown(b), float(probs[b])))
    leads = sorted((b for b in range(0xC2, 0xF5) if probs[b] >= 0.005), key=lambda b: -probs[b])[:top]
    followed = 0.0
    for lead in leads:
        stack = [(bytes([lead]), float(probs[lead]))]
        while stack:
            seq, p = stack.pop()
            need = 2 if seq[0] < 0xE0 else 3 if seq[0] < 0xF0 else 4
            if len(seq) == need:
                rows.append((seq.decode("utf-8", errors="replace"), p))
                followed += p
                continue
            after = lm.next_byte(prefix + seq).probs
            for c in range(0x80, 0xC0):
                if p * after[c] >= 1e-4:
                    stack.append((seq + bytes([c]), p * float(after[c])))
    rest = float(probs[0x80:].sum()) - followed
    rows.sort(key=lambda r: -r[1])
    rows = rows[:top]
    if rest > 1e-4:
        rows.append(("(other characters)", rest))
    return rows


def bytes_command(
    text: Arg[str, typer.Argument(
        help="The text so far (it may stop mid-word or mid-character). Escapes: \\n \\t \\r \\\\ and \\xNN for one "
        "raw byte; --literal turns them off.")],
    model: ModelOpt = None,
    prompt: Arg[str | None, typer.Option(
        "--prompt", "-p", help="A question: the text is then the start of the answer (chat template). "
        "Default: the text is a raw document.")] = None,
    top: Arg[int, typer.Option("--top", "-k", min=1, help="How many bytes or characters to list.")] = 10,
    unit: Arg[str, typer.Option(
        "--unit", help="byte: the next byte; char: the next character (the text must be whole UTF-8 "
        "characters).")] = "char",
    heal: Arg[bool, typer.Option("--heal", help="Token healing instead of the exact method (cheaper, approximate).")]
    = False,
    literal: Arg[bool, typer.Option("--literal", help="Take the text as typed: no escapes.")] = False,
    json: JsonOpt = False,
) -> None:
    """Next byte (or character) after TEXT from the exact byte-level model: no tokenization bias, so a text
    that ends mid-word or with a space gets the distribution the model means.

    Needs the whole next-token distribution: the default model or a transformers model (folder or hub id).

    Example: tokentrust bytes "def fib(n):\\n    retu"
    """
    from ..bytelevel import ByteLM, healed_next_byte, require_in_process
    from ..loading import load

    require_in_process(model)
    if unit not in ("byte", "char"):
        raise UserInputError(f"--unit must be 'byte' or 'char', got {unit!r}")
    data = text.encode("utf-8") if literal else unescape(text)
    if unit == "char":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserInputError(
                f"text is not whole UTF-8 characters (byte {data[exc.start:exc.start + 1]!r} at offset {exc.start}); "
                "--unit char accepts UTF-8 text only: fix the \\xNN escapes or use --unit byte") from None
    backend = load(model)
    lm = ByteLM(backend, prompt)
    nb = healed_next_byte(lm, data) if heal else lm.next_byte(data)
    rows = ([(_shown(b), p) for b, p in nb.top(top)] if unit == "byte" else _chars(lm, data, nb, top))
    result = {"model": lm.model_id, "method": "token healing" if heal else "exact", "unit": unit,
              "text": data.decode("utf-8", errors="backslashreplace"),
              "next": [{"value": v, "probability": p} for v, p in rows], "end_probability": nb.end_prob,
              "prefix_logprob": nb.prefix_logprob, "coverage": nb.coverage, "forward_passes": lm.forward_passes}
    if json:
        sys.stdout.write(_json.dumps(result, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("next " + unit, "probability", title=f"after {result['text'][-40:]!r} ({result['method']})")
    for v, p in rows:
        table.add_row(v, f"{p:.4g}")
    console = Console()
    console.print(table)
    console.print(f"text ends here: {nb.end_prob:.4f} (of ending or going on) · log P(text) = {nb.prefix_logprob:.3f}"
                  f" · {lm.forward_passes} forward passes", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("bytes")(bytes_command)


def _annotated(trace: Trace, estimators: list[str] | None, colour_by: str | None = None) -> Annotated:
    """Annotate a character-level trace with the scores it supports (log-probabilities only by default)."""
    from ..annotated import annotate, resolve_estimators
    from ..capability import trace_capabilities

    chosen = resolve_estimators(estimators)
    if estimators is None:
        chosen = [e for e in chosen if set(e.requires) <= trace_capabilities(trace)]
    if colour_by:
        chosen += [e for e in resolve_estimators([colour_by]) if e not in chosen]
    return annotate(trace, chosen)


def byte_level_score(prompt: str, answer: str, *, model: str | None, chat: bool, estimators: list[str] | None,
                     colour_by: str | None = None, unit: str = "char") -> Annotated:
    """``score --byte-level``: the answer's per-character log-probabilities (comparable across models)."""
    from ..bytelevel import ByteLM, require_in_process, score_text
    from ..loading import load

    require_in_process(model)
    if unit not in ("char", "word"):
        raise UserInputError(f"unit must be 'char' or 'word', got {unit!r}")
    lm = ByteLM(load(model), prompt, chat=chat)
    return _annotated(score_text(lm, answer, unit=unit), estimators, colour_by)  # type: ignore[arg-type]  # unit checked above


def ensemble_answer(prompt: str, models: list[str], *, chat: bool, max_bytes: int, temperature: float, seed: int,
                    estimators: list[str] | None, colour_by: str | None = None) -> Annotated:
    """``ask --ensemble``: write the answer byte by byte from the mean of the models' next-byte distributions.

    Every model is loaded and checked (whole distribution, bytes aligned) before anything is generated.
    """
    from ..bytelevel import ByteEnsemble, ByteLM, require_in_process, sample_bytes, sample_trace
    from ..loading import load

    for m in models:
        require_in_process(m)
    members = [ByteLM(load(None if m in ("default", "") else m), prompt, chat=chat) for m in models]
    sample = sample_bytes(ByteEnsemble(members), max_bytes=max_bytes, temperature=temperature, seed=seed)
    return _annotated(sample_trace(sample, prompt), estimators, colour_by)
