"""Helpers for the benchmark tests: hand-built traces (no model) and a counting backend wrapper."""

from __future__ import annotations

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
