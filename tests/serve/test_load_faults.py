"""Load and faults on the served default model, within CI time on two cores.

* 32 concurrent streaming clients: no errors, each answer equal to a plain ``generate`` (greedy);
* a client that disconnects, streamed or not, while its answer or its scores are computed: the work
  stops (no decoding step runs for it) and the server goes on answering;
* memory: the server's RSS after 200 requests is within 10 % of its RSS after 20;
* the upstream of ``serve --upstream`` killed mid-answer: a clear error, streamed or not, and no hang.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from _llama import stop, wait_ready
from _servers import RunningServer, free_port, stream_chat
from tokentrust import Annotated
from tokentrust.backends.openai import OpenAIBackend
from tokentrust.backends.scheduler import scheduler_for
from tokentrust.serve import create_app

CLIENTS = 32
TOKENS = 6
QUESTIONS = ["What is the capital of France?", "What is 2 + 2?", "Name a fruit.", "What colour is the sky?",
             "Who wrote Hamlet?", "Name a planet.", "What is water made of?", "Say hello."]
SAMPLED = {"estimators": ["lexical_similarity:n_samples=8,max_new_tokens=200"]}


def _rss_bytes() -> int:
    """Resident memory of this process, which runs the server (from /proc, in kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _quiet(scheduler, timeout: float = 20) -> None:
    """Wait until the scheduler decodes nothing, then check that it stays so."""
    deadline = time.time() + timeout
    while (scheduler._active or scheduler._waiting) and time.time() < deadline:
        time.sleep(0.05)
    assert not scheduler._active and not scheduler._waiting
    steps = scheduler.steps
    time.sleep(0.5)
    assert scheduler.steps == steps


def test_32_concurrent_streaming_clients_get_no_errors_and_the_greedy_answers(server, backend):
    expected = {q: backend.generate(q, max_new_tokens=TOKENS) for q in QUESTIONS}

    async def main() -> list:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=300,
                                      http_client=httpx.AsyncClient(limits=httpx.Limits(max_connections=64))
                                      ) as client:
            return await asyncio.gather(*(stream_chat(client, QUESTIONS[i % len(QUESTIONS)], TOKENS)
                                          for i in range(CLIENTS)),
                                        return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    for question, text, final in results:
        assert final is not None
        trace = Annotated.model_validate(final).trace
        assert text == trace.text == expected[question].text
        assert trace.token_ids == expected[question].token_ids


def test_a_client_that_disconnects_while_scores_are_computed_stops_the_work(server, backend):
    """Not streamed: the client gives up while its 8 samples decode. Streamed: it leaves after the answer's
    tokens, while the samples for its scores decode. Either way the rows leave the batch."""
    scheduler = scheduler_for(backend)
    body = {"model": "m", "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": 200, "tokentrust": SAMPLED}
    steps = scheduler.steps
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=3))
    assert scheduler.steps > steps  # it was working when the client left
    _quiet(scheduler)
    with httpx.Client(timeout=120) as http, http.stream(
            "POST", f"{server.url}/v1/chat/completions", json={**body, "max_tokens": 3, "stream": True}) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(8):  # the role chunk and the answer's tokens; then the samples start
            next(lines)
        deadline = time.time() + 30
        while not scheduler._active and time.time() < deadline:
            time.sleep(0.02)
        assert scheduler._active  # sampling for the scores
    _quiet(scheduler)
    ok = httpx.post(f"{server.url}/v1/chat/completions", timeout=120,
                    json={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
    assert ok.status_code == 200


def test_memory_after_200_requests_stays_within_10_percent_of_after_20(server):
    body = {"model": "m", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 1,
            "tokentrust": {"estimators": ["maximum_sequence_probability"]}}
    stream = {**body, "stream": True}
    sizes = {}

    def requests(n: int) -> None:  # 8 clients at a time (batched), every other request streamed
        def worker(k: int) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                for i in range(k, n, 8):
                    r = http.post("/v1/chat/completions", json=stream if i % 2 else body)
                    assert r.status_code == 200

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    requests(20)
    gc.collect()
    sizes[20] = _rss_bytes()
    requests(180)
    gc.collect()
    sizes[200] = _rss_bytes()
    growth = sizes[200] / sizes[20] - 1
    print(f"RSS after 20 requests {sizes[20] / 2**20:.0f} MiB, after 200 {sizes[200] / 2**20:.0f} MiB "
          f"({growth:+.1%})")
    assert growth < 0.10


@pytest.fixture
def killable_upstream(tmp_path):
    """The slow well-formed upstream of ``_shape_server.py`` in its own process, to be killed."""
    port = free_port()
    log = tmp_path / "upstream.log"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_shape_server.py")), str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, log, timeout=60)
        yield url, proc
    finally:
        stop(proc)


def test_an_upstream_killed_mid_answer_is_a_clear_error_without_a_hang(killable_upstream):
    url, proc = killable_upstream
    backend = OpenAIBackend.upstream(url)
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 400}
    try:
        with RunningServer(create_app(backend)) as srv:
            with httpx.Client(timeout=30) as http, http.stream(
                    "POST", f"{srv.url}/v1/chat/completions", json={**chat, "stream": True}) as r:
                assert r.status_code == 200
                lines = (line for line in r.iter_lines() if line.startswith("data: "))
                for _ in range(4):
                    next(lines)
                os.killpg(proc.pid, signal.SIGKILL)
                start = time.perf_counter()
                rest = list(lines)  # the stream ends on its own (a hang would hit the 30 s read timeout)
                elapsed = time.perf_counter() - start
            assert rest[-1] == "data: [DONE]" and elapsed < 10
            error = rest[-2]
            assert '"type":"upstream_error"' in error.replace(" ", "") and url.split("//")[1] in error
            down = httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30)
            assert down.status_code == 502 and "unreachable" in down.json()["error"]["message"]
    finally:
        backend.close()


def test_an_upstream_killed_during_a_plain_answer_is_a_502(killable_upstream):
    url, proc = killable_upstream
    backend = OpenAIBackend.upstream(url)
    chat = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 40}
    try:
        with RunningServer(create_app(backend)) as srv:
            threading.Timer(1.0, os.killpg, (proc.pid, signal.SIGKILL)).start()
            start = time.perf_counter()
            r = httpx.post(f"{srv.url}/v1/chat/completions", json=chat, timeout=30)
            assert r.status_code == 502 and time.perf_counter() - start < 10
            err = r.json()["error"]
            assert err["type"] == "upstream_error" and url.split("//")[1] in err["message"]
    finally:
        backend.close()
