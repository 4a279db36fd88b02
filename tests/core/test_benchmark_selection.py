"""The benchmark scripts measure what benchmarks/README.md says they measure (their selection, not speed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import tokentrust as tt
from _traces import make_trace

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_overhead_selects_exactly_the_scores_a_trace_carries_alone():
    chosen = _script("overhead").trace_only_estimators()
    registry = tt.registry.estimators
    expected = sorted(name for name, cls in registry.items() if cls().needs_only_trace)
    assert sorted(chosen) == expected and len(chosen) == 16
    for name in chosen:  # no model pass, no sampling, no other model (a sentence encoder …)
        est = tt.build_estimator(name)
        assert est.requires <= tt.capability.TRACE_CAPABILITIES and not est.uses_models
    assert "token_sar" not in chosen and "semantic_entropy" not in chosen and "pmi" not in chosen
    # and they really run on a saved white-box trace with no backend at all
    trace = make_trace([-0.1, -1.2, -0.4], entropy=[0.3, 1.1, 0.6], kurtosis=[5.0, 1.0, 2.0], margin=[0.8, 0.1, 0.4])
    result = tt.annotate(trace, chosen, with_token_forms=False)
    assert {s.estimator for s in result.scores} == set(chosen)


def test_bench_defaults_are_the_same_trace_only_answer_scores():
    from tokentrust.bench.runner import bench_estimators

    defaults = {e.id for e in bench_estimators(None)}
    trace_only = set(_script("overhead").trace_only_estimators())
    sequence_level = {n for n in trace_only if tt.build_estimator(n).level is tt.Level.SEQUENCE}
    assert defaults == sequence_level


def test_claims_benchmark_compares_ccp_with_the_claim_baselines_on_country_facts():
    script = _script("claims")
    chosen = [tt.build_estimator(s) for s in script.claim_estimators()]
    assert all(e.level is tt.Level.CLAIM for e in chosen)
    ids = {e.registry_id for e in chosen}
    assert ids == {"claim_conditioned_probability", "claim_probability", "claim_max_entropy"}
    assert {e.id for e in chosen} >= {"claim_probability", "claim_probability(reduce='geometric_mean')"}
    from tokentrust.bench.datasets import load_dataset

    assert script.DATASET == "country_facts" and len(load_dataset(script.DATASET, limit=120)) >= 100


def test_ccp_bands_are_the_best_fit_on_the_labelled_word_pairs():
    import numpy as np

    script = _script("ccp_thresholds")
    cos = np.array([0.95, 0.9, 0.6, 0.55, 0.2, 0.1])
    labels = np.array(["entail", "entail", "contradict", "contradict", "neutral", "neutral"])
    acc, hi, lo = script.fit_bands(cos, labels)
    assert acc == 1.0 and 0.6 < hi <= 0.9 and 0.2 < lo <= 0.55
    assert (script.band_verdicts(cos, hi, lo) == labels).all()
    assert len(script.ENTAIL) == len(script.CONTRADICT) == len(script.NEUTRAL) == 20


def test_explain_benchmark_runs_every_registered_method_beside_captums_figures(backend):
    from tokentrust.attribution import make_attributor

    script = _script("explain")
    chosen = script.selection()
    registered = set(tt.registry.attributors.names())
    assert {s.spec.partition(":")[0] for s in chosen} == registered
    assert all(s.granularity in ("token", "word", "component") for s in chosen)
    built = {s.label: make_attributor(s.spec) for s in chosen}  # every spec is valid
    # the Captum/Inseq figures stand beside the same jobs: token occlusion, token Shapley, exact components
    refs = {(s.spec.partition(":")[0], s.granularity, s.reference_forwards) for s in chosen if s.reference_forwards}
    assert refs == {("occlusion", "token", 287), ("shapley", "token", 186), ("shapley", "component", 19)}
    exact = next(s for s in chosen if s.reference_forwards == 19)
    assert built[exact.label].exact is True
    sampled = [built[s.label] for s in chosen if s.reference_forwards == 186]
    assert sorted(m.max_permutations for m in sampled) == [4, 6] and all(m.tolerance == 0 for m in sampled)
    goal = {s.spec.partition(":")[0] for s in chosen if s.faithful_goal}
    assert goal == {"gradient_x_input", "integrated_gradients", "occlusion", "reagent"}
    # a method the script does not know runs at its defaults, per token; --only keeps the named ones
    assert script.selection(["occlusion", "new_method"])[-1] == script.Setting("new_method", "new_method", "token")
    assert [s.label for s in script.selection(only=["occlusion"])] == ["occlusion, tokens", "occlusion, words"]
    # the job the figures were measured on: a 37-token chat prompt and a 7-token answer
    trace = backend.generate(script.PROMPT, max_new_tokens=16)
    assert len(backend.render(script.PROMPT).token_ids) == script.PROMPT_TOKENS == 37
    assert sum(1 for s in trace.special if not s) == script.ANSWER_TOKENS == 7


def test_decide_benchmark_compares_learned_confidence_with_single_scores_on_the_builtin_sets():
    script = _script("decide")
    assert script.SETS == ("capitals", "currencies", "continents")
    for spec in script.FEATURES:  # answer-level scores a saved trace carries, so the runs compute them
        est = tt.build_estimator(spec)
        assert est.level is tt.Level.SEQUENCE and est.needs_only_trace
    assert script.ALPHAS == (0.1, 0.2, 0.3, 0.4, 0.5)
    from tokentrust.decide.cascade import DeferralRule

    assert [DeferralRule.parse(r) for r in script.RULES]  # valid deferral rules
