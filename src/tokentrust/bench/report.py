"""``report.html``: one self-contained page per run that works offline.

Plotly's JavaScript is copied once into the page from the installed ``plotly`` package (no CDN, no
network), gzip-compressed and base64-encoded (4.8 MB → 2.0 MB); a small loader unpacks it with the
browser's ``DecompressionStream`` and draws every figure from its JSON. The answer renderer's style
and script are kept once however many answers are shown. The page holds: warnings (few items, one
class only, answers cut at the token limit), the metrics table with bootstrap 95 % intervals for
ROC-AUC and PRR, reliability diagrams on the bins ECE uses with the count of each bin (probability
scores only), accuracy–coverage (rejection) curves with oracle and random lines, score histograms
split by correct / incorrect, and the 20 most confident wrong answers with their tokens coloured by
probability (the same HTML as notebooks, :mod:`tokentrust.render.html`), each marked when it was
truncated.

:func:`metric_intervals` computes the intervals written to ``metrics.json`` (``intervals``): a
percentile bootstrap (``scipy.stats.bootstrap``, 1000 paired resamples of the items, seed 0). PRR's
random baseline is its expectation, the mean quality, instead of the 1000 shuffles of
:func:`~tokentrust.metrics.prr` (which estimate the same number), so each resample costs one sort.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserInputError
from .layout import METRICS_FILE, REPORT_FILE, load_items
from .table import ORIENTATION_NOTE, MetricColumn, best_values, metric_columns, metric_groups

__all__ = ["SMALL_N", "metric_intervals", "render_report", "run_warnings", "write_report"]

N_WRONG = 20
#: Fewer items than this and the page warns that the metrics are rough.
SMALL_N = 30
#: The metrics given a bootstrap interval, and how it is drawn.
INTERVAL_KEYS = ("roc_auc", "prr")
BOOTSTRAP = {"confidence_level": 0.95, "n_resamples": 1000, "seed": 0, "method": "percentile"}
_CSS = """
body{font-family:ui-sans-serif,system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table.tt-metrics{border-collapse:collapse;font:13px ui-monospace,monospace}
table.tt-metrics td,table.tt-metrics th{padding:3px 10px;border-bottom:1px solid #e4e4e4;text-align:right}
table.tt-metrics td:first-child,table.tt-metrics th:first-child{text-align:left}
.tt-meta{color:#555;font-size:.92em} .tt-best{font-weight:bold}
.tt-wrong{margin:.8em 0;padding:.5em .8em;border:1px solid #eee;border-radius:6px}
.tt-wrong .tt-q{font-weight:600} .tt-wrong .tt-ref{color:#2a7a2a;font-size:.9em}
.tt-ci{display:block;color:#666;font-size:.85em;font-weight:normal}
.tt-warn{background:#fff6e0;border:1px solid #e8c468;border-radius:6px;padding:.4em 1em;margin:1em 0}
.tt-trunc{background:#eee;border-radius:3px;padding:0 .4em;font-size:.85em;color:#444;font-weight:normal}
"""


def _fmt(value: Any) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _interval(ci: Any) -> str:
    if not ci or ci[0] is None:
        return ""
    return f'<span class="tt-ci" title="bootstrap 95 % interval">[{ci[0]:.2f}, {ci[1]:.2f}]</span>'


def _metrics_table(metrics: dict[str, Any], columns: tuple[MetricColumn, ...]) -> str:
    """Every metric column of every score; the best value of each column (by its orientation) in bold.

    ROC-AUC and PRR carry their bootstrap 95 % interval below the value when ``metrics`` has one.
    """
    rows = metrics["estimators"]
    intervals = metrics.get("intervals", {}).get("estimators", {})
    best = best_values(rows.values(), columns)
    head = "".join(
        f'<th title="{"higher" if c.info.higher_is_better else "lower"} is better">{html.escape(c.label)}</th>'
        for c in columns
    )
    body = []
    for eid, r in rows.items():
        marks = ["tt-best" if c.key in best and r.get(c.key) == best[c.key] else "" for c in columns]
        ci = intervals.get(eid, {})
        cells = "".join(f'<td class="{mark}">{_fmt(r.get(c.key))}{_interval(ci.get(c.key))}</td>'
                        for c, mark in zip(columns, marks, strict=True))
        body.append(f"<tr><td>{html.escape(eid)}</td>{cells}<td>{r.get('n', '')}</td></tr>")
    return f'<table class="tt-metrics"><tr><th>estimator</th>{head}<th>n</th></tr>{"".join(body)}</table>'


def _metrics_legend(columns: tuple[MetricColumn, ...]) -> str:
    """How to read the table: the orientation of scores, then each group of metrics."""
    lines = "".join(
        f"<li>{html.escape(g.names(labels=True))}: {html.escape(g.describe(labels=True))}</li>"
        for g in metric_groups(columns)
    )
    intro = (f"<p class='tt-meta'>{ORIENTATION_NOTE.capitalize()}. Best in bold. Below ROC-AUC and PRR: a "
             f"bootstrap 95 % interval ({BOOTSTRAP['n_resamples']} resamples of the items). A dash (–) marks a "
             "metric that is undefined for this score (see the warnings above, or not a probability).</p>")
    return f"{intro}<ul class='tt-meta'>{lines}</ul>"


def _figure_html(fig: Any) -> str:
    """A ``<div>`` holding the figure's JSON; the page's loader draws it once plotly.js is unpacked."""
    spec = fig.to_json().replace("</", "<\\/")
    return f'<div class="tt-fig"><script type="application/json">{spec}</script></div>'


@functools.cache
def _plotly_loader() -> str:
    """plotly.js gzipped and base64-encoded, and the script that unpacks it and draws every ``.tt-fig``."""
    from plotly.offline import get_plotlyjs

    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode("ascii")
    return (
        f'<script id="tt-plotly" type="application/gzip;base64">{packed}</script>'
        "<script>(async function(){"
        "const b=atob(document.getElementById('tt-plotly').textContent.trim());"
        "const a=new Uint8Array(b.length);for(let i=0;i<b.length;i++)a[i]=b.charCodeAt(i);"
        "const js=await new Response(new Blob([a]).stream().pipeThrough(new DecompressionStream('gzip'))).text();"
        "const s=document.createElement('script');s.textContent=js;document.head.appendChild(s);"
        "for(const d of document.querySelectorAll('div.tt-fig')){"
        "const f=JSON.parse(d.querySelector('script').textContent);"
        "Plotly.newPlot(d,f.data,f.layout,{displaylogo:false,responsive:true});}"
        "})();</script>"
    )


_ASSET_RE = re.compile(r"<(style|script)>.*?</\1>", re.DOTALL)


def _once(fragment: str, seen: set[str]) -> str:
    """``fragment`` without the ``<style>``/``<script>`` blocks already in ``seen`` (which it extends)."""

    def keep(match: re.Match[str]) -> str:
        block = match.group(0)
        if block in seen:
            return ""
        seen.add(block)
        return block

    return _ASSET_RE.sub(keep, fragment)


def _rounded(values: Any, digits: int = 4) -> list[float]:
    """Plot coordinates rounded for the page (4 decimals are far below a pixel); keeps the JSON small."""
    return np.round(np.asarray(values, dtype=float), digits).tolist()


def _score_arrays(items: list[dict[str, Any]], eid: str) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(r["scores"][eid]["value"], r["correct"]) for r in items if eid in r["scores"]]
    values = np.array([p[0] for p in pairs], dtype=float)
    correct = np.array([p[1] for p in pairs], dtype=bool)
    keep = ~np.isnan(values)
    return values[keep], correct[keep]


def _reliability_figure(items: list[dict[str, Any]], prob_ids: list[str]) -> Any:
    """Accuracy per bin against the stated probability, on ECE's own bins, and below it each bin's count."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    from ..metrics import reliability_diagram
    from ..metrics.calibration import ECE_BINS

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.72, 0.28], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot", "color": "#888"}),
                  row=1, col=1)
    palette = qualitative.Plotly
    for k, eid in enumerate(prob_ids):
        v, y = _score_arrays(items, eid)
        if v.size == 0:
            continue
        d = reliability_diagram(y, v, n_bins=ECE_BINS)
        full = d.counts > 0
        colour = palette[k % len(palette)]
        fig.add_trace(go.Scatter(
            x=_rounded(d.mean_confidence[full]), y=_rounded(d.accuracy[full]), mode="lines+markers", name=eid,
            legendgroup=eid, line={"color": colour}, text=[f"n = {c}" for c in d.counts[full]],
            hovertemplate="conf %{x:.2f}<br>acc %{y:.2f}<br>%{text}",
        ), row=1, col=1)
        centres = (d.bin_edges[:-1] + d.bin_edges[1:]) / 2
        fig.add_trace(go.Bar(x=_rounded(centres), y=d.counts.tolist(), name=eid, legendgroup=eid, showlegend=False,
                             marker_color=colour, width=1 / ECE_BINS / max(1, len(prob_ids)),
                             hovertemplate="bin %{x:.2f}<br>%{y} items"), row=2, col=1)
    fig.update_layout(title=f"Reliability ({ECE_BINS} equal-width bins, the bins of ECE)", height=560,
                      barmode="group")
    fig.update_xaxes(range=[0, 1], row=1, col=1)
    fig.update_xaxes(title_text="stated probability (bin)", range=[0, 1], row=2, col=1)
    fig.update_yaxes(title_text="observed accuracy", range=[0, 1], row=1, col=1)
    fig.update_yaxes(title_text="items in bin", row=2, col=1)
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
        fig.add_trace(go.Scatter(x=_rounded(c.coverage), y=_rounded(c.accuracy), mode="lines", name=eid))
    if reference is not None:
        fig.add_trace(go.Scatter(x=_rounded(reference.coverage), y=_rounded(reference.oracle), mode="lines",
                                 name="oracle", line={"dash": "dash", "color": "#444"}))
        fig.add_trace(go.Scatter(x=_rounded(reference.coverage), y=_rounded(reference.random), mode="lines",
                                 name="random", line={"dash": "dot", "color": "#888"}))
    fig.update_layout(title="Accuracy of the answers kept, most confident first", xaxis_title="coverage (kept)",
                      yaxis_title="accuracy", height=450, yaxis_range=[0, 1.02])
    return fig


def _histogram_figure(items: list[dict[str, Any]], ids: list[str], what: str = "answers") -> Any:
    """One histogram per score, correct and incorrect overlaid; every panel titled on both axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = 3
    rows = max(1, math.ceil(len(ids) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=ids, vertical_spacing=0.6 / rows)
    for k, eid in enumerate(ids):
        v, y = _score_arrays(items, eid)
        r, c = k // cols + 1, k % cols + 1
        for mask, name, colour in ((y, "correct", "#1a9850"), (~y, "incorrect", "#d73027")):
            fig.add_trace(
                go.Histogram(x=_rounded(v[mask]), name=name, marker_color=colour, opacity=0.6, nbinsx=20,
                             legendgroup=name, showlegend=k == 0),
                row=r, col=c,
            )
        fig.update_xaxes(title_text="score (higher = more trusted)", row=r, col=c)
        fig.update_yaxes(title_text=what, row=r, col=c)
    fig.update_layout(barmode="overlay", height=300 * rows, title=f"Scores of correct and incorrect {what}")
    return fig


def _truncated(r: dict[str, Any]) -> str:
    if r.get("finish_reason") != "length":
        return ""
    return ('<span class="tt-trunc" title="generation stopped at max_new_tokens; the answer was judged as cut">'
            "truncated at the token limit</span>")


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
            f'<span class="tt-meta">({html.escape(r["id"])}, {eid} = {r["scores"][eid]["value"]:.3f})</span> '
            f'{_truncated(r)}</div>'
            f'{answer}<div class="tt-ref">reference: {html.escape(" | ".join(r["references"]))}</div>'
            "</div>"
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


# --------------------------------------------------------------------------- intervals and warnings


def _auc_rows(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row (Mann–Whitney from average ranks, ties ½); NaN for a one-class row."""
    from scipy.stats import rankdata

    ranks = rankdata(v, axis=-1)
    n1 = y.sum(axis=-1)
    n0 = y.shape[-1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=-1) - n1 * (n1 + 1) / 2) / (n1 * n0)
    return np.where(n1 * n0 > 0, auc, np.nan)


def _prr_rows(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """PRR of each row (full rejection range, tied scores at their block's mean, random = mean quality)."""
    rows, n = q.shape
    lo, hi = q.min(axis=-1, keepdims=True), q.max(axis=-1, keepdims=True)
    span = hi - lo
    qn = (q - lo) / np.where(span > 0, span, 1.0)
    order = np.argsort(-v, axis=-1, kind="stable")
    vs, qs = np.take_along_axis(v, order, axis=-1), np.take_along_axis(qn, order, axis=-1)
    starts = np.concatenate([np.ones((rows, 1), dtype=bool), vs[:, 1:] != vs[:, :-1]], axis=-1)
    block = (np.cumsum(starts, axis=-1) - 1) + np.arange(rows)[:, None] * n
    sums = np.bincount(block.ravel(), weights=qs.ravel(), minlength=rows * n)
    counts = np.bincount(block.ravel(), minlength=rows * n)
    qs = (sums / np.maximum(counts, 1))[block]
    k = np.arange(1, n + 1)
    pra = (np.cumsum(qs, axis=-1) / k).mean(axis=-1)
    oracle = (np.cumsum(-np.sort(-qn, axis=-1), axis=-1) / k).mean(axis=-1)
    random = qn.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pra - random) / (oracle - random)
    return np.where((span[:, 0] > 0) & ~np.isclose(oracle, random, rtol=1e-12, atol=1e-12), out, np.nan)


def _bootstrap(statistic: Any, *samples: np.ndarray) -> list[float] | None:
    """Percentile bootstrap interval of a row-wise statistic over paired ``samples``; None if undefined."""
    from scipy.stats import bootstrap

    n = samples[0].size
    if n < 2:
        return None
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore")
        res = bootstrap(
            samples, lambda *xs, axis=-1: statistic(*(np.atleast_2d(x) for x in xs)), paired=True, vectorized=True,
            n_resamples=BOOTSTRAP["n_resamples"], confidence_level=BOOTSTRAP["confidence_level"],
            method=BOOTSTRAP["method"], batch=max(1, 2_000_000 // n), rng=np.random.default_rng(BOOTSTRAP["seed"]),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return None if math.isnan(lo) or math.isnan(hi) else [lo, hi]


def metric_intervals(correct: np.ndarray, quality: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Bootstrap 95 % intervals of ROC-AUC and PRR for each score (items with a NaN score left out).

    Returns ``{"method": …, "estimators": {id: {"roc_auc": [lo, hi] | None, "prr": [lo, hi] | None}}}``; an
    interval is ``None`` where the metric is undefined on the items or on any resample (e.g. one class).
    """
    correct = np.asarray(correct, dtype=bool)
    quality = np.asarray(quality, dtype=float)
    out: dict[str, dict[str, list[float] | None]] = {}
    for eid, values in scores.items():
        values = np.asarray(values, dtype=float)
        keep = ~np.isnan(values)
        y, q, v = correct[keep].astype(float), quality[keep], values[keep]
        out[eid] = {"roc_auc": _bootstrap(_auc_rows, y, v), "prr": _bootstrap(_prr_rows, q, v)}
    return {"method": f"{BOOTSTRAP['method']} bootstrap", **{k: BOOTSTRAP[k] for k in
                                                             ("confidence_level", "n_resamples", "seed")},
            "estimators": out}


def run_warnings(metrics: dict[str, Any], items: list[dict[str, Any]],
                 answers: list[dict[str, Any]] | None = None) -> list[str]:
    """What a reader must know before trusting the numbers: few items, one class only, truncated answers.

    ``items`` are the rows measured (labelled claims at claim level), ``answers`` the answers (default ``items``).
    """
    claims = metrics.get("level") == "claim"
    what = "labelled claims" if claims else "items"
    n = len(items)
    out = []
    if n < SMALL_N:
        out.append(f"Only {n} {what}: with fewer than {SMALL_N} every metric is rough; read the 95 % intervals "
                   "(wide ones mean the ranking of scores can flip on another sample).")
    n_correct = sum(bool(r["correct"]) for r in items)
    if n and n_correct in (0, n):
        label = ("true" if claims else "correct") if n_correct else ("false" if claims else "wrong")
        out.append(f"Every one of the {n} {what} is {label} (accuracy {n_correct / n:.0%}), so no score can separate "
                   "correct from wrong: ROC-AUC and PR-AUC are undefined (–), and the accuracy–coverage numbers "
                   "only restate the accuracy. Use a dataset or model where both outcomes occur.")
    qualities = {round(float(r["quality"]), 12) for r in items}
    if n and len(qualities) == 1:
        out.append("Every item has the same quality, so PRR and Spearman are undefined (–).")
    cut = sum(r.get("finish_reason") == "length" for r in (answers if answers is not None else items))
    if cut:
        limit = (metrics.get("generation") or {}).get("max_new_tokens")
        at = f" (max_new_tokens = {limit})" if limit else ""
        out.append(f"{cut} answers stopped at the token limit{at} and were judged as cut; they are marked "
                   "'truncated' below. Raise max_new_tokens if the reference may come later.")
    return out


def render_report(metrics: dict[str, Any], items: list[dict[str, Any]],
                  answers: list[dict[str, Any]] | None = None) -> str:
    """The whole page as one HTML string (plotly.js inlined). At claim level ``items`` are labelled claims."""
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
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(str(ds.get('name')))} · {html.escape(str(metrics['model']))}{status}</h1>",
        (f"<p class='tt-meta'>dataset version {html.escape(str(ds.get('version')))} · {metrics['n_items']} items · "
         f"{'share of true claims' if claims else 'accuracy'} {_fmt(metrics['accuracy'])} "
         f"(rule: {html.escape(metrics['correctness_rule'])}) · "
         f"generation {html.escape(json.dumps(metrics['generation']))}</p>"),
        "".join(f"<p class='tt-warn'>{html.escape(w)}</p>"
                for w in run_warnings(metrics, items, answers)),
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
        parts += ["<h2>Score distributions</h2>",
                  _figure_html(_histogram_figure(items, ids, "claims" if claims else "answers"))]
    if claims:
        parts += ["<h2>Answers with their claims</h2>", _answers_with_claims(answers or [])]
    parts += [
        (f"<h2>The {N_WRONG} most confident {'false claims' if claims else 'wrong answers'} "
        f"(by {html.escape(primary or '–')})</h2>"),
        "<p class='tt-meta'>Tokens coloured by probability (red 0 → amber 0.5 → green 1); hover for alternatives.</p>",
        _confident_wrong(items, primary),
        failure_html,
        f"<h2>Spec</h2><pre>{html.escape(json.dumps(metrics['spec'], indent=2))}</pre>",
        _plotly_loader(),
        "</body></html>",
    ]
    return _once("\n".join(parts), set())  # the answer renderer's style and script once per page


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
