"""Batch- and order-invariance of every registered estimator, on real answers of the embedded model.

An estimator's scores for a trace depend on that trace (and its samples) only: not on which other
estimators run beside it or in which order, not on which other traces are scored before or after it, and
not on whether the answer was generated alone or in a batch (beyond float32 noise, 1e-4).

Two groups come from the registry. *Trace-only* estimators (``needs_only_trace`` with default parameters)
run on the traces alone. *Sampled* estimators (those needing at most log-probs, alternatives and sampling,
with ``similarity="lexical"`` where they take a similarity, so no other model loads) run through a
:class:`~tokentrust.backends.replay.ReplayBackend` recorded once from the real backend, so every run sees
the same samples.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pytest

import tokentrust as tt
from tokentrust import Capability, Estimator, Scores, Trace, annotate, build_estimator
from tokentrust.backends.replay import RecordingBackend, ReplayBackend

PROMPTS = (
    "What is the capital of Australia?",
    "Name three primary colours.",
    "Write one sentence about the moon.",
    "Who wrote Hamlet?",
)
MAX_NEW_TOKENS = 16
TOL = 1e-4
SAMPLED_CAPABILITIES = frozenset({Capability.LOGPROBS, Capability.TOP_LOGPROBS, Capability.SAMPLING})
ORDERS = ("given", "reversed", "shuffled-1", "shuffled-2", "shuffled-3")


def _trace_only() -> dict[str, Estimator]:
    """Registered estimators computable from a saved trace alone (default parameters)."""
    out = {}
    for name in tt.registry.estimators.names():
        est = build_estimator(name)
        if est.needs_only_trace:
            out[name] = est
    return out


def _sampled(exclude: Sequence[str]) -> dict[str, Estimator]:
    """Registered estimators over samples that need no model besides the generator (lexical similarity)."""
    out = {}
    for name in tt.registry.estimators.names():
        if name in exclude:
            continue
        has_similarity = any(f.name == "similarity" for f in fields(tt.registry.estimators.get(name)))
        try:
            est = build_estimator(f"{name}:similarity=lexical" if has_similarity else name)
        except tt.UserInputError:  # CCP needs a judge of meaning (embedding, nli, judge): another model
            continue
        if est.requires <= SAMPLED_CAPABILITIES and not est.uses_models:
            out[name] = est
    return out


TRACE_ONLY = _trace_only()
SAMPLED = _sampled(exclude=tuple(TRACE_ONLY))


def _ordered(items: Sequence[Any], order: str) -> list[Any]:
    if order == "given":
        return list(items)
    if order == "reversed":
        return list(items)[::-1]
    out = list(items)
    random.Random(order).shuffle(out)
    return out


def _by_id(result: tt.Annotated) -> dict[str, Scores]:
    return {s.estimator: s for s in result.scores}


def _header(s: Scores) -> tuple[Any, ...]:
    return s.estimator, s.level, s.spans, s.is_probability


def assert_same_scores(a: Scores, b: Scores, where: str) -> None:
    """Equal estimator, level, spans and bit-identical values/raw (NaN equals NaN)."""
    assert _header(a) == _header(b), where
    np.testing.assert_array_equal(
        np.asarray(a.values, float), np.asarray(b.values, float), f"{where}: values"
    )
    np.testing.assert_array_equal(np.asarray(a.raw, float), np.asarray(b.raw, float), f"{where}: raw")


@dataclass
class Group:
    """Estimators, the traces they score and the backend they may call (``None``: the trace alone)."""

    estimators: dict[str, Estimator]
    traces: list[Trace]
    backend: ReplayBackend | None

    def annotate(self, trace: Trace, estimators: Sequence[Estimator]) -> dict[str, Scores]:
        return _by_id(annotate(trace, list(estimators), backend=self.backend, with_token_forms=False))

    def alone(self, name: str) -> list[Scores]:
        est = self.estimators[name]
        return [self.annotate(t, [est])[est.id] for t in self.traces]


# --------------------------------------------------------------------------- real traces, recorded samples


@pytest.fixture(scope="module")
def recorder(backend: Any) -> RecordingBackend:
    return RecordingBackend(backend)


@pytest.fixture(scope="module")
def singles(recorder: RecordingBackend) -> list[Trace]:
    """One greedy answer per prompt, each generated on its own."""
    return [recorder.generate(p, max_new_tokens=MAX_NEW_TOKENS) for p in PROMPTS]


@pytest.fixture(scope="module")
def replay(recorder: RecordingBackend, singles: list[Trace]) -> ReplayBackend:
    """A replay of the answers and of the samples the sampled estimators drew from the real backend."""
    for trace in singles:
        annotate(trace, list(SAMPLED.values()), backend=recorder, with_token_forms=False)
    assert recorder.calls["sample"] >= len(PROMPTS)
    return recorder.replay()


@pytest.fixture(scope="module")
def groups(singles: list[Trace], replay: ReplayBackend) -> dict[str, Group]:
    return {"trace_only": Group(TRACE_ONLY, singles, None), "sampled": Group(SAMPLED, singles, replay)}


@pytest.fixture(scope="module")
def together(groups: dict[str, Group]) -> Callable[[str], dict[str, list[dict[str, Scores]]]]:
    """Per group: for each estimator order, every trace annotated with all the group's estimators at once."""
    cache: dict[str, dict[str, list[dict[str, Scores]]]] = {}

    def get(kind: str) -> dict[str, list[dict[str, Scores]]]:
        if kind not in cache:
            g = groups[kind]
            ests = list(g.estimators.values())
            cache[kind] = {
                order: [g.annotate(t, _ordered(ests, order)) for t in g.traces] for order in ORDERS
            }
        return cache[kind]

    return get


@pytest.fixture(scope="module")
def as_list(groups: dict[str, Group]) -> Callable[[str], dict[str, list[dict[str, Scores]]]]:
    """Per group: for each order of the trace list (with the first trace again at the end), every trace's
    scores, indexed like ``group.traces``; the last entry is the repeated first trace."""
    cache: dict[str, dict[str, list[dict[str, Scores]]]] = {}

    def get(kind: str) -> dict[str, list[dict[str, Scores]]]:
        if kind not in cache:
            g = groups[kind]
            ests = list(g.estimators.values())
            out: dict[str, list[dict[str, Scores]]] = {}
            for order in ("given", "reversed", "shuffled-1"):
                positions = _ordered(range(len(g.traces)), order)
                scored = {i: g.annotate(g.traces[i], ests) for i in positions}
                out[order] = [scored[i] for i in range(len(g.traces))] + [g.annotate(g.traces[0], ests)]
            cache[kind] = out
        return cache[kind]

    return get


CASES = [pytest.param("trace_only", name, id=f"trace_only-{name}") for name in TRACE_ONLY] + [
    pytest.param("sampled", name, id=f"sampled-{name}") for name in SAMPLED
]


def test_the_registry_yields_both_groups() -> None:
    assert {"maximum_sequence_probability", "perplexity", "mean_token_entropy"} <= set(TRACE_ONLY)
    assert "semantic_entropy" in SAMPLED and not set(TRACE_ONLY) & set(SAMPLED)
    assert all(not build_estimator(name).needs_only_trace for name in SAMPLED)


def test_replay_serves_the_recorded_samples(replay: ReplayBackend, singles: list[Trace]) -> None:
    """The sampled group sees real samples of the model, the same ones on every call."""
    samples = replay.sample(singles[0].prompt, n=3)
    assert all(s.config.temperature > 0 and s.model_id == singles[0].model_id for s in samples)
    assert [s.digest for s in replay.sample(singles[0].prompt, n=3)] == [s.digest for s in samples]


# --------------------------------------------------------------------------- (a) order of the estimators


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_order_of_estimators_does_not_change_scores(kind: str, name: str, groups, together) -> None:
    est_id = groups[kind].estimators[name].id
    runs = together(kind)
    for order in ORDERS[1:]:
        for i, (first, other) in enumerate(zip(runs["given"], runs[order], strict=True)):
            assert_same_scores(other[est_id], first[est_id], f"{est_id}, trace {i}, estimators {order}")


# --------------------------------------------------------------------------- (b) alone vs together


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_alone_equals_together(kind: str, name: str, groups, together) -> None:
    g = groups[kind]
    est_id = g.estimators[name].id
    for i, (alone, all_of_them) in enumerate(zip(g.alone(name), together(kind)["given"], strict=True)):
        assert_same_scores(all_of_them[est_id], alone, f"{est_id}, trace {i}, alone vs together")


# --------------------------------------------------------------------------- (c) a list of traces


@pytest.mark.parametrize(("kind", "name"), CASES)
def test_scoring_a_list_equals_scoring_each_trace_alone(kind: str, name: str, groups, as_list) -> None:
    g = groups[kind]
    est_id = g.estimators[name].id
    alone = g.alone(name)
    for order, scored in as_list(kind).items():
        for i, expected in enumerate([*alone, alone[0]]):
            assert_same_scores(scored[i][est_id], expected, f"{est_id}, trace {i}, list in {order} order")


# --------------------------------------------------------------------------- (d) generated in a batch


@pytest.fixture(scope="module")
def batched(backend: Any) -> dict[str, list[Trace]]:
    """The same answers from one ``generate_many`` batch, in the given and the reversed prompt order."""
    forward = backend.generate_many(list(PROMPTS), max_new_tokens=MAX_NEW_TOKENS)
    backward = backend.generate_many(list(PROMPTS[::-1]), max_new_tokens=MAX_NEW_TOKENS)[::-1]
    return {"given": forward, "reversed": backward}


def test_batched_generation_equals_one_at_a_time(
    singles: list[Trace], batched: dict[str, list[Trace]]
) -> None:
    assert len({len(s.token_ids) for s in singles}) > 1 or len({s.prompt_tokens for s in singles}) > 1
    for order, traces in batched.items():
        for single, many in zip(singles, traces, strict=True):
            where = f"{single.prompt!r} ({order} batch)"
            assert many.token_ids == single.token_ids, where
            assert (many.text, many.offsets, many.special, many.finish_reason) == (
                single.text,
                single.offsets,
                single.special,
                single.finish_reason,
            ), where
            for column in ("logprobs", "entropy", "max_prob", "margin", "top_logprobs"):
                np.testing.assert_allclose(
                    getattr(many, column),
                    getattr(single, column),
                    rtol=0,
                    atol=TOL,
                    err_msg=f"{where}: {column}",
                )
            np.testing.assert_allclose(many.kurtosis, single.kurtosis, rtol=TOL, err_msg=f"{where}: kurtosis")


@pytest.mark.parametrize("name", list(TRACE_ONLY))
def test_batched_traces_score_like_single_ones(
    name: str, singles: list[Trace], batched: dict[str, list[Trace]]
) -> None:
    est = TRACE_ONLY[name]
    for order, traces in batched.items():
        for i, (single, many) in enumerate(zip(singles, traces, strict=True)):
            a = annotate(many, [est], with_token_forms=False)[est.id]
            b = annotate(single, [est], with_token_forms=False)[est.id]
            assert a.spans == b.spans
            np.testing.assert_allclose(
                a.values, b.values, rtol=TOL, atol=TOL, err_msg=f"{est.id}, trace {i}, {order}"
            )
            np.testing.assert_allclose(
                a.raw, b.raw, rtol=TOL, atol=TOL, err_msg=f"{est.id}, trace {i}, {order}"
            )
