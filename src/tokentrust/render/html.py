"""HTML fragment: tokens coloured by confidence; hovering one shows its probability, entropy and alternatives.
Claims are underlined (a bottom border coloured by the claim's confidence) over the token colouring and
listed in a table with their scores and the alternatives that would change them.

Self-contained (inline CSS, no scripts), so it works in notebooks, the web view and offline reports.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..scores import Level, Scores
from ._view import (
    ClaimView,
    ScoredAnswer,
    TokenView,
    claim_colour_score,
    claim_scores,
    claim_views,
    pieces,
    short_name,
    token_views,
)
from .colors import confidence_color, text_color

if TYPE_CHECKING:
    from ..trace import Trace

CSS = """
.tt-trace{font-family:ui-sans-serif,system-ui,sans-serif;line-height:1.9;max-width:60em}
.tt-tok{position:relative;border-radius:3px;padding:1px 1px;white-space:pre-wrap;cursor:default}
.tt-tok .tt-tip{display:none;position:absolute;left:0;top:1.8em;z-index:10;background:#222;color:#eee;
 font:12px/1.4 ui-monospace,monospace;padding:6px 8px;border-radius:4px;white-space:pre;min-width:12em}
.tt-tok:hover .tt-tip{display:block}
.tt-cl{padding-bottom:2px;border-bottom:3px solid}
.tt-cn{font-size:.7em;font-weight:bold;color:#444;margin:0 1px}
.tt-scores{border-collapse:collapse;margin-top:.6em;font:13px ui-monospace,monospace}
.tt-scores td,.tt-scores th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd;vertical-align:top}
.tt-scores caption{text-align:left;font-weight:bold;padding:2px 0}
.tt-note{font:12px ui-monospace,monospace;color:#666;margin:.3em 0}
"""
_NO_CLAIMS = '<p class="tt-note">no claims in this answer</p>'


def _tooltip(v: TokenView) -> str:
    lines = [f"p = {v.prob:.3f}"]
    if v.entropy is not None:
        lines.append(f"entropy = {v.entropy:.3f} nats")
    for text, p in v.alternatives:
        mark = "▸" if text == v.text else " "
        lines.append(f"{mark} {text!r:<16} {p:.3f}")
    return "\n".join(lines)


def _fmt(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"


def claim_summary(c: ClaimView, n_changers: int = 3) -> str:
    """One claim as text: number, scores and the alternatives that would change it (hover titles)."""
    lines = [f"claim {c.number}: {c.text}", *(f"{k} = {_fmt(v)}" for k, v in c.scores.items())]
    if c.changers:
        lines.append("would change it: " + ", ".join(str(ch) for ch in c.changers[:n_changers]))
    return "\n".join(lines)


def _claim_attrs(claims: Sequence[ClaimView], ks: tuple[int, ...]) -> str:
    first = claims[ks[0]]
    numbers = " ".join(str(claims[k].number) for k in ks)
    title = html.escape("\n\n".join(claim_summary(claims[k]) for k in ks))
    colour = confidence_color(first.color_value)
    return f'class="tt-cl" data-claims="{numbers}" style="border-bottom-color:{colour}" title="{title}"'


def _tokens_html(trace: Trace, colour_by: Scores | None, claims: Sequence[ClaimView] = ()) -> str:
    """One span per visible token, its characters cut where claims start and end (claim runs underlined)."""
    views = {v.index: v for v in token_views(trace, colour_by)}
    out: list[str] = []
    current: int | None = None

    def close() -> None:
        if current is not None:
            out.append(f'<span class="tt-tip">{html.escape(_tooltip(views[current]))}</span></span>')

    for p in pieces(trace, claims):
        if p.token != current:
            close()
            current = p.token
            if p.token is not None:
                v = views[p.token]
                out.append(f'<span class="tt-tok" data-index="{v.index}" data-p="{v.prob:.6f}" '
                           f'style="background:{confidence_color(v.color_value)};color:{text_color(v.color_value)}">')
        text = html.escape(p.text)
        out.append(f"<span {_claim_attrs(claims, p.claims)}>{text}</span>" if p.claims else text)
        out.extend(f'<sup class="tt-cn">{claims[k].number}</sup>' for k in reversed(p.claims)
                   if claims[k].char_span[1] == p.end)
    close()
    return "".join(out)


def _claims_table(result: ScoredAnswer, colour_by: Scores | None, claims: Sequence[ClaimView],
                  n_changers: int = 3) -> str:
    colour = claim_colour_score(result, colour_by)
    ids = list(claims[0].scores)
    has_changers = any(c.changers for c in claims)
    headers = ["#", "claim", *map(short_name, ids), *(["would change it"] * has_changers)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = []
    for c in claims:
        swatch = f"background:{confidence_color(c.color_value)};color:{text_color(c.color_value)}"
        cells = [f'<td style="{swatch}">{c.number}</td>', f"<td>{html.escape(c.text)}</td>",
                 *(f"<td>{_fmt(c.scores[i])}</td>" for i in ids)]
        if has_changers:
            cells.append(f"<td>{html.escape(', '.join(str(ch) for ch in c.changers[:n_changers]) or '–')}</td>")
        rows.append(f'<tr data-claim="{c.number}">{"".join(cells)}</tr>')
    caption = f"claims, coloured by {colour.estimator}" if colour else "claims"
    unmatched = ", ".join(f"#{c.number}" for c in claims if not c.matched) or "none"
    return (f'<table class="tt-scores tt-claims"><caption>{html.escape(caption)}</caption><tr>{head}</tr>'
            f'{"".join(rows)}</table><p class="tt-note">claims that matched no answer token: {unmatched}</p>')


def render_trace_html(trace: Trace, *, colour_by: Scores | None = None) -> str:
    """HTML fragment of a trace's answer with tokens coloured by probability."""
    return f'<style>{CSS}</style><div class="tt-trace">{_tokens_html(trace, colour_by)}</div>'


def render_html(result: ScoredAnswer, *, colour_by: Scores | None = None) -> str:
    """HTML fragment of an annotated result: coloured answer with claims underlined, the claims table and a
    table of sequence scores. ``colour_by`` colours tokens when token-level, claims when claim-level."""
    claims = claim_views(result, colour_by)
    rows = "".join(
        f"<tr><td>{html.escape(s.estimator)}</td><td>{s.value:.4g}</td><td>{s.raw[0]:.4g}</td></tr>"
        for s in result.scores if s.level is Level.SEQUENCE
    )
    table = f'<table class="tt-scores"><tr><th>score</th><th>value</th><th>raw</th></tr>{rows}</table>'
    d = getattr(result, "decision", None)
    decision = "" if d is None else (
        f'<p class="tt-decision"><b>{html.escape(d.action)}</b> · {html.escape(d.score)} = {_fmt(d.probability)}'
        f" · {html.escape(d.phrase)}{'<br><i>' + html.escape(d.rationale) + '</i>' if d.rationale else ''}</p>")
    return (
        f'<style>{CSS}</style><div class="tt-trace">{_tokens_html(result.trace, colour_by, claims)}</div>{decision}'
        f"{_claims_table(result, colour_by, claims) if claims else _NO_CLAIMS if claim_scores(result) else ''}"
        f"{table if rows else ''}"
    )
