"""Load on ``tokentrust serve``: N concurrent streaming clients against the in-process default model.

Starts the real server (uvicorn on a free 127.0.0.1 port, in a background thread), then N official
``openai.AsyncOpenAI`` clients stream chat completions at once, each a different ``capitals`` question.
Reports errors, wall time, time to first token and total latency (median / max), generated tokens per
second, and the same questions answered one after another through ``backend.generate`` for comparison.
Every streamed answer must equal the model's answer alone (generation is serialised).

    .venv/bin/python benchmarks/serve_load.py [--clients 32] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import threading
import time

import uvicorn

import openai
import tokentrust as tt
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
        if chunk.choices and "tokens" in ext and "action" not in ext:
            first = first if first is not None else time.perf_counter() - t0
            tokens += len(ext["tokens"])
            text += chunk.choices[0].delta.content or ""
        if "action" in ext:
            final = ext
    result = {"question": question, "text": text, "tokens": tokens, "ttft": first,
              "latency": time.perf_counter() - t0, "ok": final is not None}
    print(f"  done: {question!r} in {result['latency']:.1f} s", flush=True)
    return result


async def run_clients(url: str, questions: list[str], max_tokens: int) -> tuple[list, float]:
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=1800) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(client, q, max_tokens) for q in questions), return_exceptions=True)
        return results, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()

    backend = tt.load()
    questions = [item.prompt for item in load_dataset("capitals", limit=args.clients).items]
    backend.generate(questions[0], max_new_tokens=2)  # warm-up

    server, url = start_server(create_app(backend, limits=Limits(max_tokens=args.max_tokens)))
    results, wall = asyncio.run(run_clients(url, questions, args.max_tokens))
    server.should_exit = True
    print(f"{args.clients} concurrent streams done in {wall:.1f} s; now the same questions one by one", flush=True)

    t0 = time.perf_counter()
    alone = {q: backend.generate(q, max_new_tokens=args.max_tokens).text for q in questions}
    sequential = time.perf_counter() - t0

    errors = [r for r in results if isinstance(r, BaseException) or not r["ok"]]
    good = [r for r in results if not isinstance(r, BaseException) and r["ok"]]
    mismatched = [r["question"] for r in good if r["text"] != alone[r["question"]]]
    tokens = sum(r["tokens"] for r in good)
    ttft = [r["ttft"] for r in good if r["ttft"] is not None]
    lat = [r["latency"] for r in good]
    print(f"clients: {args.clients}, max_tokens: {args.max_tokens}, errors: {len(errors)}, "
          f"answers differing from generate(): {len(mismatched)}")
    print(f"wall: {wall:.1f} s for {tokens} streamed tokens ({tokens / wall:.1f} tokens/s); "
          f"sequential backend.generate of the same questions: {sequential:.1f} s")
    print(f"time to first token: median {statistics.median(ttft):.2f} s, max {max(ttft):.2f} s")
    print(f"latency: median {statistics.median(lat):.2f} s, max {max(lat):.2f} s")
    for e in errors[:3]:
        print("error:", e, file=sys.stderr)
    sys.exit(1 if errors or mismatched else 0)


if __name__ == "__main__":
    main()
