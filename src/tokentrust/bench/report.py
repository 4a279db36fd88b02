"""``report.html``: one self-contained page per run that works offline.

Plotly's JavaScript is copied once into the page from the installed ``plotly`` package (no CDN, no
network); every figure is a ``<div>`` drawn by it. The page holds: the metrics table, reliability
diagrams (probability scores only), accuracy–coverage (rejection) curves with oracle and random lines,
score histograms split by correct / incorrect, and the 20 most confident wrong answers with their
tokens coloured by probability (the same HTML as notebooks, :mod:`tokentrust.render.html`).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .layout import METRICS_FILE, REPORT_FILE, load_items
from .table import ORIENTATION_NOTE, MetricColumn, best_values, metric_columns, metric_groups

__all__ = ["render_report", "write_report"]

N_WRONG = 20
_CSS = """
body{font-family:ui-sans-serif,system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table.tt-metrics{border-collapse:collapse;font:13px ui-monospace,monospace}
table.tt-metrics td,table.tt-metrics th{padding:3px 10px;border-bottom:1px solid #e4e4e4;text-align:right}
table.tt-metrics td:first-child,table.tt-metrics th:first-child{text-align:left}
.tt-meta{color:#555;font-size:.92em} .tt-best{font-weight:bold}
.tt-wrong{margin:.8em 0;padding:.5em .8em;border:1px solid #eee;border-radius:6px}
.tt-wrong .tt-q{font-weight:600} .tt-wrong .tt-ref{color:#2a7a2a;font-size:.9em}
"""


def _fmt(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _metrics_table(metrics: dict[str, Any], columns: tuple[MetricColumn, ...]) -> str:
    """Every metric column of every score; the best value of each column (by its orientation) in bold."""
    rows = metrics["estimators"]
    best = best_values(rows.values(), columns)
    head = "".join(
        f'<th title="{"higher" if c.info.higher_is_better else "lower"} is better">{html.escape(c.label)}</th>'
        for c in columns
    )
    body = []
    for eid, r in rows.items():
        marks = ["tt-best" if c.key in best and r.get(c.key) == best[c.key] else "" for c in columns]
        cells = "".join(f'<td class="{mark}">{_fmt(r.get(c.key))}</td>' for c, mark in zip(columns, marks, strict=True))
        body.append(f"<tr><td>{html.escape(eid)}</td>{cells}<td>{r.get('n', '')}</td></tr>")
    return f'<table class="tt-metrics"><tr><th>estimator</th>{head}<th>n</th></tr>{"".join(body)}</table>'


def _metrics_legend(columns: tuple[MetricColumn, ...]) -> str:
    """How to read the table: the orientation of scores, then each group of metrics."""
    lines = "".join(
        f"<li>{html.escape(g.names(labels=True))}: {html.escape(g.describe(labels=True))}</li>"
        for g in metric_groups(columns)
    )
    intro = f"<p class='tt-meta'>{ORIENTATION_NOTE.capitalize()}. Best in bold.</p>"
    return f"{intro}<ul class='tt-meta'>{lines}</ul>"


def _figure_html(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True})


def _score_arrays(items: list[dict[str, Any]], eid: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(r["scores"][eid]["value"], r["correct"]) for r in items if eid in r["scores"]]
    values = np.array([p[0] for p in pairs], dtype=float)
    correct = np.array([p[1] for p in pairs], dtype=bool)
    keep = ~np.isnan(values)
    return values[keep], correct[keep]


def _reliability_figure(items: list[dict[str, Any]], prob_ids: list[str]) -> Any:
    import plotly.graph_objects as go

    from ..metrics import reliability_diagram

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "#888"}))
    for eid in prob_ids:
        v, y = _score_arrays(items, eid)
        if v.size == 0:
            continue
        d = reliability_diagram(y, v, n_bins=10)
        full = d.counts > 0
        fig.add_trace(go.Scatter(
            x=d.mean_confidence[full], y=d.accuracy[full], mode="lines+markers", name=eid,
            text=[f"n = {c}" for c in d.counts[full]], hovertemplate="conf %{x:.2f}<br>acc %{y:.2f}<br>%{text}",
        ))
    fig.update_layout(title="Reliability (10 equal-width bins)", xaxis_title="stated probability",
                      yaxis_title="observed accuracy", height=450, xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig


def _rejection_figure(items: list[dict[str, Any]], ids: list[str]) -> Any:
    import plotly.graph_objects as go

    from ..metrics import rejection_curve

    fig = go.Figure()
    reference = None
    for eid in ids:
        v, y = _score_arrays(items, eid)
        if v.size == 0:
            continue
        c = rejection_curve(y, v)
        reference = reference or c
        fig.add_trace(go.Scatter(x=c.coverage, y=c.accuracy, mode="lines", name=eid))
    if reference is not None:
        fig.add_trace(go.Scatter(x=reference.coverage, y=reference.oracle, mode="lines", name="oracle",
                                 line={"dash": "dash", "color": "#444"}))
        fig.add_trace(go.Scatter(x=reference.coverage, y=reference.random, mode="lines", name="random",
                                 line={"dash": "dot", "color": "#888"}))
    fig.update_layout(title="Accuracy of the answers kept, most confident first", xaxis_title="coverage (kept)",
                      yaxis_title="accuracy", height=450, yaxis_range=[0, 1.02])
    return fig


def _histogram_figure(items: list[dict[str, Any]], ids: list[str]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = 3
    rows = max(1, math.ceil(len(ids) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=ids, vertical_spacing=0.5 / rows)
    for k, eid in enumerate(ids):
        v, y = _score_arrays(items, eid)
        r, c = k // cols + 1, k % cols + 1
        for mask, name, colour in ((y, "correct", "#1a9850"), (~y, "incorrect", "#d73027")):
            fig.add_trace(
                go.Histogram(x=v[mask], name=name, marker_color=colour, opacity=0.6, nbinsx=20,
                             legendgroup=name, showlegend=k == 0),
                row=r, col=c,
            )
    fig.update_layout(barmode="overlay", height=280 * rows, title="Scores of correct and incorrect answers")
    return fig


def _confident_wrong(items: list[dict[str, Any]], eid: str | None) -> str:
    from ..render.html import render_trace_html
    from ..trace import Trace

    if eid is None:
        return "<p>No scores.</p>"
    wrong = [r for r in items if not r["correct"] and eid in r["scores"] and not math.isnan(r["scores"][eid]["value"])]
    wrong.sort(key=lambda r: r["scores"][eid]["value"], reverse=True)
    if not wrong:
        return "<p>No wrong answers.</p>"
    blocks = []
    for r in wrong[:N_WRONG]:
        prompt = r["prompt"] if isinstance(r["prompt"], str) else " / ".join(m["content"] for m in r["prompt"])
        answer = render_trace_html(Trace.model_validate(r["trace"])) if r.get("trace") else html.escape(r["answer"])
        blocks.append(
            f'<div class="tt-wrong"><div class="tt-q">{html.escape(prompt)} '
            f'<span class="tt-meta">({html.escape(r["id"])}, {eid} = {r["scores"][eid]["value"]:.3f})</span></div>'
            f'{answer}<div class="tt-ref">reference: {html.escape(" | ".join(r["references"]))}</div></div>'
        )
    return "".join(blocks)


def _claims_summary(metrics: dict[str, Any]) -> str:
    c = metrics["claims"]
    return (f"<p class='tt-meta'>{c['n_claims']} claims in {metrics['n_items']} answers "
            f"({c['answers_without_claims']} without any): {c['n_true']} true, {c['n_false']} false, "
            f"{c['n_unverifiable']} unverifiable (labelled share {_fmt(c['labelled_share'])}); "
            f"{c['n_dropped']} matched no answer token (dropped share {_fmt(c['dropped_share'])}, NaN scores). "
            "Metrics pool the labelled claims of every answer.</p>")


def _context_summary(c: dict[str, Any]) -> str:
    """Accuracy with a correct / wrong context document and situated faithfulness (METHODS.md §8)."""
    return (f"<p class='tt-meta'>Context policy <b>{html.escape(str(c['policy']))}</b>: Acc_t {_fmt(c['Acc_t'])} "
            f"(correct document, {c['n_t']} items) · Acc_f {_fmt(c['Acc_f'])} (wrong document, {c['n_f']} items) · "
            f"situated faithfulness {_fmt(c['situated_faithfulness'])} = (Acc_t + Acc_f)/2 · the answer came from "
            f"the document {c['sources']['context']} times, from the model's own knowledge "
            f"{c['sources']['internal']} times · wrong document followed {_fmt(c['followed_wrong_document'])}.</p>")


def _answers_with_claims(answers: list[dict[str, Any]], n: int = 10) -> str:
    """The first ``n`` answers with their claims marked and coloured (the notebook renderer)."""
    from ..annotated import Annotated
    from ..render.html import render_html
    from ..scores import Level, Scores
    from ..stats.claims import Claim
    from ..trace import Trace

    blocks = []
    for r in [r for r in answers if r.get("claims") and r.get("trace")][:n]:
        claims = [Claim(text=c["text"], char_span=tuple(c["char_span"]), token_indices=c["token_indices"],
                        sentence=0, scores={e: v["value"] for e, v in c["scores"].items()}) for c in r["claims"]]
        ids = list(r["claims"][0]["scores"])
        scores = [Scores(estimator=e, level=Level.CLAIM, spans=[c["token_indices"] for c in r["claims"]],
                         values=[c["scores"][e]["value"] for c in r["claims"]],
                         raw=[c["scores"][e]["raw"] for c in r["claims"]]) for e in ids]
        labels = ", ".join(f"{html.escape(c['text'][:40])}: <b>{c['label']}</b>" for c in r["claims"])
        result = Annotated(trace=Trace.model_validate(r["trace"]), scores=scores, claims=claims)
        blocks.append(f'<div class="tt-wrong"><div class="tt-q">{html.escape(str(r["id"]))}</div>'
                      f'{render_html(result)}<div class="tt-ref">labels: {labels}</div></div>')
    return "".join(blocks) or "<p>No answer has claims.</p>"


def render_report(metrics: dict[str, Any], items: list[dict[str, Any]],
                  answers: list[dict[str, Any]] | None = None) -> str:
    """The whole page as one HTML string (plotly.js inlined). At claim level ``items`` are labelled claims."""
    from plotly.offline import get_plotlyjs

    ids = list(metrics["estimators"])
    columns = metric_columns()
    probs = {k for r in items for k, s in r["scores"].items() if s.get("is_probability")}
    prob_ids = [e for e in ids if e in probs]
    ds = metrics["dataset"]
    claims = metrics.get("level") == "claim"
    primary = next((e for e in ids if e == "maximum_sequence_probability"), ids[0] if ids else None)
    status = "" if metrics.get("complete") else f" (unfinished: {metrics['n_items']} items so far)"
    failures = metrics.get("failures") or []
    failure_html = ""
    if failures:
        rows = "".join(
            f"<tr><td>{html.escape(f['estimator'])}</td><td>{html.escape(f['item'])}</td>"
            f"<td>{html.escape(f['message'])}</td></tr>" for f in failures[:200]
        )
        failure_html = (f"<h2>Failures ({len(failures)})</h2><table class='tt-metrics'>"
                        f"<tr><th>estimator</th><th>item</th><th>message</th></tr>{rows}</table>")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>tokentrust · {html.escape(str(ds.get('name')))} · {html.escape(str(metrics['model']))}</title>",
        f"<style>{_CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(str(ds.get('name')))} · {html.escape(str(metrics['model']))}{status}</h1>",
        (f"<p class='tt-meta'>dataset version {html.escape(str(ds.get('version')))} · {metrics['n_items']} items · "
         f"{'share of true claims' if claims else 'accuracy'} {_fmt(metrics['accuracy'])} "
         f"(rule: {html.escape(metrics['correctness_rule'])}) · "
         f"generation {html.escape(json.dumps(metrics['generation']))}</p>"),
        _claims_summary(metrics) if claims else "",
        _context_summary(metrics["context"]) if metrics.get("context") else "",
        f"<h2>How well each score predicts a {'true claim' if claims else 'correct answer'}</h2>",
        _metrics_legend(columns),
        _metrics_table(metrics, columns),
        "<h2>Accuracy–coverage</h2>", _figure_html(_rejection_figure(items, ids)),
    ]
    if prob_ids:
        parts += ["<h2>Reliability</h2>", _figure_html(_reliability_figure(items, prob_ids))]
    if ids:
        parts += ["<h2>Score distributions</h2>", _figure_html(_histogram_figure(items, ids))]
    if claims:
        parts += ["<h2>Answers with their claims</h2>", _answers_with_claims(answers or [])]
    parts += [
        (f"<h2>The {N_WRONG} most confident {'false claims' if claims else 'wrong answers'} "
        f"(by {html.escape(primary or '–')})</h2>"),
        "<p class='tt-meta'>Tokens coloured by probability (red 0 → amber 0.5 → green 1); hover for alternatives.</p>",
        _confident_wrong(items, primary),
        failure_html,
        f"<h2>Spec</h2><pre>{html.escape(json.dumps(metrics['spec'], indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(out: str | Path, *, metrics: dict[str, Any] | None = None, items: list[dict[str, Any]] | None = None,
                 answers: list[dict[str, Any]] | None = None) -> Path:
    """Write ``report.html`` into a run folder (from its saved files unless given) and return its path.

    At claim level ``items`` are the labelled claims (rows of :func:`~tokentrust.bench.claims.claim_rows`) and
    ``answers`` the answers they came from."""
    out = Path(out)
    if metrics is None:
        path = out / METRICS_FILE
        if not path.exists():
            raise UserInputError(f"{out} has no {METRICS_FILE}; run `tokentrust bench` (or resume it) first")
        metrics = json.loads(path.read_text(encoding="utf-8"))
    if items is None:
        from .claims import measured_rows

        answers = load_items(out)
        items = measured_rows(out, answers)
    target = out / REPORT_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(render_report(metrics, items, answers=answers), encoding="utf-8")
    tmp.replace(target)
    return target
