"""Golden traces of the embedded model (tests/data/golden, written by tests/data/make_golden.py).

Three promises: a saved golden loads with a verified digest and self-consistent columns; today's backend
reproduces it (same tokens, numbers within 1e-4 in float32 on CPU); white-box estimators recompute from
the saved columns alone, without any backend, to the numbers written out here with numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tokentrust import Level, Trace, annotate

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden"
MANIFEST: dict[str, Any] = json.loads((GOLDEN / "manifest.json").read_text(encoding="utf-8"))
ENTRIES: list[dict[str, Any]] = MANIFEST["goldens"]
NAMES = [e["name"] for e in ENTRIES]
TOL = 1e-4


def _entry(name: str) -> dict[str, Any]:
    return next(e for e in ENTRIES if e["name"] == name)


def _golden(name: str) -> Trace:
    return Trace.load(GOLDEN / _entry(name)["file"])


def test_manifest_covers_every_kind_of_golden() -> None:
    """Greedy chat, raw completion, a length cut, a forced score and several seeded samples are present."""
    traces = {name: _golden(name) for name in NAMES}
    assert {e["file"] for e in ENTRIES} == {p.name for p in GOLDEN.glob("*.json")} - {"manifest.json"}
    assert any(t.config.chat and t.config.greedy and t.finish_reason == "stop" for t in traces.values())
    assert any(not t.config.chat and t.config.greedy for t in traces.values())
    assert any(t.finish_reason == "length" and t.config.greedy for t in traces.values())
    assert any(t.finish_reason == "forced" and any(ord(c) > 127 for c in t.text) for t in traces.values())
    assert sum(not t.config.greedy and t.finish_reason != "forced" for t in traces.values()) >= 2
    assert all(p.stat().st_size < 8_000 for p in GOLDEN.glob("*.json"))


# --------------------------------------------------------------------------- (a) load, digest, columns


@pytest.mark.parametrize("name", NAMES)
def test_golden_loads_with_verified_digest(name: str) -> None:
    entry = _entry(name)
    text = (GOLDEN / entry["file"]).read_text(encoding="utf-8")
    trace = Trace.from_json(text)
    assert trace.digest == trace.compute_digest() == entry["digest"]
    assert trace.model_id == MANIFEST["model_id"]
    assert Trace.from_json(trace.to_json()) == trace
    data = json.loads(text)
    data["logprobs"][0] += 1e-3
    with pytest.raises(ValueError, match="digest"):
        Trace.from_json(json.dumps(data))


@pytest.mark.parametrize("name", NAMES)
def test_golden_columns_are_consistent(name: str) -> None:
    entry, trace = _entry(name), _golden(name)
    n = len(trace)
    assert n > 0 and trace.finish_reason == entry["finish_reason"]
    assert trace.top_k == trace.config.top_k == entry["args"]["top_k"]
    assert trace.has_distribution and trace.prompt_tokens and trace.prompt_tokens > 0
    # offsets tile the answer text in order; the records' texts add up to it
    ends = [0] + [end for _, end in trace.offsets]
    assert [start for start, _ in trace.offsets] == ends[:-1]
    assert all(start <= end for start, end in trace.offsets) and ends[-1] == len(trace.text)
    records = trace.records()
    assert "".join(r.text for r in records) == trace.text
    assert all(r.text == "" for r in records if r.special)
    assert [r.id for r in records] == trace.token_ids
    # per-step statistics agree with each other
    lp = np.asarray(trace.logprobs)
    top = np.asarray(trace.top_logprobs)
    assert top.shape == (n, trace.top_k) and np.asarray(trace.top_ids).shape == (n, trace.top_k)
    assert np.all(np.diff(top, axis=1) <= 0) and np.all(lp <= 0) and np.all(lp <= top[:, 0] + 1e-7)
    np.testing.assert_allclose(trace.max_prob, np.exp(top[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(trace.margin, np.exp(top[:, 0]) - np.exp(top[:, 1]), atol=1e-6)
    assert np.all(np.asarray(trace.entropy) >= 0)
    for i, rank in enumerate(trace.rank or []):
        assert rank >= 1
        if rank <= trace.top_k:
            assert lp[i] == pytest.approx(top[i, rank - 1], abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_golden_matches_its_settings(name: str) -> None:
    entry, trace = _entry(name), _golden(name)
    args = entry["args"]
    assert trace.prompt == args["prompt"]
    if args.get("chat", True):
        assert args["prompt"] in trace.prompt_text and trace.prompt_text != args["prompt"]
    else:
        assert trace.prompt_text == args["prompt"]
    if entry["method"] == "score":
        assert trace.text == args["answer"] and trace.special[-1]
        assert trace.special.count(True) == 1
        assert any(s == e for s, e in trace.offsets[:-1]), "a multi-byte character splits over tokens"
    elif trace.finish_reason == "stop":
        assert trace.special[-1] and len(trace) <= args["max_new_tokens"]
    else:
        assert trace.finish_reason == "length" and len(trace) == args["max_new_tokens"]
    if entry["method"] == "sample":
        assert trace.config.temperature == args["temperature"] and not trace.config.greedy
    elif entry["method"] == "generate":
        assert trace.config.greedy
        assert trace.logprobs == [row[0] for row in trace.top_logprobs] and set(trace.rank or []) == {1}


def test_seeded_samples_differ_from_each_other() -> None:
    samples = [_golden(e["name"]) for e in ENTRIES if e["method"] == "sample"]
    assert len({tuple(t.token_ids) for t in samples}) == len(samples)


# --------------------------------------------------------------------------- (b) the backend reproduces them


@pytest.fixture(scope="module")
def regenerated(backend: Any) -> Callable[[str], Trace]:
    """Replays a golden's manifest call on today's backend (one ``sample`` call per distinct setting)."""
    cache: dict[str, Any] = {}

    def get(name: str) -> Trace:
        entry = _entry(name)
        kwargs = dict(entry["args"])
        key = json.dumps([entry["method"], kwargs], sort_keys=True)
        if key not in cache:
            prompt = kwargs.pop("prompt")
            if entry["method"] == "score":
                cache[key] = backend.score(prompt, kwargs.pop("answer"), **kwargs)
            else:
                cache[key] = getattr(backend, entry["method"])(prompt, **kwargs)
        out = cache[key]
        return out[entry["index"]] if entry["index"] is not None else out

    return get


def _separated(top: list[float], tol: float) -> list[int]:
    """Slots of a top-k row whose log-prob is more than ``tol`` from its neighbours (their id cannot swap)."""
    return [
        j for j in range(len(top) - 1) if (j == 0 or top[j - 1] - top[j] > tol) and top[j] - top[j + 1] > tol
    ]


@pytest.mark.parametrize("name", NAMES)
def test_backend_reproduces_golden(name: str, regenerated: Callable[[str], Trace]) -> None:
    gold, now = _golden(name), regenerated(name)
    assert now.token_ids == gold.token_ids
    assert (now.text, now.tokens, now.offsets, now.special) == (
        gold.text,
        gold.tokens,
        gold.offsets,
        gold.special,
    )
    assert (now.finish_reason, now.config, now.prompt_text, now.prompt_tokens) == (
        gold.finish_reason,
        gold.config,
        gold.prompt_text,
        gold.prompt_tokens,
    )
    assert now.rank == gold.rank
    for column in ("logprobs", "entropy", "max_prob", "margin", "top_logprobs"):
        np.testing.assert_allclose(
            getattr(now, column), getattr(gold, column), rtol=0, atol=TOL, err_msg=column
        )
    np.testing.assert_allclose(now.kurtosis, gold.kurtosis, rtol=TOL, err_msg="kurtosis")
    for i, row in enumerate(gold.top_logprobs):
        slots = _separated(row, TOL)
        assert [now.top_ids[i][j] for j in slots] == [gold.top_ids[i][j] for j in slots], (
            f"top_ids of token {i}"
        )


# ------------------------------------------------------------------ (c) estimators from the columns alone


def _quantile(x: np.ndarray, alpha: float) -> float:
    """Linear-interpolation quantile of ``x`` written out (position ``alpha·(n−1)`` in the sorted values)."""
    s = sorted(float(v) for v in x)
    pos = alpha * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


Columns = dict[str, np.ndarray]

#: id → (values, raw) from the trace's columns, as METHODS.md defines them (every token counts).
EXPECTED: dict[str, Callable[[Columns], tuple[Any, Any]]] = {
    "maximum_sequence_probability": lambda c: (np.exp(c["lp"].sum()), -c["lp"].sum()),
    "perplexity": lambda c: (c["lp"].sum() / c["n"], -c["lp"].sum() / c["n"]),
    "geometric_mean_token_probability": lambda c: (np.exp(c["lp"].sum() / c["n"]),) * 2,
    "arithmetic_mean_token_probability": lambda c: (np.exp(c["lp"]).sum() / c["n"],) * 2,
    "minimum_token_probability": lambda c: (np.exp(c["lp"].min()),) * 2,
    "logprob_quantile": lambda c: (_quantile(c["lp"], 0.1),) * 2,
    "mean_token_entropy": lambda c: (-c["h"].sum() / c["n"], c["h"].sum() / c["n"]),
    "mean_margin": lambda c: (c["margin"].sum() / c["n"],) * 2,
    "mean_kurtosis": lambda c: (c["kurt"].sum() / c["n"],) * 2,
    "token_probability": lambda c: (np.exp(c["lp"]), -c["lp"]),
    "token_entropy": lambda c: (-c["h"], c["h"]),
    "token_margin": lambda c: (c["margin"], c["margin"]),
    "token_kurtosis": lambda c: (c["kurt"], c["kurt"]),
}


def _columns(trace: Trace) -> Columns:
    return {
        "lp": np.array(trace.logprobs),
        "h": np.array(trace.entropy),
        "margin": np.array(trace.margin),
        "kurt": np.array(trace.kurtosis),
        "n": np.float64(len(trace)),
    }


@pytest.mark.parametrize("estimator", sorted(EXPECTED))
def test_white_box_estimators_recompute_from_golden_columns(estimator: str) -> None:
    for name in NAMES:
        trace = _golden(name)
        scores = annotate(trace, [estimator], with_token_forms=False)[estimator]
        values, raw = EXPECTED[estimator](_columns(trace))
        n = len(trace)
        spans = [[i] for i in range(n)] if scores.level is Level.TOKEN else [list(range(n))]
        assert scores.spans == spans, name
        np.testing.assert_allclose(scores.values, np.atleast_1d(values), rtol=1e-9, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(scores.raw, np.atleast_1d(raw), rtol=1e-9, atol=1e-9, err_msg=name)


def test_default_annotation_of_golden_needs_no_backend() -> None:
    """``annotate(trace)`` with the default estimators runs on a loaded golden alone and is finite."""
    result = annotate(_golden("greedy_chat"))
    assert result.sequence_scores and all(np.isfinite(s.values).all() for s in result.scores)
    assert result["maximum_sequence_probability"].value == pytest.approx(
        math.exp(math.fsum(_golden("greedy_chat").logprobs)), rel=1e-9
    )
