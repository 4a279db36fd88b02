"""An estimator's identity is its parameters: a parameter exists only where it changes the result, one the
setting would ignore is refused, and the constants that change results (reference pool, hints, judge reply
length) are parameters whose defaults keep today's ids."""

from dataclasses import fields

import pytest
from _samples import QUESTION

import tokentrust as tt
from tokentrust.backends.replay import RecordingBackend, ReplayBackend, text_trace
from tokentrust.estimators.relative import REFERENCE_QUESTIONS
from tokentrust.estimators.verbalized import HINT_NOTE, HINTS, VerbalizedReplies
from tokentrust.registry import estimators

#: Ids that saved results, caches and reports already carry; they must not change.
TODAY = {
    "semantic_entropy:n_samples=3,similarity=lexical:jaccard": "semantic_entropy(n_samples=3, similarity='lexical:jaccard')",
    "lexical_similarity:n_samples=3,metric=jaccard": "lexical_similarity(n_samples=3, metric='jaccard')",
    "verbalized:strategy=cot,max_new_tokens=16": "verbalized(strategy='cot', max_new_tokens=16)",
    "verbalized:sampling=self_random,n_samples=3,aggregation=consistency":
        "verbalized(sampling='self_random', aggregation='consistency', n_samples=3)",
    "p_true:n_brainstorm=3,temperature=0.5": "p_true(n_brainstorm=3, temperature=0.5)",
    "relative_confidence:matchups=4,method=elo": "relative_confidence(matchups=4, method='elo')",
    "c_ecc:eigv_threshold=0.5,similarity=nli:/m": "c_ecc(similarity='nli:/m', eigv_threshold=0.5)",
    "cpmi:lam=0": "cpmi(lam=0)",
}


def test_default_ids_are_the_registry_names():
    for name, cls in estimators.items():
        assert cls().id == name


@pytest.mark.parametrize("spec", TODAY)
def test_ids_of_existing_specs_are_unchanged(spec):
    assert tt.build_estimator(spec).id == TODAY[spec]


def test_lexical_similarity_has_no_similarity_parameter():
    assert "similarity" not in {f.name for f in fields(estimators.get("lexical_similarity"))}
    with pytest.raises(tt.UserInputError, match="lexical_similarity' has no parameter similarity; valid: "):
        tt.build_estimator("lexical_similarity:similarity=nli:/models/x")


IGNORED = [
    ("p_true:temperature=0.5", "temperature=0.5 applies only when n_brainstorm > 0"),
    ("verbalized:n_samples=3", "n_samples=3 applies only with sampling self_random, perturbation or misleading"),
    ("verbalized:temperature=0.3", "temperature=0.3 applies only with sampling=self_random"),
    ("verbalized:sampling=perturbation,temperature=0.3", "temperature=0.3 applies only with sampling=self_random"),
    ("verbalized:sampling=misleading,temperature=0.3", "temperature=0.3 applies only with sampling=self_random"),
    ("verbalized:top_k=3", "top_k=3 applies only with strategy=top_k"),
    ("verbalized:steps=5,strategy=cot", "steps=5 applies only with strategy=multi_step"),
    ("verbalized:hints=[\"Bob says\"],sampling=self_random", "hints=('Bob says',) applies only with sampling=misleading"),
    ("verbalized:aggregation=consistency", "aggregation='consistency' applies only when several replies are combined"),
    ("verbalized:aggregation=consistency,sampling=self_random,n_samples=1", "applies only when several replies"),
    ("verbalized:aggregation=consistency,strategy=self_probing,sampling=self_random", "several replies"),
    ("semantic_entropy:rule=lenient", "rule='lenient' applies only to entailment similarities"),
    ("num_sem_sets:rule=lenient,similarity=lexical", "rule='lenient' applies only to entailment similarities"),
    ("semantic_entropy:threshold=0.7,similarity=nli:/m", "threshold=0.7 applies only to similarities clustered by a"),
    ("cpmi:lam=0,tau=0.2", "tau=0.2 applies only when lam > 0"),
    ("token_cpmi:lam=0,tau=0.2", "tau=0.2 applies only when lam > 0"),
]


@pytest.mark.parametrize("spec,message", IGNORED)
def test_an_ignored_parameter_is_refused_in_one_line(spec, message):
    with pytest.raises(tt.UserInputError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        tt.build_estimator(spec)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", [
    "p_true:n_brainstorm=2,temperature=0.5",
    "verbalized:sampling=self_random,n_samples=3,temperature=0.3,aggregation=consistency",
    "verbalized:sampling=perturbation,n_samples=3",
    "verbalized:strategy=top_k,top_k=3,sampling=self_random,aggregation=pair_rank",
    "verbalized:strategy=multi_step,steps=5",
    "verbalized:sampling=misleading,hints=[\"Bob says\"]",
    "semantic_entropy:threshold=0.7",
    "semantic_entropy:rule=lenient,similarity=nli:/m",
    "cpmi:lam=1,tau=0.2",
])
def test_the_same_parameters_are_accepted_where_they_apply(spec):
    est = tt.build_estimator(spec)
    assert est.id != est.registry_id


def test_relative_confidence_pool_is_a_hashable_parameter():
    spec = 'relative_confidence:pool=["What is 2+2?","Name a colour."]'
    est = tt.build_estimator(spec)
    assert est.pool == ("What is 2+2?", "Name a colour.")
    assert est.id == "relative_confidence(pool=('What is 2+2?', 'Name a colour.'))"
    assert hash(est) == hash(tt.build_estimator(spec)) and est == tt.build_estimator(spec)
    assert tt.build_estimator(f"relative_confidence:pool={list(REFERENCE_QUESTIONS)!r}".replace("'", '"')).id == \
        "relative_confidence"  # the default pool given as a list is the default
    assert tt.build_estimator("relative_confidence:pool_max_new_tokens=8").id == \
        "relative_confidence(pool_max_new_tokens=8)"
    with pytest.raises(tt.UserInputError, match="pool must be a non-empty list of texts, got 'What'"):
        tt.build_estimator("relative_confidence:pool=What")
    with pytest.raises(tt.UserInputError, match="pool_max_new_tokens must be an integer ≥ 1, got 0"):
        tt.build_estimator("relative_confidence:pool_max_new_tokens=0")


def test_hints_and_judge_length_change_the_id():
    assert tt.build_estimator('verbalized:sampling=misleading,hints=["Bob says"]').id == \
        "verbalized(sampling='misleading', hints=('Bob says',))"
    assert tt.build_estimator(f"verbalized:sampling=misleading,hints={list(HINTS)!r}".replace("'", '"')).id == \
        "verbalized(sampling='misleading')"
    assert tt.build_estimator("eigv:similarity=judge:max_new_tokens=8").id == \
        "eig_val_laplacian(similarity='judge:max_new_tokens=8')"
    assert tt.build_estimator("eigv:similarity=judge").id == "eig_val_laplacian(similarity='judge')"
    with pytest.raises(tt.UserInputError, match="hints must hold non-empty texts, got ''"):
        tt.build_estimator('verbalized:sampling=misleading,hints=["Bob says", ""]')


def test_misleading_queries_use_the_given_hints():
    hints = ("A little bird says the answer is", "My cat thinks the answer is")
    greedy = text_trace(QUESTION, "Victor Hugo")
    prompt = VerbalizedReplies(strategy="vanilla").prompt(tt.Context(greedy))
    # five identical samples of the plain question: the only decoy is "Emile Zola"
    pool = [text_trace(QUESTION, "Emile Zola", temperature=1.0) for _ in range(5)]
    replies = {prompt: "Answer: Victor Hugo\nConfidence: 80%",
               f"{prompt}\nHint: {hints[0]} Emile Zola.\n{HINT_NOTE}": "Answer: Emile Zola\nConfidence: 50%",
               f"{prompt}\nHint: {hints[1]} Emile Zola.\n{HINT_NOTE}": "Answer: Victor Hugo\nConfidence: 60%"}
    b = ReplayBackend([greedy, *pool, *(text_trace(p, r) for p, r in replies.items())])
    est = tt.build_estimator(f"verbalized:sampling=misleading,n_samples=3,hints={list(hints)!r}".replace("'", '"'))
    s = tt.Context(greedy, b).get(est)
    # avg_conf against the hint-free answer: (0.8 + 0.6) / (0.8 + 0.5 + 0.6)
    assert s.value == pytest.approx(1.4 / 1.9)
    with pytest.raises(tt.UserInputError, match="replay has no recorded answer"):  # the default hints differ
        tt.Context(greedy, b).get(tt.build_estimator("verbalized:sampling=misleading,n_samples=3"))


def test_relative_confidence_plays_against_the_given_pool(backend):
    recorder = RecordingBackend(backend)
    trace = backend.generate(QUESTION, max_new_tokens=6)
    pool = ["What is 2+2?", "Name a colour."]
    est = tt.build_estimator(f"relative_confidence:pool={pool!r},pool_max_new_tokens=5,matchups=2".replace("'", '"'))
    s = tt.Context(trace, recorder).get(est)
    assert len(s.values) == 1
    answers = [t for t in recorder.traces if t.prompt in pool]
    assert sorted(t.prompt for t in answers) == sorted(pool)
    assert all(t.config.max_new_tokens == 5 and len(t) <= 5 for t in answers)
    assert not any(t.prompt in REFERENCE_QUESTIONS for t in recorder.traces)
