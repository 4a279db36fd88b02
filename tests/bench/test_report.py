"""report.html from a run folder built by hand (no model): self-contained, every section, coloured tokens."""

from __future__ import annotations

import json
import re

from _bench_helpers import make_trace

from tokentrust.bench.datasets import Dataset, Item
from tokentrust.bench.report import N_WRONG
from tokentrust.bench.runner import ITEMS_FILE, REPORT_FILE, _score_item, bench_estimators, finalize
from tokentrust.bench.spec import RunSpec


def _folder(tmp_path, n=30):
    ests = bench_estimators(["msp", "perplexity", "mean_token_entropy"])
    items = [Item(id=f"toy/{i}", prompt=f"Capital {i}?", references=["Paris"]) for i in range(n)]
    dataset = Dataset(name="toy", version="1", correctness="contains", items=items)
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.toml").write_text(RunSpec(dataset="capitals", out=str(out)).to_toml())
    (out / "run.json").write_text(json.dumps({
        "dataset": {"name": "toy", "version": "1", "n_items": n}, "model": "hand", "generation": {},
        "estimators": [{"id": e.id, "is_probability": e.is_probability} for e in ests]}))
    with (out / ITEMS_FILE).open("w") as fh:
        for i, item in enumerate(items):
            word = "Paris" if i % 3 == 0 else f"Lyon{i}"
            trace = make_trace([-0.05 * (i % 7), -0.1 * (i % 5)], text_tokens=[word, "."], prompt=item.prompt)
            fh.write(json.dumps(_score_item(item, trace, ests, None, dataset, seed=0)) + "\n")
    return out


def test_report_is_self_contained_and_complete(tmp_path):
    out = _folder(tmp_path)
    finalize(out)
    page = (out / REPORT_FILE).read_text()
    assert not re.search(r"<script[^>]+src=[\"']?https?:", page), "no script may come from the network"
    assert not re.search(r"<link[^>]+href=[\"']?https?:", page)  # (plotly.js names a map URL it never loads here)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself is inlined
    for section in ("Accuracy–coverage", "Reliability", "Score distributions", "most confident wrong answers"):
        assert section in page
    assert page.count('class="tt-wrong"') == N_WRONG  # 20 of the 20 wrong answers (of 30)
    assert 'class="tt-tok"' in page and "background:#" in page  # tokens coloured by the shared renderer
    assert "maximum_sequence_probability" in page and "Lyon" in page


def test_report_marks_an_unfinished_run(tmp_path):
    out = _folder(tmp_path, n=6)
    meta = json.loads((out / "run.json").read_text())
    meta["dataset"]["n_items"] = 10  # only 6 of 10 finished
    (out / "run.json").write_text(json.dumps(meta))
    metrics = finalize(out)
    assert metrics["complete"] is False
    assert "unfinished: 6 items so far" in (out / REPORT_FILE).read_text()
