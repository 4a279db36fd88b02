"""``wrap(client)``: an OpenAI SDK client (sync or async) that asks for log-probs and scores every answer.

>>> import tokentrust as tt
>>> from openai import OpenAI
>>> client = tt.openai.wrap(OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-"), estimators=["msp"])
>>> reply = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}])
>>> reply.tokentrust["msp"].value                  # the Annotated result, with its decision

``chat.completions.create`` and ``completions.create`` get ``logprobs``/``top_logprobs`` unless the caller set
them; the response comes back unchanged but for a ``tokentrust`` attribute (an
:class:`~tokentrust.Annotated`, or ``None`` when the server gave no log-probs). A stream yields its chunks
unchanged and sets ``.tokentrust`` once it ends (chunks merged, then scored). Everything else on the client
passes through. Routes and what each carries: :mod:`tokentrust.integrations.scoring`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from typing_extensions import Self

from ..annotated import Annotated
from .scoring import EstimatorSpecs, PolicyLike, ResponseScorer, merge_stream

try:
    import openai
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError("tokentrust.openai needs the openai package: pip install openai") from exc

__all__ = ["DEFAULT_TOP_LOGPROBS", "AsyncScoredStream", "ScoredStream", "WrappedClient", "wrap"]

#: Alternatives asked for per token when the caller names none (OpenAI allows up to 20).
DEFAULT_TOP_LOGPROBS = 5


def wrap(client: openai.OpenAI | openai.AsyncOpenAI, estimators: EstimatorSpecs | None = None,
         policy: PolicyLike | None = None, *, top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> WrappedClient:
    """``client`` with scored chat and completions calls. ``estimators``: specs computable from log-probs
    (default: the default scores that log-probs allow); ``policy``: a :class:`~tokentrust.Policy` or its JSON
    file, deciding answer / hedge / abstain (default ``Policy()``, or the proxy's own decision)."""
    if not isinstance(client, openai.OpenAI | openai.AsyncOpenAI):
        raise TypeError(f"wrap() takes an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
    if not 0 <= top_logprobs <= 20:
        raise ValueError(f"top_logprobs must be in [0, 20], got {top_logprobs}")
    scorer = ResponseScorer(estimators, policy, source=f"tokentrust.openai.wrap({type(client).__name__})")
    return WrappedClient(client, scorer, top_logprobs)


class _Delegate:
    """Passes every attribute it does not define through to the wrapped object."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class WrappedClient(_Delegate):
    """The client of :func:`wrap`: ``chat.completions`` and ``completions`` scored, the rest unchanged."""

    def __init__(self, client: Any, scorer: ResponseScorer, top_logprobs: int) -> None:
        super().__init__(client)
        self.scorer = scorer
        is_async = isinstance(client, openai.AsyncOpenAI)
        self.chat = _Chat(client.chat, _Create(client.chat.completions, scorer, top_logprobs, True, is_async))
        self.completions = _Create(client.completions, scorer, top_logprobs, False, is_async)


class _Chat(_Delegate):
    def __init__(self, chat: Any, completions: _Create) -> None:
        super().__init__(chat)
        self.completions = completions


class _Create(_Delegate):
    """``create`` of one resource: log-probs asked for, the answer scored (sync or async)."""

    def __init__(self, resource: Any, scorer: ResponseScorer, top_logprobs: int, chat: bool, is_async: bool) -> None:
        super().__init__(resource)
        self.scorer, self.top_logprobs, self.chat, self.is_async = scorer, top_logprobs, chat, is_async

    def _request(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.chat:
            kwargs.setdefault("logprobs", True)
            if kwargs["logprobs"] and kwargs.get("top_logprobs") is None:
                kwargs["top_logprobs"] = self.top_logprobs
        elif kwargs.get("logprobs") is None:
            kwargs["logprobs"] = self.top_logprobs
        return kwargs

    def create(self, **kwargs: Any) -> Any:
        request = self._request(kwargs)
        if self.is_async:
            return self._acreate(request)
        response = self._inner.create(**request)
        if request.get("stream"):
            return ScoredStream(response, self.scorer, request)
        return attach(response, self.scorer.safely(response.model_dump(), request=request))

    async def _acreate(self, request: dict[str, Any]) -> Any:
        response = await self._inner.create(**request)
        if request.get("stream"):
            return AsyncScoredStream(response, self.scorer, request)
        return attach(response, self.scorer.safely(response.model_dump(), request=request))


def attach(response: Any, result: Annotated | None) -> Any:
    """``response`` with ``.tokentrust`` set to ``result`` (the SDK's models keep unknown attributes)."""
    response.tokentrust = result
    return response


class ScoredStream(_Delegate):
    """A sync stream: yields the SDK's chunks unchanged; ``tokentrust`` is set when the stream ends."""

    def __init__(self, stream: Any, scorer: ResponseScorer, request: dict[str, Any]) -> None:
        super().__init__(stream)
        self.scorer, self.request = scorer, request
        self.chunks: list[dict[str, Any]] = []
        self.tokentrust: Annotated | None = None
        self._chunks = self._scored()

    def _scored(self) -> Iterator[Any]:
        for chunk in self._inner:
            self.chunks.append(chunk.model_dump())
            yield chunk
        self.tokentrust = self.scorer.safely(merge_stream(self.chunks), request=self.request)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return next(self._chunks)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


class AsyncScoredStream(_Delegate):
    """An async stream: yields the SDK's chunks unchanged; ``tokentrust`` is set when the stream ends."""

    def __init__(self, stream: Any, scorer: ResponseScorer, request: dict[str, Any]) -> None:
        super().__init__(stream)
        self.scorer, self.request = scorer, request
        self.chunks: list[dict[str, Any]] = []
        self.tokentrust: Annotated | None = None
        self._chunks = self._scored()

    async def _scored(self) -> AsyncIterator[Any]:
        async for chunk in self._inner:
            self.chunks.append(chunk.model_dump())
            yield chunk
        self.tokentrust = self.scorer.safely(merge_stream(self.chunks), request=self.request)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        return await anext(self._chunks)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.close()
