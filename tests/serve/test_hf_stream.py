"""HFBackend.stream: per-token records as they are generated, with the same numbers as generate()."""

from __future__ import annotations

import math
import threading
import time

import pytest

from tokentrust.trace import Trace

QUESTION = "What is the capital of Australia?"


def _split(items):
    *records, trace = items
    assert isinstance(trace, Trace) and all(isinstance(r, dict) for r in records)
    return records, trace


def test_greedy_stream_matches_generate_exactly(backend):
    records, streamed = _split(list(backend.stream(QUESTION, max_new_tokens=16)))
    reference = backend.generate(QUESTION, max_new_tokens=16)
    assert streamed.digest == reference.digest  # the final trace is generate's, bit for bit
    assert [r["id"] for r in records] == reference.token_ids
    assert [r["index"] for r in records] == list(range(len(reference)))
    for r, i in zip(records, range(len(reference))):
        assert r["logprob"] == pytest.approx(reference.logprobs[i], abs=1e-6)
        assert r["entropy"] == pytest.approx(reference.entropy[i], abs=1e-5)
        assert r["max_prob"] == pytest.approx(reference.max_prob[i], abs=1e-6)
        assert r["rank"] == reference.rank[i]
        assert r["top_ids"] == reference.top_ids[i]
        assert r["top_tokens"] == reference.top_tokens[i]
        assert r["top_logprobs"] == pytest.approx(reference.top_logprobs[i], abs=1e-6)
        assert r["token"] == reference.tokens[i] and tuple(r["offset"]) == reference.offsets[i]
        assert r["special"] == reference.special[i]
    assert "".join(r["piece"] for r in records) == reference.text
    # the chosen token's probability is one of its top alternatives' when it is the argmax (greedy)
    assert all(math.isclose(r["logprob"], r["top_logprobs"][0], abs_tol=1e-6) for r in records)


def test_sampled_stream_matches_generate_with_the_same_seed(backend):
    records, streamed = _split(list(backend.stream("Name a colour.", max_new_tokens=10, temperature=0.9, seed=7)))
    reference = backend.generate("Name a colour.", max_new_tokens=10, temperature=0.9, seed=7)
    assert [r["id"] for r in records] == reference.token_ids
    assert streamed.digest == reference.digest


def test_records_arrive_before_generation_ends_and_closing_stops_it(backend):
    it = backend.stream("Write a long story about a dragon.", max_new_tokens=200)
    first = next(it)
    assert isinstance(first, dict) and first["index"] == 0
    t0 = time.perf_counter()
    it.close()  # stops the worker at the next step, well before 200 tokens
    assert time.perf_counter() - t0 < 5
    assert not any(t.name == "tokentrust-stream" for t in threading.enumerate())
