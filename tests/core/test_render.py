import re

from rich.console import Console

from tokentrust import annotate
from tokentrust.render import confidence_color, render_html, render_rich
from tokentrust.render.colors import confidence_rgb


def test_colour_scale_is_fixed_red_to_green():
    assert confidence_color(0.0) == "#d73027"
    assert confidence_color(1.0) == "#1a9850"
    r0, g0, _ = confidence_rgb(0.2)
    r1, g1, _ = confidence_rgb(0.9)
    assert r0 > r1 and g1 > g0
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
    tip = page.split(f'data-index="{canberra}"')[1].split("</span></span>")[0]
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
