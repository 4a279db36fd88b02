"""LangChain: confidence on chat-model answers, per model or for every call in a chain.

>>> from langchain_openai import ChatOpenAI
>>> from tokentrust.integrations.langchain import ConfidenceCallback, with_confidence
>>> llm = with_confidence(ChatOpenAI(base_url="http://127.0.0.1:8000/v1", api_key="-", model="smollm2"))
>>> msg = llm.invoke("What is the capital of Australia?")
>>> msg.response_metadata["tokentrust"]         # Annotated JSON: trace, scores, decision (streams too)
>>> chain.invoke(x, config={"callbacks": [ConfidenceCallback(policy="policy.json")]})

``ChatOpenAI`` keeps only known fields of a response, so the proxy's ``tokentrust`` extension would be
lost; :func:`with_confidence` reads it from the raw response before that happens (``tokentrust serve``:
the server's trace and scores, entropy included) and otherwise scores the answer from its ``logprobs``,
which it asks for. :class:`ConfidenceCallback` scores every chat-model call of a chain from what the
answer carries (the extension when :func:`with_confidence` kept it, else ``logprobs``) and can flag or stop
a chain whose answer falls below a threshold. An answer without log-probs passes through unchanged, with
one :class:`~tokentrust.integrations.scoring.NoLogprobsWarning`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any
from uuid import UUID

from ..annotated import Annotated
from ..decide.policy import Policy
from ..errors import TokentrustError, UserInputError
from ..trace import Message, Trace
from .scoring import EstimatorSpecs, PolicyLike, ResponseScorer, missing_library

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, LLMResult
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_library("langchain", "langchain-core", "langchain") from exc

__all__ = ["ConfidenceCallback", "LowConfidenceError", "trace_from_langchain", "with_confidence"]

#: Where an answer's result goes in ``response_metadata`` (and ``generation_info``).
KEY = "tokentrust"
_SERVER = "_tokentrust_server"  # the proxy's raw extension, between the response and the finished result
_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function"}


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content
                   if isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") == "text"))


def as_prompt(messages: Sequence[BaseMessage] | str | None) -> str | list[Message] | None:
    """LangChain messages as the trace's chat prompt (``human`` → ``user``, ``ai`` → ``assistant``)."""
    if messages is None or isinstance(messages, str):
        return messages
    return [Message(role=_ROLES.get(m.type, m.type), content=_text(m)) for m in messages]


def _response(message: BaseMessage, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAI-shaped chat response for ``message`` (its ``logprobs``, and the proxy's extension if kept)."""
    meta = {**message.response_metadata, **(info or {})}
    choice = {"index": 0, "message": {"role": "assistant", "content": _text(message)},
              "logprobs": meta.get("logprobs"), "finish_reason": meta.get("finish_reason")}
    body: dict[str, Any] = {"model": meta.get("model_name") or meta.get("model"), "choices": [choice]}
    server = meta.get(_SERVER) or meta.get(KEY)
    if isinstance(server, Mapping) and "trace" in server:
        body[KEY] = server
    return body


def trace_from_langchain(message: BaseMessage, prompt: Sequence[BaseMessage] | str | None = None) -> Trace:
    """The trace of a LangChain chat answer (an ``AIMessage`` or merged ``AIMessageChunk``s).

    When :func:`with_confidence` kept the proxy's result, its trace (full distribution included); otherwise
    one built from ``response_metadata["logprobs"]`` (black-box: log-probs and top-k alternatives).
    ``prompt`` (the messages sent) is recorded with it.
    """
    body = _response(message)
    if KEY in body:
        return Annotated.model_validate(body[KEY]).trace
    if not body["choices"][0]["logprobs"]:
        raise UserInputError("this message has no log-probs in response_metadata; ask for them with "
                             "ChatOpenAI(logprobs=True, top_logprobs=5) or with_confidence(chat_model)")
    return Trace.from_openai(body, prompt=as_prompt(prompt) or "")


class _Confident:
    """Overrides mixed into a copy of the user's chat model class (see :func:`with_confidence`); the
    instance's ``_tokentrust_scorer`` scores each answer."""

    # -- reading the proxy's extension before ChatOpenAI drops it -------------------------------------
    def _create_chat_result(self, response: Any, generation_info: dict[str, Any] | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)  # type: ignore[misc]
        extra = response if isinstance(response, dict) else (getattr(response, "model_extra", None) or {})
        server = extra.get(KEY)
        if isinstance(server, Mapping) and "trace" in server:
            for gen in result.generations:
                gen.generation_info = {**(gen.generation_info or {}), _SERVER: server}
        return result

    def _convert_chunk_to_generation_chunk(self, chunk: dict[str, Any], *args: Any, **kwargs: Any
                                           ) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(chunk, *args, **kwargs)  # type: ignore[misc]
        server = chunk.get(KEY)
        if gen is not None and isinstance(server, Mapping) and "trace" in server:
            gen.generation_info = {**(gen.generation_info or {}), _SERVER: server}
        return gen

    # -- scoring --------------------------------------------------------------------------------------
    def _tokentrust_finish(self, gen: ChatGeneration, messages: Sequence[BaseMessage], model: Any = None) -> None:
        info = dict(gen.generation_info or {})
        server = info.pop(_SERVER, None)
        if KEY not in info:
            body = _response(gen.message, info)
            body["model"] = body["model"] or model
            if server is not None:
                body[KEY] = server
            result = self._tokentrust_scorer.safely(body, prompt=as_prompt(messages))
            if result is not None:
                info[KEY] = result.to_payload()
        gen.generation_info = info or None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        result = super()._generate(messages, *args, **kwargs)  # type: ignore[misc]
        for gen in result.generations:
            self._tokentrust_finish(gen, messages, (result.llm_output or {}).get("model_name"))
        return result

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        result = await super()._agenerate(messages, *args, **kwargs)  # type: ignore[misc]
        for gen in result.generations:
            self._tokentrust_finish(gen, messages, (result.llm_output or {}).get("model_name"))
        return result

    def _tokentrust_last(self, merged: ChatGenerationChunk | None, server: Any,
                         messages: Sequence[BaseMessage]) -> ChatGenerationChunk | None:
        """The extra last chunk of a stream, carrying the result of the merged answer."""
        if merged is None:
            return None
        info = {k: v for k, v in (merged.generation_info or {}).items() if k != KEY}
        if server is not None:
            info[_SERVER] = server
        final = ChatGeneration(message=merged.message, generation_info=info)
        self._tokentrust_finish(final, messages)
        payload = (final.generation_info or {}).get(KEY)
        if payload is None:
            return None
        return ChatGenerationChunk(message=AIMessageChunk(content=""), generation_info={KEY: payload})

    @staticmethod
    def _tokentrust_take(chunk: ChatGenerationChunk, merged: ChatGenerationChunk | None, server: Any
                         ) -> tuple[ChatGenerationChunk, Any]:
        if chunk.generation_info and _SERVER in chunk.generation_info:
            server = chunk.generation_info.pop(_SERVER)
        return (chunk if merged is None else merged + chunk), server

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        merged, server = None, None
        for chunk in super()._stream(messages, *args, **kwargs):  # type: ignore[misc]
            merged, server = self._tokentrust_take(chunk, merged, server)
            yield chunk
        last = self._tokentrust_last(merged, server, messages)
        if last is not None:
            yield last

    async def _astream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:
        merged, server = None, None
        async for chunk in super()._astream(messages, *args, **kwargs):  # type: ignore[misc]
            merged, server = self._tokentrust_take(chunk, merged, server)
            yield chunk
        last = self._tokentrust_last(merged, server, messages)
        if last is not None:
            yield last


_CLASSES: dict[type, type] = {}


def _confident_class(base: type[BaseChatModel]) -> type[BaseChatModel]:
    if base not in _CLASSES:
        namespace = {"__module__": __name__, "__doc__": f"{base.__name__} whose answers carry tokentrust scores."}
        _CLASSES[base] = type(f"Confident{base.__name__}", (_Confident, base), namespace)
    return _CLASSES[base]


def with_confidence(chat_model: BaseChatModel, estimators: EstimatorSpecs | None = None,
                    policy: PolicyLike | None = None, *, top_logprobs: int = 5) -> BaseChatModel:
    """A copy of ``chat_model`` whose answers carry ``response_metadata["tokentrust"]``: the
    :class:`~tokentrust.Annotated` JSON (trace, scores, decision), the same as the proxy's extension.

    Through ``tokentrust serve`` the proxy's own result is kept (scores named here that it lacks are computed
    on its trace); from any other server the answer is scored from its log-probs, which are asked for
    (``logprobs=True``, ``top_logprobs``) unless the model already sets them. ``estimators``: specs
    computable from log-probs (others are refused here); ``policy``: a :class:`~tokentrust.Policy` or its
    JSON file. Streams end with one extra empty chunk carrying the result.
    """
    if not isinstance(chat_model, BaseChatModel):
        raise TypeError(f"with_confidence() takes a LangChain chat model, got {type(chat_model).__name__}")
    scorer = ResponseScorer(estimators, policy, source=f"with_confidence({type(chat_model).__name__})")
    base = type(chat_model).__mro__[2] if isinstance(chat_model, _Confident) else type(chat_model)
    fields = {name: getattr(chat_model, name) for name in type(chat_model).model_fields}
    if "logprobs" in fields and fields["logprobs"] is None:
        fields["logprobs"] = True
    if "top_logprobs" in fields and fields["top_logprobs"] is None and fields.get("logprobs"):
        fields["top_logprobs"] = top_logprobs
    confident = _confident_class(base).model_construct(_fields_set=set(chat_model.model_fields_set), **fields)
    if chat_model.__pydantic_private__:
        object.__setattr__(confident, "__pydantic_private__", dict(chat_model.__pydantic_private__))
    object.__setattr__(confident, "_tokentrust_scorer", scorer)
    return confident


class LowConfidenceError(TokentrustError):
    """Raised by :class:`ConfidenceCallback` (``stop_below``) to stop a chain at a doubtful answer;
    ``run_id`` names the chat-model call and ``result`` holds its scores and decision."""

    def __init__(self, message: str, *, run_id: UUID, result: Annotated) -> None:
        super().__init__(message)
        self.run_id, self.result = run_id, result


class ConfidenceCallback(BaseCallbackHandler):
    """Scores every chat-model call it sees (``config={"callbacks": [cb]}``): ``results[run_id]`` holds each
    answer's :class:`~tokentrust.Annotated` with its decision under ``policy`` (a
    :class:`~tokentrust.Policy` or its JSON file; default ``Policy()``).

    ``flagged`` lists the run ids whose answer the policy would not give plainly (hedge or abstain).
    ``stop_below``: stop the chain (raise :class:`LowConfidenceError`) when an answer's policy score falls
    below it (e.g. the policy's ``abstain_below``). Answers without log-probs are skipped with one warning.
    """

    def __init__(self, policy: PolicyLike | None = None, estimators: EstimatorSpecs | None = None,
                 stop_below: float | None = None) -> None:
        super().__init__()
        if stop_below is not None and not 0.0 <= stop_below <= 1.0:
            raise UserInputError(f"stop_below must be a probability in [0, 1], got {stop_below!r}")
        self.scorer = ResponseScorer(estimators, policy, source="ConfidenceCallback")
        self.policy = self.scorer.policy or Policy()
        self.stop_below = stop_below
        self.raise_error = stop_below is not None  # LangChain swallows a handler's errors unless this is set
        self.results: dict[UUID, Annotated] = {}
        self.flagged: list[UUID] = []
        self._prompts: dict[UUID, list[Message] | str | None] = {}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *,
                            run_id: UUID, **kwargs: Any) -> None:
        self._prompts[run_id] = as_prompt(messages[0]) if messages else None

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._prompts.pop(run_id, None)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        prompt = self._prompts.pop(run_id, None)
        gen = response.generations[0][0] if response.generations and response.generations[0] else None
        if not isinstance(gen, ChatGeneration):
            return
        body = _response(gen.message, gen.generation_info)
        body["model"] = body["model"] or (response.llm_output or {}).get("model_name")
        result = self.scorer.safely(body, prompt=prompt)
        if result is None:
            return
        if result.decision is None:
            result = result.decided(self.policy)
        self.results[run_id] = result
        decision = result.decision
        if decision is not None and decision.action != "answer":
            self.flagged.append(run_id)
        if self.stop_below is not None and decision is not None and not decision.probability >= self.stop_below:
            value = "undefined" if math.isnan(decision.probability) else f"{decision.probability:.3f}"
            raise LowConfidenceError(f"answer of chat-model run {run_id} has {decision.score} = {value}, below "
                                     f"stop_below={self.stop_below}", run_id=run_id, result=result)

    @property
    def last(self) -> Annotated | None:
        """The result of the most recent scored call."""
        return next(reversed(self.results.values()), None)
