"""``tokentrust ask`` and ``tokentrust bench --concurrency`` against a real llama.cpp server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TOKENTRUST = str(Path(sys.executable).with_name("tokentrust"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TOKENTRUST, *args], check=False, capture_output=True, text=True, timeout=240)


def test_ask_through_a_server_uses_the_scores_it_supports(llama_server):
    done = _cli("ask", "What is the capital of France?", "--model", llama_server.spec, "-n", "12", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["trace"]["text"] and result["trace"]["logprobs"] and result["trace"]["entropy"] is None
    ids = {s["estimator"] for s in result["scores"]}
    assert {"maximum_sequence_probability", "perplexity", "token_probability"} <= ids
    assert "mean_token_entropy" not in ids  # needs the full distribution, which no server shows

    refused = _cli("ask", "Hi", "--model", llama_server.spec, "-e", "mean_token_entropy")
    assert refused.returncode == 2
    assert "mean_token_entropy needs full_distribution" in refused.stderr and "Traceback" not in refused.stderr


def test_bench_with_concurrency(llama_server, tmp_path):
    done = _cli("bench", "--dataset", "capitals", "--limit", "12", "--model", llama_server.spec, "--concurrency", "6",
                "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache.sqlite"), "--json")
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    assert metrics["n_items"] == 12 and metrics["model"] == llama_server.spec
    assert len((tmp_path / "run" / "items.jsonl").read_text().splitlines()) == 12
    local = _cli("bench", "--dataset", "capitals", "--limit", "2", "--concurrency", "4", "--out", str(tmp_path / "r2"))
    assert local.returncode == 2 and "--concurrency applies to openai:" in local.stderr
