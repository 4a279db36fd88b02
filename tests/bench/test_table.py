"""The benchmark's metric columns come from the metric registry: metrics.json, the report and the CLI table."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _bench_helpers import hand_run_folder

from tokentrust import registry
from tokentrust.bench import table
from tokentrust.bench.report import _metrics_table
from tokentrust.bench.runner import REPORT_FILE, estimator_metrics, finalize
from tokentrust.cli.bench import _print_table
from tokentrust.metrics import Column, metric
from tokentrust.registry import Registry

#: The keys metrics.json has always had for each score; runs written before must still read the same.
LEGACY_KEYS = {
    "roc_auc", "pr_auc", "prr", "auarc", "ece", "brier",
    "selective_accuracy@50", "selective_accuracy@80", "selective_accuracy@90", "spearman",
}


def _fresh_registry() -> Registry:
    """A new metric registry holding the built-in metrics."""
    fresh: Registry = Registry("metric")
    for name, fn in registry.metrics.items():
        fresh.register(fn, name=name)
    return fresh


@pytest.fixture
def misses(monkeypatch):
    """A metric registered only for one test: the share of wrong answers among the 3 most confident.

    Lower is better, so it also checks that orientation, not the column, decides which value is best.
    """
    fresh = _fresh_registry()

    @metric(higher_is_better=False, needs_probability=False, target="correct", label="Misses@3", registry=fresh)
    def misses_at_3(correct, confidence):
        top = np.argsort(-np.asarray(confidence, dtype=float), kind="stable")[:3]
        return float(1.0 - np.asarray(correct, dtype=float)[top].mean())

    monkeypatch.setattr(registry, "metrics", fresh)
    return misses_at_3


def test_builtin_columns_keep_the_metrics_json_keys():
    assert {c.key for c in table.metric_columns()} == LEGACY_KEYS
    y = np.array([1, 0, 1, 0, 1], dtype=bool)
    row = estimator_metrics(y, y.astype(float), np.array([0.9, 0.1, 0.7, 0.2, 0.8]), is_probability=True)
    assert set(row) == LEGACY_KEYS | {"n", "n_missing"}
    assert row["roc_auc"] == 1.0 and row["selective_accuracy@50"] == 1.0 and row["ece"] is not None
    empty = estimator_metrics(y, y.astype(float), np.full(5, np.nan), is_probability=True)
    assert set(empty) == LEGACY_KEYS | {"n", "n_missing"} and all(empty[k] is None for k in LEGACY_KEYS)


def test_columns_follow_each_metric_declaration():
    columns = {c.key: c for c in table.metric_columns()}
    assert columns["prr"].info.target == "quality" and columns["roc_auc"].info.target == "correct"
    assert columns["selective_accuracy@80"].column.params == {"coverage": 0.8}
    assert columns["selective_accuracy@80"].label == "acc@80%"
    assert not columns["ece"].applies(is_probability=False) and columns["ece"].applies(is_probability=True)
    assert {k for k, c in columns.items() if c.info.terminal} == {"roc_auc", "pr_auc", "prr", "auarc", "ece", "brier"}


def test_a_new_metric_reaches_metrics_json_the_report_and_the_cli_table(misses, tmp_path, capsys):
    out = hand_run_folder(tmp_path)
    metrics = finalize(out)
    saved = json.loads((out / "metrics.json").read_text())
    for eid, row in saved["estimators"].items():
        assert set(row) == LEGACY_KEYS | {"misses_at_3", "n", "n_missing"}, eid
        assert row["misses_at_3"] is not None
    assert any("misses_at_3" in key for key in saved["metric_notes"])

    page = (out / REPORT_FILE).read_text()
    assert re.search(r'<th title="lower is better">Misses@3</th>', page)

    _print_table(metrics, out / REPORT_FILE)
    assert "Misses@3" in capsys.readouterr().out


def test_orientation_decides_the_best_value(misses):
    columns = table.metric_columns()
    rows = {
        "a": {"roc_auc": 0.9, "misses_at_3": 0.6, "ece": 0.05},
        "b": {"roc_auc": 0.6, "misses_at_3": 0.2, "ece": 0.30},
    }
    assert {k: v for k, v in table.best_values(rows.values(), columns).items() if k in rows["a"]} == {
        "roc_auc": 0.9, "misses_at_3": 0.2, "ece": 0.05,
    }
    html = _metrics_table({"estimators": rows}, columns)
    cells = {eid: re.findall(r'<td class="(tt-best|)">([^<]*)</td>', row)
             for eid, row in re.findall(r"<tr><td>(\w)</td>(.*?)</tr>", html)}
    bold = {eid: {value for mark, value in found if mark} for eid, found in cells.items()}
    assert bold == {"a": {"0.900", "0.050"}, "b": {"0.200"}}


def test_a_probability_metric_is_left_empty_for_other_scores():
    fresh = _fresh_registry()

    @metric(higher_is_better=False, needs_probability=True, target="correct", label="Gap", registry=fresh)
    def mean_gap(correct, prob):
        return float(np.mean(np.asarray(prob) - np.asarray(correct)))

    gap = next(c for c in table.metric_columns(fresh) if c.key == "mean_gap")
    assert gap.applies(is_probability=True) and not gap.applies(is_probability=False)
    assert gap.compute(np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5])) == 0.0


def test_a_taken_column_key_is_refused():
    fresh = _fresh_registry()

    @metric(higher_is_better=True, needs_probability=False, target="correct", registry=fresh,
            bench=[Column(key="roc_auc", label="Again")])
    def another_auc(correct, confidence):
        return 0.5

    with pytest.raises(ValueError, match="declares the column 'roc_auc', already taken by metric") as info:
        table.metric_columns(fresh)
    assert "'another_auc'" in str(info.value) and "metric 'roc_auc'" in str(info.value)

    lone: Registry = Registry("metric")

    @metric(higher_is_better=True, needs_probability=False, target="correct", registry=lone,
            bench=[Column(key="n", label="n")])
    def count(correct, confidence):
        return 1.0

    with pytest.raises(ValueError, match="'n', already taken by the item counts"):
        table.metric_columns(lone)


def test_metric_notes_describe_every_group():
    notes = table.metric_notes(table.metric_columns())
    assert notes["orientation"] == "every score is oriented higher = more trustworthy"
    by_metric = {name.strip(): text for key, text in notes.items() for name in key.split(",")}
    assert "`correct`" in by_metric["roc_auc"] and "correct = positive" in by_metric["pr_auc"]
    assert "`quality`" in by_metric["prr"] and "`quality`" in by_metric["spearman"]
    assert "only for scores that are probabilities" in by_metric["ece"] and "lower is better" in by_metric["brier"]
    assert "15 equal-width bins" in by_metric["ece"]
