"""The colour scales: colour-blind-safe by default, red→green as an option, and 16- and 256-colour terminal
fallbacks that keep the order of confidence visible. No model: hand-built traces.

Colour vision is checked with an independent implementation: sRGB → CIELAB (D65) and Machado et al. (2009)'s
deuteranopia matrix (severity 1) on linear RGB.
"""

from __future__ import annotations

import io
import math
import re
from itertools import pairwise

import numpy as np
import pytest
from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.color import ANSI_COLOR_NAMES
from rich.console import Console

from _cli import run_cli
from _traces import make_trace
from tokentrust import annotate
from tokentrust.errors import UnknownNameError
from tokentrust.render import render_rich
from tokentrust.render.colors import (
    EDGES_16,
    EDGES_256,
    PALETTES,
    confidence_rgb,
    level,
    palette,
    readable_on,
)

HIGH = [0.65, 0.81, 0.88, 0.96]  # probabilities a 16-colour terminal used to show as white, white, grey, grey
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968],
                         [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])


def _linear(rgb) -> np.ndarray:
    c = np.asarray(rgb, dtype=float) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lab_of_linear(lin: np.ndarray) -> np.ndarray:
    x, y, z = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    x, z = x / 0.95047, z / 1.08883

    def f(t):
        return np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)

    return np.array([116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))])


def lab(rgb) -> np.ndarray:
    return _lab_of_linear(_linear(rgb))


def lab_deuteranope(rgb) -> np.ndarray:
    return _lab_of_linear(np.clip(DEUTERANOPIA @ _linear(rgb), 0, 1))


def delta_e(a, b, space=lab) -> float:
    return float(np.linalg.norm(space(a) - space(b)))


def test_default_scale_reads_under_deuteranopia_and_red_green_does_not():
    ends = {name: delta_e(confidence_rgb(0, name), confidence_rgb(1, name), lab_deuteranope) for name in PALETTES}
    assert palette().name == "blue-orange"
    assert ends["blue-orange"] > 3 * ends["red-green"]  # red and green collapse towards one olive
    assert ends["red-green"] < 30 and ends["blue-orange"] > 90
    # neighbouring high confidences stay apart for a deuteranope (a just-noticeable difference is ~2.3)
    for a, b in pairwise(HIGH):
        assert delta_e(confidence_rgb(a), confidence_rgb(b), lab_deuteranope) > 10


def test_text_on_each_colour_has_the_better_contrast():
    for name in PALETTES:
        for p in np.linspace(0, 1, 21):
            rgb = confidence_rgb(float(p), name)
            black, white = delta_e(rgb, (0, 0, 0)), delta_e(rgb, (255, 255, 255))
            if abs(black - white) > 15:  # clear cases: the text is the colour farther in lightness
                assert readable_on(rgb) == ("#000000" if black > white else "#ffffff")


@pytest.mark.parametrize("edges", [EDGES_16, EDGES_256], ids=["16", "256"])
def test_levels_are_monotone_and_separate_high_confidences(edges):
    grid = np.linspace(0, 1, 1001)
    levels = [level(float(p), edges) for p in grid]
    assert levels == sorted(levels) and levels[0] == 0 and levels[-1] == len(edges)
    assert len({level(p, edges) for p in HIGH}) == len(HIGH)
    assert level(math.nan, edges) is None


def _projection(rgb, name: str) -> float:
    """The value of the continuous scale whose colour is nearest to ``rgb`` (CIELAB distance)."""
    grid = np.linspace(0, 1, 401)
    scale = np.array([lab(confidence_rgb(float(p), name)) for p in grid])
    return float(grid[np.argmin(np.linalg.norm(scale - lab(rgb), axis=1))])


@pytest.mark.parametrize("name", list(PALETTES))
def test_terminal_colours_follow_the_scale_in_order(name):
    pal = PALETTES[name]
    for colours, rgb_of in [(pal.ansi256, lambda i: tuple(EIGHT_BIT_PALETTE[i])),
                            (pal.ansi16, lambda n: tuple(STANDARD_PALETTE[ANSI_COLOR_NAMES[n]]))]:
        rgbs = [rgb_of(c) for c in colours]
        assert all(delta_e(a, b) > 10 for a, b in pairwise(rgbs))  # neighbours distinguishable
        where = [_projection(rgb, name) for rgb in rgbs]
        assert where == sorted(where) and where[0] < 0.1 and where[-1] > 0.9  # read back in order, end to end


def _background_codes(ansi: str, words: list[str]) -> list[str]:
    """The SGR parameters that colour each word of the first line of ``ansi``."""
    first = ansi.splitlines()[0]
    found = {text: codes for codes, text in re.findall(r"\x1b\[([0-9;]+)m([^\x1b]*)", first)}
    return [found[w] for w in words]


@pytest.mark.parametrize("system", ["standard", "256"])
@pytest.mark.parametrize("name", list(PALETTES))
def test_printed_answer_keeps_the_order_on_small_terminals(system, name):
    words = ["alpha ", "bravo ", "charlie ", "delta"]
    result = annotate(make_trace([math.log(p) for p in HIGH], text_tokens=words), ["msp"])
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system=system, width=200).print(render_rich(result, palette=name))
    codes = _background_codes(out.getvalue(), words)
    pal = PALETTES[name]
    if system == "256":
        want = [f"48;5;{pal.ansi256[level(p, EDGES_256)]}" for p in HIGH]
    else:
        numbers = [ANSI_COLOR_NAMES[pal.ansi16[level(p, EDGES_16)]] for p in HIGH]
        want = [str(40 + n if n < 8 else 100 + n - 8) for n in numbers]
    assert [w in c.split(";") or w in c for w, c in zip(want, codes)] == [True] * 4
    assert len(set(want)) == 4  # four confidences, four colours, lowest first
    # the legend row shows every level of that terminal
    assert out.getvalue().splitlines()[1].count("\x1b[") >= (len(EDGES_256) if system == "256" else len(EDGES_16)) + 1


def test_unknown_palette_is_one_clear_error(capsys):
    with pytest.raises(UnknownNameError, match="unknown palette 'purple'; choose one of: blue-orange, red-green"):
        palette("purple")
    code, _, err = run_cli(capsys, "ask", "What is 2+2?", "--palette", "purple")
    assert code == 2 and "unknown palette 'purple'" in err and "Traceback" not in err
