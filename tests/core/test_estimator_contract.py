"""Contract suite over every registered estimator: shapes, alignment, orientation, JSON, determinism."""

import numpy as np
import pytest

import tokentrust as tt
from _traces import make_trace
from tokentrust import Scores, annotate
from tokentrust.registry import estimators

#: Estimators that work on a trace's own columns (and, for PMI, prompt-free log-probs). Sampling and
#: elicitation estimators (p_true asks the model a new question) have their own contract suite over
#: recorded samples in tests/estimators; refusal_score scores the question's first answer position with the
#: model (tests/decoding), not the trace's columns.
WHITE_BOX = {tt.Capability.LOGPROBS, tt.Capability.FULL_DISTRIBUTION, tt.Capability.FORCED_SCORING}
ALL = [n for n, cls in estimators.items()
       if cls().requires <= WHITE_BOX and n not in ("p_true", "refusal_score") and cls.level is not tt.Level.CLAIM]
#: Claim-level estimators: one value per claim of the answer (their own contract below, on a real answer).
CLAIM = [n for n, cls in estimators.items() if cls.level is tt.Level.CLAIM]
N = 5
PEAKED = make_trace([-0.01] * N, [0.05] * N, kurtosis=[40000.0] * N, margin=[0.98] * N)
FLAT = make_trace([-2.5] * N, [4.0] * N, kurtosis=[5.0] * N, margin=[0.01] * N)


class _PeakedBackend:
    """Prompt-free log-probs for PMI: the answer is unlikely without the prompt in both traces."""

    model_id = "contract"
    capabilities = frozenset(tt.Capability)

    def token_logprobs(self, ids):
        return [-0.5] * (len(ids) - 1)


@pytest.mark.parametrize("name", ALL)
def test_shape_alignment_and_json(name):
    est = tt.build_estimator(name)
    s = tt.Context(PEAKED, _PeakedBackend()).get(est)
    assert s.estimator == est.id == name
    assert s.level is est.level
    if s.level is tt.Level.TOKEN:
        assert s.spans == [[i] for i in range(N)]
    else:
        assert s.spans == [list(range(N))] and len(s.values) == 1
    assert len(s.values) == len(s.raw)
    assert np.all(np.isfinite(s.values))
    assert Scores.model_validate_json(s.model_dump_json()) == s


@pytest.mark.parametrize("name", ALL)
def test_orientation_peaked_beats_flat(name):
    est = tt.build_estimator(name)
    peaked = np.mean(tt.Context(PEAKED, _PeakedBackend()).get(est).values)
    flat = np.mean(tt.Context(FLAT, _PeakedBackend()).get(est).values)
    assert peaked > flat, f"{name}: peaked {peaked} ≤ flat {flat}"


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name):
    est = tt.build_estimator(name)
    a = tt.Context(PEAKED, _PeakedBackend()).get(est)
    b = tt.Context(PEAKED, _PeakedBackend()).get(est)
    assert a == b


def test_sequence_estimators_name_an_existing_token_form():
    for cls in dict(estimators.items()).values():
        if cls.token_form is not None:
            assert cls.level in (tt.Level.SEQUENCE, tt.Level.CLAIM)
            assert cls.token_form.registry_id in estimators


def test_annotated_json_round_trip(capital_trace):
    result = annotate(capital_trace)
    again = tt.Annotated.model_validate_json(result.model_dump_json())
    assert again == result


def test_every_estimator_on_a_real_trace(backend, capital_trace):
    result = annotate(capital_trace, ALL, backend=backend)
    assert {s.estimator for s in result.scores} == set(ALL)


@pytest.mark.parametrize("name", CLAIM)
def test_claim_estimators_score_each_claim_on_its_tokens(name, backend):
    trace = backend.score("Tell me about France.", "France is in Europe. Its capital is Paris, and it uses the euro.")
    est = tt.build_estimator(name)
    ctx = tt.Context(trace, backend)
    s = ctx.get(est)
    claims = tt.stats.claims.extract_claims(trace, est.claims)
    assert [c.text for c in claims] == ["France is in Europe", "Its capital is Paris", "it uses the euro"]
    assert s.estimator == est.id == name and s.level is tt.Level.CLAIM
    assert s.spans == [c.token_indices for c in claims]
    assert len(s.values) == len(s.raw) == 3 and np.all(np.isfinite(s.values))
    assert all(len(v) == 3 for v in s.extras.values())
    assert Scores.model_validate_json(s.model_dump_json()) == s
    assert tt.Context(trace, backend).get(est) == s
