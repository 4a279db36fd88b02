"""Contract suite over every sampling estimator, on recorded samples (ReplayBackend): no model needed."""

import numpy as np
import pytest
from _samples import DIVERSE, IDENTICAL, QUESTION, replay

import tokentrust as tt
from tokentrust import Scores
from tokentrust.backends.replay import ReplayBackend
from tokentrust.registry import estimators

SAMPLED = [n for n, cls in estimators.items() if tt.Capability.SAMPLING in cls().requires]


def score(name: str, samples: list[str]) -> Scores:
    est = tt.build_estimator(f"{name}:n_samples=6")
    backend = replay(samples)
    return tt.Context(backend.generate(QUESTION), backend).get(est)


def test_every_sampling_estimator_is_covered():
    assert {"semantic_entropy", "eig_val_laplacian", "deg_mat", "eccentricity", "c_deg", "c_ecc", "num_sem_sets",
            "lexical_similarity", "sent_sar", "sar", "discrete_semantic_entropy"} <= set(SAMPLED)


@pytest.mark.parametrize("name", SAMPLED)
def test_shape_alignment_json_and_determinism(name):
    s = score(name, DIVERSE)
    est = tt.build_estimator(f"{name}:n_samples=6")
    assert s.estimator == est.id == f"{name}(n_samples=6)"
    assert s.level is tt.Level.SEQUENCE and s.spans == [[0, 1]] and len(s.values) == len(s.raw) == 1
    assert np.isfinite(s.values[0]) and np.isfinite(s.raw[0])
    assert Scores.model_validate_json(s.model_dump_json()) == s
    assert score(name, DIVERSE) == s


@pytest.mark.parametrize("name", SAMPLED)
def test_orientation_identical_samples_beat_diverse(name):
    assert score(name, IDENTICAL).value > score(name, DIVERSE).value


def test_sampling_capability_is_checked_before_any_generation():
    greedy_only = ReplayBackend.from_texts(QUESTION, "Victor Hugo")
    assert tt.Capability.SAMPLING not in greedy_only.capabilities
    with pytest.raises(tt.CapabilityError, match="sampling"):
        tt.check_compatible([tt.build_estimator("eigv")], greedy_only)
    with pytest.raises(tt.CapabilityError, match="forced_scoring"):
        tt.check_compatible([tt.build_estimator("p_true")], greedy_only)
    with pytest.raises(tt.CapabilityError, match="sampling"):
        tt.check_compatible([tt.build_estimator("verbalized:sampling=self_random")], greedy_only)
    tt.check_compatible([tt.build_estimator("verbalized")], greedy_only)
    black_box = [n for n in SAMPLED if estimators.get(n)().requires == {tt.Capability.SAMPLING}]
    tt.check_compatible([tt.build_estimator(n) for n in black_box], replay(IDENTICAL))
    with pytest.raises(tt.CapabilityError, match="semantic_entropy needs logprobs"):  # plain-text samples
        tt.check_compatible([tt.build_estimator("semantic_entropy")], replay(IDENTICAL))


def test_replay_declares_what_it_recorded():
    caps = replay(IDENTICAL).capabilities
    assert tt.Capability.SAMPLING in caps
    assert tt.Capability.LOGPROBS not in caps  # the plain-text greedy answer carries no log-probs
    with pytest.raises(tt.UserInputError, match="6 recorded samples.*10 requested"):
        replay(IDENTICAL).sample(QUESTION, n=10)
