import html
import math
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from tokentrust import Trace, annotate
from tokentrust.render import confidence_color, render_html, render_rich
from tokentrust.render._view import claim_views, pieces, scaled
from tokentrust.render.colors import confidence_rgb
from tokentrust.render.terminal import OPEN, _fmt, claim_label
from tokentrust.stats.claims import Claim


def test_colour_scale_is_fixed_orange_to_blue_with_red_to_green_as_option():
    assert confidence_color(0.0) == "#b35806" and confidence_color(1.0) == "#2166ac"
    r0, _, b0 = confidence_rgb(0.2)
    r1, _, b1 = confidence_rgb(0.9)
    assert r0 > r1 and b1 > b0
    assert confidence_color(0.0, "red-green") == "#d73027"
    assert confidence_color(1.0, "red-green") == "#1a9850"
    assert confidence_color(float("nan")) == "#bebebe"


def test_html_colours_every_visible_token_with_alternatives(capital_trace):
    result = annotate(capital_trace)
    page = render_html(result)
    spans = re.findall(r'<span class="tt-tok" data-index="(\d+)" data-p="([0-9.]+)" style="background:(#[0-9a-f]{6})', page)
    visible = [i for i, s in enumerate(capital_trace.special) if not s]
    assert [int(i) for i, _, _ in spans] == visible
    for i, p, colour in spans:
        assert colour == confidence_color(float(p))
    canberra = capital_trace.tokens.index(" Canberra")
    tip = page.split(f'data-index="{canberra}"')[1].split('class="tt-tok"')[0]
    assert "Sydney" in tip  # the runner-up alternative shows on hover
    assert "maximum_sequence_probability" in page
    assert result._repr_html_() == page
    assert "tt-tok" in capital_trace._repr_html_()


def test_terminal_view_has_answer_notes_and_scores(capital_trace):
    console = Console(record=True, width=120, color_system="truecolor")
    console.print(render_rich(annotate(capital_trace)))
    plain = console.export_text(clear=False)
    assert capital_trace.text in plain
    assert "least confident" in plain and "Sydney" in plain
    assert "maximum_sequence_probability" in plain
    styled = console.export_text(styles=True)
    assert "\x1b[" in styled  # coloured


# --------------------------------------------------------------------------- claims

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
CCP, PROB, MAX_H = "claim_conditioned_probability", "claim_probability", "claim_max_entropy"


@pytest.fixture(scope="module")
def portugal(backend):
    """A real answer of several claims, scored by CCP (offline embedding judge) and two claim forms."""
    trace = backend.generate("Tell me about Portugal in two sentences.", max_new_tokens=48)
    result = annotate(trace, ["ccp", "claim_probability", "claim_max_entropy"], backend=backend)
    assert len(result.claims) >= 2
    return result


@pytest.fixture(scope="module")
def canberra():
    """A saved golden answer scored without any backend: one claim that 'Sydney' would change."""
    return annotate(Trace.load(GOLDEN / "greedy_chat.json"), ["ccp", "claim_probability"])


def _with_unmatched(result):
    """``result`` plus a claim that matched no answer token (as the llm extractor can report)."""
    lost = Claim(text="Lisbon is the capital", char_span=(0, 0), token_indices=[], sentence=9,
                 scores={k: math.nan for k in result.claims[0].scores})
    return result.model_copy(update={"claims": [*result.claims, lost]})


def _changers(result, k, n=3):
    rows = result[CCP].extras["changers"][k]
    return [f"{c['emitted']}→{c['alternative']} {c['prob']:.2f}" for c in sorted(rows, key=lambda c: -c["prob"])[:n]]


def _char_styles(text: Text) -> list[str]:
    styles = [""] * len(text.plain)
    for span in text.spans:
        for i in range(span.start, span.end):
            styles[i] += f" {span.style}"
    return styles


def test_claim_view_scales_like_tokens_and_finds_changers(portugal):
    views = claim_views(portugal)
    assert [v.text for v in views] == [c.text for c in portugal.claims]
    assert [v.color_value for v in views] == [c.scores[CCP] for c in portugal.claims]  # a probability: as is
    by_entropy = claim_views(portugal, colour_by=portugal[MAX_H])
    assert [v.color_value for v in by_entropy] == scaled([c.scores[MAX_H] for c in portugal.claims], False)
    assert min(v.color_value for v in by_entropy) == 0.0 and max(v.color_value for v in by_entropy) == 1.0
    for k, v in enumerate(views):
        assert [str(c) for c in v.changers[:3]] == _changers(portugal, k)
    cut = pieces(portugal.trace, views)
    assert "".join(p.text for p in cut) == portugal.trace.text
    for k, c in enumerate(portugal.claims):
        assert "".join(p.text for p in cut if k in p.claims) == portugal.trace.text[slice(*c.char_span)]


def test_terminal_brackets_claims_and_lists_them(portugal):
    result = _with_unmatched(portugal)
    console = Console(record=True, width=400, color_system="truecolor")
    console.print(render_rich(result))
    plain = console.export_text(clear=False)
    views = claim_views(result)
    answer = render_rich(result).renderables[0]
    styles = _char_styles(answer)
    for v in views[:-1]:
        mark = f"{OPEN}{v.text}{claim_label(v)}"
        assert mark in answer.plain  # bracketed at exactly the claim's characters
        start = answer.plain.index(mark) + len(OPEN)
        for i in range(start, start + len(v.text)):
            assert "underline" in styles[i] and f"on {confidence_color(v.color_value)}" in styles[i]
    outside = answer.plain.replace(OPEN, "")
    for v in views[:-1]:
        outside = outside.replace(claim_label(v), "")
    assert outside == result.trace.text  # only the marks were added
    # the table: one row per claim, its values under every claim score, CCP's changers
    header = next(line for line in plain.splitlines() if line.startswith("#"))
    assert header.split()[2:5] == ["ccp", PROB, MAX_H] and "would change it" in header  # short names
    for k, c in enumerate(result.claims):
        row = next(line for line in plain.splitlines() if line.split()[:1] == [str(k + 1)] and c.text in line)
        tail = row.split(c.text, 1)[1].split()
        assert tail[:3] == [_fmt(c.scores[CCP]), _fmt(c.scores[PROB]), _fmt(c.scores[MAX_H])]
        if k < len(portugal.claims):
            assert ", ".join(_changers(result, k)) in row
    assert f"claims, coloured by {CCP}" in plain
    assert f"matched no answer token: #{len(result.claims)}" in plain


def test_terminal_claims_from_a_golden_without_backend(canberra):
    console = Console(record=True, width=200, color_system="truecolor")
    console.print(render_rich(canberra))
    plain = console.export_text(clear=False)
    assert "⟦The capital of Australia is Canberra⟧₁." in plain
    assert "Canberra→Sydney 0.31" in plain
    assert "matched no answer token: none" in plain
    assert "least confident" in plain
    # colour by a claim-level score: the claims take its colours
    answer = render_rich(canberra, colour_by=canberra[PROB]).renderables[0]
    assert f"on {confidence_color(canberra.claims[0].scores[PROB])}" in _char_styles(answer)[2]


def test_html_underlines_claims_over_token_colours(portugal):
    result = _with_unmatched(portugal)
    page = render_html(result)
    tokens = re.findall(r'<span class="tt-tok" data-index="(\d+)"', page)
    assert [int(i) for i in tokens] == [i for i, s in enumerate(result.trace.special) if not s]
    runs = re.findall(r'<span class="tt-cl" data-claims="([\d ]+)" style="border-bottom-color:(#[0-9a-f]{6})" '
                      r'title="[^"]*">([^<]*)</span>', page)
    views = claim_views(result)
    for v in views[:-1]:
        mine = [(colour, html.unescape(t)) for numbers, colour, t in runs if str(v.number) in numbers.split()]
        assert "".join(t for _, t in mine) == result.trace.text[slice(*v.char_span)]
        assert {colour for colour, _ in mine} == {confidence_color(v.color_value)}
    assert not any(str(views[-1].number) in numbers.split() for numbers, _, _ in runs)  # unmatched: no mark
    rows = dict(re.findall(r'<tr data-claim="(\d+)">(.*?)</tr>', page))
    assert len(rows) == len(result.claims)
    for k, c in enumerate(result.claims):
        cells = [html.unescape(x) for x in re.findall(r"<td[^>]*>(.*?)</td>", rows[str(k + 1)])]
        assert cells[:5] == [str(k + 1), c.text, _fmt(c.scores[CCP]), _fmt(c.scores[PROB]), _fmt(c.scores[MAX_H])]
        if k < len(portugal.claims):
            assert cells[5] == (", ".join(_changers(result, k)) or "–")
    assert f"matched no answer token: #{len(result.claims)}" in page
    assert page.count("<script") == 1  # only the popover script


def test_html_claims_from_a_golden_without_backend(canberra):
    page = render_html(canberra)
    runs = re.findall(r'<span class="tt-cl" data-claims="1"[^>]*>([^<]*)</span>', page)
    assert "".join(runs) == "The capital of Australia is Canberra"
    assert "Canberra→Sydney 0.31" in page and '<sup class="tt-cn">1</sup>' in page
    plain = render_html(annotate(Trace.load(GOLDEN / "greedy_chat.json")))  # no claim score: no marks, no table
    assert 'class="tt-cl"' not in plain and "tt-claims" not in plain


def test_claims_over_multibyte_tokens_and_answers_without_claims():
    multibyte = annotate(Trace.load(GOLDEN / "score_multibyte.json"), ["claim_probability"])
    (claim,) = multibyte.claims
    page = render_html(multibyte)
    runs = re.findall(r'<span class="tt-cl" data-claims="1"[^>]*>([^<]*)</span>', page)
    assert html.unescape("".join(runs)) == claim.text == "Tōkyō is written 東京 — a café-filled city ✓"
    console = Console(record=True, width=200)
    console.print(render_rich(multibyte))
    assert f"⟦{claim.text}⟧₁" in console.export_text()
    cut = annotate(Trace.load(GOLDEN / "length_cut.json"), ["claim_probability"])  # its one sentence is unfinished
    assert cut.claims == []
    assert "no claims in this answer" in render_html(cut)
    console.print(render_rich(cut))
    assert "no claims in this answer" in console.export_text()
