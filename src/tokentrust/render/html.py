"""HTML fragment: tokens coloured by confidence, a legend naming the colouring score and its scale, and a
popover per token with its probability, entropy, the colouring score's value and its alternatives (a table).
Claims are underlined (a bottom border coloured by the claim's confidence) over the token colouring and
listed in a table with their scores and the alternatives that would change them.

Self-contained (inline CSS and one small inline script), so it works in notebooks, the web view and offline
reports. Without the script (an untrusted notebook) a popover still opens on hover, click, tap and keyboard
focus; with it (``templates/popover.js``) Enter/Space toggle it, Escape closes it and it is kept inside the
viewport and outside the clipping of a notebook's output cell.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from ..scores import Level, Scores
from ._view import (
    TOKEN_PROBABILITY,
    ClaimView,
    ColourKey,
    ScoredAnswer,
    TokenView,
    claim_colour_score,
    claim_key,
    claim_scores,
    claim_views,
    pieces,
    short_name,
    token_key,
    token_views,
    value_text,
)
from .colors import Palette, confidence_color, text_color
from .colors import palette as _palette

if TYPE_CHECKING:
    from ..decide.policy import Decision
    from ..trace import Trace

CSS = """
.tt-trace{font-family:ui-sans-serif,system-ui,sans-serif;line-height:1.9;max-width:60em}
.tt-tok{position:relative;border-radius:3px;padding:1px 1px;white-space:pre-wrap;cursor:pointer}
.tt-tok:focus{outline:2px solid #1f2a30;outline-offset:1px}
.tt-tok .tt-tip{display:none;position:absolute;left:0;top:1.8em;z-index:1000;background:#222;color:#eee;
 font:12px/1.4 ui-monospace,monospace;padding:6px 8px;border-radius:4px;white-space:pre;min-width:12em;
 max-width:calc(100vw - 8px);box-sizing:border-box;text-align:left;cursor:auto;white-space:normal}
.tt-tok:hover>.tt-tip,.tt-tok:focus-within>.tt-tip{display:block}
.tt-tok.tt-shut>.tt-tip{display:none}
.tt-tip .tt-line{display:block}
.tt-alts{display:table;border-spacing:8px 0;margin:2px -8px 0}
.tt-alt{display:table-row}
.tt-alt>span{display:table-cell;white-space:pre}
.tt-alt>span:nth-child(2){white-space:pre-wrap;word-break:break-all}
.tt-alt .tt-num{text-align:right}
.tt-alt.tt-chosen{color:#ffd866}
.tt-bar{display:inline-block;height:.6em;background:#9ecae1}
.tt-legend{display:flex;flex-wrap:wrap;align-items:center;gap:.4em;font:12px ui-sans-serif,system-ui,sans-serif;
 color:#444;margin:.3em 0}
.tt-legend .tt-grad{display:inline-block;width:9em;height:.75em;border-radius:3px}
.tt-legend .tt-nan{display:inline-block;padding:0 .3em;border-radius:2px}
.tt-cl{padding-bottom:2px;border-bottom:3px solid}
.tt-cn{font-size:.7em;font-weight:bold;color:#444;margin:0 1px}
.tt-scores{border-collapse:collapse;margin-top:.6em;font:13px ui-monospace,monospace}
.tt-scores td,.tt-scores th{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd;vertical-align:top}
.tt-scores caption{text-align:left;font-weight:bold;padding:2px 0}
.tt-note{font:12px ui-monospace,monospace;color:#666;margin:.3em 0}
.tt-decision{padding:.4em .7em;border-left:5px solid #888;background:#f4f4f2;margin:.4em 0}
.tt-decision .tt-act{text-transform:uppercase;font-weight:bold;letter-spacing:.04em;margin-right:.5em}
"""
_NO_CLAIMS = '<p class="tt-note">no claims in this answer</p>'


@cache
def popover_script() -> str:
    """The popover script (``templates/popover.js``), inlined in every fragment; it installs itself once."""
    text = resources.files("tokentrust.render").joinpath("templates", "popover.js").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def _cell(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<span role="cell"{attr}>{html.escape(text)}</span>'


def _tooltip(v: TokenView, key: ColourKey) -> str:
    """The popover's HTML: probability, entropy, the colouring score's value, and the alternatives as a table
    (marker, token, probability, bar)."""
    head = f"p = {v.prob:.3f}" + (f" · entropy = {v.entropy:.3f} nats" if v.entropy is not None else "")
    lines = [f'<span class="tt-line">{html.escape(head)}</span>']
    if key.score != TOKEN_PROBABILITY:
        lines.append(f'<span class="tt-line">{html.escape(value_text(key.score, v.value, v.raw))}</span>')
    rows = []
    for text, p in v.alternatives:
        chosen = text == v.text
        bar = f'<span role="cell"><span class="tt-bar" style="width:{max(1, round(p * 60))}px"></span></span>'
        rows.append(f'<span role="row" class="tt-alt{" tt-chosen" if chosen else ""}">'
                    f'{_cell("▸" if chosen else "")}{_cell(repr(text))}{_cell(f"{p:.3f}", "tt-num")}{bar}</span>')
    table = f'<span class="tt-alts" role="table" aria-label="alternatives">{"".join(rows)}</span>' if rows else ""
    return "".join(lines) + table


def _fmt(x: float) -> str:
    return "missing" if math.isnan(x) else f"{x:.4g}"


def legend_html(key: ColourKey, pal: str | Palette | None = None, what: str = "") -> str:
    """The legend of one colouring: a gradient from 0 to 1, the grey of a missing value, and the score and
    its scale in words (fixed for a probability, relative to this answer otherwise)."""
    pal = _palette(pal)
    stops = ",".join(confidence_color(x, pal) for x in (0.0, 0.25, 0.5, 0.75, 1.0))
    low, high = ("0", "1") if key.fixed else ("lowest", "highest")
    nan = confidence_color(math.nan)
    return (f'<div class="tt-legend" data-score="{html.escape(key.score)}" data-fixed="{str(key.fixed).lower()}">'
            f'<span>{low}</span><span class="tt-grad" style="background:linear-gradient(90deg,{stops})"></span>'
            f'<span>{high}</span><span class="tt-nan" style="background:{nan}">n/a</span>'
            f"<span>{html.escape(what + key.describe(pal.low, pal.high))}</span></div>")


def claim_summary(c: ClaimView, n_changers: int = 3) -> str:
    """One claim as text: number, scores and the alternatives that would change it (hover titles)."""
    lines = [f"claim {c.number}: {c.text}", *(f"{k} = {_fmt(v)}" for k, v in c.scores.items())]
    if c.changers:
        lines.append("would change it: " + ", ".join(str(ch) for ch in c.changers[:n_changers]))
    return "\n".join(lines)


def _claim_attrs(claims: Sequence[ClaimView], ks: tuple[int, ...], pal: Palette) -> str:
    first = claims[ks[0]]
    numbers = " ".join(str(claims[k].number) for k in ks)
    title = html.escape("\n\n".join(claim_summary(claims[k]) for k in ks))
    colour = confidence_color(first.color_value, pal)
    return f'class="tt-cl" data-claims="{numbers}" style="border-bottom-color:{colour}" title="{title}"'


def _tokens_html(trace: Trace, colour_by: Scores | None, claims: Sequence[ClaimView], pal: Palette) -> str:
    """One focusable span per visible token, its characters cut where claims start and end (claim runs
    underlined), its popover last."""
    views = {v.index: v for v in token_views(trace, colour_by)}
    key = token_key(trace, colour_by)
    out: list[str] = []
    current: int | None = None

    def close() -> None:
        if current is not None:
            out.append(f'<span class="tt-tip" role="tooltip">{_tooltip(views[current], key)}</span></span>')

    for p in pieces(trace, claims):
        if p.token != current:
            close()
            current = p.token
            if p.token is not None:
                v = views[p.token]
                style = f"background:{confidence_color(v.color_value, pal)};color:{text_color(v.color_value, pal)}"
                out.append(f'<span class="tt-tok" data-index="{v.index}" data-p="{v.prob:.6f}" style="{style}" '
                           f'data-value="{v.value:.6g}" tabindex="0" role="button" aria-expanded="false">')
        text = html.escape(p.text)
        out.append(f"<span {_claim_attrs(claims, p.claims, pal)}>{text}</span>" if p.claims else text)
        out.extend(f'<sup class="tt-cn">{claims[k].number}</sup>' for k in reversed(p.claims)
                   if claims[k].char_span[1] == p.end)
    close()
    return "".join(out)


def _claims_table(result: ScoredAnswer, colour_by: Scores | None, claims: Sequence[ClaimView], pal: Palette,
                  n_changers: int = 3) -> str:
    colour = claim_colour_score(result, colour_by)
    ids = list(claims[0].scores)
    has_changers = any(c.changers for c in claims)
    headers = ["#", "claim", *map(short_name, ids), *(["would change it"] * has_changers)]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = []
    for c in claims:
        swatch = f"background:{confidence_color(c.color_value, pal)};color:{text_color(c.color_value, pal)}"
        cells = [f'<td style="{swatch}">{c.number}</td>', f"<td>{html.escape(c.text)}</td>",
                 *(f"<td>{_fmt(c.scores[i])}</td>" for i in ids)]
        if has_changers:
            cells.append(f"<td>{html.escape(', '.join(str(ch) for ch in c.changers[:n_changers]) or '–')}</td>")
        rows.append(f'<tr data-claim="{c.number}">{"".join(cells)}</tr>')
    caption = f"claims, coloured by {colour.estimator}" if colour else "claims"
    unmatched = ", ".join(f"#{c.number}" for c in claims if not c.matched) or "none"
    return (f'<table class="tt-scores tt-claims"><caption>{html.escape(caption)}</caption><tr>{head}</tr>'
            f'{"".join(rows)}</table><p class="tt-note">claims that matched no answer token: {unmatched}</p>')


def assets_html() -> str:
    """The style sheet and popover script every fragment needs: a page holding many fragments includes this
    once and renders them with ``assets=False``."""
    return f"<style>{CSS}</style><script>{popover_script()}</script>"


def _fragment(body: str, assets: bool) -> str:
    return f"<style>{CSS}</style>{body}<script>{popover_script()}</script>" if assets else body


def render_trace_html(trace: Trace, *, colour_by: Scores | None = None, palette: str | Palette | None = None,
                      assets: bool = True) -> str:
    """HTML fragment of a trace's answer with tokens coloured by probability, and its legend (``assets=False``:
    without the style sheet and script of :func:`assets_html`)."""
    pal = _palette(palette)
    answer = _tokens_html(trace, colour_by, (), pal)
    return _fragment(f'<div class="tt-trace">{answer}</div>{legend_html(token_key(trace, colour_by), pal)}', assets)


def decision_html(d: Decision) -> str:
    """The decision line: action and band, the probability (named as the probability that the answer is
    correct when it is calibrated), the phrase, the rationale and the guarantee."""
    from ..calibration import CALIBRATED_ID

    action = html.escape(d.action)
    band = f" ({html.escape(d.band)} band)" if d.band not in (None, d.action) else ""
    what = "probability that the answer is correct" if d.score == CALIBRATED_ID else f"{d.score} (not calibrated)"
    parts = [f'<span class="tt-act">{action}</span>{band} · {html.escape(what)} = {_fmt(d.probability)}',
             f'<br><span class="tt-phrase">{html.escape(d.phrase)}</span>']
    if d.rationale:
        parts.append(f"<br><i>{html.escape(d.rationale)}</i>")
    removed = [c for c in d.claims if not c.kept]
    if removed:
        parts.append(f'<br><span class="tt-note">removed {len(removed)} of {len(d.claims)} claims: '
                     + " | ".join(f"<s>{html.escape(c.text)}</s> ({_fmt(c.value)})" for c in removed) + "</span>")
    if d.guaranteed:
        parts.append(f'<br><span class="tt-note">guarantee: {html.escape(d.guaranteed)}</span>')
    return f'<div class="tt-decision" data-action="{action}">{"".join(parts)}</div>'


def render_html(result: ScoredAnswer, *, colour_by: Scores | None = None, palette: str | Palette | None = None,
                assets: bool = True) -> str:
    """HTML fragment of an annotated result: coloured answer with claims underlined, the legend, the decision
    (when a policy decided), the claims table and a table of sequence scores. ``colour_by`` colours tokens when
    token-level, claims when claim-level; ``palette``: ``blue-orange`` (default) or ``red-green``;
    ``assets=False``: without the style sheet and script of :func:`assets_html`."""
    pal = _palette(palette)
    claims = claim_views(result, colour_by)
    rows = "".join(
        f"<tr><td>{html.escape(s.estimator)}</td><td>{s.value:.4g}</td><td>{s.raw[0]:.4g}</td></tr>"
        for s in result.scores if s.level is Level.SEQUENCE
    )
    table = f'<table class="tt-scores"><tr><th>score</th><th>value</th><th>raw</th></tr>{rows}</table>'
    d = getattr(result, "decision", None)
    legends = legend_html(token_key(result.trace, colour_by), pal)
    ckey = claim_key(result, colour_by)
    if claims and ckey is not None:
        legends += legend_html(ckey, pal, "claims: ")
    return _fragment(
        f'<div class="tt-trace">{_tokens_html(result.trace, colour_by, claims, pal)}</div>{legends}'
        f"{'' if d is None else decision_html(d)}"
        f"{_claims_table(result, colour_by, claims, pal) if claims else _NO_CLAIMS if claim_scores(result) else ''}"
        f"{table if rows else ''}",
        assets,
    )

