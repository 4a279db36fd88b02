"""Shared fixtures: the real embedded model, loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def backend():
    import tokentrust as tt

    return tt.load()


@pytest.fixture(scope="session")
def capital_trace(backend):
    return backend.generate("What is the capital of Australia?", max_new_tokens=24)
