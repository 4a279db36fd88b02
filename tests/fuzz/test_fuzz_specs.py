"""Fuzz the ``name:key=value`` spec grammar through the registries: estimators, similarities, claim extractors.

Property: a spec either builds, or fails with one :class:`TokentrustError` line; a built trace-only estimator
then scores a hand-built white-box trace or fails the same way, never with another exception.
"""

from __future__ import annotations

import dataclasses

from _strategies import FUZZ
from hypothesis import given, settings
from hypothesis import strategies as st

from _traces import make_trace
from tokentrust import Context
from tokentrust.errors import TokentrustError
from tokentrust.estimators.base import build_estimator
from tokentrust.registry import estimators
from tokentrust.stats.claims import make_extractor
from tokentrust.stats.similarity import make_similarity

NAMES = sorted(estimators.names()) + sorted(estimators.aliases())
FIELDS = sorted({f.name for _, cls in estimators.items() for f in dataclasses.fields(cls)})
VALUE_TEXT = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "NaN", "Infinity", "true", "null", "[1,2]", "{}", "[", '"', "'", "abc",
                     "1e309", "0", "-1", "0.5", "2**63", "9223372036854775808", "[[]]", '{"a":1}', "", " ",
                     "sentences", "lexical", "embedding", "nli:x", "mean", "max", "min"]),
    st.text(max_size=10),
)
KEY_TEXT = st.sampled_from(FIELDS) | st.text(max_size=8)


def _spec(name: str, params: list[tuple[str, str]]) -> str:
    return name + (":" + ",".join(f"{k}={v}" for k, v in params) if params else "")


NUMBER_TEXT = st.one_of(
    st.sampled_from(["0", "1", "-1", "2", "0.0", "0.5", "1.0", "1.5", "-0.5", "100", "1e-9", "1e9", "1e309", "nan",
                     "inf", "-inf", "9223372036854775808", "true", "null", '"3"', "abc", "[0.5]"]),
    st.integers(-5, 50).map(str),
    st.floats(-2, 2).map(repr),
)


@st.composite
def near_valid_specs(draw: st.DrawFn) -> str:
    """A registered estimator with up to two of its own parameters, given mostly plausible values."""
    name = draw(st.sampled_from(sorted(estimators.names())))
    fields = [f.name for f in dataclasses.fields(estimators.get(name))]
    if not fields:
        return name
    keys = draw(st.lists(st.sampled_from(fields), max_size=2, unique=True))
    return _spec(name, [(k, draw(NUMBER_TEXT | VALUE_TEXT)) for k in keys])


SPECS = (near_valid_specs() | near_valid_specs()
         | st.builds(_spec, st.sampled_from(NAMES) | st.text(max_size=12),
                     st.lists(st.tuples(KEY_TEXT, VALUE_TEXT), max_size=3))
         | st.text(max_size=30))
TRACE = make_trace([-0.1, -2.3, -0.01, -5.0], [0.3, 1.9, 0.05, 3.2], text_tokens=["Can", "berra", ".", "!"])


def _one_line(exc: TokentrustError) -> None:
    assert str(exc).strip() and "Traceback" not in str(exc)


@settings(FUZZ, max_examples=400)
@given(SPECS)
def test_estimator_specs_build_or_fail_clearly(spec):
    try:
        est = build_estimator(spec)
    except TokentrustError as exc:
        _one_line(exc)
        return
    if not est.needs_only_trace:
        return
    try:
        scores = Context(TRACE, None).get(est)
    except TokentrustError as exc:
        _one_line(exc)
        return
    assert len(scores.values) == len(scores.spans)


@settings(FUZZ, max_examples=200)
@given(st.builds(lambda kind, arg: f"{kind}:{arg}" if arg is not None else kind,
                 st.sampled_from(["embedding", "judge", "lexical", "nli", "Lexical", " judge "]) | st.text(max_size=8),
                 st.none() | VALUE_TEXT | st.builds(_spec, st.just("max_new_tokens"), st.just([]))
                 | st.builds(lambda v: f"max_new_tokens={v}", VALUE_TEXT)))
def test_similarity_specs_build_or_fail_clearly(spec):
    try:
        make_similarity(spec)
    except TokentrustError as exc:
        _one_line(exc)


@settings(FUZZ, max_examples=200)
@given(st.builds(_spec, st.sampled_from(["sentences", "llm"]) | st.text(max_size=8),
                 st.lists(st.tuples(st.sampled_from(["clauses", "language", "model", "max_new_tokens"]) | KEY_TEXT,
                                    VALUE_TEXT), max_size=3)))
def test_claim_extractor_specs_build_or_fail_clearly(spec):
    try:
        make_extractor(spec)
    except TokentrustError as exc:
        _one_line(exc)
