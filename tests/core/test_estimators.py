"""Known-answer tests: every white-box estimator against numpy on hand-built traces."""

import math

import numpy as np
import pytest
import torch

import tokentrust as tt
from _traces import make_trace
from tokentrust import CapabilityError, Context, UnknownNameError, UserInputError, annotate, build_estimator

LP = [-0.1, -2.0, -0.5, -0.05]
H = [0.3, 1.7, 0.9, 0.1]


@pytest.fixture
def trace():
    return make_trace(LP, H, kurtosis=[100.0, 3.0, 20.0, 500.0], margin=[0.8, 0.1, 0.4, 0.9])


@pytest.mark.parametrize(
    ("name", "value", "raw"),
    [
        ("msp", math.exp(sum(LP)), -sum(LP)),
        ("perplexity", np.mean(LP), -np.mean(LP)),
        ("geometric_mean_token_probability", math.exp(np.mean(LP)), math.exp(np.mean(LP))),
        ("arithmetic_mean_token_probability", np.mean(np.exp(LP)), np.mean(np.exp(LP))),
        ("minimum_token_probability", math.exp(-2.0), math.exp(-2.0)),
        ("mean_token_entropy", -np.mean(H), np.mean(H)),
        ("mean_kurtosis", np.mean([100, 3, 20, 500]), np.mean([100, 3, 20, 500])),
        ("mean_margin", np.mean([0.8, 0.1, 0.4, 0.9]), np.mean([0.8, 0.1, 0.4, 0.9])),
        ("logprob_quantile:alpha=0.0", -2.0, -2.0),
        ("logprob_quantile:alpha=0.5", np.quantile(LP, 0.5), np.quantile(LP, 0.5)),
    ],
)
def test_sequence_estimators_by_hand(trace, name, value, raw):
    est = build_estimator(name)
    s = Context(trace).get(est)
    assert s.level is tt.Level.SEQUENCE
    assert s.spans == [[0, 1, 2, 3]]
    assert s.value == pytest.approx(value, rel=1e-12)
    assert s.raw[0] == pytest.approx(raw, rel=1e-12)


def test_token_estimators_by_hand(trace):
    ctx = Context(trace)
    p = ctx.get(build_estimator("token_probability"))
    assert p.spans == [[0], [1], [2], [3]]
    np.testing.assert_allclose(p.values, np.exp(LP))
    np.testing.assert_allclose(p.raw, -np.array(LP))
    h = ctx.get(build_estimator("token_entropy"))
    np.testing.assert_allclose(h.raw, H)
    np.testing.assert_allclose(h.values, -np.array(H))


def test_every_sequence_estimator_with_a_token_form_gets_it_in_annotate(trace):
    result = annotate(trace, ["msp", "mean_token_entropy"])
    names = [s.estimator for s in result.scores]
    assert names == ["maximum_sequence_probability", "mean_token_entropy", "token_probability", "token_entropy"]


def test_canonical_id_carries_non_default_parameters():
    assert build_estimator("logprob_quantile").id == "logprob_quantile"
    assert build_estimator("logprob_quantile:alpha=0.05").id == "logprob_quantile(alpha=0.05)"
    assert build_estimator("cpmi:lam=2").id == "cpmi(lam=2)"
    assert build_estimator("msp") == build_estimator("maximum_sequence_probability")


def test_unknown_estimator_suggests_close_names():
    with pytest.raises(UnknownNameError, match="mean_token_entropy"):
        build_estimator("mean_token_entropi")


def test_bad_estimator_parameters_are_named():
    with pytest.raises(UserInputError, match="no parameter beta"):
        build_estimator("logprob_quantile:beta=1")
    with pytest.raises(UserInputError, match="alpha must be in"):
        build_estimator("logprob_quantile:alpha=2")


def test_white_box_estimators_refuse_traces_without_distribution():
    black_box = make_trace(LP)  # no entropy column
    with pytest.raises(CapabilityError, match="mean_token_entropy needs full_distribution"):
        annotate(black_box, ["mean_token_entropy"])
    assert annotate(black_box, ["msp"])["maximum_sequence_probability"].value == pytest.approx(math.exp(sum(LP)))


def test_pmi_needs_a_backend(trace):
    with pytest.raises(CapabilityError, match="forced_scoring"):
        annotate(trace, ["pmi"])


def test_pmi_alignment_against_independent_prompt_free_pass(backend, capital_trace):
    """Position t must score log p(y_t | y_<t) of the answer alone: no template tokens, no shift."""
    ids = capital_trace.token_ids
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    uncond = [0.0] + [logp[t - 1, ids[t]].item() for t in range(1, len(ids))]
    want = np.array(capital_trace.logprobs) - np.array(uncond)
    result = annotate(capital_trace, ["pmi", "cpmi"], backend=backend)
    np.testing.assert_allclose(result["token_pmi"].values, want, atol=1e-4)
    assert result["pmi"].value == pytest.approx(want.mean(), abs=1e-4)
    # a shifted alignment (the peer bug) would give a clearly different first terms
    shifted = np.array(capital_trace.logprobs[1:]) - np.array(uncond[:-1])
    assert not np.allclose(want[1:], shifted, atol=1e-2)
    # CPMI: λ·uncond subtracted only where t > 0 and H_t ≥ τ
    ent = np.array(capital_trace.entropy)
    apply = (np.arange(len(ids)) > 0) & (ent >= 0.0656)
    cpmi = np.where(apply, np.array(capital_trace.logprobs) - 3.599 * np.array(uncond), capital_trace.logprobs)
    np.testing.assert_allclose(result["token_cpmi"].values, cpmi, atol=1e-3)
    assert result["cpmi"].raw[0] == pytest.approx(-cpmi.mean(), abs=1e-3)


def test_stats_are_computed_once_and_read_only(trace):
    from tokentrust.estimators.base import TokenColumns

    ctx = Context(trace)
    a = ctx.get(TokenColumns())
    b = ctx.get(TokenColumns())
    assert a is b
    with pytest.raises(ValueError):
        a.logprobs[0] = 0.0


def test_stat_cycle_detected(trace):
    from dataclasses import dataclass

    from tokentrust import Stat, StatCycleError

    @dataclass(frozen=True, kw_only=True)
    class Loop(Stat[int]):
        def compute(self, ctx):
            return ctx.get(Loop())

    with pytest.raises(StatCycleError, match="depends on itself"):
        Context(trace).get(Loop())


def test_estimators_that_ask_new_prompts_need_a_generating_backend():
    saved = make_trace(LP, H)  # a white-box trace, but no model to ask
    for name in ("verbalized", "relative_confidence"):
        with pytest.raises(CapabilityError, match=f"{name} needs generation"):
            annotate(saved, [name])
