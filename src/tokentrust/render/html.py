"""HTML fragment: tokens coloured by confidence; hovering one shows its probability, entropy and alternatives.

Self-contained (inline CSS, no scripts), so it works in notebooks, the web view and offline reports.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from ..scores import Level, Scores
from ._view import ScoredAnswer, TokenView, token_views
from .colors import confidence_color, text_color

if TYPE_CHECKING:
    from ..trace import Trace

CSS = """
.tt-trace{font-family:ui-sans-serif,system-ui,sans-serif;line-height:1.9;max-width:60em}
.tt-tok{position:relative;border-radius:3px;padding:1px 1px;white-space:pre-wrap;cursor:default}
.tt-tok .tt-tip{display:none;position:absolute;left:0;top:1.8em;z-index:10;background:#222;color:#eee;
 font:12px/1.4 ui-monospace,monospace;padding:6px 8px;border-radius:4px;white-space:pre;min-width:12em}
.tt-tok:hover .tt-tip{display:block}
.tt-scores{border-collapse:collapse;margin-top:.6em;font:13px ui-monospace,monospace}
.tt-scores td,.tt-scores th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
"""


def _tooltip(v: TokenView) -> str:
    lines = [f"p = {v.prob:.3f}"]
    if v.entropy is not None:
        lines.append(f"entropy = {v.entropy:.3f} nats")
    for text, p in v.alternatives:
        mark = "▸" if text == v.text else " "
        lines.append(f"{mark} {text!r:<16} {p:.3f}")
    return "\n".join(lines)


def _tokens_html(trace: Trace, colour_by: Scores | None) -> str:
    spans = []
    for v in token_views(trace, colour_by):
        if v.special:
            continue
        tip = html.escape(_tooltip(v))
        spans.append(
            f'<span class="tt-tok" data-index="{v.index}" data-p="{v.prob:.6f}" '
            f'style="background:{confidence_color(v.color_value)};color:{text_color(v.color_value)}">'
            f'{html.escape(v.text)}<span class="tt-tip">{tip}</span></span>'
        )
    return "".join(spans)


def render_trace_html(trace: Trace, *, colour_by: Scores | None = None) -> str:
    """HTML fragment of a trace's answer with tokens coloured by probability."""
    return f'<style>{CSS}</style><div class="tt-trace">{_tokens_html(trace, colour_by)}</div>'


def render_html(result: ScoredAnswer, *, colour_by: Scores | None = None) -> str:
    """HTML fragment of an annotated result: coloured answer plus a table of sequence scores."""
    rows = "".join(
        f"<tr><td>{html.escape(s.estimator)}</td><td>{s.value:.4g}</td><td>{s.raw[0]:.4g}</td></tr>"
        for s in result.scores if s.level is Level.SEQUENCE
    )
    table = f'<table class="tt-scores"><tr><th>score</th><th>value</th><th>raw</th></tr>{rows}</table>'
    return (
        f'<style>{CSS}</style><div class="tt-trace">{_tokens_html(result.trace, colour_by)}</div>'
        f"{table if rows else ''}"
    )
