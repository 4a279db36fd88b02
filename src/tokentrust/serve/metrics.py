"""Prometheus metrics for the proxy (``tokentrust serve --metrics``): ``GET /metrics`` in the text format.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the process-wide one), so several apps
in one process count apart. Series (``model`` is the served model's name unless said otherwise):

=================================================  =========================================================
``tokentrust_requests_total``                      HTTP requests by ``model``, ``route`` (the route's path
                                                   template; ``other`` when none matched) and ``status``
``tokentrust_request_duration_seconds``            latency until the last byte, by ``model`` and ``route``
``tokentrust_time_to_first_token_seconds``         streamed answers: until the first event is sent
``tokentrust_tokens_total``                        tokens by ``model`` and ``kind`` (``prompt`` /
                                                   ``completion``); a deferred answer's large-model tokens
                                                   are counted under the large model's name
``tokentrust_answer_confidence``                   the probability each decision rests on (``decision
                                                   .probability``), by ``model`` and ``score``; undefined
                                                   probabilities are not observed
``tokentrust_decisions_total``                     decisions by ``model`` and ``action`` (answer / hedge /
                                                   abstain / defer)
=================================================  =========================================================

An operator can alert when a model's confidence drifts (e.g. on the share of ``tokentrust_answer_confidence``
below 0.5) or when it abstains or defers more often.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ..annotated import Annotated
    from ..trace import Trace

__all__ = ["ProxyMetrics", "install_metrics"]

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONFIDENCE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))  # 0.05, 0.10, …, 1.0


class ProxyMetrics:
    """The proxy's series (module docstring) in a registry of their own."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("tokentrust_requests", "HTTP requests answered", ["model", "route", "status"],
                                registry=r)
        self.latency = Histogram("tokentrust_request_duration_seconds", "Time until the response's last byte",
                                 ["model", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("tokentrust_time_to_first_token_seconds",
                              "Streamed answers: time until the first event is sent", ["model", "route"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("tokentrust_tokens", "Prompt and completion tokens", ["model", "kind"], registry=r)
        self.confidence = Histogram("tokentrust_answer_confidence", "Probability the answer's decision rests on",
                                    ["model", "score"], buckets=CONFIDENCE_BUCKETS, registry=r)
        self.decisions = Counter("tokentrust_decisions", "Decisions on answers", ["model", "action"], registry=r)

    def answered(self, answer: Annotated, prompt_tokens: int) -> None:
        """Count one decided answer: its tokens, its decision's probability and action."""
        self._tokens(self.model, prompt_tokens, len(answer.trace))
        d = answer.decision
        if d is None:
            return
        self.decisions.labels(self.model, d.action).inc()
        if not math.isnan(d.probability):
            self.confidence.labels(self.model, d.score).observe(d.probability)
        large: Trace | None = d.cascade.trace if d.cascade is not None and d.cascade.deferred else None
        if large is not None:
            self._tokens(d.cascade.large, large.prompt_tokens or 0, len(large))

    def _tokens(self, model: str, prompt: int, completion: int) -> None:
        self.tokens.labels(model, "prompt").inc(prompt)
        self.tokens.labels(model, "completion").inc(completion)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """ASGI middleware: count every HTTP request with its status, latency and (streams) time to first event."""

    def __init__(self, app: ASGIApp, metrics: ProxyMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, first, streamed = 500, None, False

        async def sending(message: Message) -> None:
            nonlocal status, first, streamed
            if message["type"] == "http.response.start":
                status = message["status"]
                streamed = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                               for k, v in message.get("headers", ()))
            elif message["type"] == "http.response.body" and first is None and message.get("body"):
                first = time.perf_counter() - start
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            if route != "/metrics":
                m, model = self.metrics, self.metrics.model
                m.requests.labels(model, route, str(status)).inc()
                m.latency.labels(model, route).observe(time.perf_counter() - start)
                if first is not None and streamed:
                    m.ttft.labels(model, route).observe(first)


def install_metrics(app: FastAPI, model: str) -> ProxyMetrics:
    """Add ``GET /metrics`` (behind the API key when one is set) and the request middleware to ``app``."""
    from .state import require_key

    metrics = ProxyMetrics(model)
    app.add_middleware(RequestMetrics, metrics=metrics)

    @app.get("/metrics", include_in_schema=False)
    async def _metrics(request: Request) -> Any:
        require_key(request)
        return metrics.exposition()

    return metrics
