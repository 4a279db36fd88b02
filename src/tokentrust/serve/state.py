"""What every route shares: the backend, its served name, limits, the default policy, and key checking.

Model work is blocking (a forward pass, an HTTP call to a server), so routes run it in threads: a
non-streamed answer with :meth:`ServeState.run`, a streamed one with :meth:`ServeState.iterate`, which
hands items from a blocking iterator to the event loop and closes the iterator when the client goes away
(for an in-process model that cancels its row in the scheduler; for a server, the upstream connection).
Concurrency is the backend's business: the scheduler batches concurrent requests, a server batches its own.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import Request

from ..decide.policy import Policy
from .errors import APIError

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """Per-request limits: body size in bytes, answer length in tokens, alternatives per token, and how many
    requests may be answered at once (the rest get 503 with ``Retry-After``)."""

    max_body_bytes: int = 1_000_000
    max_tokens: int = 512
    default_max_tokens: int = 128
    top_k: int = 10  # alternatives recorded per token (a server gives at most 20)
    max_concurrent: int = 256


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
    created: int = field(default_factory=lambda: int(time.time()))
    limiter: anyio.CapacityLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = anyio.CapacityLimiter(self.limits.max_concurrent)

    def check_key(self, request: Request) -> None:
        """Accept ``Authorization: Bearer <key>`` (or the web page's ``tt_key`` cookie) when a key is set."""
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
        try:
            threading.Thread(target=work, name="tokentrust-request", daemon=True).start()
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
