"""Terminal view (rich): coloured answer with its claims bracketed, least confident tokens with alternatives,
the claims table (scores and the alternatives that would change each claim) and sequence scores."""

from __future__ import annotations

import math

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..scores import Level, Scores
from ._view import (
    ClaimView,
    ScoredAnswer,
    claim_colour_score,
    claim_scores,
    claim_views,
    least_confident,
    pieces,
    short_name,
    token_views,
)
from .colors import confidence_color, text_color

OPEN, CLOSE = "⟦", "⟧"
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _fmt(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"  # NaN: the method gave no value (e.g. no stated confidence)


def _style(value: float, extra: str = "") -> str:
    return f"{extra} {text_color(value)} on {confidence_color(value)}".strip()


def claim_label(c: ClaimView) -> str:
    """The mark closing claim ``c`` in the answer: ``⟧`` and its number as a subscript (``⟧₁₂``)."""
    return CLOSE + str(c.number).translate(_SUB)


def _answer(result: ScoredAnswer, colour_by: Scores | None, claims: list[ClaimView]) -> Text:
    """The answer: claims (matched ones) bracketed, underlined and coloured by claim confidence; other
    characters coloured by their token."""
    values = {v.index: v.color_value for v in token_views(result.trace, colour_by)}
    out = Text()
    for p in pieces(result.trace, claims):
        if not p.text:
            continue
        for k in p.claims:
            if claims[k].char_span[0] == p.start:
                out.append(OPEN, style=_style(claims[k].color_value, "bold"))
        if p.claims:
            out.append(p.text, style=_style(claims[p.claims[0]].color_value, "underline"))
        else:
            out.append(p.text, style=_style(values[p.token]) if p.token is not None else "")
        for k in reversed(p.claims):
            if claims[k].char_span[1] == p.end:
                out.append(claim_label(claims[k]), style=_style(claims[k].color_value, "bold"))
    return out


def _claims_table(result: ScoredAnswer, colour_by: Scores | None, claims: list[ClaimView],
                  n_changers: int) -> list[RenderableType]:
    colour = claim_colour_score(result, colour_by)
    ids = list(claims[0].scores)
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold",
                  title=f"claims, coloured by {colour.estimator}" if colour else "claims", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("claim", ratio=3)
    for i in ids:
        table.add_column(short_name(i), justify="right")
    has_changers = any(c.changers for c in claims)
    if has_changers:
        table.add_column("would change it", ratio=2)
    for c in claims:
        row: list[RenderableType] = [Text(str(c.number), style=_style(c.color_value, "bold")), c.text,
                                     *(_fmt(c.scores[i]) for i in ids)]
        if has_changers:
            row.append(", ".join(str(ch) for ch in c.changers[:n_changers]) or "–")
        table.add_row(*row)
    unmatched = [f"#{c.number}" for c in claims if not c.matched]
    note = Text("claims that matched no answer token: " + (", ".join(unmatched) or "none"), style="dim")
    return [table, note]


def _decision(result: ScoredAnswer) -> list[Text]:
    """The line under the answer when a policy decided (action, probability, phrase; rationale, guarantee)."""
    d = getattr(result, "decision", None)
    if d is None:
        return []
    line = Text("→ ", style="bold")
    line.append(d.action + (f" ({d.band})" if d.band not in (None, d.action) else ""), style="bold")
    line.append(f" · {d.score} = {_fmt(d.probability)} · ", style="dim")
    line.append(d.phrase)
    extra = [Text(f"  {d.rationale}", style="italic")] if d.rationale else []
    return [line, *extra, *([Text(f"  guarantee: {d.guaranteed}", style="dim")] if d.guaranteed else [])]


def render_rich(result: ScoredAnswer, *, colour_by: Scores | None = None, n_alternatives: int = 3) -> Group:
    """A rich renderable for an :class:`~tokentrust.annotated.Annotated` result. ``colour_by`` colours the
    tokens when token-level, the claims when claim-level (default: the first claim-level score)."""
    views = token_views(result.trace, colour_by)
    claims = claim_views(result, colour_by)
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
    parts: list[RenderableType] = [_answer(result, colour_by, claims), *_decision(result), Text(""), notes, Text("")]
    if claims:
        parts += [*_claims_table(result, colour_by, claims, n_alternatives), Text("")]
    elif claim_scores(result):
        parts += [Text("no claims in this answer", style="dim"), Text("")]
    return Group(*parts, table)
