"""Regenerate the golden traces of the embedded model: ``.venv/bin/python tests/data/make_golden.py``.

Runs the embedded SmolLM2-135M-Instruct (``tokentrust.load()``, float32 on CPU) and saves one
:class:`~tokentrust.Trace` per call with ``Trace.save`` under ``tests/data/golden/``:

* ``greedy_chat.json`` — ``generate("What is the capital of Australia?", max_new_tokens=24)``: greedy,
  chat template, ends with the end-of-turn token (``finish_reason == "stop"``).
* ``raw_completion.json`` — ``generate("The capital of France is", max_new_tokens=12, chat=False)``:
  plain text continued, no chat template.
* ``length_cut.json`` — ``generate("Write a short poem about the sea.", max_new_tokens=10)``: cut by the
  length limit (``finish_reason == "length"``).
* ``score_multibyte.json`` — ``score(<question>, <answer>)`` of a given answer with accents, CJK characters
  and a symbol, so byte-level tokens split characters (some tokens span no text); the end-of-turn token is
  appended (``finish_reason == "forced"``).
* ``sample_0.json`` … ``sample_2.json`` — ``sample("Name a colour of the rainbow.", n=3, temperature=1.0,
  seed=7, max_new_tokens=12)``; sample ``k`` draws with seed ``7 + k``.

Every trace keeps ``top_k=5`` alternatives per token, so each file stays a few KB. ``manifest.json`` lists
each file with the backend method and arguments that made it (the tests replay these calls), its digest,
and the versions of the libraries used. Regenerate only when a change of the model's numbers is intended.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GOLDEN = Path(__file__).resolve().parent / "golden"

#: Alternatives recorded per token.
TOP_K = 5

#: (name, backend method, arguments, index into the returned list for ``sample``).
CASES: list[tuple[str, str, dict[str, Any], int | None]] = [
    (
        "greedy_chat",
        "generate",
        {"prompt": "What is the capital of Australia?", "max_new_tokens": 24, "top_k": TOP_K},
        None,
    ),
    (
        "raw_completion",
        "generate",
        {"prompt": "The capital of France is", "max_new_tokens": 12, "chat": False, "top_k": TOP_K},
        None,
    ),
    (
        "length_cut",
        "generate",
        {"prompt": "Write a short poem about the sea.", "max_new_tokens": 10, "top_k": TOP_K},
        None,
    ),
    (
        "score_multibyte",
        "score",
        {
            "prompt": "How do you write the capital of Japan in Japanese?",
            "answer": "Tōkyō is written 東京 — a café-filled city ✓",
            "top_k": TOP_K,
        },
        None,
    ),
    *[
        (
            f"sample_{k}",
            "sample",
            {
                "prompt": "Name a colour of the rainbow.",
                "n": 3,
                "temperature": 1.0,
                "seed": 7,
                "max_new_tokens": 12,
                "top_k": TOP_K,
            },
            k,
        )
        for k in range(3)
    ],
]


def call(backend: Any, method: str, args: dict[str, Any], index: int | None) -> Any:
    """The trace that ``backend.<method>(**args)`` gives (item ``index`` of a list result)."""
    kwargs = dict(args)
    prompt = kwargs.pop("prompt")
    if method == "score":
        answer = kwargs.pop("answer")
        return backend.score(prompt, answer, **kwargs)
    out = getattr(backend, method)(prompt, **kwargs)
    return out[index] if index is not None else out


def main() -> None:
    import torch
    import transformers

    import tokentrust as tt

    backend = tt.load()
    GOLDEN.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, method, args, index in CASES:
        trace = call(backend, method, args, index)
        path = trace.save(GOLDEN / f"{name}.json")
        entries.append(
            {
                "name": name,
                "file": path.name,
                "method": method,
                "args": args,
                "index": index,
                "finish_reason": trace.finish_reason,
                "digest": trace.digest,
            }
        )
        size = path.stat().st_size
        print(f"{path.name}: {len(trace)} tokens, {trace.finish_reason}, {size} bytes, {trace.text!r}")
    manifest = {
        "model_id": backend.model_id,
        "versions": {
            "tokentrust": tt.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
        },
        "goldens": entries,
    }
    (GOLDEN / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
