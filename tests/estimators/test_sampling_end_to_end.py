"""End to end with the embedded model: one sampling call shared by estimators, re-scoring from a recording,
and the black-box estimators through Python and the CLI."""

import math
import subprocess
import sys

import numpy as np
import pytest

import tokentrust as tt
from tokentrust.backends.replay import RecordingBackend

Q = "Who wrote Les Misérables?"


@pytest.fixture(scope="module")
def trace(backend):
    return backend.generate(Q, max_new_tokens=6)


def test_two_estimators_share_one_sampling_call_and_replay_reproduces_them(backend, trace):
    counting = RecordingBackend(backend)
    specs = ["discrete_semantic_entropy", "eigv", "c_deg"]  # all pull Samples(n=10)
    live = tt.annotate(trace, specs, backend=counting)
    assert counting.calls["sample"] == 1
    assert len([t for t in counting.traces if t.config.temperature > 0]) == 10
    replayed = tt.annotate(trace, specs, backend=counting.replay())  # no model call
    assert [s.values for s in replayed.scores] == [s.values for s in live.scores]


def test_black_box_estimators_on_the_default_model(backend, trace):
    result = tt.annotate(trace, ["semantic_entropy:n_samples=4", "eigv:n_samples=4", "verbalized", "p_true",
                                 "token_sar"], backend=backend)
    se = result["semantic_entropy(n_samples=4)"]
    assert 0 <= se.raw[0] <= math.log(4) + 1e-9 and se.value == -se.raw[0]
    assert 0 <= -result["eig_val_laplacian(n_samples=4)"].value <= 4
    p = result["p_true"].value
    assert 0 < p < 1
    v = result["verbalized"].value
    assert math.isnan(v) or 0 <= v <= 1  # a reply without a stated confidence stays missing
    assert np.isfinite(result["token_sar"].value)
    assert tt.Annotated.model_validate_json(result.model_dump_json()).scores[0] == se


def test_cli_ask_with_black_box_estimators(backend):
    proc = subprocess.run(
        [sys.executable, "-m", "tokentrust", "ask", Q, "-n", "6", "--json", "-e", "semantic_entropy:n_samples=3",
         "-e", "eigv:n_samples=3", "-e", "verbalized:strategy=cot,max_new_tokens=16"],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    result = tt.Annotated.model_validate_json(proc.stdout)
    names = [s.estimator for s in result.scores]
    assert names[:3] == ["semantic_entropy(n_samples=3)", "eig_val_laplacian(n_samples=3)",
                         "verbalized(strategy='cot', max_new_tokens=16)"]
