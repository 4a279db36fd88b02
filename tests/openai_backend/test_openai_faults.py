"""Faults between the backend and a real llama.cpp server: down, killed mid-benchmark, 429/500, bad JSON, slow."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from _servers import closed_port
from tokentrust.backends.openai import OpenAIBackend, ServerError
from tokentrust.bench.runner import run
from tokentrust.bench.spec import RunSpec
from tokentrust.errors import CapabilityError

QUESTION = "What is the capital of France?"


def test_server_down_fails_after_retries():
    backend = OpenAIBackend(f"http://127.0.0.1:{closed_port()}/v1", "m", max_retries=2, backoff=0.05)
    start = time.perf_counter()
    with pytest.raises(ServerError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1/chat/completions after 3 tries"):
        backend.generate(QUESTION)
    assert time.perf_counter() - start < 5


def _probed(proxy, **kwargs) -> OpenAIBackend:
    backend = OpenAIBackend(proxy.url, "smollm2", extra_body={"repeat_penalty": 1.0}, **kwargs)
    assert backend.capabilities  # probe before any fault is armed
    proxy.faults.requests = 0
    return backend


def test_429_honours_retry_after(proxy):
    backend = _probed(proxy, max_retries=3, backoff=0.01)
    proxy.faults.fail_status, proxy.faults.fail_count, proxy.faults.retry_after = 429, 2, "1"
    start = time.perf_counter()
    trace = backend.generate(QUESTION, max_new_tokens=8)
    assert trace.text and trace.logprobs and proxy.faults.requests == 3
    assert time.perf_counter() - start >= 2.0  # two waits of Retry-After: 1 s, not the 0.01 s backoff


def test_500_is_retried_with_backoff_then_given_up(proxy):
    backend = _probed(proxy, max_retries=2, backoff=0.05)
    proxy.faults.fail_status, proxy.faults.fail_count = 500, 2
    assert backend.generate(QUESTION, max_new_tokens=8).logprobs
    assert proxy.faults.requests == 3
    proxy.faults.fail_count = 5
    with pytest.raises(ServerError, match="failed 3 times; last answer HTTP 500: injected fault"):
        backend.generate(QUESTION, max_new_tokens=8)
    # a 4xx other than 429 is the caller's fault: not retried
    proxy.faults.fail_status, proxy.faults.fail_count, proxy.faults.requests = 401, 1, 0
    with pytest.raises(ServerError, match=r"HTTP 401: injected fault \(set OPENAI_API_KEY"):
        backend.generate(QUESTION, max_new_tokens=8)
    assert proxy.faults.requests == 1


def test_malformed_json_is_named(proxy):
    backend = _probed(proxy, max_retries=2, backoff=0.01)
    proxy.faults.malformed = True
    with pytest.raises(ServerError, match=r"malformed JSON: '\{\"choices\": \[\{\"text\": \"Par'"):
        backend.generate(QUESTION)


def test_slow_answer_past_the_read_timeout(proxy):
    backend = _probed(proxy)
    backend.close()  # the next request opens a new client with the new timeout; capabilities are kept
    backend.read_timeout = 1.0
    proxy.faults.delay = 4.0
    start = time.perf_counter()
    with pytest.raises(ServerError, match="no answer within the read timeout of 1 s"):
        backend.generate(QUESTION)
    assert time.perf_counter() - start < 3.5


def test_server_killed_mid_benchmark_resumes_without_loss(spare_llama_server, tmp_path):
    server = spare_llama_server
    spec = RunSpec(dataset="capitals", limit=24, model=server.spec, batch_size=4, max_new_tokens=12,
                   estimators=["maximum_sequence_probability"], out=str(tmp_path / "run"),
                   cache=str(tmp_path / "cache.sqlite"))
    backend = OpenAIBackend.from_spec(server.spec, concurrency=4, max_retries=1, backoff=0.05)
    items = tmp_path / "run" / "items.jsonl"

    def kill_after_eight() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if items.exists() and len(items.read_text().splitlines()) >= 8:
                server.kill()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_eight)
    killer.start()
    with pytest.raises(ServerError, match="cannot reach"):
        run(spec, backend=backend, progress=False)
    killer.join()
    done_before = [json.loads(line)["id"] for line in items.read_text().splitlines()]
    assert 8 <= len(done_before) < 24

    server.start()  # same port: the same backend reconnects
    result = run(spec, backend=backend, progress=False)
    ids = [json.loads(line)["id"] for line in items.read_text().splitlines()]
    assert result.n_items == 24 and result.n_resumed == len(done_before)
    assert result.n_generated + result.n_cached == 24 - len(done_before)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 24 and ids[: len(done_before)] == done_before
    backend.close()


def test_answers_that_change_shape_after_the_probe_are_refused(proxy):
    """The probe saw log-probs; later answers without them (or without choices) are errors, never a trace
    without tokens scored as if it were certain — and through the confidence proxy they are a 502."""
    from _servers import RunningServer
    from tokentrust import Capability
    from tokentrust.serve import create_app

    backend = OpenAIBackend(proxy.url, "smollm2", max_retries=0)
    assert Capability.LOGPROBS in backend.capabilities
    proxy.faults.strip_logprobs = True
    with pytest.raises(ServerError, match="changed shape"):
        backend.generate("What is 2 + 2?", max_new_tokens=4)
    proxy.faults.strip_logprobs = False
    proxy.faults.body = {"choices": "nope"}
    with pytest.raises(ServerError, match="without a list of choices"):
        backend.generate("What is 2 + 2?", max_new_tokens=4)
    # this fault proxy answers streamed requests with plain JSON: the probe saw that, so no streaming
    assert Capability.STREAMING not in backend.capabilities
    with pytest.raises(CapabilityError, match="token by token needs streaming"):
        list(backend.stream("What is 2 + 2?", max_new_tokens=4))
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    with RunningServer(create_app(backend)) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=60)
        assert r.status_code == 502 and r.json()["error"]["type"] == "upstream_error"
        assert "without a list of choices" in r.json()["error"]["message"]
        r = httpx.post(f"{srv.url}/v1/chat/completions", json={**chat, "stream": True}, timeout=60)
        assert r.status_code == 400 and r.json()["error"]["code"] == "streaming_not_supported"
    backend.close()


def test_a_stream_answered_with_plain_json_is_named():
    """A server whose streamed answer is not server-sent events fails with a clear error, not an empty answer."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from _servers import RunningServer

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}]})

    with RunningServer(app) as srv:
        backend = OpenAIBackend(f"{srv.url}/v1", "m", max_retries=0)
        chunks = backend._chunks("chat/completions", {"model": "m", "messages": [], "stream": True})
        with pytest.raises(ServerError, match="instead of server-sent events"):
            backend._run(anext(chunks))
        backend.close()
