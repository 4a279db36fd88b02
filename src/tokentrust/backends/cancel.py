"""Cancelling model work that nobody waits for any more: a client that went away, a request past its deadline.

A :class:`CancelToken` is made per request (the server makes one for every API call) and set for the code
that does its work with :func:`cancellable`; a context variable carries it into the threads that run the
work. Backends check it while they wait: the batching scheduler drops the request's rows at the next
decoding step, a server backend cancels its HTTP request. Code that runs without a token is not affected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from ..errors import TokentrustError

T = TypeVar("T")
POLL_SECONDS = 0.05  # how often a waiting backend looks at the token


class Cancelled(TokentrustError):
    """The work was cancelled: its client went away, or it ran past its deadline (``timed_out``)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class CancelToken:
    """Whether one request's work should stop: cancelled explicitly, or ``timeout`` seconds after creation."""

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._event = threading.Event()
        self._reason = ""

    def cancel(self, reason: str = "the client went away") -> None:
        if not self._event.is_set():
            self._reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def check(self) -> None:
        """Raise :class:`Cancelled` when the work should stop."""
        if self._event.is_set():
            raise Cancelled(f"cancelled: {self._reason}")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise Cancelled(f"the request ran past this server's limit of {self.timeout:g} s per request",
                            timed_out=True)


_current: ContextVar[CancelToken | None] = ContextVar("tokentrust_cancel", default=None)


def current() -> CancelToken | None:
    """The token of the work running here, if any."""
    return _current.get()


@contextmanager
def cancellable(token: CancelToken | None) -> Iterator[CancelToken | None]:
    """Make ``token`` the current one for the code inside (and the threads it starts with a copied context)."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)


def wait_polling(get: Callable[[float | None], T], on_cancel: Callable[[], None] = lambda: None) -> T:
    """``get(timeout)`` until it returns, checking the current token between tries; on cancellation
    ``on_cancel()`` runs (to drop the abandoned work) and :class:`Cancelled` is raised. ``get`` raises
    ``TimeoutError`` (or ``queue.Empty``) when nothing came within ``timeout``. Without a token it blocks."""
    import queue

    token = current()
    if token is None:
        return get(None)
    while True:
        try:
            token.check()
        except Cancelled:
            on_cancel()
            raise
        try:
            return get(POLL_SECONDS)
        except (TimeoutError, queue.Empty):
            continue
