"""The FastAPI application: one web page and an OpenAI-compatible API that adds confidence to answers.

``create_app(backend)`` serves any backend through the Backend protocol alone: an in-process model (put
behind a :class:`~tokentrust.backends.scheduler.Scheduler`, so concurrent requests decode in one batch),
an OpenAI-compatible server (``tokentrust serve --upstream URL`` is this app over an
:class:`~tokentrust.backends.openai.OpenAIBackend`), or recorded traces (``replay:<file>``).

Safety defaults: an optional bearer key checked on every API route (``/v1/*``, ``/api/*``, ``/runs/*``),
a request body size limit, a ``max_tokens`` limit, per-request cost limits (samples, tokens over all passes,
wall-clock time: :class:`~tokentrust.serve.state.Limits`), work cancelled when its client disconnects
(:mod:`~tokentrust.serve.cancelling`), a bound on requests answered at once (503 with ``Retry-After``
beyond it), and every error in OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}`` — never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..decide.cascade import CascadePolicy
from ..decide.decision import check_pairing, default_policy
from ..decide.policy import Policy
from ..errors import TokentrustError, UserInputError
from .cancelling import CancelOnDisconnect
from .errors import APIError, api_error_from
from .planning import check_policy_score
from .state import Limits, ServeState


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
    backend: Any,
    *,
    name: str | None = None,
    api_key: str | None = None,
    runs_dir: str | Path = "runs",
    limits: Limits | None = None,
    policy: Policy | None = None,
    calibrator: Any = None,
    defer_to: str | Any = None,
    cascade_policy: CascadePolicy | None = None,
    metrics: bool = False,
) -> FastAPI:
    """The web page and the OpenAI-compatible API around ``backend`` (any Backend, e.g. ``tokentrust.load()``).

    ``name`` is the model name clients see (default: the backend's ``model_id``). An in-process model is
    served through its :func:`~tokentrust.backends.scheduler.scheduler_for` scheduler (one per model).
    ``policy`` decides answer / hedge / abstain (default ``Policy()``, or with a ``calibrator`` the bands of
    its calibrated probability); a policy or calibrator fitted on another model is refused here.
    ``defer_to`` (a backend spec, URL or backend) and/or ``cascade_policy`` put a cascade in front
    (:mod:`tokentrust.serve.cascade`); ``metrics`` adds ``GET /metrics`` (:mod:`tokentrust.serve.metrics`).
    """
    if backend is None:
        raise UserInputError("create_app needs a backend: tokentrust.load(...) (a local model, "
                             "openai:<url>#<model> for a server, or replay:<file>)")
    if callable(getattr(backend, "engine", None)):  # an in-process model: batch concurrent requests
        from ..backends.scheduler import scheduler_for

        backend = scheduler_for(backend, max_waiting=(limits or Limits()).max_concurrent)
    if api_key is not None and not api_key.strip():
        raise UserInputError("api_key is empty; give a non-empty key or none")
    lim = limits or Limits()
    policy = policy or default_policy(calibrator)
    check_pairing(policy, calibrator, str(backend.model_id))
    try:
        if calibrator is None:
            check_policy_score(policy.score)
    except APIError as exc:
        raise UserInputError(exc.message) from None
    state = ServeState(backend=backend, name=name or str(backend.model_id), api_key=api_key,
                       runs_dir=Path(runs_dir), limits=lim, policy=policy, calibrator=calibrator)
    if defer_to is not None or cascade_policy is not None:
        from .cascade import ServeCascade

        state.cascade = ServeCascade.serving(backend, defer_to, cascade_policy)

    app = FastAPI(title="tokentrust", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tt = state
    app.add_middleware(CancelOnDisconnect, timeout=lim.request_timeout)  # inside BodyLimit: sees the whole body
    app.add_middleware(BodyLimit, limit=lim.max_body_bytes)
    if metrics:
        from .metrics import install_metrics

        state.metrics = install_metrics(app, state.name)

    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(TokentrustError)
    async def _user_error(_request: Request, exc: TokentrustError) -> JSONResponse:
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

    from .routes import router as api_router
    from .webui import router as web_router

    app.include_router(api_router)
    app.include_router(web_router)
    return app
