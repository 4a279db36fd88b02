"""The backend protocol: everything serve, bench, the CLI and the estimators ask of a model.

Every backend (in-process transformers, the embedded default, an OpenAI-compatible server, a replay of
recorded traces, the serving :class:`~tokentrust.backends.scheduler.Scheduler`) implements all of it,
and declares in :attr:`Backend.capabilities` what it can really give; callers check those with
:func:`~tokentrust.capability.check_compatible` before any work, so a missing capability is refused
up front instead of failing half-way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..capability import Capability
from ..config import Record
from ..trace import Prompt

if TYPE_CHECKING:
    from ..config import GenerationConfig
    from ..trace import TokenRecord, Trace


class RenderedPrompt(Record):
    """A prompt as a backend will send it: as recorded in traces, as text, and as token ids when known.

    ``exact`` says whether ``text`` is exactly what the model reads (a server applies a chat template it
    does not reveal, so there ``text`` is a readable record unless the template was given).
    """

    prompt: Prompt
    text: str
    token_ids: list[int] | None = None
    exact: bool = True

    @property
    def n_tokens(self) -> int | None:
        """Number of prompt tokens, when the backend knows its tokenizer."""
        return None if self.token_ids is None else len(self.token_ids)


@runtime_checkable
class Backend(Protocol):
    """Anything that turns prompts into traces.

    ``stream`` yields one :class:`~tokentrust.trace.TokenRecord` per answer token as it is generated and
    then the finished :class:`~tokentrust.trace.Trace`, whose ``records()`` equal what was streamed;
    closing the iterator early stops the generation. ``sample(prompt, n, seed=s)`` returns ``n`` answers
    that are reproducible for a given seed. ``token_logprobs`` scores a token sequence with no prompt.
    """

    model_id: str

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def render(self, prompt: object, *, chat: bool = True) -> RenderedPrompt: ...

    def generate(self, prompt: object, config: GenerationConfig | None = None, **overrides: object) -> Trace: ...

    def generate_many(
        self, prompts: Sequence[object], config: GenerationConfig | None = None, **overrides: object
    ) -> list[Trace]: ...

    def sample(
        self, prompt: object, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
        max_new_tokens: int | None = None, chat: bool = True, top_k: int = 10,
    ) -> list[Trace]: ...

    def stream(
        self, prompt: object, config: GenerationConfig | None = None, **overrides: object
    ) -> Iterator[TokenRecord | Trace]: ...

    def score(self, prompt: object, answer: str | Sequence[int], *, chat: bool = True, top_k: int = 10) -> Trace: ...

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        """``log p(ids[t] | ids[<t])`` for ``t ≥ 1`` with no prompt at all (length ``len(ids) - 1``)."""
        ...


def merged_config(config: GenerationConfig | None, overrides: dict[str, object]) -> GenerationConfig:
    """``config`` (default settings when ``None``) with ``overrides`` applied, validated."""
    from ..config import GenerationConfig

    base = config or GenerationConfig()
    return GenerationConfig(**{**base.model_dump(), **overrides}) if overrides else base


def sample_config(
    *, n: int, temperature: float, top_p: float, seed: int, max_new_tokens: int | None, chat: bool, top_k: int
) -> GenerationConfig:
    """The settings of ``sample``'s answers, with ``n`` and ``temperature`` checked (shared by every backend)."""
    from ..config import GenerationConfig
    from ..errors import UserInputError

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserInputError(f"n (number of samples) must be an integer ≥ 1, got {n!r}")
    if not temperature > 0:
        raise UserInputError(f"sampling needs temperature > 0, got {temperature}")
    fields: dict[str, object] = {"temperature": temperature, "top_p": top_p, "seed": seed, "chat": chat,
                                 "top_k": top_k}
    if max_new_tokens is not None:
        fields["max_new_tokens"] = max_new_tokens
    return GenerationConfig(**fields)
