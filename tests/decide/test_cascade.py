"""Cascades (METHODS §2.8, §11.5): the curve maths on hand-built numbers, the rules on hand-built traces, and the
real default model as the small model with a replay of its own longer answers (and a real llama.cpp server) as
the large one. The real runs share one generation cache, so the small model answers each question once."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from _cli import run_cli as cli
from _traces import make_trace
from tokentrust.decide.cascade import (
    Cascade,
    CascadePolicy,
    DeferralRule,
    PostHocQuantile,
    defer,
    deferral_curve,
    evaluate,
    oracle_curve,
    random_curve,
    rule_scores,
    run_cascade,
    threshold_for,
)
from tokentrust.errors import ServerError, UserInputError
from tokentrust.trace import Trace

LIMIT, SMALL_TOKENS, LARGE_TOKENS = 4, 8, 12  # 8 tokens cut "…is Abu Dhabi" short; 12 do not

# --------------------------------------------------------------------------- curve maths, no model

SQ, LQ = [1, 0, 1, 0], [1, 1, 0, 1]  # gains (large − small): 0, +1, −1, +1


def test_endpoints_are_the_small_and_the_large_models_quality():
    rng = np.random.default_rng(0)
    sq, lq, s = rng.random(50), rng.random(50), rng.normal(size=50)
    for curve in (deferral_curve(s, sq, lq), random_curve(sq, lq), oracle_curve(sq, lq)):
        assert curve.quality[0] == sq.mean() and curve.quality[-1] == lq.mean()
        assert curve.deferred[0] == 0 and curve.deferred[-1] == 1 and len(curve.deferred) == 51


def test_hand_built_areas_and_order():
    report = evaluate([0.9, 0.1, 0.2, 0.5], SQ, LQ, c_small=1, c_large=10)  # defers items 1, 2, 3, 0 in turn
    np.testing.assert_allclose(report.curve.quality, [0.5, 0.75, 0.5, 0.75, 0.75])
    np.testing.assert_allclose(report.oracle.quality, [0.5, 0.75, 1.0, 1.0, 0.75])  # +1, +1, 0, −1
    np.testing.assert_allclose(report.random.quality, [0.5, 0.5625, 0.625, 0.6875, 0.75])
    assert report.curve.area == pytest.approx(0.65625)
    assert report.random.area == pytest.approx(0.625)  # (small + large) / 2
    assert report.oracle.area == pytest.approx(0.84375)
    assert report.oracle.area >= report.curve.area >= report.random.area
    assert report.relative_area == pytest.approx((0.65625 - 0.625) / (0.84375 - 0.625))
    np.testing.assert_allclose(report.curve.cost, [4, 14, 24, 34, 44])  # 1·N + 10·#deferred
    row = {r["deferred"]: r for r in report.table()}[0.25]
    assert row == pytest.approx({"deferred": 0.25, "cost": 14.0, "quality": 0.75, "random": 0.5625, "oracle": 0.75})
    best = evaluate(-(np.array(LQ) - np.array(SQ)), SQ, LQ)  # a rule that knows the gains is the oracle
    assert best.curve.area == pytest.approx(best.oracle.area) and best.relative_area == pytest.approx(1.0)


def test_ties_and_nan_scores():
    # all tied: no threshold splits them, so the curve is the random line; NaN defers first
    flat = deferral_curve([3.0] * 4, SQ, LQ)
    np.testing.assert_allclose(flat.quality, random_curve(SQ, LQ).quality)
    np.testing.assert_allclose(deferral_curve([1.0, math.nan, 2.0, 3.0], SQ, LQ).quality[1], 0.75)


def test_bad_curve_input():
    with pytest.raises(UserInputError, match="one small and one large"):
        deferral_curve([1, 2], [1, 0], [1])
    with pytest.raises(UserInputError, match="one score per item"):
        deferral_curve([1], [1, 0], [1, 1])
    with pytest.raises(UserInputError, match="c_large"):
        evaluate([1, 2], [1, 0], [1, 1], c_large=-1)


# --------------------------------------------------------------------------- rules on hand-built traces

LP = [-0.1, -2.0, -0.5, -0.05, -3.0]


def test_each_rule_equals_numpy():
    t = make_trace(LP)
    lp = np.array(LP)
    assert rule_scores([t], "chow_sum")[0] == pytest.approx(lp.sum())
    assert rule_scores([t], "chow_average")[0] == pytest.approx(lp.mean())
    for a in (0.0, 0.1, 0.5, 1.0):
        assert rule_scores([t], f"chow_quantile:alpha={a}")[0] == pytest.approx(np.quantile(lp, a))
    assert math.isnan(rule_scores([make_trace([])], "chow_sum")[0])  # empty answer: undefined, so it defers


def test_post_hoc_quantile_learns_and_round_trips():
    rng = np.random.default_rng(1)
    good = [make_trace(list(rng.uniform(-0.3, 0, 6)), [0.2] * 6) for _ in range(20)]
    bad = [make_trace(list(rng.uniform(-3, -0.5, 6)), [2.0] * 6) for _ in range(20)]
    model = PostHocQuantile.fit(good + bad, [True] * 20 + [False] * 20)
    p = rule_scores(good + bad, "post_hoc_quantile", model)
    assert p[:20].min() > p[20:].max() and ((p >= 0) & (p <= 1)).all()
    features = model.learned["features"]  # a LearnedConfidence on the Chow values and the quantile features
    assert {"score:chow_sum", "score:chow_average", "logprob_q0", "entropy_q0.5", "n_tokens"} <= set(features)
    again = PostHocQuantile.model_validate_json(model.model_dump_json())
    np.testing.assert_allclose(again.predict(good + bad), p)
    one_class = PostHocQuantile.fit(good, [True] * 20)  # one class: its smoothed base rate everywhere
    np.testing.assert_allclose(one_class.predict(bad), 21 / 22)
    with pytest.raises(UserInputError, match="fitted"):
        rule_scores(good, "post_hoc_quantile")


def test_threshold_policy_and_defer(tmp_path):
    scores = [0.5, -1.0, 2.0, 0.0]
    assert threshold_for(scores, 0.5) == 0.5 and threshold_for(scores, 0.0) == -1.0
    assert threshold_for(scores, 1.0) == math.inf
    t = make_trace(LP)  # chow_sum = −5.65
    policy = CascadePolicy(rule="chow_sum", threshold=-5.0, large="replay:big.jsonl")
    loaded = CascadePolicy.load(policy.save(tmp_path / "policy.json"))
    assert loaded == policy and defer(t, loaded) is True
    assert defer(t, loaded.model_copy(update={"threshold": -6.0})) is False
    assert defer(make_trace([]), loaded) is True
    with pytest.raises(UserInputError, match="fitted model"):
        CascadePolicy(rule="post_hoc_quantile", threshold=0.5, large="x")


def test_cascade_class_defers_low_scores():
    from tokentrust.backends.replay import ReplayBackend

    sure, unsure = make_trace([-0.01, -0.02], prompt="a?"), make_trace([-2.0, -3.0], prompt="b?")
    large = ReplayBackend.from_texts("b?", "big answer")
    cascade = Cascade(ReplayBackend([sure, unsure]), large, "chow_average", threshold=-1.0)
    a, b = cascade.generate_many(["a?", "b?"])
    assert (a.deferred, b.deferred) == (False, True)
    assert a.trace is sure and b.trace.text == "big answer" and b.small is unsure and large.calls["generate_many"] == 1


@pytest.mark.parametrize("spec", ["chow_sun", "chow_quantile:alpha=1.5", "chow_quantile:alpha=-0.1",
                                  "chow_sum:alpha=0.1"])
def test_bad_rules_are_refused(spec):
    with pytest.raises(UserInputError):
        DeferralRule.parse(spec)


# --------------------------------------------------------------------------- real models



@pytest.fixture
def fast_load(monkeypatch, backend):
    """``default`` is the session's model (no second load); an openai: server is tried once, not with backoff."""
    from tokentrust import loading

    real = loading.load

    def load(spec=None, **kw):
        if spec in (None, "default"):
            return backend
        if spec.startswith("openai:"):
            kw.setdefault("max_retries", 0)
        return real(spec, **kw)

    monkeypatch.setattr(loading, "load", load)


@pytest.fixture(scope="module")
def real(tmp_path_factory, backend):
    """The small model's accuracy on the first items and a replay of its longer answers as the large model."""
    from tokentrust.backends.replay import RecordingBackend
    from tokentrust.bench.datasets import load_dataset
    from tokentrust.bench.quality import judge
    from tokentrust.config import GenerationConfig

    tmp = tmp_path_factory.mktemp("cascade")
    ds = load_dataset("capitals", limit=LIMIT)
    rec = RecordingBackend(backend)
    rec.generate_many([it.prompt for it in ds.items], GenerationConfig(max_new_tokens=LARGE_TOKENS))
    large = tmp / "large.jsonl"
    large.write_text("".join(t.to_json() + "\n" for t in rec.traces))
    accuracy = np.mean([judge(ds, t.text, it.references).correct for t, it in zip(rec.traces, ds.items, strict=True)])
    cache = str(tmp / "gen.sqlite")  # filled with the small model's answers by this first run
    run = run_cascade("capitals", f"replay:{large}", small=backend, limit=LIMIT, out=tmp / "api", cache=cache,
                      max_new_tokens=SMALL_TOKENS)
    return {"tmp": tmp, "cache": cache, "large": f"replay:{large}", "large_accuracy": accuracy, "ds": ds, "run": run}


def test_real_models_end_to_end(real):
    from tokentrust.bench.quality import judge

    run = real["run"]
    r = run.result
    assert run.n_generated == 2 * LIMIT and r["n_items"] == LIMIT and r["complete"]  # replays are never cached
    rows = [json.loads(line) for line in (run.out / "items.jsonl").read_text().splitlines()]
    small_acc = np.mean([judge(real["ds"], row["small"]["answer"], row["references"]).correct for row in rows])
    assert all(len(row["trace"]["token_ids"]) <= SMALL_TOKENS for row in rows)
    assert r["curve"]["quality"][0] == pytest.approx(small_acc) == r["small_accuracy"]
    assert r["curve"]["quality"][-1] == pytest.approx(real["large_accuracy"]) == r["large_accuracy"]
    assert real["large_accuracy"] > small_acc  # the longer answers finish names the short ones cut
    a = r["areas"]
    assert a["oracle"] >= a["rule"] - 1e-12 and a["oracle"] >= a["random"] - 1e-12
    assert a["random"] == pytest.approx((small_acc + real["large_accuracy"]) / 2)
    policy = CascadePolicy.load(run.out / "policy.json")
    assert policy.large == real["large"] and policy.rule == "chow_sum"
    deferred = [defer(Trace.model_validate(row["trace"]), policy) for row in rows]
    assert np.mean(deferred) == pytest.approx(policy.deferred_share) == pytest.approx(0.25)


def test_cli_post_hoc_from_the_cache(real, capsys, fast_load):
    out = real["tmp"] / "cli"
    args = ["cascade", "--large", real["large"], "--dataset", "capitals", "--limit", str(LIMIT), "-n",
            str(SMALL_TOKENS), "--cache", real["cache"], "--out", str(out), "--no-progress"]
    code, stdout, stderr = cli(capsys, *args, "--rule", "post_hoc_quantile")
    assert code == 0, stderr
    assert f"{LIMIT} answers from the cache, {LIMIT} generated" in stderr  # small: cached; large: the replay
    assert "held-out half (2 items); post_hoc_quantile fitted on the other half (2 items)" in stdout
    assert "area over [0, 1] deferral" in stdout and "oracle" in stdout
    saved = json.loads((out / "cascade.json").read_text())
    assert saved["rule"] == "post_hoc_quantile" and saved["policy"]["post_hoc"] is not None
    code, stdout, _ = cli(capsys, *args, "--rule", "chow_quantile:alpha=0.2", "--json")  # same folder, other rule
    assert code == 0 and json.loads(stdout)["rule"] == "chow_quantile:alpha=0.2"


def test_large_model_down_mid_run_then_resumed(real, backend):
    from tokentrust.backends.replay import ReplayBackend

    replay = ReplayBackend.from_spec(real["large"])

    class Flaky:  # a large model that answers until it "goes down"
        model_id = "flaky"

        def __init__(self, answers):
            self.answers, self.prompts = answers, 0

        def generate_many(self, prompts, config=None):
            if self.answers <= 0:
                raise ServerError("cannot reach http://big/v1: the server is unreachable")
            self.answers -= 1
            self.prompts += len(prompts)
            return replay.generate_many(prompts, config)

    out = real["tmp"] / "flaky"
    kw = {"small": backend, "limit": LIMIT, "out": out, "cache": real["cache"], "max_new_tokens": SMALL_TOKENS,
          "batch_size": 2}
    with pytest.raises(ServerError, match=r"large model failed on capitals/.*\n2/4 items are saved"):
        run_cascade("capitals", Flaky(answers=1), **kw)  # the first batch of 2 is answered, the second fails
    failed = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["estimator"] for f in failed] == ["large model"] * 2
    large = Flaky(answers=10)
    run = run_cascade("capitals", large, **kw)
    assert (run.n_resumed, run.n_generated, large.prompts) == (2, 2, 2)  # only the 2 missing large answers
    assert run.result["n_items"] == LIMIT and run.result["failures"] == []


def test_cli_server_down_then_up_resumes(real, capsys, fast_load, tmp_path):
    pytest.importorskip("llama_cpp.server", reason="run `make test` (it installs llama-cpp-python[server])")
    from _llama import LlamaServer

    server = LlamaServer(tmp_path / "llama.log")  # not started yet: connections are refused
    args = ["cascade", "--large", server.spec, "--dataset", "capitals", "--limit", str(LIMIT), "-n",
            str(SMALL_TOKENS), "--cache", real["cache"], "--out", str(tmp_path / "run"), "--no-progress"]
    code, _, stderr = cli(capsys, *args)
    message = " ".join(stderr.split())  # rich wraps at the console width
    assert code == 2, stderr
    assert "error: the large model failed on capitals/" in message and "the server is unreachable" in message
    assert f"0/{LIMIT} items are saved in" in message and "run the same command again to resume" in message
    assert (tmp_path / "run" / "failures.jsonl").read_text().count("large model") == LIMIT
    server.start()
    try:
        code, stdout, stderr = cli(capsys, *args, "--json")
    finally:
        server.stop()
    assert code == 0, stderr
    r = json.loads(stdout)
    assert (r["n_resumed"], r["n_cached"], r["n_generated"]) == (0, LIMIT, LIMIT)  # small: cached; large: llama
    assert r["n_items"] == LIMIT and r["failures"] == [] and r["curve"]["quality"][0] == r["small_accuracy"]
    assert r["curve"]["quality"][-1] == r["large_accuracy"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--rule", "chow_sun"], "unknown deferral rule 'chow_sun'; did you mean 'chow_sum'?"),
    (["--rule", "chow_quantile:alpha=1.5"], "alpha must be a number in [0, 1]"),
    (["--measure", "f1"], "--measure must be accuracy or quality"),
    (["--cost-large", "-1"], "c_large must be a finite cost ≥ 0"),
    (["--target-deferral", "2"], "the deferral share must be in [0, 1]"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, tmp_path, extra, message):
    code, _, stderr = cli(capsys, "cascade", "--large", "replay:nowhere.jsonl", "--dataset", "capitals",
                          "--out", str(tmp_path / "x"), *extra)
    text = " ".join(stderr.split())  # one message (rich wraps it at the console width), no traceback
    assert code == 2 and text.startswith("error: ") and message in text and "Traceback" not in stderr
    assert not (tmp_path / "x").exists()
