"""Helpers for the benchmark tests: hand-built traces (no model) and a counting backend wrapper."""

from __future__ import annotations

import math

from tokentrust import Trace


def make_trace(logprobs, *, text_tokens=None, prompt="q?") -> Trace:
    """A white-box trace with the given chosen-token log-probs (entropy etc. filled in simply)."""
    n = len(logprobs)
    tokens = text_tokens or [f"t{i} " for i in range(n)]
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    return Trace(
        model_id="hand", prompt=prompt, prompt_text=prompt, text="".join(tokens),
        token_ids=list(range(10, 10 + n)), tokens=tokens, offsets=offsets, logprobs=list(logprobs),
        special=[False] * n, top_k=1, top_ids=[[10 + i] for i in range(n)], top_tokens=[[t] for t in tokens],
        top_logprobs=[[lp] for lp in logprobs], entropy=[-lp for lp in logprobs],
        max_prob=[math.exp(lp) for lp in logprobs], margin=[0.5] * n, rank=[1] * n, kurtosis=[1.0] * n,
    )


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
