"""The runner in process: cache hits across runs, resumption, failure rows, spec validation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from _bench_helpers import CountingBackend, make_trace

from tokentrust import Level, UserInputError
from tokentrust.bench.datasets import Dataset, Item
from tokentrust.bench.runner import ITEMS_FILE, _score_item, bench_estimators, finalize, run
from tokentrust.bench.spec import RunSpec, load_spec
from tokentrust.estimators.base import Estimator
from tokentrust.estimators.sequence import MaximumSequenceProbability


@pytest.fixture
def one_thread():
    """Generation on one torch thread while a test runs (two threads crawl when the machine is busy)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache") / "generations.sqlite")


def spec(tmp_path, cache, name, estimators, **kw):
    return RunSpec(dataset="capitals", limit=4, max_new_tokens=8, batch_size=2, estimators=estimators,
                   out=str(tmp_path / name), cache=cache, **kw)


def test_new_estimator_reuses_cached_generations(backend, tmp_path, cache, one_thread):
    counting = CountingBackend(backend)
    first = run(spec(tmp_path, cache, "a", ["msp"]), backend=counting, progress=False)
    assert (counting.calls, counting.prompts) == (2, 4)  # two batches of two
    assert first.n_generated == 4 and first.n_cached == 0

    # another run folder with an extra estimator: every answer comes from the cache
    second = run(spec(tmp_path, cache, "b", ["msp", "mean_token_entropy"]), backend=counting, progress=False)
    assert counting.prompts == 4, "re-scoring must not generate again"
    assert second.n_cached == 4 and second.n_generated == 0
    assert set(second.metrics["estimators"]) == {"maximum_sequence_probability", "mean_token_entropy"}
    a = pd.read_parquet(first.results_path)
    b = pd.read_parquet(second.results_path)
    assert a["answer"].tolist() == b["answer"].tolist()
    assert a["maximum_sequence_probability"].tolist() == b["maximum_sequence_probability"].tolist()

    # the same spec and folder again: everything already finished, nothing generated or rewritten
    items_before = (tmp_path / "a" / ITEMS_FILE).read_bytes()
    third = run(spec(tmp_path, cache, "a", ["msp"]), backend=counting, progress=False)
    assert third.n_resumed == 4 and counting.prompts == 4
    assert (tmp_path / "a" / ITEMS_FILE).read_bytes() == items_before


def test_a_folder_with_another_spec_is_refused(backend, tmp_path, cache, one_thread):
    run(spec(tmp_path, cache, "r", ["msp"]), backend=backend, progress=False)
    with pytest.raises(UserInputError, match=r"another spec \(limit: 4 there, 3 now\)"):
        run(RunSpec(**{**spec(tmp_path, cache, "r", ["msp"]).model_dump(), "limit": 3}), backend=backend,
            progress=False)


@dataclass(frozen=True, kw_only=True)
class _Broken(Estimator):
    """Raises on every item (not registered: only for this test)."""

    level = Level.SEQUENCE
    registry_id: ClassVar[str] = "broken"

    def compute(self, ctx):
        raise RuntimeError("boom")


def test_estimator_errors_become_failure_rows(tmp_path):
    dataset = Dataset(name="toy", version="1", correctness="contains",
                      items=[Item(id=f"toy/{i}", prompt="q?", references=["t0"]) for i in range(4)])
    ests = [MaximumSequenceProbability(), _Broken()]
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text(RunSpec(dataset="capitals", out=str(out)).to_toml())
    (out / "run.json").write_text(json.dumps({
        "dataset": {"name": "toy", "version": "1", "n_items": 4}, "model": "hand", "generation": {},
        "estimators": [{"id": e.id, "is_probability": e.is_probability} for e in ests]}))
    lines = []
    for i, item in enumerate(dataset.items):
        record = _score_item(item, make_trace([-0.1 * (i + 1)] * 2, text_tokens=["t0 " if i % 2 else "x ", "y"]),
                             ests, None, dataset, RunSpec(dataset="toy"))
        assert record["failures"] == [{"estimator": "broken", "item": item.id, "message": "RuntimeError: boom"}]
        assert "maximum_sequence_probability" in record["scores"]
        lines.append(json.dumps(record))
    (out / ITEMS_FILE).write_text("\n".join(lines) + "\n")
    metrics = finalize(out)
    assert len(metrics["failures"]) == 4
    assert metrics["estimators"]["broken"]["n"] == 0 and metrics["estimators"]["broken"]["n_missing"] == 4
    # correct (odd items) score exp(-0.4), exp(-0.8); wrong ones exp(-0.2), exp(-0.6): 1 of 4 pairs ordered
    assert metrics["estimators"]["maximum_sequence_probability"]["roc_auc"] == pytest.approx(0.25)
    frame = pd.read_parquet(out / "results.parquet")
    assert frame["broken"].isna().all()  # the column is there, NaN, never silently dropped
    assert metrics["complete"] is True


def test_default_and_all_estimators(backend):
    default = [e.id for e in bench_estimators(None, backend)]
    assert "maximum_sequence_probability" in default and "mean_token_entropy" in default
    assert "pmi" not in default  # needs a second model pass
    every = [e.id for e in bench_estimators(["all"], backend)]
    assert set(default) < set(every) and "pmi" in every
    with pytest.raises(UserInputError, match="token-level"):
        bench_estimators(["token_entropy"], backend)
    with pytest.raises(UserInputError, match="Did you mean 'mean_token_entropy'"):
        bench_estimators(["mean_token_entropi"], backend)


def test_spec_round_trips_through_toml(tmp_path):
    s = RunSpec(dataset="capitals", limit=5, estimators=["msp", "logprob_quantile:alpha=0.05"], out="runs/x",
                correctness="chrf>=50", temperature=0.5)
    path = tmp_path / "run.toml"
    path.write_text(s.to_toml())
    assert load_spec(path) == s
    assert load_spec(path, limit=7).limit == 7
    assert s.generation_config().seed == 0 and RunSpec(dataset="capitals").generation_config().seed is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"limit": 0}, "limit must be ≥ 1"),
        ({"batch_size": 0}, "batch_size must be ≥ 1, got 0"),
        ({"max_new_tokens": 0}, "max_new_tokens must be ≥ 1, got 0"),
        ({"top_p": 2.0}, "top_p must be in (0, 1], got 2.0"),
        ({"estimators": []}, "estimators is empty"),
        ({"correctness": "chrf>=500"}, "outside chrf's range"),
        ({"dataset": " "}, "dataset is empty"),
        ({"limt": 3}, "limt: Extra inputs are not permitted"),
        ({"limit": "many"}, "limit: Input should be a valid integer"),
    ],
)
def test_bad_spec_values_name_the_key(values, message):
    with pytest.raises(UserInputError, match="invalid run spec|must be|outside") as info:
        RunSpec(**{"dataset": "capitals", **values})
    assert message in str(info.value)


def test_bad_toml_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset = "capitals"\nlimit = \n')
    with pytest.raises(UserInputError, match="bad.toml is not valid TOML"):
        load_spec(bad)
    with pytest.raises(UserInputError, match="cannot read run spec"):
        load_spec(tmp_path / "missing.toml")


def test_metrics_skip_missing_values():
    from tokentrust.bench.runner import estimator_metrics

    y = np.array([1, 0, 1, 0, 1], dtype=bool)
    v = np.array([0.9, 0.1, np.nan, 0.2, 0.8])
    m = estimator_metrics(y, y.astype(float), v, is_probability=True)
    assert m["n"] == 4 and m["n_missing"] == 1 and m["roc_auc"] == 1.0 and m["ece"] is not None
    assert estimator_metrics(y, y.astype(float), v, is_probability=False)["brier"] is None


def test_prompt_too_long_is_a_failure_row_not_a_stopped_run(backend, tmp_path, cache, one_thread):
    rows = [
        {"id": "short-1", "question": "What is the capital of France?", "answer": "Paris"},
        {"id": "too-long", "question": "word " * 9000, "answer": "x"},
        {"id": "short-2", "question": "What is the capital of Peru?", "answer": "Lima"},
    ]
    data = tmp_path / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counting = CountingBackend(backend)
    run_spec = RunSpec(dataset=str(data), max_new_tokens=8, batch_size=3, estimators=["msp"],
                       out=str(tmp_path / "mixed"), cache=cache)
    result = run(run_spec, backend=counting, progress=False)
    finished = [json.loads(line)["id"] for line in (tmp_path / "mixed" / ITEMS_FILE).read_text().splitlines()]
    assert finished == ["short-1", "short-2"]
    refused = [f for f in result.metrics["failures"] if f["estimator"] == "generation"]
    assert [f["item"] for f in refused] == ["too-long"]
    assert "context" in refused[0]["message"]
    assert result.metrics["n_items"] == 2 and not result.metrics["complete"]
    # a rerun retries only the refused item (and records it once, not twice)
    again = run(run_spec, backend=counting, progress=False)
    assert [f["item"] for f in again.metrics["failures"] if f["estimator"] == "generation"] == ["too-long"]
    assert (tmp_path / "mixed" / ITEMS_FILE).read_text().count("\n") == 2
