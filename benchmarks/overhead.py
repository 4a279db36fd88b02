"""Overhead of tokentrust's generate (full trace + every white-box estimator) over plain ``model.generate``.

Same model, same 32 questions, greedy, same max_new_tokens, same batch size; min and median of 3 repeats.
Also the cold-start time of ``tokentrust.load()`` from the converted cache. Goal: ratio ≤ 1.05.

    .venv/bin/python benchmarks/overhead.py [--questions 32] [--max-new-tokens 32] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

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
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tt.load()  # make sure the conversion cache exists before timing a cold start
    cold = subprocess.run(
        [sys.executable, "-c", "import time; t=time.perf_counter(); import tokentrust as tt; tt.load(); "
         "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True,
    )
    backend = tt.load()
    prompts = [item.prompt for item in load_dataset("capitals", limit=args.questions).items]
    estimators = trace_only_estimators()
    tokentrust_generate(backend, prompts[:2], 4, estimators)  # warm-up
    plain = timed(lambda: plain_generate(backend, prompts, args.max_new_tokens, backend.batch_size), args.repeats)
    ours = timed(lambda: tokentrust_generate(backend, prompts, args.max_new_tokens, estimators), args.repeats)
    print(f"questions={args.questions} max_new_tokens={args.max_new_tokens} batch={backend.batch_size} "
          f"threads={torch.get_num_threads()}")
    print(f"cold start tokentrust.load() in a new process: {float(cold.stdout.strip().splitlines()[-1]):.2f} s")
    print(f"plain model.generate      min {plain[0]:.2f} s  median {plain[1]:.2f} s")
    print(f"tokentrust + {len(estimators)} estimators  min {ours[0]:.2f} s  median {ours[1]:.2f} s")
    print(f"ratio (min) {ours[0] / plain[0]:.3f}   ratio (median) {ours[1] / plain[1]:.3f}")


if __name__ == "__main__":
    main()
