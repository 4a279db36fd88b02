"""Real servers on 127.0.0.1 for the serve tests: uvicorn in a background thread on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _servers import API_KEY, RunningServer
from tokentrust.serve import Limits, create_app


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    (root / "2026-11-26-capitals").mkdir()
    (root / "2026-11-26-capitals" / "report.html").write_text("<html><body><h1>capitals report</h1></body></html>")
    (root / "2026-11-26-capitals" / "metrics.json").write_text('{"roc_auc": 0.71}')
    (root / "not-a-run").mkdir()
    (root / "not-a-run" / "notes.txt").write_text("no report here")
    return root


@pytest.fixture(scope="session")
def server(backend, runs_dir) -> Iterator[RunningServer]:
    """The in-process default model, no key, default limits."""
    with RunningServer(create_app(backend, runs_dir=runs_dir)) as srv:
        yield srv


@pytest.fixture(scope="session")
def guarded_server(backend, runs_dir) -> Iterator[RunningServer]:
    """Same model behind an API key, a 4 kB body limit and at most 32 tokens per request."""
    app = create_app(backend, api_key=API_KEY, runs_dir=runs_dir,
                     limits=Limits(max_body_bytes=4000, max_tokens=32, default_max_tokens=16))
    with RunningServer(app) as srv:
        yield srv


@pytest.fixture(scope="session")
def upstream_server(server, backend) -> Iterator[RunningServer]:
    """A second tokentrust server that takes its answers (with logprobs) from ``server``, as
    ``tokentrust serve --upstream`` builds it: the same app over an OpenAI-compatible backend."""
    from tokentrust.backends.openai import OpenAIBackend

    up = OpenAIBackend.upstream(f"{server.url}/v1", backend.model_id)
    with RunningServer(create_app(up, name=backend.model_id)) as srv:
        yield srv
    up.close()
