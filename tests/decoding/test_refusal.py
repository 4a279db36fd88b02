"""Refusal score: opener mass and refusal-token probability checked against direct forward passes."""

from __future__ import annotations

import math

import pytest
import torch

import tokentrust as tt
from tokentrust.estimators.refusal import REFUSAL_OPENERS, opener_ids


def _first_position_logprobs(backend, prompt, continuation):
    prompt_ids = backend.render(prompt).token_ids
    ids = torch.tensor([prompt_ids + continuation])
    with torch.no_grad():
        logp = torch.log_softmax(backend.model(input_ids=ids).logits[0].double(), dim=-1)
    n = len(prompt_ids)
    return sum(float(logp[n - 1 + i, t]) for i, t in enumerate(continuation))


def test_opener_mass_is_the_sum_of_opener_probabilities(backend):
    prompt = "Reply with exactly this sentence: I'm sorry, I can't help with that."
    trace = backend.generate(prompt, max_new_tokens=2)
    plain = backend.generate("What is 2 + 2?", max_new_tokens=2)
    scores = tt.annotate(trace, ["refusal_score"], backend=backend)["refusal_score"]
    kept = opener_ids(backend, REFUSAL_OPENERS)
    assert "I'm sorry" in kept and all(
        not (len(a) < len(b) and b[: len(a)] == a) for a in kept.values() for b in kept.values())
    expected = sum(math.exp(_first_position_logprobs(backend, prompt, ids)) for ids in kept.values())
    assert scores.raw[0] == pytest.approx(expected, rel=1e-4)
    assert scores.value == pytest.approx(1 - expected, rel=1e-4)
    other = tt.annotate(plain, ["refusal_score"], backend=backend)["refusal_score"]
    assert scores.raw[0] > 10 * other.raw[0]
    assert scores.extras["opener"][0] in kept


def test_named_refusal_tokens_use_their_first_position_probability(backend, capital_trace):
    vocab = backend.tokenizer.get_vocab()
    names = ("The", "I")
    scores = tt.annotate(capital_trace, ["refusal_score:tokens=[\"The\",\"I\"]"], backend=backend)
    got = scores[tt.build_estimator('refusal_score:tokens=["The","I"]').id]
    expected = sum(math.exp(_first_position_logprobs(backend, capital_trace.prompt, [vocab[n]])) for n in names)
    assert got.raw[0] == pytest.approx(expected, rel=1e-4)


def test_unknown_refusal_token_is_refused(backend, capital_trace):
    with pytest.raises(tt.UserInputError, match="not in the vocabulary"):
        tt.annotate(capital_trace, ['refusal_score:tokens=["<no such token>"]'], backend=backend)
