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

from .config import GenerationConfig, Record
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


class Trace(Record):
    """One generation (or one teacher-forced answer) with its per-token statistics.

    Columns are parallel lists with one entry per answer token. ``offsets[i]`` is the ``(start, end)``
    character span of token ``i`` in :attr:`text`; special tokens have an empty span at their position.
    """

    schema_version: int = SCHEMA_VERSION
    model_id: str
    prompt: Prompt
    prompt_text: str
    text: str
    token_ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    logprobs: list[float]
    special: list[bool]
    top_k: int
    top_ids: list[list[int]]
    top_tokens: list[list[str]]
    top_logprobs: list[list[float]]
    entropy: list[float] | None = None
    max_prob: list[float] | None = None
    margin: list[float] | None = None
    rank: list[int] | None = None
    kurtosis: list[float] | None = None
    config: GenerationConfig = GenerationConfig()
    finish_reason: Literal["stop", "length", "forced"] = "stop"
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
        """SHA-256 of the canonical JSON of every field but the digest itself."""
        payload = self.model_dump_json(exclude={"digest"})
        return hashlib.sha256(payload.encode()).hexdigest()

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
        return cls.model_validate_json(data)

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

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def _repr_html_(self) -> str:
        from .render.html import render_trace_html

        return render_trace_html(self)
