"""Claims: the splitter, spans that map back to the answer, CCP by hand, claim forms against numpy, bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import tokentrust as tt
from tokentrust.errors import UserInputError
from tokentrust.estimators.claim import ccp_from, is_stopword, position_ccp
from tokentrust.stats.claims import (
    answer_sentences,
    claim_lines,
    clause_spans,
    extract_claims,
    make_extractor,
    match_words,
)
from tokentrust.stats.embedding import EmbeddingSimilarity
from tokentrust.stats.similarity import combine_verdicts


def _claims(text: str, finished: bool = True) -> list[str]:
    return [text[a:b] for s, e in answer_sentences(text, finished=finished) for a, b in clause_spans(text, s, e)]


# --------------------------------------------------------------------------- the splitter


SPLITS = [
    ("Portugal has about 10.3 million people. Its capital is Lisbon.",
     ["Portugal has about 10.3 million people", "Its capital is Lisbon"]),
    ("Dr. Smith moved to St. Paul in 1990. He worked at the U.S. Bank.",
     ["Dr. Smith moved to St. Paul in 1990", "He worked at the U.S. Bank"]),
    ("Its capital is Lisbon, and its currency is the euro; it joined the EU in 1986.",
     ["Its capital is Lisbon", "its currency is the euro", "it joined the EU in 1986"]),
    ("It borders Spain, France, and Italy.", ["It borders Spain, France, and Italy"]),
    ("Salt and pepper are common, but saffron is rare.", ["Salt and pepper are common", "saffron is rare"]),
    ("Facts:\n- The capital is Canberra.\n- The population is 26 million.\n1. It uses the dollar.",
     ["Facts", "The capital is Canberra", "The population is 26 million", "It uses the dollar"]),
    ("The GDP grew by 2.5% in 2023. Was it enough? Not really!",
     ["The GDP grew by 2.5% in 2023", "Was it enough", "Not really"]),
    ("Canberra", ["Canberra"]),
]


@pytest.mark.parametrize(("text", "expected"), SPLITS)
def test_splitter_on_real_looking_answers(text: str, expected: list[str]) -> None:
    assert _claims(text) == expected


def test_unfinished_last_sentence_is_dropped_only_when_the_answer_was_cut() -> None:
    text = "Portugal is in Europe. Its capital is Lis"
    assert _claims(text, finished=False) == ["Portugal is in Europe"]
    assert _claims(text, finished=True) == ["Portugal is in Europe", "Its capital is Lis"]
    assert _claims('He said "it is over." Then he left', finished=False) == ['He said "it is over."']


def test_claim_spans_map_back_to_exactly_the_claim_characters(backend) -> None:
    trace = backend.generate("Tell me about Portugal in three sentences.", max_new_tokens=60)
    claims = extract_claims(trace)
    assert claims, trace.text
    for c in claims:
        a, b = c.char_span
        assert trace.text[a:b] == c.text
        assert c.token_indices == sorted(c.token_indices)
        covered = "".join(trace.text[slice(*trace.offsets[i])] for i in c.token_indices)
        assert c.text.strip() in covered  # the tokens cover the claim, and nothing outside its tokens' span
        first, last = trace.offsets[c.token_indices[0]], trace.offsets[c.token_indices[-1]]
        assert first[0] < b and last[1] > a and first[1] > a and last[0] < b


# --------------------------------------------------------------------------- model-based extraction pieces


def test_claim_lines_and_word_matching_follow_the_published_rules() -> None:
    reply = "- He was born in London.\nnot a claim\n- There aren't any claims here.\n-  \n- He is an actor."
    assert claim_lines(reply) == ["He was born in London.", "He is an actor."]
    sent = "Lanny Flaherty is an American actor born on December 18, 1949, in Pensacola, Florida."
    spans = match_words(sent, ["Lanny", "Flaherty", "born", "on", "December", "18", "1949"])
    assert [sent[a:b] for a, b in spans] == ["Lanny", "Flaherty", "born", "on", "December", "18", "1949"]
    assert match_words(sent, ["born", "Lanny"]) is None  # out of order
    assert match_words("an American", ["Americ"]) is None  # not a whole word


def test_model_extraction_reports_claims_that_match_no_token(backend) -> None:
    trace = backend.score("Tell me about Portugal.", "Portugal is in Europe. Its capital is Lisbon.")
    claims = extract_claims(trace, "llm:max_new_tokens=48", backend=backend)
    assert all(c.extractor == "llm:max_new_tokens=48" for c in claims)
    for c in claims:  # matched claims lie inside the answer; unmatched ones are kept with no tokens
        assert 0 <= c.char_span[0] <= c.char_span[1] <= len(trace.text)
        assert all(0 <= i < len(trace) for i in c.token_indices)


# --------------------------------------------------------------------------- CCP by hand


def test_verdict_combination_table() -> None:
    assert combine_verdicts("entail", "entail") == "entail"
    assert combine_verdicts("entail", "contradict") == "neutral"
    assert combine_verdicts("contradict", "neutral") == "contradict"
    assert combine_verdicts("neutral", "entail") == "entail"
    assert combine_verdicts("neutral", "neutral") == "neutral"


def test_ccp_of_one_position_by_hand() -> None:
    # emitted "Lisbon" p=0.2, "lisbon" p=0.1 (same meaning), "Porto" p=0.3 (changed), "the" p=0.25 (neutral)
    alts = [("Lisbon", math.log(0.2)), (" lisbon", math.log(0.1)), ("Porto", math.log(0.3)), ("the", math.log(0.25))]
    p = position_ccp(alts, ["entail", "entail", "contradict", "neutral"])
    assert p.value == pytest.approx((0.2 + 0.1) / (0.2 + 0.1 + 0.3))
    assert not p.all_neutral
    assert p.changers == (("Porto", pytest.approx(0.3)),)
    # a low-probability emitted token with no contradicting alternative is certain
    lone = position_ccp([("x", math.log(0.01)), ("y", math.log(0.9))], ["entail", "neutral"])
    assert lone.value == 1.0 and lone.all_neutral
    assert ccp_from([math.log(0.5), math.log(0.5)], ["entail", "contradict"]) == pytest.approx(0.5)


def _trace(text_tokens: list[str], alternatives: list[list[tuple[str, float]]]) -> tt.Trace:
    """A hand-made trace: tokens with their alternatives (emitted first) as (text, probability)."""
    offsets, pos = [], 0
    for tok in text_tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok)
    ids = {t: i for i, t in enumerate(dict.fromkeys([t for alts in alternatives for t, _ in alts]))}
    return tt.Trace(
        model_id="hand", prompt="What is the capital of Portugal?", prompt_text="", text="".join(text_tokens),
        token_ids=[ids[alts[0][0]] for alts in alternatives], tokens=text_tokens, offsets=offsets,
        logprobs=[math.log(alts[0][1]) for alts in alternatives], special=[False] * len(text_tokens), top_k=3,
        top_ids=[[ids[t] for t, _ in alts] for alts in alternatives],
        top_tokens=[[t for t, _ in alts] for alts in alternatives],
        top_logprobs=[[math.log(p) for _, p in alts] for alts in alternatives], finish_reason="forced",
    )


def test_claim_ccp_is_the_product_over_non_stopword_tokens_with_embedding_verdicts() -> None:
    trace = _trace(
        ["The", " capital", " is", " Lisbon", "."],
        [[("The", 0.6), ("Its", 0.3), ("A", 0.1)], [(" capital", 0.7), (" city", 0.2), (" largest", 0.1)],
         [(" is", 0.9), (" was", 0.05), (" remains", 0.05)], [(" Lisbon", 0.5), (" Porto", 0.3), (" Madrid", 0.2)],
         [(".", 0.9), ("!", 0.05), (",", 0.05)]],
    )
    a = tt.annotate(trace, ["ccp", "token_ccp", "sequence_ccp"])
    sim = EmbeddingSimilarity()
    expected_tokens = []
    for i in range(len(trace)):
        words = [t.strip(" .!,") for t in trace.top_tokens[i]]
        verdicts = ["entail"] + [
            "neutral" if not w or not words[0] else "entail" if w == words[0] else sim.verdicts([words[0]], [w])[0]
            for w in words[1:]
        ]
        expected_tokens.append(ccp_from(trace.top_logprobs[i], verdicts))
    assert a["token_ccp"].values == pytest.approx(expected_tokens)
    assert a["sequence_ccp"].value == pytest.approx(np.prod(expected_tokens))
    (claim,) = a.claims
    assert claim.text == "The capital is Lisbon" and claim.token_indices == [0, 1, 2, 3]
    kept = [v for i, v in enumerate(expected_tokens[:4]) if not is_stopword(trace.tokens[i])]
    assert [trace.tokens[i] for i in range(4) if not is_stopword(trace.tokens[i])] == [" capital", " Lisbon"]
    assert a["ccp"].values == pytest.approx([np.prod(kept)])
    assert a["ccp"].raw == pytest.approx([-np.prod(kept)])
    assert claim.scores["claim_conditioned_probability"] == pytest.approx(np.prod(kept))
    changers = a["ccp"].extras["changers"][0]
    assert all(ch["emitted"] in ("capital", "Lisbon") for ch in changers)


def test_fact_pref_compares_claim_prefixes() -> None:
    trace = _trace(["Its", " capital", " is", " Lisbon", "."],
                   [[("Its", 0.6), ("The", 0.4)], [(" capital", 0.7), (" city", 0.3)],
                    [(" is", 0.9), (" was", 0.1)], [(" Lisbon", 0.5), (" Porto", 0.5)], [(".", 0.9), ("!", 0.1)]])
    a = tt.annotate(trace, ["ccp:context=fact_pref"])
    sim = EmbeddingSimilarity()
    # the claim's last token: "Its capital is Lisbon" against "Its capital is Porto"
    verdict = sim.verdicts(["Its capital is Lisbon"], ["Its capital is Porto"])[0]
    lisbon = ccp_from([math.log(0.5), math.log(0.5)], ["entail", verdict])
    capital = ccp_from([math.log(0.7), math.log(0.3)],
                       ["entail", sim.verdicts(["Its capital"], ["Its city"])[0]])
    assert a["ccp:context=fact_pref"].values == pytest.approx([capital * lisbon])


def test_claim_forms_equal_numpy_reductions(capital_trace) -> None:
    long = capital_trace
    a = tt.annotate(long, ["claim_probability", "claim_probability:reduce=geometric_mean", "claim_max_entropy",
                           "claim_form:token=token_entropy,reduce=mean", "claim_form:token=token_margin"])
    lp, h, m = np.asarray(long.logprobs), np.asarray(long.entropy), np.asarray(long.margin)
    for i, c in enumerate(a.claims):
        idx = c.token_indices
        assert a["claim_probability"].values[i] == pytest.approx(np.exp(lp[idx].sum()))
        assert a["claim_probability:reduce=geometric_mean"].values[i] == pytest.approx(np.exp(lp[idx].mean()))
        assert a["claim_max_entropy"].raw[i] == pytest.approx(h[idx].max())
        assert a["claim_max_entropy"].values[i] == pytest.approx(-h[idx].max())
        assert a["claim_form:token=token_entropy,reduce=mean"].raw[i] == pytest.approx(h[idx].mean())
        assert a["claim_form:token=token_margin"].values[i] == pytest.approx(m[idx].min())
        assert a["claim_probability"].spans[i] == idx


def test_claim_p_true_scores_each_claim_with_the_model(backend) -> None:
    trace = backend.score("Tell me about France.", "Its capital is Paris. Its capital is Berlin.")
    a = tt.annotate(trace, ["claim_p_true"], backend=backend)
    assert [c.text for c in a.claims] == ["Its capital is Paris", "Its capital is Berlin"]
    values = a["claim_p_true"].values
    assert all(0 < v < 1 for v in values)
    assert values[0] > values[1]  # the model prefers the true claim


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("spec", "message"), [
    ("ccp:similarity=lexical", "cannot tell a changed meaning"),
    ("ccp:context=prefix", "context must be one of"),
    ("claim_form:token=msp", "needs a token-level estimator"),
    ("claim_form:token=token_entropy,reduce=product", "needs a probability"),
    ("claim_form:reduce=median", "reduce must be one of"),
    ("ccp:claims=paragraphs", "unknown claim extractor"),
    ("ccp:claims=llm:max_new_tokens=0", "max_new_tokens"),
])
def test_bad_claim_specs_are_refused_clearly(spec: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        tt.build_estimator(spec)


def test_extractor_identity_is_part_of_the_estimator_id() -> None:
    assert tt.build_estimator("ccp").id == "claim_conditioned_probability"
    assert tt.build_estimator("ccp:claims=sentences:clauses=true").id == "claim_conditioned_probability"
    assert tt.build_estimator("ccp:claims=sentences:clauses=false").id == (
        "claim_conditioned_probability(claims='sentences:clauses=False')")
    assert make_extractor("llm:model=openai:http://h/v1#m").spec == "llm:model=openai:http://h/v1#m"


def test_no_claims_gives_empty_claim_scores(backend) -> None:
    trace = backend.score("Say something.", "...")
    a = tt.annotate(trace, ["ccp", "claim_probability"])
    assert a.claims == [] and a["ccp"].values == [] and a["claim_probability"].spans == []


def test_ask_json_carries_claims_end_to_end() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokentrust", "ask", "Tell me about Portugal in two sentences.", "-e", "ccp",
         "-e", "claim_probability", "-n", "48", "--json"], capture_output=True, text=True, timeout=300, check=True,
    )
    data = json.loads(out.stdout)
    result = tt.Annotated.model_validate(data)
    assert result.claims
    text = result.trace.text
    levels = {s.estimator: s.level for s in result.scores}
    assert levels["claim_conditioned_probability"] is tt.Level.CLAIM and levels["token_ccp"] is tt.Level.TOKEN
    for c in result.claims:
        assert text[slice(*c.char_span)] == c.text
        assert set(c.scores) == {"claim_conditioned_probability", "claim_probability"}
    assert [c.token_indices for c in result.claims] == result["ccp"].spans


def test_unreachable_claims_model_is_one_line_exit_2() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tokentrust", "ask", "Hi", "-e", "ccp", "--claims-model", "openai:http://127.0.0.1:9/v1#x"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "claims model 'openai:http://127.0.0.1:9/v1#x'" in out.stderr
    assert "Traceback" not in out.stderr
