"""Extra answers drawn for the item's prompt: one batched ``backend.sample`` call per distinct setting."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CapabilityError, UserInputError
from ..stat import Context, Stat
from ..trace import Trace


def question_text(trace: Trace) -> str:
    """The question as plain text: the prompt string, or the last user message of a chat prompt."""
    prompt = trace.prompt
    if isinstance(prompt, str):
        return prompt
    users = [m.content for m in prompt if m.role == "user"]
    return users[-1] if users else (prompt[-1].content if prompt else trace.prompt_text)


def require_backend(ctx: Context, what: str) -> object:
    """The context's backend, or a clear error saying which statistic needed one."""
    if ctx.backend is None:
        raise CapabilityError(f"{what} calls the model again; pass backend= (a scored trace alone is not enough)")
    return ctx.backend


@dataclass(frozen=True, kw_only=True)
class Samples(Stat[tuple[Trace, ...]]):
    """``n`` answers sampled for the trace's prompt (seed from the context, so results are reproducible),
    in the trace's chat mode: a raw-prompt trace gets raw-prompt samples.

    Two estimators asking for equal ``Samples`` share one sampling call; any other setting is another key.
    """

    n: int = 10
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.n < 1:
            raise UserInputError(f"n_samples must be ≥ 1, got {self.n}")
        if self.temperature <= 0:
            raise UserInputError(f"sampling temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserInputError(f"top_p must lie in (0, 1], got {self.top_p}")

    def compute(self, ctx: Context) -> tuple[Trace, ...]:
        backend = require_backend(ctx, "sampling")
        max_new = self.max_new_tokens if self.max_new_tokens is not None else ctx.trace.config.max_new_tokens
        out = backend.sample(  # type: ignore[attr-defined]
            ctx.trace.prompt, n=self.n, temperature=self.temperature, top_p=self.top_p, seed=ctx.seed,
            max_new_tokens=max_new, chat=ctx.trace.config.chat,
        )
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class AnswerTexts(Stat[tuple[str, ...]]):
    """The answers compared by similarity-based estimators: optionally the trace's own answer first, then the samples."""

    samples: Samples = field(default_factory=Samples)
    include_answer: bool = False

    def compute(self, ctx: Context) -> tuple[str, ...]:
        texts = tuple(t.text.strip() for t in ctx.get(self.samples))
        return ((ctx.trace.text.strip(),) + texts) if self.include_answer else texts
