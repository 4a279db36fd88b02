"""Verbalised confidence, P(True) and relative confidence: parsers, aggregators and replays with known answers."""

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import minimize

import tokentrust as tt
from tokentrust.backends.replay import ReplayBackend, text_trace
from tokentrust.estimators._confidence_text import (
    normalise_answer,
    parse_answer,
    parse_confidence,
    parse_top_k,
)
from tokentrust.estimators.ptrue import PROMPT as PTRUE_PROMPT
from tokentrust.estimators.relative import COMPARE_PROMPT, elo, parse_choice, relative_confidence
from tokentrust.estimators.verbalized import VerbalizedReplies, aggregate, bradley_terry, pair_rank

Q = "Who wrote Les Misérables?"
NAN = float("nan")

PARSER_TABLE = [
    ("Answer: Victor Hugo\nConfidence: 85%", 0.85),
    ("Answer: Paris\nConfidence: 90", 0.90),
    ("Confidence: 0.7", 0.70),
    ("I am 90% sure that the answer is Canberra.", 0.90),
    ("I'm about 75 percent confident it is Hugo.", 0.75),
    ("The answer is Rome. Confidence level: 95%.", 0.95),
    ("**Answer:** Berlin\n**Confidence:** 80%", 0.80),
    ("Answer: 42, Confidence: 60%", 0.60),
    ("Confidence (0-100): 65", 0.65),
    ("My confidence is 70%.", 0.70),
    ("Confidence: 80-90%", 0.85),
    ("Overall confidence: 9/10", 0.90),
    ("Confidence: 7 out of 10", 0.70),
    ("Confidence: high", 0.80),
    ("Confidence: very low", 0.05),
    ("confidence: medium", 0.50),
    ("Step 1: x Confidence: 50%\nAnswer: Lyon\nOverall confidence: 40%", 0.40),
    ("Answer: Madrid\nConfidence: 100%", 1.0),
    ("Answer: Tokyo\nConfidence: 0%", 0.0),
    ("There is a 30% chance it is Sydney; confidence: 35%", 0.35),
    ("Answer: Victor Hugo", NAN),
    ("The answer to this question is not provided.", NAN),
    ("Confidence: 150%", NAN),
    ("Answer: 45% of the population", NAN),
    ("Confidence:", NAN),
    ("", NAN),
]


@pytest.mark.parametrize("text,expected", PARSER_TABLE)
def test_parse_confidence(text, expected):
    got = parse_confidence(text)
    if math.isnan(expected):
        assert math.isnan(got), f"{text!r} → {got}, expected missing"
    else:
        assert got == pytest.approx(expected)


def test_parse_answer_and_top_k():
    assert parse_answer("Answer: Victor Hugo\nConfidence: 85%") == "Victor Hugo"
    assert parse_answer("Answer: Paris, Confidence: 90%") == "Paris"
    assert parse_answer("Rome\nConfidence: 90%") == "Rome"
    assert parse_top_k("G1: Paris\nP1: 0.6\nG2: Lyon\nP2: 30%\nG3: Nice\nP3: ?") == [
        ("Paris", 0.6), ("Lyon", 0.3), ("Nice", pytest.approx(NAN, nan_ok=True))]
    assert normalise_answer("The  Victor Hugo!") == "victor hugo"


def test_bradley_terry_is_the_maximum_likelihood():
    wins = np.array([[0, 3, 2], [1, 0, 2], [1, 1, 0]], dtype=float)
    pi = bradley_terry(wins, prior=0.0, iterations=5000)

    def nll(x):
        p = np.exp(x)
        return -sum(wins[i, j] * np.log(p[i] / (p[i] + p[j])) for i in range(3) for j in range(3) if i != j)

    ref = np.exp(minimize(nll, np.zeros(3), method="BFGS").x)
    np.testing.assert_allclose(pi, ref / ref.sum(), atol=1e-5)


def test_pair_rank_prefers_consistently_top_ranked_answers():
    p = pair_rank([["paris", "lyon"], ["paris", "nice"], ["lyon", "paris"]])
    assert max(p, key=p.get) == "paris"
    assert sum(p.values()) == pytest.approx(1.0)
    assert p["lyon"] > p["nice"]


def test_elo_one_game_by_hand():
    r = elo(2, [(0, 1, 1.0)], shuffles=1)
    np.testing.assert_allclose(r, [1516.0, 1484.0])
    fixed = elo(2, [(0, 1, 1.0)], shuffles=1, fixed={1: 1600.0})
    e = 1 / (1 + 10 ** ((1600 - 1500) / 400))
    np.testing.assert_allclose(fixed, [1500 + 32 * (1 - e), 1600.0])


def test_parse_choice():
    assert parse_choice("1") == 1.0 and parse_choice("Question 2") == 0.0
    assert math.isnan(parse_choice("Both")) and math.isnan(parse_choice("1 or 2"))


def _reply(text, conf):
    from tokentrust.estimators.verbalized import Reply

    return Reply(text, normalise_answer(text), conf)


def test_aggregations_by_hand():
    replies = [_reply("Hugo", 0.9), _reply("Hugo", 0.6), _reply("Zola", 0.5), _reply("Hugo", NAN)]
    assert aggregate(replies, "consistency") == pytest.approx(3 / 4)
    assert aggregate(replies, "avg_conf") == pytest.approx((0.9 + 0.6) / (0.9 + 0.6 + 0.5))
    misled = [_reply("Zola", 0.5), *replies[:2]]
    assert aggregate(misled, "consistency", misleading=True) == pytest.approx(1 / 3)
    assert math.isnan(aggregate([_reply("Hugo", NAN)] * 3, "avg_conf"))


def _verbalized_backend(replies: list[str], strategy="vanilla", sampled=False):
    greedy = text_trace(Q, "Victor Hugo")
    prompt = VerbalizedReplies(strategy=strategy).prompt(tt.Context(greedy))
    recorded = [text_trace(prompt, r, temperature=0.7 if sampled else 0.0) for r in replies]
    return ReplayBackend([greedy, *recorded]), greedy


def test_verbalized_reads_the_stated_confidence_and_keeps_missing_as_nan():
    b, greedy = _verbalized_backend(["Answer: Victor Hugo\nConfidence: 85%"])
    s = tt.Context(greedy, b).get(tt.build_estimator("verbalized"))
    assert s.value == pytest.approx(0.85) and s.is_probability
    b, greedy = _verbalized_backend(["I think it is Victor Hugo."])
    s = tt.Context(greedy, b).get(tt.build_estimator("verbalized"))
    assert math.isnan(s.value) and math.isnan(s.raw[0])
    assert tt.Scores.model_validate_json(s.model_dump_json()).estimator == "verbalized"


def test_verbalized_self_random_aggregates_recorded_samples():
    replies = ["Answer: Victor Hugo\nConfidence: 90%", "Answer: Victor Hugo\nConfidence: 70%",
               "Answer: Emile Zola\nConfidence: 40%"]
    b, greedy = _verbalized_backend(replies, sampled=True)
    ctx = tt.Context(greedy, b)
    cons = ctx.get(tt.build_estimator("verbalized:sampling=self_random,n_samples=3,aggregation=consistency"))
    avg = ctx.get(tt.build_estimator("verbalized:sampling=self_random,n_samples=3"))
    assert cons.value == pytest.approx(2 / 3)
    assert avg.value == pytest.approx(1.6 / 2.0)
    assert b.calls["sample"] == 1  # both aggregations share the parsed replies


def test_bad_verbalized_parameters_name_the_valid_ones():
    valid = "'vanilla', 'cot', 'top_k', 'multi_step', 'self_probing'"
    with pytest.raises(tt.UserInputError, match=f"strategy must be one of {valid}, got 'guess'"):
        tt.build_estimator("verbalized:strategy=guess")
    with pytest.raises(tt.UserInputError, match="pair_rank"):
        tt.build_estimator("verbalized:aggregation=pair_rank")


def test_p_true_normalises_over_the_two_options():
    greedy = text_trace(Q, "Victor Hugo")
    prompt = PTRUE_PROMPT.format(question=Q, brainstorm="", answer="Victor Hugo")
    b = ReplayBackend([greedy, text_trace(prompt, "True", logprob=-0.5, forced=True),
                       text_trace(prompt, "False", logprob=-2.0, forced=True)])
    assert tt.Capability.FORCED_SCORING in b.capabilities
    s = tt.Context(greedy, b).get(tt.build_estimator("p_true"))
    p = math.exp(-0.5) / (math.exp(-0.5) + math.exp(-2.0))
    assert s.value == pytest.approx(p) and s.raw[0] == pytest.approx(-math.log(p))


@pytest.mark.parametrize("method", ["bradley_terry", "elo"])
def test_relative_confidence_recovers_a_consistent_preference_order(method):
    # a recorded "model" that always prefers the item with the lower index
    items = [(f"Question {i}?", f"answer {i}") for i in range(4)]
    traces = []
    for (i, a), (j, b) in itertools.permutations(enumerate(items), 2):
        prompt = COMPARE_PROMPT.format(q1=a[0], a1=a[1], q2=b[0], a2=b[1])
        traces.append(text_trace(prompt, "1" if i < j else "2"))
    scores = relative_confidence(items, ReplayBackend(traces), matchups=12, method=method, seed=1)
    assert list(np.argsort(-scores)) == [0, 1, 2, 3]
