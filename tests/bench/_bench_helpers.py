"""Helpers for the benchmark tests: hand-built traces and run folders (no model), a counting backend wrapper."""

from __future__ import annotations

import json

from _traces import make_trace as _make_trace
from tokentrust import Trace


def make_trace(logprobs, *, text_tokens=None, prompt="q?") -> Trace:
    """A white-box trace with the given chosen-token log-probs (entropy = −log-prob, for simplicity)."""
    return _make_trace(logprobs, [-lp for lp in logprobs], text_tokens=text_tokens, prompt=prompt)


class CountingBackend:
    """Wraps a real backend; counts the prompts that reach ``generate_many``. Everything else delegates."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0
        self.prompts = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate_many(self, prompts, config=None, **overrides):
        self.calls += 1
        self.prompts += len(prompts)
        return self.inner.generate_many(prompts, config, **overrides)


def hand_run_folder(tmp_path, n=30):
    """A run folder of ``n`` toy items scored by msp, perplexity and mean_token_entropy, not yet finalized.

    Every third answer is correct; the scores come from hand-built traces.
    """
    from tokentrust.bench.datasets import Dataset, Item
    from tokentrust.bench.runner import ITEMS_FILE, _score_item, bench_estimators
    from tokentrust.bench.spec import RunSpec

    ests = bench_estimators(["msp", "perplexity", "mean_token_entropy"])
    items = [Item(id=f"toy/{i}", prompt=f"Capital {i}?", references=["Paris"]) for i in range(n)]
    dataset = Dataset(name="toy", version="1", correctness="contains", items=items)
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text(RunSpec(dataset="capitals", out=str(out)).to_toml())
    (out / "run.json").write_text(json.dumps({
        "dataset": {"name": "toy", "version": "1", "n_items": n}, "model": "hand", "generation": {},
        "estimators": [{"id": e.id, "is_probability": e.is_probability} for e in ests]}))
    with (out / ITEMS_FILE).open("w") as fh:
        for i, item in enumerate(items):
            word = "Paris" if i % 3 == 0 else f"Lyon{i}"
            trace = make_trace([-0.05 * (i % 7), -0.1 * (i % 5)], text_tokens=[word, "."], prompt=item.prompt)
            fh.write(json.dumps(_score_item(item, trace, ests, None, dataset, RunSpec(dataset="toy"))) + "\n")
    return out
