"""Show an :class:`~tokentrust.attribution.Attribution`: the prompt shaded by how much each source drove one
target, its top sources, the one-sentence explanation and a targets × sources table or heatmap.

Shading is on each source's *share of the positive mass* for the target (:func:`~tokentrust.attribution.
verbalize.shares`): white at 0, deeper blue the more a source raised the target's log-probability, deeper
orange the more it lowered it (ColorBrewer Blues / Oranges ends, readable with the common colour-vision
deficiencies), on a square-root scale so that small shares stay visible. Special tokens are shown by name in
italics (terminal) or boxed (HTML), never hidden.

The HTML is self-contained (inline CSS, no scripts): each answer token is a label of a hidden radio button,
so clicking it (or its heatmap row) shows its attribution over the prompt with CSS alone; the chosen
``target`` (default: the last) is shown first.
"""

from __future__ import annotations

import html
import math
import uuid

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..attribution.record import Attribution, Span
from ..attribution.verbalize import explain_sentence, shares, source_labels, target_index

WHITE, RAISED, LOWERED, UNKNOWN = (255, 255, 255), (8, 81, 156), (166, 54, 3), (190, 190, 190)


def importance_rgb(share: float) -> tuple[int, int, int]:
    """RGB for a share in [-1, 1] (clipped): white → blue for positive, white → orange for negative; NaN grey."""
    if math.isnan(share):
        return UNKNOWN
    end = RAISED if share >= 0 else LOWERED
    f = math.sqrt(min(1.0, abs(share)))
    return tuple(round(a + f * (b - a)) for a, b in zip(WHITE, end, strict=True))  # type: ignore[return-value]


def importance_color(share: float) -> str:
    """``#rrggbb`` for a share."""
    return "#{:02x}{:02x}{:02x}".format(*importance_rgb(share))


def importance_text_color(share: float) -> str:
    """Black or white text, whichever reads better on :func:`importance_color`."""
    r, g, b = importance_rgb(share)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def shown(text: str) -> str:
    """A source's text with line breaks made visible (``↵`` before each)."""
    return text.replace("\n", "↵\n")


def short(span: Span, width: int = 16) -> str:
    """A source or target on one line: its name for a component, else its text (whitespace made visible)."""
    text = span.name or span.text.strip() or span.text.replace("\n", "↵").replace(" ", "·") or "∅"
    return text if len(text) <= width else text[: width - 1] + "…"


def number(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3g}"


def top_columns(attribution: Attribution, k: int = 8) -> list[int]:
    """The ``k`` sources (not whitespace-only) with the largest summed positive share over all targets,
    in prompt order."""
    rows = [shares(r) for r in attribution.scores]
    weight = {j: math.fsum(max(0.0, r[j]) for r in rows if not math.isnan(r[j]))
              for j, s in enumerate(attribution.sources) if s.text.strip() or s.name}
    return sorted(sorted(weight, key=lambda j: -weight[j])[:k])


def prompt_runs(attribution: Attribution) -> list[tuple[int, str]]:
    """The prompt in reading order as ``(source index, text)`` runs. A component whose tokens are not
    contiguous has its text joined with ``…`` at each gap, so it is split back there; when that does not
    give one piece per run, sources are listed whole, in their order."""
    owner = {t: j for j, s in enumerate(attribution.sources) for t in s.tokens}
    pieces: dict[int, list[str]] = {}
    for j, s in enumerate(attribution.sources):
        runs = 1 + sum(1 for a, b in zip(s.tokens, s.tokens[1:], strict=False) if b != a + 1)
        parts = s.text.split("…") if runs > 1 else [s.text]
        if len(parts) != runs or sorted(s.tokens) != s.tokens:
            return [(j, s.text) for j, s in enumerate(attribution.sources)]
        pieces[j] = parts
    out: list[tuple[int, str]] = []
    for t in sorted(owner):
        j = owner[t]
        if t - 1 not in owner or owner[t - 1] != j:
            out.append((j, pieces[j].pop(0)))
    return out


def _logprob_note(attribution: Attribution, i: int) -> str:
    lp = attribution.target_logprobs[i]
    return f"log-prob {lp:.3f} (p = {math.exp(lp):.3f})" if not math.isnan(lp) else "log-prob unknown"


# --------------------------------------------------------------------------- terminal


def _style(share: float) -> str:
    return f"{importance_text_color(share)} on {importance_color(share)}"


def render_attribution_rich(attribution: Attribution, target: int | str = -1, k: int = 5) -> Group:
    """A rich renderable: the prompt shaded for ``target`` (default: the last), its ``k`` top sources with
    scores and shares, the sentence and the target's log-prob; with several targets, a table of every target
    against the top sources."""
    i = target_index(attribution, target)
    row, share = attribution.scores[i], shares(attribution.scores[i])
    tgt = attribution.targets[i]
    head = Text(f"{attribution.method} · {attribution.model_id} · {attribution.granularity}-level sources",
                style="dim")
    line = Text("target ")
    line.append(repr(tgt.text.strip() or tgt.text), style="bold")
    line.append(f"  {_logprob_note(attribution, i)}", style="dim")
    prompt = Text()
    for j, text in prompt_runs(attribution):
        s = attribution.sources[j]
        if s.name and s.name != "template":
            prompt.append(f"[{s.name}]", style="dim")
        prompt.append(shown(text), style=_style(share[j]) + (" italic" if s.special else ""))
    legend = Text("shade: share of the positive mass — ", style="dim")
    legend.append(" raised it ", style=_style(0.5))
    legend.append(" ", style="dim")
    legend.append(" lowered it ", style=_style(-0.5))
    top = Table(box=None, pad_edge=False, header_style="bold", title="top sources", title_justify="left")
    for name, justify in (("#", "right"), ("source", "left"), ("score", "right"), ("share", "right")):
        top.add_column(name, justify=justify)  # type: ignore[arg-type]
    ranked = sorted((j for j in range(len(row)) if not math.isnan(row[j]) and
                     (attribution.sources[j].text.strip() or attribution.sources[j].name)), key=lambda j: -row[j])
    labels = source_labels(attribution)
    for n, j in enumerate(ranked[:k], start=1):
        top.add_row(str(n), labels[j], number(row[j]), Text(f"{share[j]:.2f}", style=_style(share[j])))
    parts: list[RenderableType] = [head, line, Text(""), prompt, Text(""), legend, Text(""), top, Text(""),
                                   Text(explain_sentence(attribution, i), style="bold")]
    if len(attribution.targets) > 1:
        parts += [Text(""), _matrix(attribution)]
    return Group(*parts)


def _matrix(attribution: Attribution, k: int = 8) -> Table:
    cols = top_columns(attribution, k)
    table = Table(box=None, pad_edge=False, header_style="bold", title="scores: target × top sources",
                  title_justify="left")
    table.add_column("target")
    for j in cols:
        table.add_column(short(attribution.sources[j], 12), justify="right")
    for i, t in enumerate(attribution.targets):
        share = shares(attribution.scores[i])
        table.add_row(short(t), *(Text(number(attribution.scores[i][j]), style=_style(share[j])) for j in cols))
    return table


# --------------------------------------------------------------------------- HTML

CSS = """
.tt-att{font-family:ui-sans-serif,system-ui,sans-serif;max-width:64em;line-height:1.7}
.tt-att .tt-pick{display:none}
.tt-att .tt-att-head,.tt-att .tt-note{font:12px ui-monospace,monospace;color:#666;margin:.3em 0}
.tt-att .tt-att-answer{margin:.4em 0;font-size:1.05em}
.tt-att .tt-tgt{cursor:pointer;border-radius:3px;padding:0 1px;border-bottom:2px solid #bbb;white-space:pre-wrap}
.tt-att .tt-tgt:hover{background:#eef}
.tt-att .tt-att-view{display:none;border-left:3px solid #08519c;padding:.2em .7em;margin:.4em 0}
.tt-att .tt-att-sentence{font-weight:bold;margin:.2em 0}
.tt-att .tt-att-prompt{white-space:pre-wrap;font:13px/1.9 ui-monospace,monospace;padding:.3em 0}
.tt-att .tt-src{border-radius:2px;padding:1px 0}
.tt-att .tt-special{font-style:italic;outline:1px dashed #999;outline-offset:-1px}
.tt-att .tt-comp{font-size:.75em;font-weight:bold;color:#555;margin-right:2px}
.tt-att table{border-collapse:collapse;font:12px ui-monospace,monospace;margin:.4em 0}
.tt-att td,.tt-att th{padding:1px 6px;text-align:right;border-bottom:1px solid #eee}
.tt-att caption{text-align:left;font-weight:bold;padding:2px 0}
.tt-att .tt-heat-wrap{overflow-x:auto}
.tt-att .tt-heat th.tt-col{writing-mode:vertical-rl;transform:rotate(180deg);text-align:left;font-weight:normal;
 max-height:10em;padding:4px 1px}
.tt-att .tt-heat td{min-width:2.4em;text-align:center;font-size:10px;padding:2px 1px}
.tt-att .tt-heat th.tt-row{text-align:left;white-space:pre}
.tt-att .tt-heat th.tt-row label{cursor:pointer}
.tt-att .tt-legend span{display:inline-block;padding:0 .5em;border-radius:2px;margin-right:.3em}
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _source_spans(attribution: Attribution, i: int) -> str:
    row, share = attribution.scores[i], shares(attribution.scores[i])
    out = []
    for j, text in prompt_runs(attribution):
        s = attribution.sources[j]
        cls = "tt-src tt-special" if s.special else "tt-src"
        comp = f'<span class="tt-comp">{_esc(s.name)}</span>' if s.name and s.name != "template" else ""
        title = f"{short(s, 40)}: score {number(row[j])}, share {share[j]:.2f}"
        out.append(f'<span class="{cls}" data-source="{j}" data-share="{share[j]:.6g}" title="{_esc(title)}" '
                   f'style="background:{importance_color(share[j])};color:{importance_text_color(share[j])}">'
                   f"{comp}{_esc(shown(text))}</span>")
    return "".join(out)


def _top_table(attribution: Attribution, i: int, k: int = 5) -> str:
    row, share = attribution.scores[i], shares(attribution.scores[i])
    ranked = sorted((j for j, s in enumerate(attribution.sources) if (s.text.strip() or s.name)
                     and not math.isnan(row[j])), key=lambda j: -row[j])[:k]
    labels = source_labels(attribution)
    cells = "".join(f'<tr><td style="text-align:left">{_esc(labels[j])}</td>'
                    f"<td>{number(row[j])}</td><td>{share[j]:.2f}</td></tr>" for j in ranked)
    return (f'<table class="tt-att-top"><caption>top sources</caption>'
            f"<tr><th>source</th><th>score</th><th>share</th></tr>{cells}</table>")


def _answer(attribution: Attribution, uid: str) -> str:
    """The answer text with each target a label (clicking shows its view); text between targets plain."""
    text, pos, out = attribution.answer, 0, []
    for i, t in enumerate(attribution.targets):
        start = text.find(t.text, pos) if t.text else -1
        if start >= 0:
            out.append(_esc(text[pos:start]))
            pos = start + len(t.text)
        label = f'<label class="tt-tgt" for="{uid}-{i}" data-target="{i}">{_esc(t.text or "∅")}</label>'
        out.append(label)
    out.append(_esc(text[pos:]))
    return "".join(out)


def _heatmap(attribution: Attribution, uid: str) -> str:
    head = "".join(f'<th class="tt-col" title="{_esc(s.text)}">{_esc(short(s, 18))}</th>'
                   for s in attribution.sources)
    rows = []
    for i, t in enumerate(attribution.targets):
        row, share = attribution.scores[i], shares(attribution.scores[i])
        cells = "".join(
            f'<td data-score="{row[j]!r}" style="background:{importance_color(share[j])};'
            f'color:{importance_text_color(share[j])}" title="{_esc(short(t, 30))} ← {_esc(short(s, 30))}: '
            f'{number(row[j])} (share {share[j]:.2f})">{f"{row[j]:.2g}" if not math.isnan(row[j]) else "–"}</td>'
            for j, s in enumerate(attribution.sources))
        rows.append(f'<tr data-target="{i}"><th class="tt-row"><label for="{uid}-{i}">{_esc(short(t, 24))}</label>'
                    f"</th>{cells}</tr>")
    return (f'<div class="tt-heat-wrap"><table class="tt-heat"><caption>scores: target (row) × source (column), '
            f'shaded by share</caption><tr><th></th>{head}</tr>{"".join(rows)}</table></div>')


def render_attribution_html(attribution: Attribution, target: int | str = -1) -> str:
    """Self-contained HTML: the answer (click a token), the prompt shaded for the chosen target with its
    sentence and top sources (``target`` first, default the last), and the targets × sources heatmap."""
    selected = target_index(attribution, target)
    uid = f"tta{uuid.uuid4().hex[:10]}"
    rules = "".join(f"#{uid}-{i}:checked~.tt-att-body .tt-att-view[data-target=\"{i}\"]{{display:block}}"
                    f"#{uid}-{i}:checked~.tt-att-body label[for=\"{uid}-{i}\"]{{background:#c6dbef}}"
                    for i in range(len(attribution.targets)))
    radios = "".join(f'<input type="radio" class="tt-pick" name="{uid}" id="{uid}-{i}" value="{i}"'
                     f'{" checked" if i == selected else ""}>' for i in range(len(attribution.targets)))
    views = "".join(
        f'<div class="tt-att-view" data-target="{i}"><p class="tt-att-sentence">'
        f"{_esc(explain_sentence(attribution, i))}</p>"
        f'<p class="tt-note">target {_esc(repr(t.text))}: {_logprob_note(attribution, i)}</p>'
        f'<div class="tt-att-prompt">{_source_spans(attribution, i)}</div>{_top_table(attribution, i)}</div>'
        for i, t in enumerate(attribution.targets))
    legend = (f'<p class="tt-note tt-legend">shade = share of the positive mass: '
              f'<span style="background:{importance_color(0.5)};color:#fff">raised it</span>'
              f'<span style="background:{importance_color(-0.5)};color:#fff">lowered it</span> '
              f"click an answer token or a heatmap row to see its sources</p>")
    head = _esc(f"{attribution.method} · {attribution.model_id} · {attribution.granularity}-level sources")
    return (f"<style>{CSS}{rules}</style>"
            f'<div class="tt-att" id="{uid}">{radios}<div class="tt-att-body">'
            f'<div class="tt-att-head">{head}</div><div class="tt-att-answer">{_answer(attribution, uid)}</div>'
            f"{views}{legend}{_heatmap(attribution, uid)}</div></div>")


__all__ = ["importance_color", "importance_rgb", "render_attribution_html", "render_attribution_rich"]
