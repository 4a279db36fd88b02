"""The similarity registry: every kind built from its spec, its class facts, bad specs, and estimators whose
requirements follow the similarity they are given."""

from dataclasses import fields

import numpy as np
import pytest
from _samples import QUESTION

import tokentrust as tt
from tokentrust.backends.replay import RecordingBackend, ReplayBackend, text_trace
from tokentrust.registry import estimators, similarities
from tokentrust.stats import resources
from tokentrust.stats.embedding import EmbeddingSimilarity
from tokentrust.stats.judge import JUDGE_PROMPT, JudgeSimilarity
from tokentrust.stats.lexical import LexicalSimilarity
from tokentrust.stats.nli import NliSimilarity
from tokentrust.stats.similarity import Similarity, make_similarity, paired_similarity

GEN = tt.Capability.GENERATION

SPECS = [
    ("embedding", EmbeddingSimilarity(model="")),
    ("embedding:/models/minilm", EmbeddingSimilarity(model="/models/minilm")),
    ("nli:microsoft/deberta-large-mnli", NliSimilarity(model="microsoft/deberta-large-mnli")),
    ("lexical", LexicalSimilarity(metric="rougeL")),
    ("lexical:rougeL", LexicalSimilarity(metric="rougeL")),
    ("lexical:jaccard", LexicalSimilarity(metric="jaccard")),
    ("judge", JudgeSimilarity(max_new_tokens=4)),
    ("judge:max_new_tokens=8", JudgeSimilarity(max_new_tokens=8)),
]


def test_every_kind_is_registered():
    assert similarities.names() == ["embedding", "judge", "lexical", "nli"]
    for name, kind in similarities.items():
        assert issubclass(kind, Similarity) and kind.registry_id == name and kind.forms


@pytest.mark.parametrize("spec,expected", SPECS)
def test_specs_build_their_kind_without_loading_a_model(spec, expected):
    before = resources.loaded()
    assert make_similarity(spec) == expected
    assert resources.loaded() == before  # models load on first comparison, not when a spec is read


def test_class_facts():
    facts = {name: (k.default_threshold, k.entailment, k.requires, k.uses_models) for name, k in similarities.items()}
    assert facts == {
        "embedding": (0.8, False, frozenset(), True),
        "nli": (None, True, frozenset(), True),
        "lexical": (0.5, False, frozenset(), False),
        "judge": (0.5, False, frozenset({GEN}), False),
    }


@pytest.mark.parametrize("spec,message", [
    ("cosine", r"unknown similarity 'cosine'; valid: embedding, embedding:<path or hub id>, judge"),
    ("nli", r"similarity 'nli' needs a model: nli:<local path or hub id>"),
    ("lexical:foo", r"unknown lexical similarity 'lexical:foo'; valid: lexical, lexical:rougeL, lexical:jaccard"),
    ("judge:max_new_tokens=0", r"'judge:max_new_tokens=0'.*≥ 1, got 0.*valid forms: judge, judge:max_new_tokens=<n>"),
    ("judge:temperature=1", r"'judge:temperature=1' has no parameter temperature; valid forms: judge"),
    ("judge:8", r"bad similarity 'judge:8'; valid forms: judge, judge:max_new_tokens=<n>"),
    ("embeding", r"unknown similarity 'embeding'; Did you mean 'embedding'\? valid: embedding"),
])
def test_bad_specs_name_the_value_and_the_valid_forms(spec, message):
    with pytest.raises(tt.UserInputError, match=message):
        make_similarity(spec)
    with pytest.raises(tt.UserInputError, match=message):
        tt.build_estimator(f"eigv:similarity={spec}")


def test_unknown_kind_is_an_unknown_name():
    with pytest.raises(tt.UnknownNameError):
        make_similarity("cosine")


def test_non_entailment_kinds_refuse_directional_probabilities():
    with pytest.raises(tt.UserInputError, match="'lexical' gives no entailment probabilities; use nli:"):
        make_similarity("lexical").directional(["a", "b"])


def test_lexical_matrix_and_pairs_by_hand():
    texts = ["victor hugo", "Victor Hugo wrote it", "charles dickens"]
    w = make_similarity("lexical:jaccard").matrix(texts)
    np.testing.assert_allclose(w, [[1, 2 / 4, 0], [2 / 4, 1, 0], [0, 0, 1]])
    got = paired_similarity("lexical:jaccard", texts[:2], texts[1:])
    np.testing.assert_allclose(got, [w[0, 1], w[1, 2]])


def test_judge_pairs_read_recorded_replies():
    recorded = [text_trace(JUDGE_PROMPT.format(question=QUESTION, a="Hugo", b="Victor Hugo"), "Yes."),
                text_trace(JUDGE_PROMPT.format(question=QUESTION, a="Hugo", b="Zola"), "No."),
                text_trace(JUDGE_PROMPT.format(question=QUESTION, a="Zola", b="Hugo"), "Perhaps")]
    got = paired_similarity("judge", ["Hugo", "Hugo", "Zola"], ["Victor Hugo", "Zola", "Hugo"],
                            backend=ReplayBackend(recorded), question=QUESTION)
    np.testing.assert_allclose(got, [1.0, 0.0, 0.5])
    with pytest.raises(tt.CapabilityError, match="judge"):
        paired_similarity("judge", ["a"], ["b"], question=QUESTION)


def _compared() -> list[str]:
    return [n for n, cls in estimators.items() if any(f.name == "similarity" for f in fields(cls))]


#: CCP judges whether an alternative changes the meaning: only kinds that can tell (nli, embedding, judge).
MEANING = {"token_ccp", "sequence_ccp", "claim_conditioned_probability"}


def test_which_estimators_take_a_similarity():
    assert set(_compared()) == {"semantic_entropy", "discrete_semantic_entropy", "num_sem_sets", "eig_val_laplacian",
                                "deg_mat", "eccentricity", "c_deg", "c_ecc", "sent_sar", "sar", "token_sar", *MEANING}


@pytest.mark.parametrize("name", _compared())
def test_requirements_follow_the_similarity(name):
    default = estimators.get(name)()
    with_judge = tt.build_estimator(f"{name}:similarity=judge")
    with_nli = tt.build_estimator(f"{name}:similarity=nli:/models/nli")
    if name in MEANING:
        with pytest.raises(tt.UserInputError, match="cannot tell a changed meaning"):
            tt.build_estimator(f"{name}:similarity=lexical")
    else:
        with_lexical = tt.build_estimator(f"{name}:similarity=lexical")
        assert GEN not in with_lexical.requires and not with_lexical.uses_models
    assert GEN not in default.requires
    assert with_judge.requires == default.requires | {GEN}
    assert default.uses_models and with_nli.uses_models  # embedding (default) and nli load a model
    assert not with_judge.uses_models  # the judge is the generator itself
    assert not default.needs_only_trace and not with_judge.needs_only_trace


def test_token_sar_with_lexical_needs_only_the_trace():
    assert tt.build_estimator("token_sar:similarity=lexical").needs_only_trace
    assert not tt.build_estimator("token_sar").needs_only_trace


def test_a_judged_estimator_is_refused_by_a_backend_that_cannot_generate():
    samples_only = ReplayBackend([text_trace(QUESTION, s, temperature=1.0) for s in ["Hugo", "Zola"]])
    assert tt.Capability.SAMPLING in samples_only.capabilities and GEN not in samples_only.capabilities
    tt.check_compatible([tt.build_estimator("eigv:similarity=lexical")], samples_only)
    with pytest.raises(tt.CapabilityError, match=r"eig_val_laplacian\(similarity='judge'\) needs generation"):
        tt.check_compatible([tt.build_estimator("eigv:similarity=judge")], samples_only)


@pytest.mark.parametrize("spec,budget", [("judge", 4), ("judge:max_new_tokens=2", 2)])
def test_judge_reply_length_reaches_the_model(backend, spec, budget):
    recorder = RecordingBackend(backend)
    got = paired_similarity(spec, ["Paris"], ["Lyon"], backend=recorder, question="What is the capital of France?")
    assert got.shape == (1,) and got[0] in (0.0, 0.5, 1.0)
    (reply,) = recorder.traces
    assert reply.config.max_new_tokens == budget and reply.config.temperature == 0.0
    assert len(reply) <= budget
