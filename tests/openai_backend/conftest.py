"""Real OpenAI-compatible servers on 127.0.0.1 for the backend tests.

* ``llama_server``: ``llama_cpp.server`` serving the embedded model's GGUF (log-probs, echo), a subprocess;
* ``transformers_server``: ``transformers serve`` on the converted model folder (no log-probs), a subprocess;
* ``FaultProxy``: a small FastAPI app forwarding to an upstream that fails, garbles or delays on demand.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from typing_extensions import Self

from _llama import LlamaServer, stop, wait_ready
from _servers import RunningServer, free_port


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory) -> Iterator[str]:
    """``transformers serve`` on the converted default model; yields its base URL."""
    from tokentrust.backends.embedded import convert

    folder = convert(verbose=False)
    port = free_port()
    log = tmp_path_factory.mktemp("tserve") / "server.log"
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(
        [str(exe), "serve", str(folder), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
         "--log-level", "warning"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, log, timeout=180)
        yield url
    finally:
        stop(proc)


@dataclass
class Faults:
    """What the proxy does to the next requests (counters count down as faults are served)."""

    fail_status: int = 0
    fail_count: int = 0
    retry_after: str | None = None
    malformed: bool = False
    delay: float = 0.0
    strip_logprobs: bool = False
    body: dict | None = None  # answer every request with this JSON instead
    requests: int = 0


class FaultProxy:
    """A FastAPI app on a uvicorn thread that forwards POSTs to ``upstream`` and injects :class:`Faults`."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = Faults()
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> Response:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{self.upstream}/models")
            return Response(r.content, status_code=r.status_code, media_type="application/json")

        @app.post("/v1/{path:path}")
        async def forward(path: str, request: Request) -> Response:
            f = self.faults
            f.requests += 1
            if f.fail_count > 0:
                f.fail_count -= 1
                headers = {"Retry-After": f.retry_after} if f.retry_after else None
                return JSONResponse({"error": {"message": "injected fault"}}, status_code=f.fail_status, headers=headers)
            if f.body is not None:
                return JSONResponse(f.body)
            if f.malformed:
                return Response('{"choices": [{"text": "Par', media_type="application/json")
            if f.delay:
                await asyncio.sleep(f.delay)
            async with httpx.AsyncClient(timeout=120) as client:
                r = await client.post(f"{self.upstream}/{path}", content=await request.body(),
                                      headers={"content-type": "application/json"})
            if f.strip_logprobs and r.status_code == 200:
                body = r.json()
                for choice in body.get("choices", []):
                    choice.pop("logprobs", None)
                return JSONResponse(body)
            return Response(r.content, status_code=r.status_code, media_type="application/json")

        self._server = RunningServer(app)
        self.url = f"{self._server.url}/v1"

    def __enter__(self) -> Self:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


@pytest.fixture
def proxy(llama_server) -> Iterator[FaultProxy]:
    with FaultProxy(llama_server.url) as p:
        yield p


@pytest.fixture
def tserve_proxy(transformers_server) -> Iterator[FaultProxy]:
    """A counting proxy in front of ``transformers serve``."""
    with FaultProxy(transformers_server) as p:
        yield p


@pytest.fixture
def spare_llama_server(tmp_path) -> Iterator[LlamaServer]:
    """A llama.cpp server of the test's own, which the test may kill and restart on the same port."""
    pytest.importorskip("llama_cpp.server", reason="run `make test` (it installs llama-cpp-python[server])")
    server = LlamaServer(tmp_path / "server.log").start()
    yield server
    server.stop()
