"""A server without log-probs (``transformers serve``): detected, sampling served, white-box refused early."""

from __future__ import annotations

import numpy as np
import pytest

import tokentrust as tt
from tokentrust.annotated import resolve_estimators
from tokentrust.backends.openai import OpenAIBackend
from tokentrust.errors import CapabilityError

QUESTION = "What is the capital of France?"


def test_transformers_serve_black_box(tserve_proxy):
    backend = OpenAIBackend(tserve_proxy.url, concurrency=3)  # no model named: the server's only one
    assert backend.capabilities - {tt.Capability.STREAMING} == {tt.Capability.SAMPLING, tt.Capability.GENERATION}
    assert backend.model_id.startswith(f"openai:{tserve_proxy.url}#") and backend.model_id.endswith("98362432")
    probes = tserve_proxy.faults.requests

    # white-box estimators fail before any generation request, naming the missing capability
    with pytest.raises(CapabilityError, match=r"maximum_sequence_probability needs logprobs.*"
                                              r"mean_token_entropy needs full_distribution, logprobs"):
        tt.check_compatible(resolve_estimators(["msp", "mean_token_entropy"]), backend)
    with pytest.raises(CapabilityError, match="prompt log-probs"):
        backend.score("The capital of France is", " Paris", chat=False)
    assert tserve_proxy.faults.requests == probes

    trace = backend.generate(QUESTION, max_new_tokens=12)
    assert "Paris" in trace.text and len(trace) == 0 and trace.top_k == 0 and trace.logprobs == []

    samples = backend.sample(QUESTION, n=3, temperature=1.0, seed=1, max_new_tokens=12)
    assert len(samples) == 3 and all(s.text for s in samples)
    assert backend._n_supported is False  # the server ignores n: the samples came from concurrent requests

    result = tt.annotate(trace, ["lexical_similarity:n_samples=3", "num_sem_sets:n_samples=3,similarity=lexical"],
                         backend=backend, with_token_forms=False)
    assert all(np.isfinite(s.values).all() for s in result.scores)
    backend.close()
