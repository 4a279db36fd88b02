"""The trace: one generation, recorded column by column. Everything after a backend reads only traces.

A trace holds the prompt, the answer's tokens (ids, display texts, character offsets into the answer
text), each chosen token's log-probability, its top-k alternatives, a ``special`` mask (end-of-turn and
other control tokens, kept so no estimator drops them silently) and, when a white-box backend saw the
full next-token distribution, per-step statistics of that *raw* distribution (before temperature or
top-p warping): entropy in nats, max probability, margin, rank of the chosen token, excess kurtosis.
Black-box traces leave those columns ``None``; they are never approximated here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import model_validator

from .config import Float, GenerationConfig, Record
from .errors import UserInputError

SCHEMA_VERSION = 1


class Message(Record):
    """One chat message."""

    role: str
    content: str


Prompt = str | list[Message]


def as_messages(prompt: Any) -> list[Message] | None:
    """Validate a prompt: ``None`` for a non-empty string, the messages for a chat prompt."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise UserInputError("prompt is empty; give a question or a list of chat messages")
        return None
    if isinstance(prompt, Sequence) and prompt:
        try:
            return [m if isinstance(m, Message) else Message(**dict(m)) for m in prompt]
        except (TypeError, ValueError) as exc:
            raise UserInputError(
                f"prompt must be a string or a list of {{'role', 'content'}} messages, got {prompt!r}"
            ) from exc
    raise UserInputError(f"prompt must be a non-empty string or list of messages, got {prompt!r}")


class TokenRecord(Record):
    """One answer token: row ``index`` of a trace's columns. Streams yield these; ``Trace.token(i)`` gives them.

    ``text`` is the part of the answer this token spans (``trace.text[offset[0]:offset[1]]``: empty for
    special tokens and for the leading pieces of a split multi-byte character). Streamed in order, the
    records' texts add up to the answer. The distribution columns are ``None`` for black-box tokens.
    """

    index: int
    id: int
    token: str
    text: str
    offset: tuple[int, int]
    special: bool
    logprob: Float
    top_ids: list[int]
    top_tokens: list[str]
    top_logprobs: list[Float]
    entropy: Float | None = None
    max_prob: Float | None = None
    margin: Float | None = None
    rank: int | None = None
    kurtosis: Float | None = None


_DISTRIBUTION = ("entropy", "max_prob", "margin", "rank", "kurtosis")


class Trace(Record):
    """One generation (or one teacher-forced answer) with its per-token statistics.

    Columns are parallel lists with one entry per answer token. ``offsets[i]`` is the ``(start, end)``
    character span of token ``i`` in :attr:`text`; special tokens have an empty span at their position.
    ``prompt_tokens`` is the number of tokens the model saw as the prompt, when the backend knows it.
    """

    schema_version: int = SCHEMA_VERSION
    model_id: str
    prompt: Prompt
    prompt_text: str
    text: str
    token_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    logprobs: list[Float]
    special: list[bool]
    top_k: int
    top_ids: list[list[int]]
    top_tokens: list[list[str]]
    top_logprobs: list[list[Float]]
    entropy: list[Float] | None = None
    max_prob: list[Float] | None = None
    margin: list[Float] | None = None
    rank: list[int] | None = None
    kurtosis: list[Float] | None = None
    config: GenerationConfig = GenerationConfig()
    finish_reason: Literal["stop", "length", "forced"] = "stop"
    prompt_tokens: int | None = None
    digest: str = ""

    @model_validator(mode="after")
    def _check(self) -> Trace:
        n = len(self.token_ids)
        columns: dict[str, list[Any] | None] = {
            "tokens": self.tokens,
            "offsets": self.offsets,
            "logprobs": self.logprobs,
            "special": self.special,
            "top_ids": self.top_ids,
            "top_tokens": self.top_tokens,
            "top_logprobs": self.top_logprobs,
            "entropy": self.entropy,
            "max_prob": self.max_prob,
            "margin": self.margin,
            "rank": self.rank,
            "kurtosis": self.kurtosis,
        }
        for name, column in columns.items():
            if column is not None and len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} entries, expected {n} (one per token)")
        for start, end in self.offsets:
            if not 0 <= start <= end <= len(self.text):
                raise ValueError(f"offset ({start}, {end}) outside the answer text of length {len(self.text)}")
        expected = self.compute_digest()
        if not self.digest:
            object.__setattr__(self, "digest", expected)
        elif self.digest != expected:
            raise ValueError(f"digest {self.digest!r} does not match the content ({expected!r})")
        return self

    def compute_digest(self) -> str:
        """SHA-256 of the canonical JSON of every field but the digest itself.

        An unknown ``prompt_tokens`` is left out, so traces saved before that field existed keep their digest.
        """
        exclude = {"digest"} if self.prompt_tokens is not None else {"digest", "prompt_tokens"}
        payload = self.model_dump_json(exclude=exclude)
        return hashlib.sha256(payload.encode()).hexdigest()

    # ---- tokens as records -------------------------------------------------------------------------
    def token(self, i: int) -> TokenRecord:
        """Token ``i`` as one record (negative indices count from the end)."""
        n = len(self.token_ids)
        if not -n <= i < n:
            raise IndexError(f"token index {i} out of range for a trace of {n} tokens")
        i %= n
        start, end = self.offsets[i]
        extra = {name: getattr(self, name)[i] for name in _DISTRIBUTION if getattr(self, name) is not None}
        return TokenRecord(
            index=i, id=self.token_ids[i], token=self.tokens[i], text=self.text[start:end], offset=(start, end),
            special=self.special[i], logprob=self.logprobs[i], top_ids=self.top_ids[i],
            top_tokens=self.top_tokens[i], top_logprobs=self.top_logprobs[i], **extra,
        )

    def records(self) -> list[TokenRecord]:
        """Every token as a record, in order (what a stream of this answer yields)."""
        return [self.token(i) for i in range(len(self))]

    @classmethod
    def from_records(cls, records: Sequence[TokenRecord], *, text: str, **fields: Any) -> Trace:
        """A trace whose columns are ``records`` (in order) and whose answer is ``text``; ``fields`` add the
        prompt, model id, config and so on. Distribution columns are kept only if every record has them."""
        columns: dict[str, Any] = {
            "token_ids": [r.id for r in records], "tokens": [r.token for r in records],
            "offsets": [r.offset for r in records], "logprobs": [r.logprob for r in records],
            "special": [r.special for r in records], "top_ids": [r.top_ids for r in records],
            "top_tokens": [r.top_tokens for r in records], "top_logprobs": [r.top_logprobs for r in records],
        }
        for name in _DISTRIBUTION:
            values = [getattr(r, name) for r in records]
            columns[name] = values if records and all(v is not None for v in values) else None
        fields.setdefault("top_k", max((len(r.top_ids) for r in records), default=0))
        return cls(text=text, **columns, **fields)

    # ---- convenience -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def has_distribution(self) -> bool:
        """True when the full next-token distribution was seen (exact entropy, kurtosis, margin)."""
        return self.entropy is not None

    @property
    def messages(self) -> list[Message] | None:
        return self.prompt if isinstance(self.prompt, list) else None

    def to_json(self, **kwargs: Any) -> str:
        return self.model_dump_json(**kwargs)

    @classmethod
    def from_json(cls, data: str | bytes) -> Trace:
        """A trace from its JSON; a corrupt or tampered one raises :class:`UserInputError` naming the problem."""
        from pydantic import ValidationError

        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "trace"
            raise UserInputError(f"not a valid trace ({where}: {str(first['msg']).removeprefix('Value error, ')})"
                                 ) from None

    @classmethod
    def from_openai(
        cls, response: Any, *, request: Any = None, prompt: Any = None, choice: int = 0, model_id: str | None = None
    ) -> Trace:
        """A black-box trace from an OpenAI chat or completions response (a dict or its JSON text).

        ``request`` (the JSON that was sent) supplies the prompt and settings; ``choice`` picks one of
        several choices. See :mod:`tokentrust.openai_format`.
        """
        from .errors import UserInputError
        from .openai_format import traces_from_openai

        traces = traces_from_openai(response, request=request, prompt=prompt, model_id=model_id)
        if not 0 <= choice < len(traces):
            raise UserInputError(f"choice must be in [0, {len(traces) - 1}], got {choice}")
        return traces[choice]

    @classmethod
    def from_langchain(cls, message: Any, prompt: Any = None) -> Trace:
        """The trace of a LangChain chat answer (``AIMessage`` or merged ``AIMessageChunk``s) with log-probs;
        ``prompt``: the messages sent. See :func:`tokentrust.integrations.langchain.trace_from_langchain`."""
        from .integrations.langchain import trace_from_langchain

        return trace_from_langchain(message, prompt)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """The trace saved at ``path``; a missing, unreadable or non-UTF-8 file raises :class:`UserInputError`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserInputError(f"cannot read the trace file {path}: {exc}") from None
        return cls.from_json(text)

    def _repr_html_(self) -> str:
        from .render.html import render_trace_html

        return render_trace_html(self)
