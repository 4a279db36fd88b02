"""Recorded answers for sampling-estimator tests: identical, diverse and clustered sample sets."""

from __future__ import annotations

from tokentrust.backends.replay import ReplayBackend

QUESTION = "Who wrote Les Misérables?"
IDENTICAL = ["Victor Hugo"] * 6
DIVERSE = ["Victor Hugo", "Charles Dickens", "Gustave Flaubert", "Emile Zola", "Honoré de Balzac", "Jules Verne"]


def replay(samples: list[str], answer: str = "Victor Hugo", logprob: float = -1.0) -> ReplayBackend:
    return ReplayBackend.from_texts(QUESTION, answer, samples, sample_logprobs=[logprob] * len(samples))
