"""Terminal view (rich): coloured answer, least confident tokens with alternatives, sequence scores."""

from __future__ import annotations

import math

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..scores import Level, Scores
from ._view import ScoredAnswer, least_confident, token_views
from .colors import confidence_color, text_color


def _fmt(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"  # NaN: the method gave no value (e.g. no stated confidence)


def render_rich(result: ScoredAnswer, *, colour_by: Scores | None = None, n_alternatives: int = 3) -> Group:
    """A rich renderable for an :class:`~tokentrust.annotated.Annotated` result."""
    views = token_views(result.trace, colour_by)
    answer = Text()
    for v in views:
        if v.special:
            continue
        answer.append(v.text, style=f"{text_color(v.color_value)} on {confidence_color(v.color_value)}")
    notes = Text("least confident: ", style="dim")
    for i, v in enumerate(least_confident(views)):
        if i:
            notes.append("  ·  ", style="dim")
        notes.append(repr(v.text.strip()), style=f"bold {confidence_color(v.prob)}")
        notes.append(f" {v.prob:.2f}", style="dim")
        alts = [a for a in v.alternatives if a[0] != v.text][:n_alternatives]
        if alts:
            notes.append(" (alt: " + ", ".join(f"{t.strip()!r} {p:.2f}" for t, p in alts) + ")", style="dim")
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    table.add_column("score")
    table.add_column("value", justify="right")
    table.add_column("raw", justify="right")
    for s in (s for s in result.scores if s.level is Level.SEQUENCE):
        table.add_row(s.estimator, _fmt(s.value), _fmt(s.raw[0]))
    return Group(answer, Text(""), notes, Text(""), table)
