"""Serve one in-process model to many concurrent callers: their requests decode together in one batch.

:class:`Scheduler` wraps an :class:`~tokentrust.backends.hf.HFBackend` and implements the same Backend
protocol, safely from any number of threads. One worker thread owns the model. At every step boundary it
admits waiting requests into the running batch (up to ``max_batch`` rows; their prompts are prefilled
together), advances every row by one token, and hands each caller its new tokens. A finished row leaves the
batch at once and a waiting one takes its place; a caller that stops reading a stream (a client that
disconnected) cancels its row, which leaves at the next step. Teacher-forced scoring and prompt-free
log-probs run on the worker between steps, so nothing else touches the model concurrently.

Greedy answers equal ``backend.generate``'s: the same loop, only other rows beside them. Sampled rows
have their own seeded generator, so ``sample(prompt, n, seed=s)`` gives the same answers as the backend's.
When more than ``max_waiting`` rows wait, a new request is refused at once with :class:`~tokentrust.errors.BusyError`
(a server answers 503 with ``Retry-After``) instead of queueing without bound. A caller whose work is
cancelled (:mod:`~tokentrust.backends.cancel`: its client went away, or its deadline passed) stops waiting
and its rows leave the batch at the next step.
"""

from __future__ import annotations

import functools
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..capability import Capability
from ..config import GenerationConfig
from ..errors import BusyError
from ..trace import TokenRecord, Trace
from ._engine import Row
from .base import RenderedPrompt, merged_config, sample_config
from .cancel import cancellable, current, wait_polling
from .hf import HFBackend

T = TypeVar("T")
_END = object()


def _under(token: Any, fn: Callable[[], T]) -> T:
    """``fn()`` with ``token`` as the current cancel token (on the worker thread, which has none of its own)."""
    with cancellable(token):
        return fn()


@dataclass(eq=False)
class _Request:
    """Rows of one call; the worker reports new tokens (``stream``) or the end on ``events``."""

    rows: list[Row]
    shared_prompt: bool = False
    stream: bool = False
    events: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    sent: int = 0  # records streamed so far (one-row streams)
    failed: bool = False

    @property
    def done(self) -> bool:
        return self.failed or all(r.done for r in self.rows)


class Scheduler:
    """Batches concurrent requests on one in-process model (a Backend; see the module docstring)."""

    def __init__(self, backend: HFBackend, *, max_batch: int | None = None, max_waiting: int = 256) -> None:
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be ≥ 1, got {max_batch}")
        self.backend = backend
        self.model_id = backend.model_id
        self.max_batch = max_batch or backend.batch_size
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._tasks: deque[tuple[Callable[[], Any], queue.Queue[tuple[str, Any]]]] = deque()
        self._active: list[_Request] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        self.steps = 0  # decoding steps run (for tests and load figures)
        self.max_rows_seen = 0  # the largest batch decoded so far

    def __repr__(self) -> str:
        return f"Scheduler({self.backend!r}, max_batch={self.max_batch}, max_waiting={self.max_waiting})"

    # ---- the protocol ---------------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.backend.capabilities

    def render(self, prompt: Any, *, chat: bool = True) -> RenderedPrompt:
        return self.backend.render(prompt, chat=chat)

    def generate(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any) -> Trace:
        return self.generate_many([prompt], config, **overrides)[0]

    def generate_many(self, prompts: Sequence[Any], config: GenerationConfig | None = None,
                      **overrides: Any) -> list[Trace]:
        cfg = merged_config(config, overrides)
        rows = [self.backend.row(p, cfg) for p in prompts]
        for start in range(0, len(rows), self.max_batch):
            self._wait(self._submit(_Request(rows[start : start + self.max_batch])))
        return [r.trace(self.model_id) for r in rows]

    def sample(self, prompt: Any, n: int = 10, *, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
               max_new_tokens: int | None = None, chat: bool = True, top_k: int = 10) -> list[Trace]:
        rows = self.backend.sample_rows(prompt, sample_config(
            n=n, temperature=temperature, top_p=top_p, seed=seed, max_new_tokens=max_new_tokens, chat=chat,
            top_k=top_k), n)
        for start in range(0, n, self.max_batch):
            self._wait(self._submit(_Request(rows[start : start + self.max_batch], shared_prompt=True)))
        return [r.trace(self.model_id) for r in rows]

    def stream(self, prompt: Any, config: GenerationConfig | None = None, **overrides: Any
               ) -> Iterator[TokenRecord | Trace]:
        """Token records as the worker produces them, then the trace; closing the iterator cancels the row."""
        row = self.backend.row(prompt, merged_config(config, overrides))
        request = self._submit(_Request([row], stream=True))
        finished = False
        try:
            while True:
                kind, item = wait_polling(lambda t: request.events.get(timeout=t))
                if kind == "error":
                    raise item
                if kind == "end":
                    finished = True
                    yield row.trace(self.model_id)
                    return
                yield item
        finally:
            if not finished:
                row.cancelled = True
                with self._cond:
                    self._cond.notify()

    def score(self, prompt: Any, answer: str | Sequence[int], *, chat: bool = True, end_of_turn: bool = True,
              top_k: int = 10) -> Trace:
        return self._call(lambda: self.backend.score(prompt, answer, chat=chat, end_of_turn=end_of_turn,
                                                     top_k=top_k))

    def token_logprobs(self, token_ids: Sequence[int]) -> list[float]:
        return self._call(lambda: self.backend.token_logprobs(token_ids))

    def close(self) -> None:
        """Stop the worker (requests in flight fail); the scheduler can not be used afterwards."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # ---- submitting -----------------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="tokentrust-scheduler", daemon=True)
            self._thread.start()

    def _submit(self, request: _Request) -> _Request:
        token = current()
        if token is not None:
            token.check()
        with self._cond:
            if self._closed:
                raise BusyError("the model is shutting down; try another server", retry_after=None)
            waiting = sum(len(r.rows) for r in self._waiting)
            if waiting + len(request.rows) > self.max_waiting:
                raise BusyError(
                    f"{waiting} answers are already waiting for the model (at most {self.max_waiting}); retry shortly",
                    retry_after=1,
                )
            self._waiting.append(request)
            self._start()
            self._cond.notify()
        return request

    def _wait(self, request: _Request) -> None:
        """Until the request ends; when its work is cancelled (see :mod:`.cancel`) its rows leave the batch."""
        def drop() -> None:
            for row in request.rows:
                row.cancelled = True
            with self._cond:
                self._cond.notify()

        while True:
            kind, item = wait_polling(lambda t: request.events.get(timeout=t), drop)
            if kind == "error":
                raise item
            if kind == "end":
                return

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker between two decoding steps and return its result.

        ``fn`` runs under the caller's cancel token, so long work that checks it (attribution's forward
        passes) stops when the caller's client goes away or its deadline passes."""
        box: queue.Queue[tuple[str, Any]] = queue.Queue()
        token = current()
        if token is not None:
            token.check()
        task = (fn if token is None else functools.partial(_under, token, fn), box)
        with self._cond:
            if self._closed:
                raise BusyError("the model is shutting down; try another server", retry_after=None)
            self._tasks.append(task)
            self._start()
            self._cond.notify()

        def drop() -> None:
            with self._cond:
                if task in self._tasks:
                    self._tasks.remove(task)

        kind, item = wait_polling(lambda t: box.get(timeout=t), drop)
        if kind == "error":
            raise item
        return item

    # ---- the worker -----------------------------------------------------------------------------------
    def _work(self) -> None:
        batch = self.backend.engine()
        while True:
            with self._cond:
                while not (self._waiting or self._tasks or len(batch) or self._closed):
                    self._cond.wait()
                if self._closed:
                    self._fail_all(BusyError("the model was shut down before this answer finished"))
                    return
                tasks = list(self._tasks)
                self._tasks.clear()
                admitted = self._take_waiting(len(batch), batch.can_merge)
            for fn, box in tasks:
                try:
                    box.put(("ok", fn()))
                except BaseException as exc:  # noqa: BLE001 — handed to the caller, raised there
                    box.put(("error", exc))
            try:
                if admitted:
                    self._admit(batch, admitted)
                if len(batch):
                    batch.step()
                    self.steps += 1
            except BaseException as exc:  # noqa: BLE001 — every caller in the batch gets the error
                self._fail(self._active, exc)
                self._active = []
                batch = self.backend.engine()
                continue
            self._report()

    def _take_waiting(self, running: int, can_merge: bool) -> list[_Request]:
        """Waiting requests that fit into the batch now, first come first served (cancelled ones dropped)."""
        taken: list[_Request] = []
        room = self.max_batch - running
        while self._waiting and (can_merge or running == 0):
            head = self._waiting[0]
            if all(r.cancelled for r in head.rows):
                self._waiting.popleft()
                head.events.put(("end", None))
                continue
            if len(head.rows) > room:
                break
            taken.append(self._waiting.popleft())
            room -= len(head.rows)
        return taken

    def _admit(self, batch: Any, requests: list[_Request]) -> None:
        self._active += requests
        single = [row for r in requests if not r.shared_prompt for row in r.rows if not row.cancelled]
        try:
            if single:
                batch.admit(single)
            for r in requests:
                if r.shared_prompt:
                    batch.admit(r.rows, shared_prompt=True)
        finally:
            self.max_rows_seen = max(self.max_rows_seen, len(batch))

    def _report(self) -> None:
        """Hand out new tokens and finished answers; forget requests that are done."""
        still = []
        for request in self._active:
            if request.stream:
                row = request.rows[0]
                while request.sent < len(row.ids) and not row.cancelled:
                    request.events.put(("token", row.record(request.sent)))
                    request.sent += 1
            if request.done:
                request.events.put(("end", None))
            else:
                still.append(request)
        self._active = still

    def _fail(self, requests: list[_Request], exc: BaseException) -> None:
        for request in requests:
            request.failed = True
            request.events.put(("error", exc))

    def _fail_all(self, exc: BaseException) -> None:
        self._fail([*self._active, *self._waiting], exc)
        self._active, self._waiting = [], deque()
        for _, box in self._tasks:
            box.put(("error", exc))
        self._tasks.clear()


_SCHEDULERS: weakref.WeakKeyDictionary[Any, Scheduler] = weakref.WeakKeyDictionary()
_SCHEDULERS_GUARD = threading.Lock()


def scheduler_for(backend: HFBackend, **options: Any) -> Scheduler:
    """The one scheduler of ``backend`` (made with ``options`` on first use), so every app serving the same
    model shares one batch instead of running the model twice at once."""
    with _SCHEDULERS_GUARD:
        found = _SCHEDULERS.get(backend)
        if found is None:
            found = _SCHEDULERS[backend] = Scheduler(backend, **options)
        return found
