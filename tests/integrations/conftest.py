"""Real servers on 127.0.0.1 for the integration tests: ``tokentrust serve`` over the session's default model
(in a uvicorn thread) and the llama.cpp server of ``tests/_llama.py`` (a plain OpenAI-compatible server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _servers import RunningServer
from tokentrust.serve import create_app


@pytest.fixture(scope="session")
def tt_server(backend, tmp_path_factory) -> Iterator[RunningServer]:
    """``tokentrust serve`` on the embedded default model, no key."""
    with RunningServer(create_app(backend, runs_dir=tmp_path_factory.mktemp("runs"))) as srv:
        yield srv


@pytest.fixture(scope="session")
def tt_url(tt_server) -> str:
    return f"{tt_server.url}/v1"

