"""Load on the served in-process model: concurrent streams are decoded together, each equal to generate().

Requests reach the model through one scheduler that batches them (the 32-client figure, and the speed-up
over answering one at a time, are measured by benchmarks/serve_load.py). A client that goes away frees its
row; a server at capacity answers 503 with ``Retry-After`` in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai

from _servers import RunningServer, stream_chat
from tokentrust import Annotated
from tokentrust.backends.scheduler import scheduler_for
from tokentrust.serve import Limits, create_app

CLIENTS = 8
QUESTIONS = ["What is the capital of France?", "What is 2 + 2?", "Name a fruit.", "What colour is the sky?"]


def test_eight_concurrent_streaming_clients_are_batched_and_equal_generate(server, backend):
    expected = {q: backend.generate(q, max_new_tokens=8) for q in QUESTIONS}
    scheduler = scheduler_for(backend)
    steps_before = scheduler.steps

    async def main() -> list[tuple[str, str, dict | None]]:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0,
                                      timeout=300) as client:
            return await asyncio.gather(*(stream_chat(client, QUESTIONS[i % len(QUESTIONS)], 8)
                                          for i in range(CLIENTS)))

    results = asyncio.run(main())
    assert len(results) == CLIENTS
    for question, text, final in results:
        assert final is not None
        result = Annotated.model_validate(final)
        assert text == result.trace.text == expected[question].text
        assert result.trace.token_ids == expected[question].token_ids
        assert result.decision is not None and result.decision.action in {"answer", "hedge", "abstain"}
    # batched: 8 answers of at most 8 tokens took far fewer decoding steps than 8 × 8 one at a time
    assert scheduler.max_rows_seen > 1
    assert scheduler.steps - steps_before < CLIENTS * 8 / 2


def test_a_client_that_disconnects_frees_its_row(server, backend):
    scheduler = scheduler_for(backend)
    chat = {"model": "m", "messages": [{"role": "user", "content": "Count from one to five hundred."}],
            "max_tokens": 400, "stream": True}
    with httpx.Client(timeout=120) as http, http.stream("POST", f"{server.url}/v1/chat/completions", json=chat) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        for _ in range(6):  # the role chunk, then a few tokens
            next(lines)
        assert len(scheduler._active) == 1
    deadline = time.time() + 20
    while scheduler._active and time.time() < deadline:  # the row leaves at the next step boundary
        time.sleep(0.05)
    assert not scheduler._active
    steps = scheduler.steps
    time.sleep(0.5)
    assert scheduler.steps == steps  # nothing is decoded for a client that is gone
    # and the server goes on answering
    ok = httpx.post(f"{server.url}/v1/chat/completions", timeout=120,
                    json={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
    assert ok.status_code == 200


def test_a_server_at_capacity_answers_503_with_retry_after(backend):
    app = create_app(backend, limits=Limits(max_concurrent=1))
    long_chat = {"model": "m", "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 60,
                 "stream": True}
    with RunningServer(app) as srv:
        started = threading.Event()

        def hold() -> None:
            with httpx.stream("POST", f"{srv.url}/v1/chat/completions", json=long_chat, timeout=120) as r:
                for _ in r.iter_lines():
                    started.set()

        holder = threading.Thread(target=hold)
        holder.start()
        assert started.wait(60)
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60,
                       json={"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        holder.join()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    err = r.json()["error"]
    assert err["code"] == "server_busy" and err["type"] == "server_error" and "retry" in err["message"]
