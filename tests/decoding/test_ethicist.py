"""Locally normalised confidence on fixed samples, the extraction audit's tables, and the extract command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import tokentrust as tt
from _cli import run_cli
from tokentrust.decoding.extraction import Extraction, reproduces, threshold_table
from tokentrust.estimators.ethicist import local_normalized_confidence, pick


def test_normalisation_on_fixed_samples():
    texts = ["H, I, J", " H, I, J ", "H I J", "K", "H, I, J"]
    logprobs = [-1.0, -1.0, -3.0, -0.5, -1.0]
    conf = local_normalized_confidence(texts, logprobs)
    weights = {"H, I, J": 3 * math.exp(-1.0), "H I J": math.exp(-3.0), "K": math.exp(-0.5)}
    total = sum(weights.values())
    assert conf == pytest.approx({k: v / total for k, v in weights.items()})
    assert pick(conf) == ("H, I, J", pytest.approx(weights["H, I, J"] / total))
    tiny = local_normalized_confidence(["a", "b"], [-2000.0, -2000.0 + math.log(3)])  # no underflow
    assert tiny == pytest.approx({"a": 0.25, "b": 0.75})
    unknown = local_normalized_confidence(["a", "a", "b"], [float("nan"), -1.0, float("nan")])
    assert unknown == pytest.approx({"a": 1.0, "b": 0.0})  # b's probability is unknown: no weight


def test_threshold_table_and_match_rule():
    assert reproduces("  H,  I, J, K, L", "H, I, J, K") and not reproduces("H, I", "H, I, J")
    results = [Extraction("p", "s", "x", c, 1, ok) for c, ok in [(0.95, True), (0.8, False), (0.6, True), (0.2, False)]]
    results.append(Extraction("q", None, "y", 0.99, 1, None))  # no suffix: not judged
    rows = {r["threshold"]: r for r in threshold_table(results, (0.0, 0.5, 0.9, 0.99))}
    assert (rows[0.0]["precision"], rows[0.0]["recall"]) == (0.5, 0.5)
    assert (rows[0.5]["precision"], rows[0.5]["recall"]) == (pytest.approx(2 / 3), 0.5)
    assert (rows[0.9]["precision"], rows[0.9]["recall"]) == (1.0, 0.25)
    assert math.isnan(rows[0.99]["precision"]) and rows[0.99]["recall"] == 0.0


def test_estimator_matches_its_samples(backend):
    trace = backend.generate("A, B, C, D, E,", max_new_tokens=6, chat=False)
    spec = "local_normalized_confidence:n_samples=4"
    scores = tt.annotate(trace, [spec], backend=backend)[tt.build_estimator(spec).id]
    samples = backend.sample(trace.prompt, 4, temperature=0.8, top_p=0.7, seed=0, max_new_tokens=6, chat=False)
    pool = samples
    weights: dict[str, float] = {}
    for t in pool:
        key = t.text.strip()
        weights[key] = weights.get(key, 0.0) + math.exp(float(np.sum(t.logprobs)))
    total = sum(weights.values())
    assert scores.value == pytest.approx(weights.get(trace.text.strip(), 0.0) / total, rel=1e-6)
    assert scores.extras["pick"][0] == max(weights, key=weights.__getitem__)


def test_extract_command(capsys, tmp_path):
    path = tmp_path / "prefixes.jsonl"
    path.write_text('{"prefix": "1, 2, 3, 4, 5, 6,", "suffix": "7, 8, 9"}\n{"prefix": "My cat is named"}\n')
    code, out, err = run_cli(capsys, "extract", "--prefixes", str(path), "--samples", "4", "-n", "4", "--json")
    assert code == 0, err
    result = json.loads(out)
    first, second = result["items"]
    assert first["correct"] is True and 0 < first["confidence"] <= 1 and second["correct"] is None
    assert result["thresholds"][0]["recall"] == 1.0
    code, _, err = run_cli(capsys, "extract", "--prefixes", str(path), "--samples", "0")
    assert code == 2 and "--samples" in err and len(err.strip().splitlines()) == 1
    path.write_text('{"suffix": "no prefix"}\n')
    code, _, err = run_cli(capsys, "extract", "--prefixes", str(path))
    assert code == 2 and "prefix" in err and len(err.strip().splitlines()) == 1
