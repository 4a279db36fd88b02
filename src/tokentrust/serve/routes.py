"""OpenAI-compatible routes that add confidence: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

Responses are what official OpenAI clients parse, plus one extension key, ``"tokentrust"``: the
:class:`~tokentrust.Annotated` JSON of the answer (its trace, every score, and the decision: answer /
hedge / abstain with the phrasing), loadable with ``Annotated.model_validate``. Streaming sends server-sent
events: one chunk per token whose ``tokentrust.tokens`` holds that token's
:class:`~tokentrust.trace.TokenRecord`, then a last chunk (with ``finish_reason``) carrying the whole
``Annotated``. ``temperature`` defaults to 0 (greedy). The routes only call the Backend protocol, so they
work the same over an in-process model (behind the batching scheduler), a server, or recorded traces.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from ..annotated import Annotated, annotate
from ..capability import Capability
from ..config import GenerationConfig
from ..estimators.base import Estimator
from ..openai_format import chat_logprobs, completion_logprobs
from ..trace import Message, TokenRecord, Trace
from .cascade import answer_trace
from .errors import APIError, api_error_from
from .planning import Rule, chat_prompt, completion_prompt, generation_config, max_tokens, plan
from .schemas import ChatRequest, Common, CompletionRequest, parse_body
from .state import ServeState, require_key, state_of

router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


def scored(backend: Any, trace: Trace, estimators: list[Estimator], rule: Rule) -> Annotated:
    """The answer with its scores and the decision (the ``tokentrust`` extension); with a calibrator, its
    probability is among the scores (``calibrated_confidence``). An answer without a single token record
    from a backend that gives log-probs (a server answering in another shape) cannot be scored: 502."""
    if not len(trace) and Capability.LOGPROBS in backend.capabilities:
        raise APIError(502, f"{trace.model_id} answered without any token (text {trace.text[:80]!r}); there is "
                       "nothing to score", type="upstream_error", code="upstream_unusable")
    return annotate(trace, estimators, backend=backend).decided(rule.policy, rule.calibrator)


def _stream_then_score(backend: Any, prompt: str | list[Message], cfg: GenerationConfig,
                       estimators: list[Estimator], policy: Rule) -> Iterator[TokenRecord | Annotated]:
    trace = None
    for item in backend.stream(prompt, cfg):
        if isinstance(item, Trace):
            trace = item
        else:
            yield item
    if trace is None:
        raise RuntimeError(f"{backend!r}.stream ended without a trace")
    yield scored(backend, trace, estimators, policy)


class Reply:
    """One request: the prompt, its settings and scores, and how to write the OpenAI-shaped answer."""

    def __init__(self, state: ServeState, req: Common, prompt: str | list[Message], cfg: GenerationConfig,
                 estimators: list[Estimator], policy: Rule, *, chat: bool, logprobs_n: int | None) -> None:
        self.state, self.req, self.prompt, self.cfg = state, req, prompt, cfg
        self.estimators, self.policy, self.chat, self.logprobs_n = estimators, policy, chat, logprobs_n
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.prompt_tokens: int | None = None

    @property
    def object(self) -> str:
        return "chat.completion" if self.chat else "text_completion"

    def usage(self, trace: Trace) -> dict[str, int]:
        prompt = trace.prompt_tokens if trace.prompt_tokens is not None else self.prompt_tokens or 0
        return {"prompt_tokens": prompt, "completion_tokens": len(trace), "total_tokens": prompt + len(trace)}

    def logprobs(self, records: list[TokenRecord], offset: int = 0) -> dict[str, Any] | None:
        if self.logprobs_n is None:
            return None
        return chat_logprobs(records, self.logprobs_n) if self.chat else completion_logprobs(
            records, self.logprobs_n, offset)

    async def prepare(self) -> None:
        """Refuse what the backend cannot take (prompt too long, streaming unsupported) before any answer."""
        backend = self.state.backend
        rendered = await self.state.run(lambda: backend.render(self.prompt, chat=self.chat))
        self.prompt_tokens = rendered.n_tokens
        if self.req.stream and Capability.STREAMING not in backend.capabilities:
            raise APIError(400, f"{self.state.name} cannot stream answers; send stream=false", param="stream",
                           code="streaming_not_supported")

    # ---- not streamed ----------------------------------------------------------------------------------
    async def complete(self) -> JSONResponse:
        backend, cascade = self.state.backend, self.state.cascade
        result = await self.state.run(
            lambda: cascade.answer(backend, self.prompt, self.cfg, self.estimators, self.policy) if cascade else
            scored(backend, backend.generate(self.prompt, self.cfg), self.estimators, self.policy))
        self.state.answered(result, self.usage(result.trace)["prompt_tokens"])
        trace = answer_trace(result)  # the large model's when the cascade deferred
        lp = self.logprobs(trace.records())
        finish = "length" if trace.finish_reason == "length" else "stop"
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": trace.text, "refusal": None},
                      "logprobs": lp, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": trace.text, "logprobs": lp, "finish_reason": finish}
        return JSONResponse({
            "id": self.id, "object": self.object, "created": self.created, "model": self.state.name,
            "choices": [choice], "usage": self.usage(trace), "tokentrust": result.to_payload(),
        })

    # ---- streamed ----------------------------------------------------------------------------------------
    async def stream(self) -> StreamingResponse:
        backend, cascade = self.state.backend, self.state.cascade
        events = self.state.iterate(
            lambda: cascade.stream(backend, self.prompt, self.cfg, self.estimators, self.policy) if cascade else
            _stream_then_score(backend, self.prompt, self.cfg, self.estimators, self.policy))
        try:
            first = await anext(events)  # errors before the first token become HTTP errors, not a broken stream
        except BaseException:
            await events.aclose()
            raise
        return StreamingResponse(self._sse(first, events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _chunk(self, choice: dict[str, Any] | None, **extra: Any) -> str:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        body = {"id": self.id, "object": obj, "created": self.created, "model": self.state.name,
                "choices": [choice] if choice is not None else [], **extra}
        return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"

    def _piece(self, text: str) -> dict[str, Any]:
        return {"delta": {"content": text}} if self.chat else {"text": text}

    async def _sse(self, first: TokenRecord | Annotated, events: AsyncIterator[Any]) -> AsyncIterator[str]:
        if self.chat:
            yield self._chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                               "finish_reason": None})
        sent = 0  # characters of the answer streamed so far
        try:
            item = first
            while True:
                if isinstance(item, TokenRecord):
                    lp = self.logprobs([item], sent)
                    sent += len(item.text)
                    yield self._chunk({"index": 0, **self._piece(item.text), "logprobs": lp, "finish_reason": None},
                                      tokentrust={"tokens": [item.to_payload()]})
                else:
                    self.state.answered(item, self.usage(item.trace)["prompt_tokens"])
                    trace = answer_trace(item)
                    finish = "length" if trace.finish_reason == "length" else "stop"
                    yield self._chunk({"index": 0, **self._piece(trace.text[sent:]), "logprobs": None,
                                       "finish_reason": finish}, tokentrust=item.to_payload())
                    if self.req.stream_options and self.req.stream_options.include_usage:
                        yield self._chunk(None, usage=self.usage(trace))
                try:
                    item = await anext(events)
                except StopAsyncIteration:
                    break
        except Exception as exc:  # noqa: BLE001 — headers are sent: report in-band, as OpenAI does
            yield f"data: {json.dumps(api_error_from(exc).body())}\n\n"
        finally:
            await events.aclose()
        yield "data: [DONE]\n\n"


async def _answer(reply: Reply) -> Any:
    await reply.prepare()
    return await (reply.stream() if reply.req.stream else reply.complete())


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Any:
    """OpenAI chat completions, with the ``tokentrust`` extension."""
    state = state_of(request)
    req: ChatRequest = await parse_body(request, ChatRequest)
    tokens = max_tokens(state, req.max_completion_tokens, req.max_tokens)
    estimators, policy = await state.run(lambda: plan(state, req.tokentrust, tokens))
    logprobs_n = (req.top_logprobs or 0) if req.logprobs else None
    return await _answer(Reply(state, req, chat_prompt(req), generation_config(state, req, tokens, chat=True),
                               estimators, policy, chat=True, logprobs_n=logprobs_n))


@router.post("/completions")
async def completions(request: Request) -> Any:
    """OpenAI (legacy) text completions on the raw prompt, no chat template, with the ``tokentrust`` extension."""
    state = state_of(request)
    req: CompletionRequest = await parse_body(request, CompletionRequest)
    tokens = max_tokens(state, req.max_tokens)
    estimators, policy = await state.run(lambda: plan(state, req.tokentrust, tokens))
    return await _answer(Reply(state, req, completion_prompt(req), generation_config(state, req, tokens, chat=False),
                               estimators, policy, chat=False, logprobs_n=req.logprobs))


def _model_card(state: ServeState) -> dict[str, Any]:
    return {"id": state.name, "object": "model", "created": state.created, "owned_by": "tokentrust"}


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    """The one model this server answers with."""
    return {"object": "list", "data": [_model_card(state_of(request))]}


@router.get("/models/{model_id:path}")
async def model(request: Request, model_id: str) -> dict[str, Any]:
    state = state_of(request)
    if model_id != state.name:
        raise APIError(404, f"model {model_id!r} not found; this server serves {state.name!r}",
                       param="model", code="model_not_found")
    return _model_card(state)
