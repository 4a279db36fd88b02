"""Shared fixtures: the real embedded model, loaded once per test session."""

from __future__ import annotations

import os

import pytest

from _llama import llama_server  # noqa: F401  (a session fixture shared by several suites)

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle OpenMP threads sleep instead of spinning: with servers and subprocesses sharing 2 cores,
# spinning threads slowed generation ~10x. Must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def backend():
    import tokentrust as tt

    return tt.load()


@pytest.fixture(scope="session")
def capital_trace(backend):
    return backend.generate("What is the capital of Australia?", max_new_tokens=24)
