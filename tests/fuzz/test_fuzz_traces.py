"""Fuzz trace JSON (``Trace.from_json`` / ``Trace.load``): a valid trace with fields mutated, arbitrary JSON, bytes.

Property: a document either loads as a Trace that round-trips through its own JSON, or is refused with one
:class:`TokentrustError`; a trace that loads can be scored by a trace-only estimator without another error.
"""

from __future__ import annotations

import json

from _strategies import FUZZ, JSON, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from _traces import make_trace
from tokentrust import Context, Trace
from tokentrust.errors import TokentrustError
from tokentrust.estimators.base import build_estimator

BASE = json.loads(make_trace([-0.2, -1.5, -0.01], [0.4, 1.2, 0.05], text_tokens=["Can", "berra", "."]).to_json())
CHAT = {**BASE, "prompt": [{"role": "user", "content": "q?"}]}
ESTIMATORS = [build_estimator(s) for s in ("msp", "mean_token_entropy", "perplexity", "token_probability")]


def _load(text: str | bytes) -> Trace | None:
    try:
        trace = Trace.from_json(text)
    except TokentrustError as exc:
        assert str(exc).strip()
        return None
    assert Trace.from_json(trace.to_json()).to_json() == trace.to_json()  # NaN fields: compare as JSON
    return trace


@settings(FUZZ, max_examples=300)
@given(st.one_of(mutated(BASE, keys=list(BASE)), mutated(CHAT, keys=list(BASE)), JSON))
def test_trace_json_loads_or_is_refused(doc):
    trace = _load(json.dumps(doc, allow_nan=True))
    if trace is None:
        return
    for est in ESTIMATORS:
        try:
            Context(trace, None).get(est)
        except TokentrustError:
            pass


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=80) | st.text(max_size=40).map(str.encode))
def test_trace_files_of_any_bytes_are_refused_clearly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("trace") / "trace.json"
    path.write_bytes(data)
    try:
        Trace.load(path)
    except TokentrustError as exc:
        assert str(exc).strip()
