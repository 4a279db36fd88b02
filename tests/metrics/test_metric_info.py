"""Each registered metric's metadata (``fn.info``), and importing the metrics without their heavy dependencies."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokentrust.metrics import Column, MetricInfo, metric
from tokentrust.metrics.info import TARGETS
from tokentrust.registry import Registry
from tokentrust.registry import metrics as metric_registry


@pytest.mark.parametrize("name", metric_registry.names())
def test_every_metric_declares_its_info(name):
    fn = metric_registry.get(name)
    info = fn.info
    assert isinstance(info, MetricInfo) and info.id == name and info.label.strip()
    assert info.target in TARGETS
    assert (info.higher_is_better, info.needs_probability) == (fn.higher_is_better, fn.needs_probability)


def test_labels_and_targets_of_the_builtin_metrics():
    info = {name: metric_registry.get(name).info for name in metric_registry.names()}
    assert {n: i.label for n, i in info.items() if n in ("roc_auc", "pr_auc", "prr", "auarc", "ece", "brier")} == {
        "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "prr": "PRR", "auarc": "AUARC", "ece": "ECE", "brier": "Brier",
    }
    assert {n for n, i in info.items() if i.target == "quality"} == {"prr", "spearman", "pearson", "kendall"}
    assert {n for n, i in info.items() if i.needs_probability} == {"ece", "brier"}
    assert [c.key for c in info["selective_accuracy"].columns] == [
        "selective_accuracy@50", "selective_accuracy@80", "selective_accuracy@90",
    ]
    assert info["pearson"].columns == () and info["kendall"].columns == ()


def test_best_follows_the_orientation():
    assert metric_registry.get("roc_auc").info.best([0.4, 0.9, 0.6]) == 0.9
    assert metric_registry.get("ece").info.best([0.4, 0.1, 0.6]) == 0.1


def test_bad_declarations_name_the_value():
    fresh: Registry = Registry("metric")
    with pytest.raises(ValueError, match="target='probability' is not valid; use one of correct, quality"):
        metric(higher_is_better=True, needs_probability=False, target="probability", registry=fresh)(  # type: ignore[arg-type]
            lambda correct, confidence: 0.0
        )
    assert len(fresh) == 0, "a refused declaration registers nothing"
    with pytest.raises(ValueError, match="declares a column key twice"):
        @metric(higher_is_better=True, needs_probability=False, target="correct", registry=fresh,
                bench=[Column(key="x", label="X"), Column(key="x", label="Y")])
        def twice(correct, confidence):
            return 0.0
    with pytest.raises(ValueError, match="non-empty label"):
        Column(key="x", label=" ")


def test_column_params_are_a_read_only_copy():
    params = {"coverage": 0.5}
    column = Column(key="k", label="K", params=params)
    params["coverage"] = 0.9
    assert column.params == {"coverage": 0.5}
    with pytest.raises(TypeError):
        column.params["coverage"] = 0.1  # type: ignore[index]


def test_importing_the_metrics_loads_neither_sklearn_nor_scipy_stats():
    heavy = ("sklearn", "scipy.stats", "pandas", "plotly")
    code = f"import sys, tokentrust.metrics; print(*[m in sys.modules for m in {heavy!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"] * len(heavy), dict(zip(heavy, out.split(), strict=True))


def test_the_lazily_imported_metrics_still_work():
    code = (
        "import sys, tokentrust.metrics as m\n"
        "print(m.roc_auc([0, 1, 1], [0.1, 0.8, 0.6]), m.spearman([1, 2, 3], [3, 5, 9]), 'sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1.0", "1.0", "True"]
