"""OpenAI-compatible routes that add confidence: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

Responses are what official OpenAI clients parse, plus one extension key, ``"tokentrust"``, holding
per-token confidence, token- and sequence-level scores and the recommended action (answer / hedge /
abstain, with the hedged phrasing). Estimators and the answer policy are chosen per request with the
extension parameter ``"tokentrust": {"estimators": [...], "policy": {...}}`` (``extra_body`` in the
``openai`` client). ``temperature`` defaults to 0 (greedy). Streaming sends server-sent events: one chunk
per token, each carrying ``tokentrust.tokens``, and a final chunk carrying the whole extension.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..annotated import DEFAULT_ESTIMATORS, Annotated, annotate, resolve_estimators
from ..capability import Capability, check_compatible
from ..config import GenerationConfig
from ..errors import TokentrustError
from ..estimators.base import Estimator, build_estimator
from ..openai_format import UNKNOWN_ID, TokenEntry, choice_entries, trace_from_choice
from ..scores import Level
from ..trace import Message, Trace
from .app import APIError, ServeState, api_error_from
from .policy import Policy
from .upstream import UpstreamError

_UPSTREAM_CAPS = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS})


def state_of(request: Request) -> ServeState:
    return request.app.state.tt


def require_key(request: Request) -> None:
    state_of(request).check_key(request)


router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


# ---- request bodies ---------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyOptions(_Strict):
    """Per-request answer policy: which probability-valued sequence score decides, and its thresholds."""

    score: str | None = None
    hedge_below: float | None = Field(None, ge=0, le=1)
    abstain_below: float | None = Field(None, ge=0, le=1)


class TokentrustOptions(_Strict):
    """The extension parameter: estimator specs (``name:key=value``) and the answer policy."""

    estimators: list[str] | None = None
    policy: PolicyOptions | None = None


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class _Common(_Strict):
    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: Literal[1] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: Literal[0] | None = None
    frequency_penalty: Literal[0] | None = None
    stop: None = None
    tokentrust: TokentrustOptions | None = None


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)


class CompletionRequest(_Common):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: Literal[False] | None = None


async def parse_body(request: Request, model: type[_Strict]) -> Any:
    """The JSON body validated against ``model``; every problem is a 400 in OpenAI's error shape."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise APIError(400, f"request body must be a JSON object, got {type(data).__name__}", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise APIError(400, f"unrecognized request argument supplied: {param}", param=param,
                           code="unknown_parameter") from None
        if err["type"] == "missing":
            raise APIError(400, f"missing required parameter: {param}", param=param,
                           code="missing_required_parameter") from None
        unsupported = {"n": "only n=1 is supported", "stop": "stop sequences are not supported",
                       "presence_penalty": "only 0 is supported", "frequency_penalty": "only 0 is supported",
                       "echo": "echo is not supported"}
        detail = unsupported.get(param) or err["msg"]
        raise APIError(400, f"invalid value for {param}: {detail} (got {err.get('input')!r})", param=param,
                       code="invalid_value") from None


# ---- planning a request ------------------------------------------------------------------------------
def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def plan(state: ServeState, opts: TokentrustOptions | None) -> tuple[list[Estimator], Policy]:
    """Estimators to run and the policy for one request (defaults from the server); checked before any work."""
    policy = state.policy
    if opts is not None and opts.policy is not None:
        changes = {k: v for k, v in opts.policy.model_dump().items() if v is not None}
        policy = replace(policy, **changes)
    specs = opts.estimators if opts is not None and opts.estimators is not None else None
    if specs is None:
        specs = list(DEFAULT_ESTIMATORS)
        if state.upstream is not None:
            specs = [s for s in specs if build_estimator(s).requires <= _UPSTREAM_CAPS]
    chosen = resolve_estimators(specs)
    decider = build_estimator(policy.score)
    if decider.level is not Level.SEQUENCE or not decider.is_probability:
        raise APIError(400, f"policy score {policy.score!r} must be a sequence-level probability "
                       "(e.g. geometric_mean_token_probability, maximum_sequence_probability)",
                       param="tokentrust.policy.score", code="invalid_value")
    if decider not in chosen:
        chosen.append(decider)
    if state.backend is not None:
        check_compatible(chosen, state.backend)
    else:
        bad = [f"{e.id} needs {', '.join(sorted(c.value for c in e.requires - _UPSTREAM_CAPS))}"
               for e in chosen if not e.requires <= _UPSTREAM_CAPS]
        if bad:
            raise APIError(400, f"{'; '.join(bad)} — an upstream server gives only logprobs and top_logprobs",
                           param="tokentrust.estimators", code="estimator_not_supported")
    return chosen, replace(policy, score=decider.id)


def _max_tokens(state: ServeState, *values: int | None) -> int:
    given = next((v for v in values if v is not None), None)
    if given is None:
        return state.limits.default_max_tokens
    if given > state.limits.max_tokens:
        raise APIError(400, f"max_tokens is {given}; this server allows at most {state.limits.max_tokens}",
                       param="max_tokens", code="invalid_value")
    return given


def _config(state: ServeState, req: _Common, max_tokens: int, *, chat: bool) -> GenerationConfig:
    return GenerationConfig(
        max_new_tokens=max_tokens, temperature=req.temperature or 0.0, top_p=req.top_p or 1.0, seed=req.seed,
        top_k=state.limits.top_k, chat=chat,
    )


def _messages(req: ChatRequest) -> list[Message]:
    return [
        Message(role="system" if m.role == "developer" else m.role,
                content=m.content if isinstance(m.content, str) else "".join(p.text for p in m.content))
        for m in req.messages
    ]


def _prompt(req: CompletionRequest) -> str:
    if isinstance(req.prompt, list):
        if len(req.prompt) != 1:
            raise APIError(400, f"prompt must be one string (got a list of {len(req.prompt)})", param="prompt",
                           code="invalid_value")
        return req.prompt[0]
    return req.prompt


# ---- the extension -----------------------------------------------------------------------------------
def token_record(trace: Trace, i: int) -> dict[str, Any]:
    """One token of a trace as shown to clients: text, probability, entropy, alternatives."""
    start, end = trace.offsets[i]
    tid = trace.token_ids[i]
    return {
        "index": i,
        "id": tid if tid != UNKNOWN_ID else None,
        "token": trace.tokens[i],
        "text": trace.text[start:end],
        "special": trace.special[i],
        "logprob": _num(trace.logprobs[i]),
        "prob": _num(math.exp(trace.logprobs[i])),
        "entropy": _num(trace.entropy[i]) if trace.entropy is not None else None,
        "top": [
            {"id": a if a != UNKNOWN_ID else None, "token": t, "logprob": _num(lp)}
            for a, t, lp in zip(trace.top_ids[i], trace.top_tokens[i], trace.top_logprobs[i])
        ],
    }


def _streamed_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A backend stream record in the shape of :func:`token_record`."""
    return {
        "index": rec["index"], "id": rec["id"], "token": rec["token"], "text": rec["piece"],
        "special": rec["special"], "logprob": _num(rec["logprob"]), "prob": _num(math.exp(rec["logprob"])),
        "entropy": _num(rec["entropy"]),
        "top": [{"id": a, "token": t, "logprob": _num(lp)}
                for a, t, lp in zip(rec["top_ids"], rec["top_tokens"], rec["top_logprobs"])],
    }


def _upstream_record(index: int, entry: TokenEntry) -> dict[str, Any]:
    """A streamed upstream token; the final trace (built from the whole text) has the exact spans."""
    return {
        "index": index, "id": entry.token_id if entry.token_id != UNKNOWN_ID else None, "token": entry.token,
        "text": entry.token, "special": False, "logprob": _num(entry.logprob), "prob": _num(math.exp(entry.logprob)),
        "entropy": None,
        "top": [{"id": i if i != UNKNOWN_ID else None, "token": t, "logprob": _num(lp)} for t, lp, i in entry.top],
    }


def extension(result: Annotated, policy: Policy) -> dict[str, Any]:
    """The ``tokentrust`` key: tokens, token-level scores, sequence-level scores and the recommended action."""
    trace = result.trace
    token_scores = {
        s.estimator: {"is_probability": s.is_probability, "values": [_num(v) for v in s.values]}
        for s in result.scores if s.level is Level.TOKEN
    }
    sequence_scores = {
        s.estimator: {"value": _num(s.value), "raw": _num(s.raw[0]), "is_probability": s.is_probability}
        for s in result.sequence_scores
    }
    decision = policy.decide(result[policy.score].value, trace.text)
    return {
        "model": trace.model_id,
        "finish_reason": trace.finish_reason,
        "tokens": [token_record(trace, i) for i in range(len(trace))],
        "token_scores": token_scores,
        "sequence_scores": sequence_scores,
        "action": decision.to_dict(),
    }


def _chat_logprobs(tokens: list[dict[str, Any]], n: int) -> dict[str, Any]:
    return {
        "content": [
            {"token": t["token"], "logprob": t["logprob"], "bytes": list(t["token"].encode()),
             "top_logprobs": [{"token": a["token"], "logprob": a["logprob"], "bytes": list(a["token"].encode())}
                              for a in t["top"][:n]]}
            for t in tokens if not t["special"]
        ],
        "refusal": None,
    }


def _completion_logprobs(tokens: list[dict[str, Any]], n: int, offset: int = 0) -> dict[str, Any]:
    visible = [t for t in tokens if not t["special"]]
    offsets, pos = [], offset
    for t in visible:
        offsets.append(pos)
        pos += len(t["text"])
    return {
        "tokens": [t["token"] for t in visible],
        "token_logprobs": [t["logprob"] for t in visible],
        "top_logprobs": [{a["token"]: a["logprob"] for a in t["top"][:n]} for t in visible],
        "text_offset": offsets,
    }


# ---- answering ---------------------------------------------------------------------------------------
class Job:
    """One request, in-process or upstream: what to ask, how, and what to score it with."""

    def __init__(self, state: ServeState, *, chat: bool, prompt: str | list[Message], cfg: GenerationConfig,
                 estimators: list[Estimator], policy: Policy) -> None:
        self.state, self.chat, self.prompt, self.cfg = state, chat, prompt, cfg
        self.estimators, self.policy = estimators, policy
        self.prompt_tokens = 0
        self.usage: dict[str, Any] | None = None

    # in-process ------------------------------------------------------------------------------------
    def _prompt_arg(self) -> Any:
        return self.prompt if isinstance(self.prompt, str) else [m.model_dump() for m in self.prompt]

    def check_prompt(self) -> None:
        """Fail early (400) on prompts the model cannot take, before a stream starts."""
        if self.state.backend is not None:
            self.prompt_tokens = len(self.state.backend.render(self._prompt_arg(), chat=self.chat)[2])

    def run_blocking(self) -> Annotated:
        backend = self.state.backend
        trace = backend.generate(self._prompt_arg(), self.cfg)
        return annotate(trace, self.estimators, backend=backend)

    def stream_blocking(self) -> Iterator[tuple[str, Any]]:
        backend = self.state.backend
        trace = None
        for item in backend.stream(self._prompt_arg(), self.cfg):
            if isinstance(item, dict):
                rec = _streamed_record(item)
                yield "piece", (rec["text"], [rec])
            else:
                trace = item
        assert trace is not None
        yield "done", annotate(trace, self.estimators, backend=backend)

    # upstream --------------------------------------------------------------------------------------
    def upstream_body(self) -> tuple[str, dict[str, Any]]:
        up = self.state.upstream
        assert up is not None
        body: dict[str, Any] = {"model": up.model, "max_tokens": self.cfg.max_new_tokens,
                                "temperature": self.cfg.temperature, "top_p": self.cfg.top_p}
        if self.cfg.seed is not None:
            body["seed"] = self.cfg.seed
        if self.chat:
            body.update(messages=[m.model_dump() for m in self.prompt], logprobs=True,  # type: ignore[union-attr]
                        top_logprobs=min(self.cfg.top_k, 20))
            return "/chat/completions", body
        body.update(prompt=self.prompt, logprobs=min(self.cfg.top_k, 5))
        return "/completions", body

    @staticmethod
    def _entries(choice: dict[str, Any]) -> list[TokenEntry] | None:
        try:
            return choice_entries(choice)
        except (TokentrustError, AttributeError, TypeError, ValueError) as exc:
            raise UpstreamError(f"upstream server sent logprobs in an unexpected format: {exc}") from None

    def _annotate_upstream(self, text: str, entries: list[TokenEntry], finish: str | None) -> Annotated:
        trace = trace_from_choice({}, prompt=self.prompt, model_id=self.state.model_id, config=self.cfg, text=text,
                                  entries=entries, finish_reason=finish or "stop")
        return annotate(trace, self.estimators)

    async def run_upstream(self) -> Annotated:
        assert self.state.upstream is not None
        path, body = self.upstream_body()
        data = await self.state.upstream.post(path, body)
        try:
            choice = data["choices"][0]
            text = (choice["message"]["content"] if self.chat else choice["text"]) or ""
        except (KeyError, IndexError, TypeError):
            raise UpstreamError(f"upstream server sent an unexpected response: {str(data)[:300]}") from None
        entries = self._entries(choice)
        if entries is None:
            raise UpstreamError("upstream server answered without logprobs; it must support logprobs/top_logprobs")
        self.usage = data.get("usage")
        return self._annotate_upstream(text, entries, choice.get("finish_reason"))

    async def stream_upstream(self) -> AsyncIterator[tuple[str, Any]]:
        assert self.state.upstream is not None
        path, body = self.upstream_body()
        if self.chat:
            body["stream_options"] = {"include_usage": True}
        chunks = self.state.upstream.stream(path, body)
        first = await anext(chunks, None)  # connection errors surface here, before any byte is sent
        return self._upstream_events(first, chunks)

    async def _upstream_events(self, first: dict[str, Any] | None, chunks: AsyncIterator[dict[str, Any]]
                               ) -> AsyncIterator[tuple[str, Any]]:
        text, finish = "", None
        entries: list[TokenEntry] = []

        async def all_chunks() -> AsyncIterator[dict[str, Any]]:
            if first is not None:
                yield first
            async for c in chunks:
                yield c

        async for chunk in all_chunks():
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            if "error" in chunk:
                raise UpstreamError(f"upstream server failed mid-stream: {chunk['error']}")
            for choice in chunk.get("choices") or []:
                piece = ((choice.get("delta") or {}).get("content") if self.chat else choice.get("text")) or ""
                new = self._entries(choice) or []
                finish = choice.get("finish_reason") or finish
                if piece or new:
                    recs = [_upstream_record(len(entries) + j, e) for j, e in enumerate(new)]
                    entries.extend(new)
                    text += piece
                    yield "piece", (piece, recs)
        if text and not entries:
            raise UpstreamError("upstream server streamed without logprobs; it must support logprobs/top_logprobs")
        yield "done", self._annotate_upstream(text, entries, finish)

    # either ----------------------------------------------------------------------------------------
    async def result(self) -> Annotated:
        if self.state.upstream is not None:
            return await self.run_upstream()
        return await self.state.run_locked(self.run_blocking)

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        if self.state.upstream is not None:
            return await self.stream_upstream()
        return self.state.iterate_locked(self.stream_blocking)

    def usage_dict(self, completion_tokens: int) -> dict[str, int]:
        if self.usage and "prompt_tokens" in self.usage:
            prompt = int(self.usage["prompt_tokens"])
        else:
            prompt = self.prompt_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens}


def _finish(trace: Trace) -> str:
    return "length" if trace.finish_reason == "length" else "stop"


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _sse_stream(job: Job, events: AsyncIterator[tuple[str, Any]], *, rid: str, created: int, chat: bool,
                      logprobs_n: int | None, include_usage: bool) -> AsyncIterator[str]:
    obj = "chat.completion.chunk" if chat else "text_completion"
    model = job.state.model_id

    def chunk(choice: dict[str, Any], **extra: Any) -> str:
        return _sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [choice], **extra})

    if chat:
        yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                     "finish_reason": None})
    pos = 0
    try:
        async for kind, item in events:
            if kind == "piece":
                piece, recs = item
                lp = None
                if logprobs_n is not None:
                    lp = _chat_logprobs(recs, logprobs_n) if chat else _completion_logprobs(recs, logprobs_n, pos)
                pos += len(piece)
                body = {"delta": {"content": piece}} if chat else {"text": piece}
                yield chunk({"index": 0, **body, "logprobs": lp, "finish_reason": None},
                            tokentrust={"tokens": recs})
            else:
                result: Annotated = item
                body = {"delta": {}} if chat else {"text": ""}
                yield chunk({"index": 0, **body, "logprobs": None, "finish_reason": _finish(result.trace)},
                            tokentrust=extension(result, job.policy))
                if include_usage:
                    yield _sse({"id": rid, "object": obj, "created": created, "model": model, "choices": [],
                                "usage": job.usage_dict(len(result.trace))})
    except Exception as exc:  # noqa: BLE001 — headers are sent: report in-band, as OpenAI does
        yield _sse(api_error_from(exc).body())
    yield "data: [DONE]\n\n"


async def _answer(request: Request, req: _Common, job: Job, *, chat: bool, logprobs_n: int | None) -> Any:
    rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    if req.stream:
        events = await job.events()
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            _sse_stream(job, events, rid=rid, created=created, chat=chat, logprobs_n=logprobs_n,
                        include_usage=include_usage),
            media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    result = await job.result()
    ext = extension(result, job.policy)
    lp = None
    if logprobs_n is not None:
        lp = _chat_logprobs(ext["tokens"], logprobs_n) if chat else _completion_logprobs(ext["tokens"], logprobs_n)
    text = result.trace.text
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                  "logprobs": lp, "finish_reason": _finish(result.trace)}
    else:
        choice = {"index": 0, "text": text, "logprobs": lp, "finish_reason": _finish(result.trace)}
    return JSONResponse({
        "id": rid, "object": "chat.completion" if chat else "text_completion", "created": created,
        "model": job.state.model_id, "choices": [choice], "usage": job.usage_dict(len(result.trace)),
        "tokentrust": ext,
    })


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Any:
    """OpenAI chat completions, with the ``tokentrust`` extension."""
    state = state_of(request)
    req: ChatRequest = await parse_body(request, ChatRequest)
    estimators, policy = plan(state, req.tokentrust)
    max_tokens = _max_tokens(state, req.max_completion_tokens, req.max_tokens)
    job = Job(state, chat=True, prompt=_messages(req), cfg=_config(state, req, max_tokens, chat=True),
              estimators=estimators, policy=policy)
    job.check_prompt()
    logprobs_n = (req.top_logprobs or 0) if req.logprobs else None
    return await _answer(request, req, job, chat=True, logprobs_n=logprobs_n)


@router.post("/completions")
async def completions(request: Request) -> Any:
    """OpenAI (legacy) text completions on the raw prompt, no chat template, with the ``tokentrust`` extension."""
    state = state_of(request)
    req: CompletionRequest = await parse_body(request, CompletionRequest)
    estimators, policy = plan(state, req.tokentrust)
    max_tokens = _max_tokens(state, req.max_tokens)
    prompt = _prompt(req)
    if not prompt.strip():
        raise APIError(400, "prompt is empty", param="prompt", code="invalid_value")
    job = Job(state, chat=False, prompt=prompt, cfg=_config(state, req, max_tokens, chat=False),
              estimators=estimators, policy=policy)
    job.check_prompt()
    return await _answer(request, req, job, chat=False, logprobs_n=req.logprobs)


def _model_card(state: ServeState) -> dict[str, Any]:
    return {"id": state.model_id, "object": "model", "created": state.created, "owned_by": "tokentrust"}


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    """The one model this server answers with."""
    return {"object": "list", "data": [_model_card(state_of(request))]}


@router.get("/models/{model_id:path}")
async def model(request: Request, model_id: str) -> dict[str, Any]:
    state = state_of(request)
    if model_id != state.model_id:
        raise APIError(404, f"model {model_id!r} not found; this server serves {state.model_id!r}",
                       param="model", code="model_not_found")
    return _model_card(state)
