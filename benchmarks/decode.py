"""Decoding that changes or audits how text is produced: what each method costs and what it changes.

Byte-level part (:func:`bytelevel_bench`): the default model walks each built-in text byte by byte and, at
every position, predicts the next byte three ways: *exact* (the byte-level model, :class:`ByteLM`, one
instance per text so the key/value cache and node memo are reused along it), *healing* (token healing,
fresh per position) and *naive* (tokenise the prefix as it stands and read the next token's first byte).
Reported per method: forward passes per byte, seconds per byte, top-1 accuracy on the true next byte and
bits per byte (mean −log2 P(true next byte)). Goal: ≤ 4 forward passes per byte on average for the exact
method, with the cache reused. Also the cost of scoring a text character by character (``score_text``).

OPERA part (:func:`opera_bench`): seconds per generated token of OPERA against transformers' own beam search
(5 beams) and greedy decoding, forward passes and positions computed per token; goal: within the published
~(1 + N_can)× of beam search. On ``arithmetic`` and ``capitals``: accuracy of greedy vs OPERA answers and the
ROC-AUC of the overtrust diagnostic (−max log φ over the answer) beside the maximum sequence probability's.

    .venv/bin/python benchmarks/decode.py [--parts bytelevel opera] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Built-in texts: code, prose and a list, each predicted from its 8th byte on.
BYTE_TEXTS = (
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "The capital of France is Paris, and the capital of Italy is Rome.",
    "Monday, Tuesday, Wednesday, Thursday, Friday",
)
_START = 8


def _naive(backend, lm, prefix: bytes):
    """Next-byte distribution from the tokenised prefix as it stands (the prompt-boundary problem included)."""
    import numpy as np
    import torch

    ids = list(lm.context) + backend.tokenizer(prefix.decode("utf-8", errors="ignore"),
                                               add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        p = torch.softmax(backend.model(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1).numpy()
    first = np.full(len(p), -1)
    for i, s in enumerate(lm.vocab.spellings):
        if s:
            first[i] = s[0]
    ok = first >= 0
    nb = np.bincount(first[ok], weights=p[ok], minlength=256)
    return nb / nb.sum()


def bytelevel_bench() -> list[dict]:
    """Exact byte-level next-byte prediction against token healing and the naive tokenised prompt."""
    import numpy as np

    import tokentrust as tt
    from tokentrust.bytelevel import ByteLM, healed_next_byte, score_text

    backend = tt.load()
    rows = []
    totals = {m: {"passes": 0, "seconds": 0.0, "hits": 0, "bits": 0.0, "bytes": 0} for m in ("exact", "healing",
                                                                                                "naive")}
    for text in BYTE_TEXTS:
        data = text.encode("utf-8")
        lm = ByteLM(backend)
        lm.next_byte(data[:_START - 1])  # the prompt's first pass is not a per-byte cost
        for k in range(_START, len(data)):
            prefix, truth = data[:k], data[k]
            for method in ("exact", "healing", "naive"):
                t0 = time.perf_counter()
                if method == "exact":
                    before = lm.forward_passes
                    probs = lm.next_byte(prefix).probs
                    passes = lm.forward_passes - before
                elif method == "healing":
                    h = ByteLM(backend)
                    probs = healed_next_byte(h, prefix).probs
                    passes = h.forward_passes
                else:
                    probs = _naive(backend, lm, prefix)
                    passes = 1
                tot = totals[method]
                tot["seconds"] += time.perf_counter() - t0
                tot["passes"] += passes
                tot["hits"] += int(np.argmax(probs) == truth)
                tot["bits"] += -math.log2(max(float(probs[truth]), 1e-300))
                tot["bytes"] += 1
    for method, tot in totals.items():
        n = tot["bytes"]
        rows.append({"part": "bytelevel", "method": method, "bytes": n,
                     "forward_passes_per_byte": round(tot["passes"] / n, 3),
                     "seconds_per_byte": round(tot["seconds"] / n, 4),
                     "top1_accuracy": round(tot["hits"] / n, 4), "bits_per_byte": round(tot["bits"] / n, 3)})
    lm = ByteLM(backend, "Write a sentence.")
    answer = BYTE_TEXTS[1]
    t0 = time.perf_counter()
    score_text(lm, answer)
    rows.append({"part": "bytelevel", "method": "score_text (per character)", "bytes": len(answer),
                 "forward_passes_per_byte": round(lm.forward_passes / len(answer), 3),
                 "seconds_per_byte": round((time.perf_counter() - t0) / len(answer), 4)})
    return rows


#: Prompts whose OPERA decoding is timed against beam search.
OPERA_PROMPTS = (
    "What is the capital of Australia?",
    "Tell me a short story about a cat.",
    "Explain why the sky is blue.",
)


def opera_bench(max_new_tokens: int = 32, items: int = 20) -> list[dict]:
    """OPERA's cost per generated token against transformers' beam search and greedy decoding (same model,
    same beams), and, on built-in sets, accuracy of greedy vs OPERA and the ROC-AUC of the overtrust
    diagnostic (answer confidence = −max_t log φ_t) next to the maximum sequence probability's."""
    import torch

    import tokentrust as tt
    from tokentrust.bench.datasets import load_dataset
    from tokentrust.bench.quality import judge
    from tokentrust.config import GenerationConfig
    from tokentrust.decoding.opera import OperaConfig, opera_generate
    from tokentrust.metrics.ranking import roc_auc

    backend = tt.load()
    model, rows = backend.model, []
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    for beams in (5, 1):
        hf_time = hf_tokens = op_time = op_tokens = passes = positions = 0.0
        for prompt in OPERA_PROMPTS:
            ids = torch.tensor([backend.render(prompt).token_ids])
            t0 = time.perf_counter()
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), num_beams=beams,
                                     do_sample=False, max_new_tokens=max_new_tokens,
                                     pad_token_id=backend.pad_id)
            hf_time += time.perf_counter() - t0
            hf_tokens += out.shape[1] - ids.shape[1]
            t0 = time.perf_counter()
            result = opera_generate(backend, prompt, config, OperaConfig(num_beams=beams))
            op_time += time.perf_counter() - t0
            op_tokens += len(result.trace)
            passes += result.forwards
            positions += result.tokens_forwarded
        hf_per, op_per = hf_time / hf_tokens, op_time / op_tokens
        rows.append({"part": "opera", "what": f"cost, {beams} beam(s)", "hf_seconds_per_token": round(hf_per, 4),
                     "opera_seconds_per_token": round(op_per, 4), "ratio": round(op_per / hf_per, 2),
                     "goal_ratio": 1 + OperaConfig().num_attn_candidates,
                     "opera_passes_per_token": round(passes / op_tokens, 2),
                     "opera_positions_per_token": round(positions / op_tokens, 1)})
    for name in ("arithmetic", "capitals"):
        data = load_dataset(name, limit=items)
        greedy_ok, opera_ok, diag, msp = [], [], [], []
        for item in data.items:
            trace = backend.generate(item.prompt, max_new_tokens=24)
            scores = tt.annotate(trace, ["overtrust", "msp"], backend=backend)
            greedy_ok.append(judge(data, trace.text, item.references).correct)
            diag.append(-max(scores["overtrust"].raw))
            msp.append(scores["maximum_sequence_probability"].value)
            answer = opera_generate(backend, item.prompt, GenerationConfig(max_new_tokens=24)).trace
            opera_ok.append(judge(data, answer.text, item.references).correct)
        rows.append({"part": "opera", "what": f"{name} ({len(data.items)} items)",
                     "greedy_accuracy": round(sum(greedy_ok) / len(greedy_ok), 3),
                     "opera_accuracy": round(sum(opera_ok) / len(opera_ok), 3),
                     "overtrust_roc_auc": round(roc_auc(greedy_ok, diag), 3),
                     "msp_roc_auc": round(roc_auc(greedy_ok, msp), 3)})
    return rows


def _parts() -> dict[str, Callable[[], list[dict]]]:
    """Every ``<name>_bench`` function of this file, by name."""
    return {name.removesuffix("_bench"): fn for name, fn in globals().items()
            if name.endswith("_bench") and callable(fn)}


def main() -> None:
    parts = _parts()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="*", choices=sorted(parts), default=sorted(parts),
                        help="Which parts to run (default: all present).")
    parser.add_argument("--json", action="store_true", help="Print JSON lines instead of a table.")
    args = parser.parse_args()
    for name in args.parts:
        for row in parts[name]():
            if args.json:
                print(json.dumps(row))
            else:
                print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
