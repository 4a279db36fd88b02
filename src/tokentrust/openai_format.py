"""The OpenAI wire format both ways: responses (chat and completions JSON, streamed or not) turned into
traces, and token records written back as OpenAI ``logprobs`` objects.

Parsing serves the OpenAI-compatible backend and :meth:`Trace.from_openai` (responses a user already has:
pasted JSON, logs). Such a response gives each chosen token's log-probability and a few alternatives,
never the full next-token distribution, so the trace is black-box: ``entropy`` and the other
distribution columns stay ``None``. Token ids are recorded when the server sends them (``"id"`` in an
entry, or vLLM's ``"token_id:123"`` tokens), else ``-1``. Every field read is checked first (pydantic
models of the wire format): a response of another shape is one :class:`UserInputError` naming the field's
path and the value found (the backend reports it as a :class:`~tokentrust.errors.ServerError`).
Encoding (:func:`chat_logprobs`, :func:`completion_logprobs`) serves the confidence proxy, which answers in
the same format.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from .config import GenerationConfig
from .errors import UserInputError
from .trace import Message, TokenRecord, Trace

UNKNOWN_ID = -1
_TOKEN_ID = re.compile(r"^token_id:(-?\d+)$")
_CONTROL = re.compile(r"^(<\|[^<>\s]*\|>|</?s>|<eos>|<bos>|<end_of_turn>|<start_of_turn>|\[/?INST\])$")


@dataclass(frozen=True)
class TokenEntry:
    """One answer token as a server reports it, whatever the response format."""

    token: str
    logprob: float
    token_id: int = UNKNOWN_ID
    raw_bytes: bytes | None = None
    top: tuple[tuple[str, float, int], ...] = ()  # (token, logprob, id), most probable first


def render_prompt_text(prompt: str | Sequence[Message]) -> str:
    """The prompt as plain text: the string itself, or one ``role: content`` line per message.

    A server applies its own chat template, which the client cannot see, so this is a readable record,
    not the exact text the model saw.
    """
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.role}: {m.content}" for m in prompt)


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


class _Wire(BaseModel):
    """A piece of a server's answer; fields a server adds are kept, fields read here are type-checked."""

    model_config = ConfigDict(extra="allow")


_Byte = Annotated[int, Field(ge=0, le=255)]


class _TopEntry(_Wire):
    token: str
    logprob: float | None
    bytes: list[_Byte] | None = None
    id: int | None = None


class _ChatEntry(_TopEntry):
    top_logprobs: list[_TopEntry] | None = None


class _ChatLogprobs(_Wire):
    content: list[_ChatEntry] | None


class _CompletionLogprobs(_Wire):
    tokens: list[str]
    token_logprobs: list[float | None] | None = None
    top_logprobs: list[dict[str, float | None] | None] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> _CompletionLogprobs:
        for name in ("token_logprobs", "top_logprobs"):
            column = getattr(self, name)
            if column is not None and len(column) != len(self.tokens):
                raise ValueError(f"{name} has {len(column)} entries for {len(self.tokens)} tokens")
        return self


class _Content(_Wire):
    content: str | None = None


class _Choice(_Wire):
    index: int = 0
    message: _Content | None = None
    delta: _Content | None = None
    text: str | None = None
    finish_reason: str | None = None


_CHOICES = TypeAdapter(list[_Choice])
_INTERNAL = re.compile(r" or instance of _\w+")


def _checked(model: Any, value: Any, where: str) -> Any:
    """``value`` validated against ``model`` (a pydantic model or adapter); a wrong shape is one
    :class:`UserInputError` naming the first bad field, what it should be and what it was."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(value)
        return model.model_validate(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in (where, *err["loc"]) if p != "")
        msg = _INTERNAL.sub("", str(err["msg"]).removeprefix("Value error, "))
        shown = repr(err.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise UserInputError(f"not in OpenAI's format: {path}: {msg} (got {shown})") from None


def check_choices(choices: Any, where: str = "choices") -> None:
    """Refuse a ``choices`` value that is not a list of choice objects with the fields this module reads
    (index, message / delta content, text, finish_reason, logprobs) of the right types."""
    _checked(_CHOICES, choices, where)
    for i, choice in enumerate(choices):
        _checked_logprobs(choice.get("logprobs"), f"{where}.{i}.logprobs")


def _checked_logprobs(logprobs: Any, where: str) -> _ChatLogprobs | _CompletionLogprobs | None:
    if not logprobs:
        return None
    if isinstance(logprobs, Mapping) and "content" in logprobs:
        return _checked(_ChatLogprobs, logprobs, where)
    if isinstance(logprobs, Mapping) and "tokens" in logprobs:
        return _checked(_CompletionLogprobs, logprobs, where)
    raise UserInputError(
        f"unrecognised 'logprobs' object with keys {sorted(logprobs) if isinstance(logprobs, Mapping) else logprobs!r};"
        " expected chat ('content') or completions ('tokens', 'token_logprobs') format"
    )


def _token_and_id(token: Any, explicit_id: Any) -> tuple[str, int]:
    text = "" if token is None else str(token)
    if explicit_id is not None:
        return text, int(explicit_id)
    match = _TOKEN_ID.match(text)
    return (text, int(match.group(1))) if match else (text, UNKNOWN_ID)


def _ranked(top: list[tuple[str, float, int]]) -> tuple[tuple[str, float, int], ...]:
    return tuple(sorted(top, key=lambda t: -t[1] if not math.isnan(t[1]) else math.inf))


def _chat_entries(content: Sequence[_ChatEntry]) -> list[TokenEntry]:
    entries = []
    for e in content:
        token, tid = _token_and_id(e.token, e.id)
        top = []
        for alt in e.top_logprobs or []:
            alt_token, alt_id = _token_and_id(alt.token, alt.id)
            top.append((alt_token, _float(alt.logprob), alt_id))
        raw = bytes(e.bytes) if e.bytes is not None else None
        entries.append(TokenEntry(token, _float(e.logprob), tid, raw, _ranked(top)))
    return entries


def _completion_entries(logprobs: _CompletionLogprobs) -> list[TokenEntry]:
    tokens = logprobs.tokens
    chosen = logprobs.token_logprobs or [None] * len(tokens)
    tops = logprobs.top_logprobs or [None] * len(tokens)
    entries = []
    for token, lp, alts in zip(tokens, chosen, tops, strict=True):
        text, tid = _token_and_id(token, None)
        top = []
        for alt_token, alt_lp in (alts or {}).items():
            alt_text, alt_id = _token_and_id(alt_token, None)
            top.append((alt_text, _float(alt_lp), alt_id))
        entries.append(TokenEntry(text, _float(lp), tid, None, _ranked(top)))
    return entries


def choice_entries(choice: Mapping[str, Any]) -> list[TokenEntry] | None:
    """The token entries of one choice (chat or completions format), or ``None`` when it has no log-probs.

    A wrong shape (a missing ``logprob``, a string where a list belongs) is a :class:`UserInputError`
    naming the field."""
    if not isinstance(choice, Mapping):
        raise UserInputError(f"not in OpenAI's format: a choice must be an object, got {type(choice).__name__}")
    logprobs = _checked_logprobs(choice.get("logprobs"), "logprobs")
    if isinstance(logprobs, _ChatLogprobs):
        return _chat_entries(logprobs.content) if logprobs.content is not None else None
    if isinstance(logprobs, _CompletionLogprobs):
        return _completion_entries(logprobs)
    return None


def choice_text(choice: Mapping[str, Any]) -> str:
    """The answer text of a chat choice (``message.content``) or a completions choice (``text``)."""
    parsed = _checked(_Choice, choice, "choice")
    if "message" in choice:
        return parsed.message.content or "" if parsed.message is not None else ""
    if "text" in choice:
        return parsed.text or ""
    raise UserInputError(f"a choice needs 'message' (chat) or 'text' (completions); got keys {sorted(choice)}")


def spans(text: str, entries: Sequence[TokenEntry]) -> tuple[list[tuple[int, int]], list[bool]]:
    """Character spans of the tokens in ``text`` and the special-token mask.

    Tokens are matched left to right. When the server sends each token's bytes, pieces of a multi-byte
    character are joined: the piece that completes it gets the span, earlier pieces an empty one. A control
    token (``<|im_end|>``, ``</s>``…) absent from the text is special with an empty span; any other piece not
    found in the text gets an empty span at the current position.
    """
    offsets: list[tuple[int, int]] = []
    special: list[bool] = []
    pos = 0
    pending = b""
    for e in entries:
        piece = e.token
        if e.raw_bytes is not None:
            pending += e.raw_bytes
            try:
                piece = pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:
                offsets.append((pos, pos))
                special.append(False)
                continue
        if piece and text.startswith(piece, pos):
            offsets.append((pos, pos + len(piece)))
            pos += len(piece)
            special.append(False)
            continue
        is_control = bool(_CONTROL.match(piece))
        found = -1 if is_control or not piece else text.find(piece, pos, pos + len(piece) + 8)
        if found >= 0:
            offsets.append((found, found + len(piece)))
            pos = found + len(piece)
        else:
            offsets.append((pos, pos))
        special.append(is_control)
    return offsets, special


def trace_from_choice(
    choice: Mapping[str, Any], *, prompt: str | Sequence[Message], model_id: str, config: GenerationConfig,
    text: str | None = None, entries: Sequence[TokenEntry] | None = None, finish_reason: str | None = None,
    prompt_text: str | None = None, prompt_tokens: int | None = None,
) -> Trace:
    """One choice as a trace. Without log-probs the trace has the text and no token columns."""
    text = choice_text(choice) if text is None else text
    if entries is None:
        entries = choice_entries(choice) or []
    offsets, special = spans(text, entries)
    recorded: str | list[Message] = prompt if isinstance(prompt, str) else list(prompt)
    finish = finish_reason or choice.get("finish_reason")
    top_k = max((len(e.top) for e in entries), default=0)
    return Trace(
        model_id=model_id,
        prompt=recorded,
        prompt_text=render_prompt_text(recorded) if prompt_text is None else prompt_text,
        text=text,
        token_ids=[e.token_id for e in entries],
        tokens=[e.token for e in entries],
        offsets=offsets,
        logprobs=[e.logprob for e in entries],
        special=special,
        top_k=top_k,
        top_ids=[[t[2] for t in e.top] for e in entries],
        top_tokens=[[t[0] for t in e.top] for e in entries],
        top_logprobs=[[t[1] for t in e.top] for e in entries],
        config=config,
        finish_reason="length" if finish == "length" else "forced" if finish == "forced" else "stop",
        prompt_tokens=prompt_tokens,
    )


def usage_prompt_tokens(body: Mapping[str, Any]) -> int | None:
    """``usage.prompt_tokens`` of a response or chunk, when it is a non-negative integer."""
    usage = body.get("usage")
    value = usage.get("prompt_tokens") if isinstance(usage, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _record(index: int, entry: TokenEntry, text: str, start: int, end: int, special: bool) -> TokenRecord:
    return TokenRecord(
        index=index, id=entry.token_id, token=entry.token, text=text[start:end], offset=(start, end),
        special=special, logprob=entry.logprob, top_ids=[t[2] for t in entry.top],
        top_tokens=[t[0] for t in entry.top], top_logprobs=[t[1] for t in entry.top],
    )


def chunk_records(chunk: Mapping[str, Any], text: str, previous: Sequence[TokenRecord], *, chat: bool
                  ) -> tuple[list[TokenRecord], str, str | None]:
    """The token records one streamed chunk adds, the answer text after it, and its finish reason (if any).

    A token spans the part of the chunk's text it brought (split by :func:`spans` when a chunk carries
    several tokens); text before the chunk's first token that no earlier token claimed goes to that first
    token, and the chunk's last token reaches to the chunk's end, so records tile the text.
    """
    choices = chunk.get("choices", [])
    if choices is None:
        choices = []
    check_choices(choices)
    records: list[TokenRecord] = []
    finish = None
    for choice in choices:
        if choice.get("index", 0) != 0:
            continue
        if chat:
            piece = (choice.get("delta") or {}).get("content") or ""
        else:
            piece = choice.get("text") or ""
        entries = choice_entries(choice) or []
        finish = choice.get("finish_reason") or finish
        before, text = len(text), text + piece
        local, special = spans(piece, entries)
        last = records[-1] if records else previous[-1] if previous else None
        covered = last.offset[1] if last is not None else 0
        for j, entry in enumerate(entries):
            end = len(text) if j == len(entries) - 1 else max(covered, before + local[j][1])
            records.append(_record(len(previous) + len(records), entry, text, covered, end, special[j]))
            covered = end
    return records, text, finish


def chat_logprobs(records: Sequence[TokenRecord], n: int) -> dict[str, Any]:
    """OpenAI chat ``logprobs`` (``content`` entries with ``n`` alternatives) for the non-special tokens."""
    def number(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "content": [
            {"token": r.token, "logprob": number(r.logprob), "bytes": list(r.token.encode()),
             "top_logprobs": [{"token": t, "logprob": number(lp), "bytes": list(t.encode())}
                              for t, lp in zip(r.top_tokens[:n], r.top_logprobs[:n], strict=True)]}
            for r in records if not r.special
        ],
        "refusal": None,
    }


def completion_logprobs(records: Sequence[TokenRecord], n: int, offset: int = 0) -> dict[str, Any]:
    """OpenAI completions ``logprobs`` (tokens, their log-probs, ``n`` alternatives, text offsets)."""
    def number(x: float) -> float | None:
        return x if math.isfinite(x) else None

    visible = [r for r in records if not r.special]
    offsets, pos = [], offset
    for r in visible:
        offsets.append(pos)
        pos += len(r.text)
    return {
        "tokens": [r.token for r in visible],
        "token_logprobs": [number(r.logprob) for r in visible],
        "top_logprobs": [{t: number(lp) for t, lp in zip(r.top_tokens[:n], r.top_logprobs[:n], strict=True)}
                         for r in visible],
        "text_offset": offsets,
    }


def _request_prompt(request: Mapping[str, Any]) -> str | list[Message]:
    if "messages" in request:
        return [Message(role=str(m["role"]), content=_content_text(m.get("content"))) for m in request["messages"]]
    prompt = request.get("prompt", "")
    if isinstance(prompt, list):
        if len(prompt) == 1 and isinstance(prompt[0], str):
            return prompt[0]
        raise UserInputError("the request's prompt is a list of several prompts or of token ids; pass prompt= instead")
    return str(prompt)


def _content_text(content: Any) -> str:
    """Message content as text (OpenAI allows a list of ``{"type": "text", "text": ...}`` parts)."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def _request_config(request: Mapping[str, Any], top_k: int) -> GenerationConfig:
    fields: dict[str, Any] = {"chat": "messages" in request, "top_k": min(top_k, 1000)}
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens:
        fields["max_new_tokens"] = int(max_tokens)
    for key in ("temperature", "top_p", "seed"):
        if request.get(key) is not None:
            fields[key] = request[key]
    return GenerationConfig(**fields)


def traces_from_openai(
    response: Mapping[str, Any] | str | bytes, *, request: Mapping[str, Any] | None = None,
    prompt: str | Sequence[Message | Mapping[str, str]] | None = None, model_id: str | None = None,
) -> list[Trace]:
    """Every choice of a chat or completions response (a dict or its JSON text) as a trace.

    ``request`` (the JSON that was sent) supplies the prompt and the generation settings; ``prompt``
    overrides the prompt. Without either the prompt is recorded as ``""``.
    """
    if isinstance(response, str | bytes):
        try:
            response = json.loads(response)
        except json.JSONDecodeError as exc:
            raise UserInputError(f"the response is not valid JSON: {exc}") from None
    if not isinstance(response, Mapping) or not isinstance(response.get("choices"), list):
        keys = sorted(response) if isinstance(response, Mapping) else type(response).__name__
        raise UserInputError(f"an OpenAI response needs a 'choices' list; got {keys}")
    check_choices(response["choices"])
    if prompt is not None:
        recorded: str | list[Message] = prompt if isinstance(prompt, str) else [
            m if isinstance(m, Message) else Message(**dict(m)) for m in prompt
        ]
    elif request is not None:
        recorded = _request_prompt(request)
    else:
        recorded = ""
    traces = []
    for choice in sorted(response["choices"], key=lambda c: c.get("index", 0)):
        entries = choice_entries(choice) or []
        top_k = max((len(e.top) for e in entries), default=0)
        config = _request_config(request, top_k) if request is not None else GenerationConfig(
            top_k=min(top_k, 1000), chat="message" in choice
        )
        traces.append(
            trace_from_choice(
                choice, prompt=recorded, model_id=model_id or str(response.get("model") or "unknown"),
                config=config, entries=entries,
            )
        )
    return traces
