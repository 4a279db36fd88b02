"""Load on ``tokentrust serve``: N concurrent streaming clients against the same N requests one at a time.

Starts the real server (uvicorn on a free 127.0.0.1 port, in a background thread) over the in-process
default model, which sits behind the scheduler that batches concurrent requests. The same N ``capitals``
questions are then sent twice through official ``openai.AsyncOpenAI`` streaming clients: one request at a
time, and all N at once. Reports, in one run: wall time of each, their ratio (goal: concurrent ≥ 4× faster),
time to first token and latency (median / max), errors, and how many streamed answers differ from
``backend.generate`` of the same question alone (must be 0: greedy answers are identical when batched).

    .venv/bin/python benchmarks/serve_load.py [--clients 32] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import threading
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI and server set it

import openai
import uvicorn

import tokentrust as tt
from tokentrust.backends.scheduler import scheduler_for
from tokentrust.bench.datasets import load_dataset
from tokentrust.serve import Limits, create_app


def start_server(app) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def one(client: openai.AsyncOpenAI, question: str, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    first, text, tokens, final = None, "", 0, None
    stream = await client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": question}], max_tokens=max_tokens, stream=True
    )
    async for chunk in stream:
        ext = chunk.model_extra.get("tokentrust") or {}
        if chunk.choices and "tokens" in ext:
            first = first if first is not None else time.perf_counter() - t0
            tokens += len(ext["tokens"])
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if "decision" in ext:
            final = ext
    return {"question": question, "text": text, "tokens": tokens, "ttft": first,
            "latency": time.perf_counter() - t0, "ok": final is not None}


async def run_clients(url: str, questions: list[str], max_tokens: int, *, concurrent: bool) -> tuple[list, float]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=1800) as client:
        t0 = time.perf_counter()
        if concurrent:
            results = await asyncio.gather(*(one(client, q, max_tokens) for q in questions), return_exceptions=True)
        else:
            results = []
            for q in questions:
                try:
                    results.append(await one(client, q, max_tokens))
                except Exception as exc:  # noqa: BLE001 — counted as an error
                    results.append(exc)
        return list(results), time.perf_counter() - t0


def summary(name: str, results: list, wall: float, alone: dict[str, str]) -> dict:
    good = [r for r in results if not isinstance(r, BaseException) and r["ok"]]
    errors = len(results) - len(good)
    differ = [r["question"] for r in good if r["text"] != alone[r["question"]]]
    ttft = [r["ttft"] for r in good if r["ttft"] is not None]
    lat = [r["latency"] for r in good]
    tokens = sum(r["tokens"] for r in good)
    print(f"{name:>10}: wall {wall:6.1f} s, {tokens} tokens ({tokens / wall:.1f} tok/s), errors {errors}, "
          f"answers differing from generate() {len(differ)}, time to first token median "
          f"{statistics.median(ttft):.2f} s / max {max(ttft):.2f} s, latency median {statistics.median(lat):.2f} s "
          f"/ max {max(lat):.2f} s", flush=True)
    for r in results:
        if isinstance(r, BaseException):
            print("error:", r, file=sys.stderr)
    return {"wall": wall, "errors": errors, "differ": len(differ), "ttft": statistics.median(ttft)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    backend = tt.load()
    questions = [item.prompt for item in load_dataset("capitals", limit=args.clients).items]
    alone = {q: backend.generate(q, max_new_tokens=args.max_tokens).text for q in questions}

    limits = Limits(max_tokens=args.max_tokens, default_max_tokens=args.max_tokens)
    server, url = start_server(create_app(backend, limits=limits))
    asyncio.run(run_clients(url, questions[:2], args.max_tokens, concurrent=False))  # warm-up
    scheduler = scheduler_for(backend)
    print(f"clients {args.clients}, max_tokens {args.max_tokens}, scheduler max batch {scheduler.max_batch}, "
          f"torch threads {__import__('torch').get_num_threads()}", flush=True)
    seq = summary("sequential", *asyncio.run(run_clients(url, questions, args.max_tokens, concurrent=False)), alone)
    scheduler.max_rows_seen = 0
    con = summary("concurrent", *asyncio.run(run_clients(url, questions, args.max_tokens, concurrent=True)), alone)
    server.should_exit = True
    print(f"largest batch decoded: {scheduler.max_rows_seen} rows")
    print(f"speed-up of {args.clients} concurrent clients over one at a time: {seq['wall'] / con['wall']:.2f}x "
          f"(goal >= 4)")
    bad = seq["errors"] + con["errors"] + seq["differ"] + con["differ"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
