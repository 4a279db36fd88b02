"""Questions per second through an OpenAI-compatible server (llama.cpp) against the in-process backend.

Starts ``llama_cpp.server`` on the embedded model's GGUF (127.0.0.1, a free port), answers the first N
``capitals`` questions greedily with ``OpenAIBackend.generate_many`` at each concurrency, then with the
in-process transformers backend (at its default batch size), and prints a Markdown table for benchmarks/README.md.
Every request asks for log-probs and the top-10 alternatives, as a benchmark run does.

    .venv/bin/python benchmarks/openai_backend.py [--questions 100] [--max-new-tokens 24] [--concurrency 1 4 16]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI and server set it

import httpx

import tokentrust as tt
from tokentrust.backends.embedded import gguf_path
from tokentrust.backends.openai import OpenAIBackend
from tokentrust.bench.datasets import load_dataset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = Path(tempfile.mkdtemp()) / "llama.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path()), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
         "--logits_all", "true", "--verbose", "false"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama.cpp server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("llama.cpp server did not start in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="llama.cpp threads")
    args = parser.parse_args()

    prompts = [item.prompt for item in load_dataset("capitals", limit=args.questions).items]
    proc, url = start_server(args.threads)
    rows = []
    try:
        for concurrency in args.concurrency:
            backend = OpenAIBackend(url, "smollm2", concurrency=concurrency)
            backend.generate(prompts[0], max_new_tokens=args.max_new_tokens)  # probe + warm-up
            start = time.perf_counter()
            traces = backend.generate_many(prompts, max_new_tokens=args.max_new_tokens)
            seconds = time.perf_counter() - start
            assert len(traces) == len(prompts) and all(t.logprobs for t in traces)
            rows.append((f"llama.cpp server, concurrency {concurrency}", seconds))
            print(f"concurrency {concurrency}: {seconds:.1f} s, {len(prompts) / seconds:.2f} questions/s", flush=True)
            backend.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)

    local = tt.load()
    local.generate(prompts[0], max_new_tokens=args.max_new_tokens)
    start = time.perf_counter()
    local.generate_many(prompts, max_new_tokens=args.max_new_tokens)
    local_seconds = time.perf_counter() - start
    print(f"in-process: {local_seconds:.1f} s", flush=True)

    print(f"\n{len(prompts)} capitals questions, greedy, ≤ {args.max_new_tokens} new tokens, top-10 log-probs\n")
    print("| backend | seconds | questions/s | vs in-process |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {len(prompts) / seconds:.2f} | {local_seconds / seconds:.2f}× |")
    print(f"| in-process transformers (fp32, batch {local.batch_size}) | {local_seconds:.1f} | "
          f"{len(prompts) / local_seconds:.2f} | 1.00× |")


if __name__ == "__main__":
    main()
