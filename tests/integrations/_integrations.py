"""Checks shared by the integration tests: scores computed by hand from the log-probs a server sent."""

from __future__ import annotations

import math

import pytest

QUESTION = "What is the capital of Australia?"


def by_hand(logprobs: list[float]) -> dict[str, float]:
    """Sequence scores computed here from the chosen tokens' log-probs, independently of the estimators."""
    probs = [math.exp(x) for x in logprobs]
    return {"maximum_sequence_probability": math.exp(math.fsum(logprobs)),
            "perplexity": math.fsum(logprobs) / len(logprobs),
            "geometric_mean_token_probability": math.exp(math.fsum(logprobs) / len(logprobs)),
            "minimum_token_probability": min(probs)}


def assert_scores_match(result, logprobs: list[float]) -> None:
    """Every hand-computable sequence score of ``result`` equals the hand computation (1e-6)."""
    present = {s.estimator for s in result.sequence_scores}
    expected = {name: value for name, value in by_hand(logprobs).items() if name in present}
    assert len(expected) >= 2, present
    for name, value in expected.items():
        assert result[name].value == pytest.approx(value, abs=1e-6, rel=1e-6), name
