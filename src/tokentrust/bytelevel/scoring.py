"""Per-character and per-word log-probabilities from the byte-level model, as traces every view can show.

A character's log-probability is ``log P(text[:i+1]…) − log P(text[:i]…)`` with both prefixes' byte-level
probabilities, so the characters' values add up to the string's log-probability and mean the same thing
for any model, whatever its tokenizer: colour two models' answers by them and the colours compare.
The result is a :class:`~tokentrust.trace.Trace` whose rows are characters (or words, whitespace joined
to the word after it) plus an end row, so scores, renderers, the page and JSON output work unchanged.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ..config import GenerationConfig
from ..errors import UserInputError
from ..trace import Trace
from .ensemble import ByteSample
from .lm import ByteLM

Unit = Literal["char", "word"]
_END = "<end>"


def _text(data: str | bytes, what: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserInputError(
            f"{what} is not valid UTF-8 (byte {bytes(data)[exc.start:exc.start + 1]!r} at offset {exc.start}); "
            "per-character scores need text: give UTF-8 (whole characters)") from None


def char_logprobs(lm: ByteLM, text: str | bytes) -> list[float]:
    """Byte-level log-probability of each character of ``text`` given everything before it."""
    text = _text(text, "text")
    out, prev, done = [], 0.0, b""
    for ch in text:
        done += ch.encode("utf-8")
        cur = lm.prefix_logprob(done)
        out.append(cur - prev)
        prev = cur
    return out


def _rows(text: str, values: list[float], unit: Unit) -> list[tuple[str, tuple[int, int], float]]:
    if unit == "char":
        return [(c, (i, i + 1), v) for i, (c, v) in enumerate(zip(text, values, strict=True))]
    if unit != "word":
        raise UserInputError(f"unit must be 'char' or 'word', got {unit!r}")
    rows = []
    for m in re.finditer(r"\s*\S+|\s+$", text):
        rows.append((m.group(), m.span(), float(sum(values[m.start():m.end()]))))
    return rows


def _trace(model_id: str, prompt: Any, prompt_text: str, text: str,
           rows: list[tuple[str, tuple[int, int], float]], end: float | None,
           alternatives: list[list[tuple[str, float]]] | None = None) -> Trace:
    alts = alternatives or [[] for _ in rows]
    tokens = [r[0] for r in rows]
    offsets = [r[1] for r in rows]
    logprobs = [r[2] for r in rows]
    ids = [ord(t) if len(t) == 1 else i for i, t in enumerate(tokens)]
    special = [False] * len(rows)
    if end is not None:
        tokens, offsets, logprobs, ids = [*tokens, _END], [*offsets, (len(text), len(text))], [*logprobs, end], [*ids, -1]
        special.append(True)
        alts = [*alts, []]
    k = max((len(a) for a in alts), default=0)
    return Trace(
        model_id=f"bytes:{model_id}", prompt=prompt if prompt is not None else "", prompt_text=prompt_text, text=text,
        token_ids=ids, tokens=tokens, offsets=offsets, logprobs=logprobs, special=special, top_k=k,
        top_ids=[[ord(s) if len(s) == 1 else -1 for s, _ in a] for a in alts],
        top_tokens=[[s for s, _ in a] for a in alts], top_logprobs=[[v for _, v in a] for a in alts],
        config=GenerationConfig(max_new_tokens=max(1, len(tokens)), top_k=k), finish_reason="forced",
        prompt_tokens=None,
    )


def score_text(lm: ByteLM, text: str | bytes, *, unit: Unit = "char", end: bool = True) -> Trace:
    """Teacher-force ``text`` through the byte-level model: one row per character (or word), plus an end row
    (``end``) holding the log-probability that the answer stops there."""
    text = _text(text, "answer")
    if not text:
        raise UserInputError("answer is empty; give the answer text to score")
    values = char_logprobs(lm, text)
    end_lp = lm.end_logprob(text) - lm.prefix_logprob(text) if end else None
    prompt_text = lm.lead.decode("utf-8", errors="replace") if lm.lead else (
        lm.backend.tokenizer.decode(list(lm.context)) if lm.prompt is not None else "")
    return _trace(lm.model_id, lm.prompt, prompt_text, text, _rows(text, values, unit), end_lp)


def _shown(b: int) -> str:
    return "<end>" if b == 256 else chr(b) if 32 <= b < 127 or b in (9, 10) else f"\\x{b:02x}"


def sample_trace(sample: ByteSample, prompt: Any = None, *, unit: Unit = "char") -> Trace:
    """A sampled text as a character (or word) trace; alternatives are the top bytes at each character's
    first byte."""
    text, values, alternatives = "", [], []
    pending, lp, first = b"", 0.0, None
    for step in sample.steps:
        if step.byte == 256:
            break
        pending += bytes([step.byte])
        lp += step.logprob
        first = first if first is not None else step
        try:
            ch = pending.decode("utf-8")
        except UnicodeDecodeError:
            if len(pending) < 4:
                continue
            ch = "\ufffd"
        for c in ch:  # one character (several only for a broken byte run)
            text += c
            values.append(lp / len(ch))
            alternatives.append([(_shown(b), v) for b, v in first.top])
        pending, lp, first = b"", 0.0, None
    end = sample.steps[-1].logprob if sample.ended else None
    rows = _rows(text, values, unit)
    if unit != "char":
        alternatives = None
    return _trace(sample.model_id, prompt, "", text, rows, end, alternatives)
