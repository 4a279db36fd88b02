"""report.html from a run folder built by hand (no model): self-contained, every section, coloured tokens."""

from __future__ import annotations

import json
import re

from _bench_helpers import hand_run_folder

from tokentrust.bench.report import N_WRONG
from tokentrust.bench.runner import REPORT_FILE, finalize


def test_report_is_self_contained_and_complete(tmp_path):
    out = hand_run_folder(tmp_path)
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
    out = hand_run_folder(tmp_path, n=6)
    meta = json.loads((out / "run.json").read_text())
    meta["dataset"]["n_items"] = 10  # only 6 of 10 finished
    (out / "run.json").write_text(json.dumps(meta))
    metrics = finalize(out)
    assert metrics["complete"] is False
    assert "unfinished: 6 items so far" in (out / REPORT_FILE).read_text()
