"""ReAGent (METHODS §5.1) and the faithfulness metrics: hand-computed maths, then the default model."""

from __future__ import annotations

import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch

import tokentrust as tt
from tokentrust.attribution import make_attributor
from tokentrust.attribution._ops import faithfulness as fops
from tokentrust.attribution._ops import reagent as rops
from tokentrust.attribution.faithfulness import faithfulness
from tokentrust.attribution.forward import TargetScorer
from tokentrust.attribution.reagent import Reagent, make_sampler, pos_groups, pos_sampler
from tokentrust.attribution.sources import answer_targets, groups_of, token_sources, word_sources
from tokentrust.errors import UserInputError

LN3 = math.log(3.0)


# ---- ReAGent's update rule and stopping rule on plain tensors -----------------------------------------------
def test_update_rule_on_fixed_masks_and_deltas() -> None:
    s = torch.zeros(2, 3, dtype=torch.float64)
    replaced = torch.tensor([[True, False, True], [False, False, False]])
    # row 0: Δ = 0.5 → u = ±0.5 → logit(0.75) = ln 3 on replaced, logit(0.25) = −ln 3 on kept
    # row 1: Δ = −0.2, nothing replaced → u = +0.2 everywhere → logit(0.6) = ln 1.5
    out = rops.update(s, replaced, torch.tensor([0.5, -0.2]))
    np.testing.assert_allclose(out.numpy(), [[LN3, -LN3, LN3], [math.log(1.5)] * 3], atol=1e-12)
    # a second step adds to the first; a certain change (Δ = 1) stays finite
    again = rops.update(out, replaced, torch.tensor([0.5, 1.0]))
    np.testing.assert_allclose(again[0].numpy(), [2 * LN3, -2 * LN3, 2 * LN3], atol=1e-12)
    assert torch.isfinite(again).all()


def test_keep_top_and_top_k_test() -> None:
    imp = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
    assert rops.keep_top(imp, 2).tolist() == [[False, True, True], [True, True, False]]
    assert rops.keep_top(imp, 5).all()  # fewer sources than n: all kept
    assert rops.in_top_k(torch.tensor([[0, 2], [0, 3]]), 3).tolist() == [True, False]  # every token must hit


def _decisive_zero(init: list[list[float]], delta: float, max_steps: int = 10, stops: bool = True):
    """A hand-built model: only source 0 matters. Every step replaces source 0 alone and the target's
    probability drops by ``delta``; the top-k test passes when source 0 is among the kept (top-1) sources."""
    s0 = torch.tensor(init, dtype=torch.float64)
    mask = torch.zeros_like(s0, dtype=torch.bool)
    mask[:, 0] = True
    calls = []

    def stop(keep: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        calls.append(active.clone())
        return keep[:, 0] & stops

    return rops.recursive_importance(s0, lambda: mask, lambda m, a: torch.full((len(s0),), delta), stop,
                                     keep_top_n=1, max_steps=max_steps), calls


def test_stopping_rule_on_a_hand_built_score_function() -> None:
    # s = [0, 5, 0, 0]; each step adds ln 3 to source 0 and −ln 3 to the rest:
    # step 1: [1.10, 3.90, …], step 2: [2.20, 2.80, …], step 3: [3.30, 1.70, …] → source 0 on top → stop at 3.
    # chain 2 has source 0 on top from the start → stops at step 1 and is frozen afterwards.
    (imp, stopped, steps), calls = _decisive_zero([[0, 5, 0, 0], [9, 0, 0, 0]], 0.5)
    assert stopped.tolist() == [True, True] and steps.tolist() == [3, 1]
    expected = torch.softmax(torch.tensor([3 * LN3, 5 - 3 * LN3, -3 * LN3, -3 * LN3], dtype=torch.float64), -1)
    np.testing.assert_allclose(imp[0].numpy(), expected.numpy(), atol=1e-12)
    np.testing.assert_allclose(imp[1].numpy(), torch.softmax(torch.tensor([9 + LN3, -LN3, -LN3, -LN3], dtype=torch.float64), -1),
                               atol=1e-12)
    assert [c.tolist() for c in calls] == [[True, True], [True, False], [True, False]]
    scores, ok = rops.aggregate(imp, stopped)
    assert ok and torch.allclose(scores, imp.mean(0))


def test_no_stop_returns_a_flagged_finite_fallback() -> None:
    (imp, stopped, steps), _ = _decisive_zero([[0, 5, 0, 0], [1, 2, 3, 4]], 0.5, max_steps=4, stops=False)
    assert not stopped.any() and steps.tolist() == [4, 4]
    scores, ok = rops.aggregate(imp, stopped)
    assert ok is False and torch.isfinite(scores).all() and float(scores.sum()) == pytest.approx(1.0)
    # only the chains that stopped are averaged
    part, ok = rops.aggregate(torch.tensor([[0.2, 0.8], [0.6, 0.4]]), torch.tensor([True, False]))
    assert ok and part.tolist() == pytest.approx([0.2, 0.8])


def test_pos_sampler_draws_the_same_tag() -> None:
    vocab = torch.tensor([3, 4, 5, 6, 7])
    words = ["12", "cat", "7", "dog", "run"]  # tags: digits → NUM, others by first letter class
    table = pos_groups(words, vocab, lambda w: "NUM" if w.isdigit() else ("V" if w == "run" else "N"), 8)
    sample = pos_sampler(table, [3, 4, 7, 0])  # 0 is a special token: drawn from the whole vocabulary
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([sample(g) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {3, 5} and set(draws[:, 1].tolist()) == {4, 6}
    assert set(draws[:, 2].tolist()) == {7} and set(draws[:, 3].tolist()) == {3, 4, 5, 6, 7}


# ---- faithfulness on plain tensors -----------------------------------------------------------------------
def test_distance_and_normalisation() -> None:
    lp = torch.log(torch.tensor([[1.0, 1e-30], [0.5, 0.5]], dtype=torch.float64))
    lq = torch.log(torch.tensor([[1e-30, 1.0], [0.5, 0.5]], dtype=torch.float64))
    assert fops.distance(lp, lq).tolist() == pytest.approx([math.sqrt(2), 0.0], abs=1e-9)
    assert fops.normalise(torch.tensor([[-1.0, 2.0, 1.0], [-1.0, -2.0, 0.0]])).tolist() == [[0, 1, 0.5], [0, 0, 0]]


def _one_decisive_input():
    """A hand-built model: 3 inputs of dimension 2; the next-token distribution reads input 1 only."""
    embeds = torch.tensor([[1.0, -1.0], [2.0, 1.0], [0.5, 0.5]])
    w = torch.tensor([[1.0, 0.0, -1.0], [0.5, -1.0, 1.0]])
    logq = torch.log_softmax(embeds[1] @ w, -1)

    def dist(masked: torch.Tensor) -> torch.Tensor:
        return fops.distance(torch.log_softmax(masked[:, 1] @ w, -1), logq)[:, None]

    return embeds, dist, fops.distance(torch.log_softmax(torch.zeros(3), -1), logq)


def test_soft_metrics_rank_the_decisive_input_first() -> None:
    embeds, dist, d0 = _one_decisive_input()
    # the attribution ranks input 1 first; its reverse ranks it last (normalised: [0.5, 1, 0] vs [0.5, 0, 1])
    imp = torch.tensor([[[1.0, 2.0, 0.0], [1.0, 0.0, 2.0]]])
    out = fops.soft_faithfulness(dist, embeds, imp, [[0], [1], [2]], draws=3,
                                 generator=torch.Generator().manual_seed(0))
    assert float(out["ss0"][0]) == pytest.approx(1 - float(d0))
    # input 1 kept with probability 1 (sufficiency) / 0 (comprehensiveness): exact whatever the draws
    assert out["soft_ns"][0].tolist() == pytest.approx([1.0, 0.0])
    assert out["soft_nc"][0].tolist() == pytest.approx([1.0, 0.0])
    # at word granularity: input 1 and 2 are one source
    grouped = fops.soft_faithfulness(dist, embeds, torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]), [[0], [1, 2]],
                                     draws=2, generator=torch.Generator().manual_seed(0))
    assert grouped["soft_nc"][0, 0] > grouped["soft_nc"][0, 1]


def test_deletion_drop_by_hand() -> None:
    w = torch.tensor([0.1, 2.0, 0.3], dtype=torch.float64)

    def score(keep: torch.Tensor) -> torch.Tensor:  # log-prob = −(weights of the removed inputs)
        return -((~keep).double() @ w)[:, None]

    drops = fops.deletion(score, torch.tensor([[[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]]]), [[0], [1], [2]], 1, 3)
    assert drops[0].tolist() == pytest.approx([2.0, 0.1])
    two = fops.deletion(score, torch.tensor([[[0.0, 1.0, 0.5]]]), [[0], [1], [2]], 2, 3)
    assert two[0].tolist() == pytest.approx([2.3])
    words = fops.deletion(score, torch.tensor([[[0.0, 1.0]]]), [[0], [1, 2]], 1, 3)
    assert words[0].tolist() == pytest.approx([2.3])


def _no_tagger_data(*args, **kwargs):
    raise LookupError("Resource 'averaged_perceptron_tagger_eng' not found")


# ---- bad input -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["reagent:sampler=xyz", "reagent:ratio=0", "reagent:ratio=1", "reagent:ratio=1.5",
                                  "reagent:probes=0", "reagent:max_steps=-1", "reagent:seed=-2"])
def test_bad_parameters_are_clear_errors(spec: str) -> None:
    with pytest.raises(UserInputError, match="reagent"):
        make_attributor(spec)


@pytest.mark.parametrize("nltk", [None, types.SimpleNamespace(pos_tag=_no_tagger_data)], ids=["no-nltk", "no-data"])
def test_pos_sampler_without_a_tagger_says_what_to_install(monkeypatch, nltk) -> None:
    # this environment has nltk without its tagger data; both cases are simulated so the test is hermetic
    monkeypatch.setitem(sys.modules, "nltk", nltk)
    with pytest.raises(UserInputError, match="pip install nltk.*nltk.downloader averaged_perceptron_tagger_eng"):
        make_attributor("reagent:sampler=pos")


def test_defaults_are_the_published_ones() -> None:
    r = Reagent()
    assert (r.ratio, r.keep_top_n, r.top_k, r.max_steps, r.probes, r.sampler) == (0.3, 5, 3, 3000, 16, "uniform")
    assert make_attributor("reagent").id == "reagent"


# ---- the default model -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scorer(backend, capital_trace):
    return TargetScorer(backend, capital_trace)


def test_same_seed_same_result_batched_or_single(scorer, capital_trace) -> None:
    groups = groups_of(word_sources(token_sources(scorer)))
    canberra, australia = answer_targets(capital_trace, "Canberra")[0], answer_targets(capital_trace, "Australia")[0]
    method = Reagent(max_steps=2, probes=2, seed=3)
    both, extras = method.attribute(scorer, [canberra, australia], groups)
    alone, extras_alone = method.attribute(scorer, [canberra], groups)
    assert both.shape == (2, len(groups)) and np.isfinite(both).all()
    np.testing.assert_allclose(alone[0], both[0], atol=1e-6)
    assert extras_alone["converged"] == extras["converged"][:1] and extras_alone["steps"] == extras["steps"][:1]
    assert np.allclose(both.sum(1), 1.0)


def test_model_sampler_proposes_other_plain_tokens(scorer, backend) -> None:
    sample = make_sampler("model", scorer)
    ids = sample(torch.Generator().manual_seed(0))
    assert ids.shape == (scorer.n_prompt,)
    assert not set(ids.tolist()) & set(backend.special_ids)
    assert all(a != b for a, b in zip(ids[1:].tolist(), scorer.prompt_ids[1:], strict=True))


def test_explain_reagent_on_the_default_model(backend, capital_trace) -> None:
    a = tt.explain(capital_trace, "reagent:max_steps=2,probes=2", backend=backend, target="Canberra")
    expected = sum(capital_trace.logprobs[i] for i in a.targets[0].tokens)
    assert a.target_logprobs == pytest.approx([expected], abs=1e-9)
    assert a.extras["target_logprob_model"] == pytest.approx([expected], abs=1e-3)
    assert a.method == "reagent(max_steps=2, probes=2)" and a.granularity == "word"
    row = np.array(a.scores[0])
    assert np.isfinite(row).all() and row.sum() == pytest.approx(1.0) and (row > 0).all()
    assert any(s.special for s in a.sources)  # special tokens are sources like any other
    assert isinstance(a.extras["converged"][0], bool) and a.extras["forwards"] > 2


def test_faithfulness_of_occlusion_beats_random(backend, capital_trace) -> None:
    occ = tt.explain(capital_trace, "occlusion", backend=backend, target="Canberra", granularity="component",
                     fields={"country": "Australia"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # soft sufficiency may be 0 for both: its ratio is then NaN
        f = faithfulness(occ, backend, capital_trace, random_attributions=3, draws=2, seed=0)
    assert f["k"] == 1 and len(f["per_target"]) == 1
    for name in ("soft_sufficiency", "soft_comprehensiveness", "deletion_drop"):
        assert math.isfinite(f[name]) and math.isfinite(f[f"{name}_random"])
    assert 0 <= f["soft_sufficiency"] <= 1 and 0 <= f["per_target"][0]["empty_sufficiency"] <= 1
    # the point of the metric: occlusion's ranking beats random rankings of the same scores
    assert f["soft_comprehensiveness_ratio"] > 1
    assert f["deletion_drop_ratio"] > 1
    with pytest.raises(UserInputError, match="top_fraction"):
        faithfulness(occ, backend, capital_trace, top_fraction=0)
    with pytest.raises(UserInputError, match="random"):
        faithfulness(occ, backend, capital_trace, random="xyz")
