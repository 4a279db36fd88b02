"""HFBackend.stream: a TokenRecord per token as it is generated, with the same numbers as generate()."""

from __future__ import annotations

import math
import time

from tokentrust.trace import TokenRecord, Trace

QUESTION = "What is the capital of Australia?"


def _split(items):
    *records, trace = items
    assert isinstance(trace, Trace) and all(isinstance(r, TokenRecord) for r in records)
    return records, trace


def test_greedy_stream_matches_generate_exactly(backend):
    records, streamed = _split(list(backend.stream(QUESTION, max_new_tokens=16)))
    reference = backend.generate(QUESTION, max_new_tokens=16)
    assert streamed.digest == reference.digest  # the final trace is generate's, bit for bit
    assert records == reference.records()  # and what was streamed is that trace's records
    assert [r.index for r in records] == list(range(len(reference)))
    assert "".join(r.text for r in records) == reference.text
    # the chosen token's probability is its top alternative's when it is the argmax (greedy)
    assert all(math.isclose(r.logprob, r.top_logprobs[0], abs_tol=1e-6) for r in records)
    assert all(r.rank == 1 and r.entropy is not None for r in records)


def test_sampled_stream_matches_generate_with_the_same_seed(backend):
    records, streamed = _split(list(backend.stream("Name a colour.", max_new_tokens=10, temperature=0.9, seed=7)))
    reference = backend.generate("Name a colour.", max_new_tokens=10, temperature=0.9, seed=7)
    assert [r.id for r in records] == reference.token_ids
    assert streamed.digest == reference.digest


def test_records_arrive_before_generation_ends_and_closing_stops_it(backend):
    it = backend.stream("Write a long story about a dragon.", max_new_tokens=200)
    t0 = time.perf_counter()
    first = next(it)
    assert isinstance(first, TokenRecord) and first.index == 0
    for _ in range(3):
        next(it)
    three = time.perf_counter() - t0
    it.close()  # generation runs in this thread, step by step: closing stops it at once
    assert time.perf_counter() - t0 < three + 1.0
