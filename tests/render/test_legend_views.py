"""Every view names its colouring score and says whether its scale is fixed (a probability) or relative to this
answer, shows the colouring score's value (and raw quantity) per token, draws the popover's alternatives as a
table, and shows a policy's decision: a calibrated probability of being correct, the band, the phrase.

A saved golden answer of the default model, scored without a backend; expected values come from its trace.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import pytest
from rich.console import Console

from tokentrust import Trace, annotate
from tokentrust.calibration import PlattCalibrator
from tokentrust.decide.policy import Policy, calibrated_policy
from tokentrust.render import render_html, render_rich, set_palette
from tokentrust.render.colors import confidence_color
from tokentrust.render.html import assets_html

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"


@pytest.fixture(scope="module")
def trace() -> Trace:
    return Trace.load(GOLDEN / "greedy_chat.json")


@pytest.fixture(scope="module")
def result(trace):
    return annotate(trace, ["mean_token_entropy", "claim_probability"])


def _extremes(trace: Trace) -> tuple[float, float]:
    """The largest and smallest entropy of the visible tokens (nats), from the trace itself."""
    visible = [e for e, s in zip(trace.entropy, trace.special) if not s]
    return max(visible), min(visible)


def _plain(renderable) -> str:
    console = Console(record=True, width=400, color_system="truecolor")
    console.print(renderable)
    return console.export_text()


def test_fixed_scale_for_a_probability(result):
    page = render_html(result)
    legend = re.search(r'<div class="tt-legend" data-score="token_probability" data-fixed="true">(.*?)</div>', page)
    assert legend and "colour: token_probability · fixed scale: a probability, orange = 0 … blue = 1" in legend[1]
    assert "colour: token_probability · fixed scale: a probability, orange = 0 … blue = 1" in _plain(render_rich(result))
    assert "claims: colour: claim_probability · fixed scale" in page  # the claims' own legend


def test_relative_scale_names_the_answers_extremes_with_raw_values(result, trace):
    worst, best = _extremes(trace)
    by = result["token_entropy"]
    want = (f"colour: token_entropy · relative to this answer (not a probability, rescaled): orange = lowest here "
            f"{-worst:.4g} (raw {worst:.4g}) … blue = highest here {-best:.4g} (raw {best:.4g})")
    page = render_html(result, colour_by=by)
    assert 'data-score="token_entropy" data-fixed="false"' in page and html.escape(want) in page
    assert want in _plain(render_rich(result, colour_by=by)).replace("\n", "")
    # the worst token is at the low end, and its popover gives the colouring score's value and raw entropy
    i = max((i for i, s in enumerate(trace.special) if not s), key=lambda i: trace.entropy[i])
    span = page.split(f'data-index="{i}"')[1].split('class="tt-tok"')[0]
    assert f"background:{confidence_color(0.0)}" in span[:120]
    assert html.escape(f"token_entropy = {-trace.entropy[i]:.4g} (raw {trace.entropy[i]:.4g})") in span


def test_popover_alternatives_form_a_table(result, trace):
    page = render_html(result)
    i = trace.tokens.index(" Canberra")
    tip = page.split(f'data-index="{i}"')[1].split('class="tt-tok"')[0]
    assert 'tabindex="0" role="button"' in page.split(f'data-index="{i}"')[1][:200]
    rows = re.findall(r'<span role="row" class="tt-alt( tt-chosen)?">(.*?)</span></span>(?=<span role="row"|</span>)',
                      tip)
    assert len(rows) == trace.top_k
    cells = [[html.unescape(c) for c in re.findall(r'<span role="cell"(?: class="tt-num")?>([^<]*)</span>', r[1])]
             for r in rows]
    assert [c[1] for c in cells] == [repr(t) for t in trace.top_tokens[i]]
    assert [float(c[2]) for c in cells] == pytest.approx([math.exp(lp) for lp in trace.top_logprobs[i]], abs=5e-4)
    assert rows[[t for t in trace.top_tokens[i]].index(" Canberra")][0] == " tt-chosen"
    bare = render_html(result, assets=False)  # for pages that include assets_html() once for many answers
    assert bare in page and "<style" not in bare and "<script" not in bare
    assert page.replace(bare, "") == assets_html()


def test_palette_option_and_default(result):
    green = render_html(result, palette="red-green")
    tokens = re.findall(r'data-p="([0-9.]+)" style="background:(#[0-9a-f]{6})', green)
    assert tokens and all(colour == confidence_color(float(p), "red-green") for p, colour in tokens)
    assert "orange = 0 … blue = 1" not in green and "red = 0 … green = 1" in green
    try:
        set_palette("red-green")  # the notebook view (``_repr_html_``) follows the chosen default
        assert result._repr_html_() == green
    finally:
        set_palette("blue-orange")
    assert result._repr_html_() == render_html(result)


def test_decision_shows_calibrated_probability_band_and_phrase(trace):
    scored = annotate(trace, ["msp", "geometric_mean_token_probability"])
    cal = PlattCalibrator().fit([0.1, 0.2, 0.4, 0.6, 0.8, 0.9], [0, 0, 1, 0, 1, 1])
    cal = cal.bind(model=trace.model_id, score="maximum_sequence_probability")
    decided = scored.decided(calibrated_policy("calibrated_confidence"), cal)
    d = decided.decision
    assert d.probability == pytest.approx(float(cal.transform([scored["msp"].value])[0]))
    page = render_html(decided)
    box = re.search(r'<div class="tt-decision" data-action="(\w+)">(.*?)</div>', page)
    assert box[1] == d.action
    text = html.unescape(re.sub(r"<[^>]+>", " ", box[2]))
    assert f"probability that the answer is correct = {d.probability:.4g}" in text
    assert d.phrase in text
    assert (d.band in (None, d.action)) or f"({d.band} band)" in text
    line = next(ln for ln in _plain(render_rich(decided)).splitlines() if ln.startswith("→ "))
    assert f"calibrated_confidence = {d.probability:.4g} (probability that the answer is correct)" in line
    plain = render_html(scored.decided(Policy()))
    assert "geometric_mean_token_probability (not calibrated) = " in plain
    assert "(not calibrated)" in _plain(render_rich(scored.decided(Policy())))
