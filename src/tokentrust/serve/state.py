"""What every route shares: the backend, its served name, limits, the default policy, the cascade and the metrics
when on, and key checking.

Model work is blocking (a forward pass, an HTTP call to a server), so routes run it in threads: a
non-streamed answer with :meth:`ServeState.run`, a streamed one with :meth:`ServeState.iterate`, which
hands items from a blocking iterator to the event loop and closes the iterator when the client goes away
(for an in-process model that cancels its row in the scheduler; for a server, the upstream connection).
Concurrency is the backend's business: the scheduler batches concurrent requests, a server batches its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import Request

from ..decide.policy import Policy
from ..errors import UserInputError
from .errors import APIError

if TYPE_CHECKING:
    from ..annotated import Annotated
    from .cascade import ServeCascade
    from .metrics import ProxyMetrics

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Per-request limits: body size in bytes, answer length in tokens, alternatives per token, how many
    requests may be answered at once (the rest get 503 with ``Retry-After``), and what one request may cost:
    ``max_samples`` answers per sampling parameter of an estimator (``n_samples``, ``n_brainstorm``,
    ``matchups``), ``max_pass_tokens`` tokens generated over all passes (the answer and every extra answer
    its scores draw), and ``request_timeout`` seconds of wall-clock time (then 504; ``None``: no limit)."""

    max_body_bytes: int = 1_000_000
    max_tokens: int = 512
    default_max_tokens: int = 128
    top_k: int = 10  # alternatives recorded per token (a server gives at most 20)
    max_concurrent: int = 256
    max_samples: int = 32
    max_pass_tokens: int = 16_384
    request_timeout: float | None = 300.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_tokens", "default_max_tokens", "max_concurrent", "max_samples",
                     "max_pass_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserInputError(f"limit {name} must be an integer ≥ 1, got {value!r}")
        if self.default_max_tokens > self.max_tokens:
            raise UserInputError(f"limit default_max_tokens ({self.default_max_tokens}) exceeds max_tokens "
                                 f"({self.max_tokens})")
        if self.request_timeout is not None and not 0 < self.request_timeout < math.inf:
            raise UserInputError(f"limit request_timeout must be > 0 seconds (or None), got {self.request_timeout}")


@dataclass
class ServeState:
    """Everything the routes share."""

    backend: Any
    name: str
    api_key: str | None
    runs_dir: Path
    limits: Limits
    policy: Policy
    calibrator: Any = None  # with it, the policy thresholds its calibrated probability
    cascade: ServeCascade | None = None  # with it, answers the rule defers come from the large model
    metrics: ProxyMetrics | None = None  # with it, answers are counted for GET /metrics
    created: int = field(default_factory=lambda: int(time.time()))
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.limits.max_concurrent)

    def answered(self, answer: Annotated, prompt_tokens: int) -> None:
        """Count a decided answer in the metrics, when they are on."""
        if self.metrics is not None:
            self.metrics.answered(answer, prompt_tokens)

    def check_key(self, request: Request) -> None:
        """Accept ``Authorization: Bearer <key>`` (or the web page's ``tt_key`` cookie) when a key is set.

        A POST that carries cookies must be JSON: another site's form can send cookies with ``text/plain`` or
        form bodies without the browser asking first, never with ``application/json`` (CSRF)."""
        if request.method == "POST" and "cookie" in request.headers:
            kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind != "application/json" and not kind.endswith("+json"):
                raise APIError(415, f"a request carrying cookies must send Content-Type: application/json, got "
                               f"{kind or 'none'}", param="Content-Type", code="unsupported_media_type")
        if self.api_key is None:
            return
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else request.cookies.get("tt_key", "")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise APIError(401, "missing or incorrect API key: send the header 'Authorization: Bearer <key>'",
                           code="invalid_api_key")

    def _admit(self) -> None:
        if self.limiter.borrowed_tokens >= self.limiter.total_tokens:
            raise APIError(503, f"the server is answering {int(self.limiter.total_tokens)} requests already; "
                           "retry shortly", type="server_error", code="server_busy", retry_after=1)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run blocking model work in a worker thread."""
        self._admit()
        return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    async def iterate(self, factory: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Items of a blocking iterator, produced in its own thread; closing this closes that iterator."""
        self._admit()
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def send(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, item))
            except RuntimeError:  # the event loop is gone (server shutting down)
                stop.set()

        def work() -> None:
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
            except BaseException as exc:  # noqa: BLE001 — handed to the consumer, raised there
                send("error", exc)
                return
            send("end", None)

        borrower = object()  # the stream is read from more than one task (route, then response)
        await self.limiter.acquire_on_behalf_of(borrower)
        try:  # the thread sees this request's context (its cancel token)
            threading.Thread(target=contextvars.copy_context().run, args=(work,), name="tokentrust-request",
                             daemon=True).start()
            while True:
                kind, item = await items.get()
                if kind == "error":
                    raise item
                if kind == "end":
                    return
                yield item
        finally:
            stop.set()
            self.limiter.release_on_behalf_of(borrower)


def state_of(request: Request) -> ServeState:
    return request.app.state.tt


def require_key(request: Request) -> None:
    state_of(request).check_key(request)
