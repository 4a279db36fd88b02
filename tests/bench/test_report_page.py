"""report.html: one plotly bundle, ECE's bins with counts, axis titles, bootstrap intervals, warnings, truncation.

The page is opened in the real browser to check that the compressed plotly.js unpacks and draws every figure.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _bench_helpers import hand_run_folder
from sklearn.metrics import roc_auc_score
from sklearn.utils import resample

from _browser import chromium
from tokentrust.bench.report import _auc_rows, _prr_rows, metric_intervals, run_warnings
from tokentrust.bench.runner import REPORT_FILE, finalize
from tokentrust.metrics import ece, prr, reliability_diagram, roc_auc
from tokentrust.metrics.calibration import ECE_BINS


def _figures(page: str) -> list[dict]:
    return [json.loads(m.replace("<\\/", "</")) for m in
            re.findall(r'<div class="tt-fig"><script type="application/json">(.*?)</script></div>', page, re.DOTALL)]


@pytest.fixture(scope="module")
def run30(tmp_path_factory):
    out = hand_run_folder(tmp_path_factory.mktemp("r30"))
    lines = (out / "items.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in [r for r in records if not r["correct"]][:3]:  # three wrong answers cut at the token limit
        r["finish_reason"] = "length"
    (out / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics = finalize(out)
    return out, metrics, records


def test_one_plotly_bundle_and_one_copy_of_the_answer_assets(run30):
    out, _, _ = run30
    page = (out / REPORT_FILE).read_text()
    assert page.count('id="tt-plotly"') == 1 and page.count("Plotly.newPlot") == 1
    assert "window.PLOTLYENV" not in page  # no figure carries its own copy of plotly's boilerplate
    for block in set(re.findall(r"<(?:style|script)>.*?</(?:style|script)>", page, re.DOTALL)):
        assert page.count(block) == 1, block[:80]
    assert page.count('class="tt-tok"') > 20  # the 20 wrong answers are still rendered with their tokens
    assert len(page.encode()) < 2_300_000  # plotly.js alone is 4.8 MB uncompressed


def test_every_histogram_has_axis_titles_and_reliability_uses_ece_bins(run30):
    out, metrics, records = run30
    figures = _figures((out / REPORT_FILE).read_text())
    hist = next(f for f in figures if f["layout"]["title"]["text"].startswith("Scores of"))
    n_panels = sum(1 for t in hist["data"] if t["type"] == "histogram") // 2
    x_titles = [v["title"]["text"] for k, v in hist["layout"].items() if k.startswith("xaxis") and "title" in v]
    y_titles = [v["title"]["text"] for k, v in hist["layout"].items() if k.startswith("yaxis") and "title" in v]
    assert n_panels == 3 and x_titles == ["score (higher = more trusted)"] * 3 and y_titles == ["answers"] * 3

    rel = next(f for f in figures if f["layout"]["title"]["text"].startswith("Reliability"))
    assert f"{ECE_BINS} equal-width bins" in rel["layout"]["title"]["text"]
    bars = [t for t in rel["data"] if t["type"] == "bar"]
    assert [b["name"] for b in bars] == ["maximum_sequence_probability"]
    msp = np.array([r["scores"]["maximum_sequence_probability"]["value"] for r in records])
    y = np.array([r["correct"] for r in records])
    expected = np.histogram(msp, bins=np.linspace(0, 1, ECE_BINS + 1))[0]  # numpy's own binning
    assert len(bars[0]["y"]) == ECE_BINS and sum(bars[0]["y"]) == len(records)
    # numpy closes bins on the left, ECE on the right: the counts agree unless a value sits on an edge
    edges = np.linspace(0, 1, ECE_BINS + 1)
    if not np.isin(msp, edges).any():
        assert bars[0]["y"] == expected.tolist()
    d = reliability_diagram(y, msp)
    assert d.n_bins == ECE_BINS and metrics["estimators"]["maximum_sequence_probability"]["ece"] == pytest.approx(
        ece(y, msp)) == pytest.approx(d.ece)


def test_rowwise_metrics_equal_the_registered_ones():
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.4
    q = np.where(y, 1.0, rng.random(200) * 0.6)
    v = np.round(rng.random(200), 2)  # ties on purpose
    assert _auc_rows(y[None].astype(float), v[None])[0] == pytest.approx(roc_auc(y, v), abs=1e-12)
    assert _auc_rows(y[None].astype(float), v[None])[0] == pytest.approx(roc_auc_score(y, v), abs=1e-12)
    # prr() averages 1000 random shuffles; the row-wise form uses their expectation, the mean quality
    assert _prr_rows(q[None], v[None])[0] == pytest.approx(prr(q, v), abs=5e-3)
    assert np.isnan(_auc_rows(np.ones((1, 5)), np.arange(5.0)[None])[0])
    assert np.isnan(_prr_rows(np.ones((1, 5)), np.arange(5.0)[None])[0])


def test_bootstrap_intervals_agree_with_an_independent_bootstrap(run30):
    out, metrics, _records = run30
    iv = metrics["intervals"]
    assert iv["method"] == "percentile bootstrap" and iv["confidence_level"] == 0.95 and iv["seed"] == 0
    assert json.loads((out / "metrics.json").read_text())["intervals"] == iv

    rng = np.random.default_rng(11)
    y = rng.random(300) < 0.5
    v = y * 0.8 + rng.random(300)  # an informative score
    ours = metric_intervals(y, y.astype(float), {"s": v})["estimators"]["s"]["roc_auc"]
    aucs = []
    for k in range(1000):  # sklearn's resampling, AUC counted pair by pair (ties ½)
        yy, vv = resample(y, v, random_state=k)
        diff = vv[yy][:, None] - vv[~yy][None, :]
        aucs.append(np.mean((diff > 0) + 0.5 * (diff == 0)))
    theirs = np.percentile(aucs, [2.5, 97.5])
    assert ours[0] < roc_auc(y, v) < ours[1]
    assert ours == pytest.approx(theirs.tolist(), abs=0.015)

    for eid, row in metrics["estimators"].items():  # every interval holds the run's own value
        lo, hi = iv["estimators"][eid]["roc_auc"]
        assert lo <= row["roc_auc"] <= hi
    page = (out / REPORT_FILE).read_text()
    lo, hi = iv["estimators"]["maximum_sequence_probability"]["roc_auc"]
    assert f"[{lo:.2f}, {hi:.2f}]" in page


def test_intervals_are_undefined_for_one_class():
    y = np.zeros(40, dtype=bool)
    v = np.linspace(0, 1, 40)
    out = metric_intervals(y, np.linspace(0, 0.5, 40), {"s": v, "none": np.full(40, np.nan)})["estimators"]
    assert out["s"]["roc_auc"] is None and out["s"]["prr"] is not None
    assert out["none"] == {"roc_auc": None, "prr": None}


def test_truncated_answers_are_marked_and_counted(run30):
    out, _, _records = run30
    page = (out / REPORT_FILE).read_text()
    assert page.count("truncated at the token limit</span>") == 3  # the three cut answers are all wrong
    assert "3 answers stopped at the token limit" in page


def test_small_and_one_class_runs_explain_their_dashes(tmp_path):
    out = hand_run_folder(tmp_path, n=6)
    records = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    for r in records:
        r["correct"] = False
    (out / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    metrics = finalize(out)
    warnings = run_warnings(metrics, records)
    assert warnings[0].startswith("Only 6 items: with fewer than 30")
    assert warnings[1].startswith("Every one of the 6 items is wrong (accuracy 0%)")
    page = (out / REPORT_FILE).read_text()
    assert "ROC-AUC and PR-AUC are undefined (–)" in page and "Only 6 items" in page
    assert metrics["estimators"]["maximum_sequence_probability"]["roc_auc"] is None
    assert run_warnings(metrics | {"level": None}, [{"correct": True, "quality": 1.0}] * 40) == [
        ("Every one of the 40 items is correct (accuracy 100%), so no score can separate correct from wrong: "
        "ROC-AUC and PR-AUC are undefined (–), and the accuracy–coverage numbers only restate the accuracy. "
        "Use a dataset or model where both outcomes occur."),
        "Every item has the same quality, so PRR and Spearman are undefined (–)."]


def test_the_browser_unpacks_plotly_and_draws_every_figure(run30):
    out, _, _ = run30
    page_text = (out / REPORT_FILE).read_text()
    n_figures = len(_figures(page_text))
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / REPORT_FILE).as_uri())
        page.wait_for_function(f"document.querySelectorAll('div.tt-fig .main-svg').length >= {n_figures}",
                               timeout=30_000)
        texts = page.evaluate("[...document.querySelectorAll('div.tt-fig svg text')].map(t => t.textContent)")
    assert not errors, errors
    assert n_figures == 3
    for title in ("score (higher = more trusted)", "answers", "items in bin", "observed accuracy",
                  "stated probability (bin)", "coverage (kept)"):
        assert title in texts, title
