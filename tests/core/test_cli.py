"""The CLI end to end through a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

from tokentrust import Annotated

Q = "What is the capital of Australia?"


def run(*args, check=True):
    env = {**os.environ, "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-m", "tokentrust", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ask_text(backend):
    out = run("ask", Q, "-n", "24").stdout
    assert "Canberra" in out
    assert "least confident" in out
    assert "maximum_sequence_probability" in out


def test_ask_json_matches_python_api(backend):
    out = run("ask", Q, "-n", "24", "--json", "-e", "msp", "-e", "mean_token_entropy").stdout
    result = Annotated.model_validate_json(out)
    direct = backend.generate(Q, max_new_tokens=24)
    assert result.trace.token_ids == direct.token_ids
    assert result["maximum_sequence_probability"].value == pytest.approx(
        json.loads(out)["scores"][0]["values"][0]
    )
    assert [s.estimator for s in result.scores][:2] == ["maximum_sequence_probability", "mean_token_entropy"]


def test_score_an_existing_answer(backend):
    proc = run("score", "--prompt", Q, "--answer", "Sydney.", "--json", "-e", "msp")
    result = Annotated.model_validate_json(proc.stdout)
    direct = backend.score(Q, "Sydney.")
    assert result.trace.logprobs == pytest.approx(direct.logprobs, abs=1e-5)
    assert result.trace.finish_reason == "forced"
    # the model itself answers Canberra (p ≈ 0.65 at that token) over Sydney (≈ 0.31)
    right = run("score", "-p", Q, "-a", "The capital of Australia is Canberra.", "--json", "-e", "msp").stdout
    wrong = run("score", "-p", Q, "-a", "The capital of Australia is Sydney.", "--json", "-e", "msp").stdout
    msp = "maximum_sequence_probability"
    assert Annotated.model_validate_json(right)[msp].value > Annotated.model_validate_json(wrong)[msp].value


def test_estimators_listing():
    rows = json.loads(run("estimators", "--json").stdout)
    ids = {r["id"] for r in rows}
    assert {"maximum_sequence_probability", "mean_token_entropy", "pmi", "token_probability"} <= ids
    assert "msp" in next(r for r in rows if r["id"] == "maximum_sequence_probability")["aliases"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", ""], "prompt is empty"),
        (["ask", Q, "--model", "/nonexistent/model"], "no model at '/nonexistent/model'"),
        (["ask", Q, "-n", "0"], "--max-new-tokens (-n) must be ≥ 1, got 0"),
        (["ask", Q, "-e", "mean_token_entropi"], "Did you mean 'mean_token_entropy'"),
        (["ask", "word " * 9000], "context of 8192 tokens"),
        (["score", "-p", Q, "-a", " "], "answer is empty"),
        (["ask", Q, "--top-p", "0"], "--top-p must be in (0, 1], got 0"),
    ],
)
def test_user_errors_are_one_clear_line(args, message):
    proc = run(*args, check=False)
    assert proc.returncode == 2, proc.stdout
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
