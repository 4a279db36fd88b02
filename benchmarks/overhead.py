"""Overhead of tokentrust's generate (full trace + every score a trace carries alone) over plain ``model.generate``.

Same model, same 32 questions, greedy, same max_new_tokens, same batch size; min and median of 3 repeats, in
wall and CPU seconds. The scores are every registered estimator that needs nothing but the trace
(``needs_only_trace``: no model pass, no sampling, no other model). Also the cold start, ``import tokentrust``
plus ``tokentrust.load()`` of the converted default model in a fresh process. Goals: ratio ≤ 1.05, cold start
≤ 3 CPU-seconds.

    .venv/bin/python benchmarks/overhead.py [--questions 32] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI and server set it

import torch

import tokentrust as tt
from tokentrust.bench.datasets import load_dataset


def plain_generate(backend, prompts, max_new_tokens, batch_size):
    """Reference: tokenise the same rendered prompts, left-pad, model.generate, nothing else."""
    tok = backend.tokenizer
    for start in range(0, len(prompts), batch_size):
        ids = [backend.render(p).token_ids for p in prompts[start : start + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[backend.pad_id] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            backend.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=backend.pad_id, eos_token_id=sorted(backend.eos_ids), top_k=None,
                temperature=None, top_p=None,
            )
    del tok


def tokentrust_generate(backend, prompts, max_new_tokens, estimators):
    traces = backend.generate_many(prompts, max_new_tokens=max_new_tokens)
    for t in traces:
        tt.annotate(t, estimators, backend=backend)


def trace_only_estimators() -> list[str]:
    """Every registered estimator computable from the trace alone (no model pass, sampling or other model)."""
    return [name for name, cls in tt.registry.estimators.items() if cls().needs_only_trace]


def timed(fn, repeats):
    """(min, median) of wall seconds and of this process's CPU seconds over ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), statistics.median(wall), min(cpu), statistics.median(cpu)


def cold_start() -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``import tokentrust; tokentrust.load()`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tokentrust as tt; tt.load()"], capture_output=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tt.load()  # make sure the conversion cache exists before timing a cold start
    colds = [cold_start() for _ in range(3)]
    backend = tt.load()
    prompts = [item.prompt for item in load_dataset("capitals", limit=args.questions).items]
    estimators = trace_only_estimators()
    tokentrust_generate(backend, prompts[:2], 4, estimators)  # warm-up
    plain = timed(lambda: plain_generate(backend, prompts, args.max_new_tokens, backend.batch_size), args.repeats)
    ours = timed(lambda: tokentrust_generate(backend, prompts, args.max_new_tokens, estimators), args.repeats)
    print(f"questions={args.questions} max_new_tokens={args.max_new_tokens} batch={backend.batch_size} "
          f"threads={torch.get_num_threads()}")
    print("import tokentrust + load() in a fresh process, best of 3: "
          f"{min(c[0] for c in colds):.2f} s wall, {min(c[1] for c in colds):.2f} CPU-s (goal <= 3 CPU-s)")
    print(f"plain model.generate      wall min {plain[0]:.2f} s median {plain[1]:.2f} s | "
          f"CPU min {plain[2]:.2f} s median {plain[3]:.2f} s")
    print(f"tokentrust + {len(estimators)} estimators  wall min {ours[0]:.2f} s median {ours[1]:.2f} s | "
          f"CPU min {ours[2]:.2f} s median {ours[3]:.2f} s")
    print(f"ratio wall (min) {ours[0] / plain[0]:.3f} (median) {ours[1] / plain[1]:.3f} | "
          f"CPU (min) {ours[2] / plain[2]:.3f} (median) {ours[3] / plain[3]:.3f}   goal <= 1.05")


if __name__ == "__main__":
    main()
