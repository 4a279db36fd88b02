"""The FastAPI application: one web page and an OpenAI-compatible API that adds confidence to answers.

Safety defaults: an optional bearer key checked on every API route (``/v1/*``, ``/api/*``, ``/runs/*``),
a request body size limit, a ``max_tokens`` limit, and every error in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` — never a traceback.

Concurrency: the in-process model runs one request at a time. Every generation (streamed or not) and
the scoring that follows it hold one ``threading.Lock``; other requests wait their turn (first come,
first served). Serialising keeps results bit-identical to ``backend.generate`` — batching requests of
different lengths would change padding and numerics — and on a CPU a single 135M-parameter model
already uses all cores for one request. Upstream requests do not take the lock: the upstream server
schedules its own work.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CapabilityError, ContextLengthError, TokentrustError, UnknownNameError
from .policy import Policy
from .upstream import Upstream, UpstreamError

log = logging.getLogger("tokentrust.serve")
T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Per-request limits: body size in bytes, answer length in tokens, alternatives per token."""

    max_body_bytes: int = 1_000_000
    max_tokens: int = 512
    default_max_tokens: int = 128
    top_k: int = 10  # alternatives recorded per token (an upstream gives at most 20)


class APIError(Exception):
    """An error answered in OpenAI's shape with the given HTTP status."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def api_error_from(exc: Exception) -> APIError:
    """Map tokentrust and upstream errors onto HTTP statuses."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, UpstreamError):
        return APIError(exc.status, str(exc), type="upstream_error",
                        code="upstream_unavailable" if exc.status == 502 else "upstream_rejected")
    if isinstance(exc, ContextLengthError):
        return APIError(400, str(exc), code="context_length_exceeded")
    if isinstance(exc, UnknownNameError):
        return APIError(400, str(exc), param="tokentrust.estimators", code="unknown_estimator")
    if isinstance(exc, CapabilityError):
        return APIError(400, str(exc), param="tokentrust.estimators", code="estimator_not_supported")
    if isinstance(exc, TokentrustError):
        return APIError(400, str(exc), code="invalid_value")
    log.exception("internal error", exc_info=exc)
    return APIError(500, f"internal server error ({type(exc).__name__}); see the server log", type="server_error")


@dataclass
class ServeState:
    """Everything the routes share: where answers come from, limits, the answer policy and the model lock."""

    backend: Any | None
    upstream: Upstream | None
    model_id: str
    api_key: str | None
    runs_dir: Path
    limits: Limits
    policy: Policy
    created: int = field(default_factory=lambda: int(time.time()))
    lock: threading.Lock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = model_lock(self.backend)

    def check_key(self, request: Request) -> None:
        """Accept ``Authorization: Bearer <key>`` (or the web page's ``tt_key`` cookie) when a key is set."""
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get("tt_key", "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise APIError(401, "missing or incorrect API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    async def run_locked(self, fn: Callable[[], T]) -> T:
        """Run blocking model work in a worker thread, one request at a time."""

        def locked() -> T:
            with self.lock:
                return fn()

        return await anyio.to_thread.run_sync(locked)

    async def iterate_locked(self, factory: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Run a blocking generator in its own thread under the model lock, handing items to the event loop.

        If the consumer goes away (client disconnect), the generator is closed after its next item.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def send(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the event loop is gone (server shutting down)
                stop.set()

        def work() -> None:
            with self.lock:
                if stop.is_set():
                    return
                try:
                    it = factory()
                    try:
                        for item in it:
                            send("item", item)
                            if stop.is_set():
                                break
                    finally:
                        close = getattr(it, "close", None)
                        if close is not None:
                            close()
                except BaseException as exc:  # noqa: BLE001 — handed to the consumer, re-raised there
                    send("error", exc)
                    return
            send("end", None)

        threading.Thread(target=work, name="tokentrust-request", daemon=True).start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "error":
                    raise item
                if kind == "end":
                    return
                yield item
        finally:
            stop.set()


_LOCKS: weakref.WeakKeyDictionary[Any, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(backend: Any | None) -> threading.Lock:
    """One lock per in-process model, shared by every app serving it (a fresh one for upstream apps)."""
    if backend is None:
        return threading.Lock()
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(backend, threading.Lock())


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before any route reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = APIError(413, f"request body exceeds the limit of {self.limit} bytes", code="request_too_large")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big.response()(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_big.response()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    backend: Any | None = None,
    *,
    upstream: str | None = None,
    upstream_model: str | None = None,
    upstream_api_key: str | None = None,
    api_key: str | None = None,
    runs_dir: str | Path = "runs",
    limits: Limits | None = None,
    policy: Policy | None = None,
) -> FastAPI:
    """The web page and the OpenAI-compatible API around an in-process ``backend`` or an ``upstream`` URL.

    Give exactly one of ``backend`` (e.g. ``tokentrust.load()``) and ``upstream`` (a base URL such as
    ``http://127.0.0.1:8080/v1``, with ``upstream_model`` the model name to request there).
    """
    from ..errors import UserInputError
    from ..estimators.base import build_estimator
    from ..scores import Level

    if (backend is None) == (upstream is None):
        raise UserInputError("give either an in-process backend or an upstream URL, not both and not neither")
    up = None
    if upstream is not None:
        if not upstream.startswith(("http://", "https://")):
            raise UserInputError(f"upstream must be an http(s) URL such as http://127.0.0.1:8080/v1, got {upstream!r}")
        if not upstream_model:
            raise UserInputError("upstream_model is required with an upstream (the model name the server serves)")
        up = Upstream(upstream, upstream_model, upstream_api_key)
    if api_key is not None and not api_key.strip():
        raise UserInputError("api_key is empty; give a non-empty key or none")
    lim = limits or Limits()
    policy = policy or Policy()
    decider = build_estimator(policy.score)
    if decider.level is not Level.SEQUENCE or not decider.is_probability:
        raise UserInputError(f"policy score {policy.score!r} must be a sequence-level probability "
                             "(e.g. geometric_mean_token_probability, maximum_sequence_probability)")
    state = ServeState(
        backend=backend,
        upstream=up,
        model_id=upstream_model if up is not None else str(backend.model_id),
        api_key=api_key,
        runs_dir=Path(runs_dir),
        limits=lim,
        policy=policy,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if up is not None:
            await up.aclose()

    app = FastAPI(title="tokentrust", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.tt = state
    app.add_middleware(BodyLimit, limit=lim.max_body_bytes)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(TokentrustError)
    async def _user_error(_request: Request, exc: TokentrustError) -> JSONResponse:
        return api_error_from(exc).response()

    @app.exception_handler(UpstreamError)
    async def _upstream_error(_request: Request, exc: UpstreamError) -> JSONResponse:
        return api_error_from(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        return APIError(400, f"invalid request: {first.get('msg', exc)}", param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return APIError(exc.status_code, str(exc.detail), code=code).response()

    @app.exception_handler(Exception)
    async def _any(_request: Request, exc: Exception) -> JSONResponse:
        return api_error_from(exc).response()

    from .proxy import router as proxy_router
    from .webui import router as web_router

    app.include_router(proxy_router)
    app.include_router(web_router)
    return app
