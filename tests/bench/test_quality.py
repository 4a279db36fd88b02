"""Known-answer tests for tokentrust.bench.quality."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from tokentrust.bench.datasets import Dataset, Item
from tokentrust.bench.quality import (
    Quality,
    bleu,
    check_rule,
    chrf,
    contains_match,
    exact_match,
    extract_number,
    judge,
    normalize,
    rouge_l,
    token_f1,
)
from tokentrust.errors import UserInputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Capital is Canberra.", "capital is canberra"),
        ("  canberra!  ", "canberra"),
        ("An apple, a pear & the plum", "apple pear plum"),
        ("Bogotá", "bogota"),
        ("l'Allemagne", "l allemagne"),
        ("St. John’s", "st john s"),
        ("STRASSE", "strasse"),
        ("Москва", "москва"),
        ("", ""),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("answer", "references", "expected"),
    [
        ("The capital is Canberra.", ["Canberra"], True),
        ("canberra!", "Canberra", True),
        ("Canberra", ["Canberra"], True),
        ("Sydney", ["Canberra"], False),
        ("Canberras", ["Canberra"], False),  # whole words only
        ("The United Kingdom", ["United Kingdom"], True),
        ("It is Astana now.", ["Nur-Sultan", "Astana"], True),  # aliases
        ("Bogota", ["Bogotá"], True),  # accents ignored
        ("Nur Sultan", ["Nur-Sultan"], True),
        ("South America", ["North America"], False),
        ("anything", ["the"], False),  # a reference that normalises to nothing never matches
    ],
)
def test_contains_match(answer, references, expected):
    assert contains_match(answer, references) is expected


def test_exact_match():
    assert exact_match("The Canberra!", ["canberra"])
    assert not exact_match("The capital is Canberra.", ["Canberra"])
    assert exact_match("Astana", ["Nur-Sultan", "Astana"])
    with pytest.raises(UserInputError, match="empty"):
        exact_match("x", [])


def test_token_f1_by_hand():
    # answer words: capital is canberra (3); reference: canberra (1); overlap 1
    # precision 1/3, recall 1 → F1 = 2·(1/3)/(4/3) = 0.5
    assert token_f1("The capital is Canberra.", "Canberra") == pytest.approx(0.5)
    # "new york city" vs "york new" → overlap 2, P = 2/3, R = 1 → F1 = 0.8
    assert token_f1("New York City", ["york new"]) == pytest.approx(0.8)
    # best over references
    assert token_f1("paris", ["London", "Paris"]) == 1.0
    # repeated words count with multiplicity: "a a b" → words [b] after articles go;
    # "x x y" vs "x y y": common = min(2,1)+min(1,2) = 2, P = R = 2/3 → F1 = 2/3
    assert token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0
    assert token_f1("", "x") == 0.0
    assert token_f1("zzz", "x") == 0.0


@pytest.mark.parametrize(
    ("answer", "references"),
    [
        ("The cat sat on the mat.", ["The cat is on the mat."]),
        ("Allemagne", ["Allemagne", "République fédérale d'Allemagne"]),
        ("a completely different sentence", ["The cat is on the mat.", "There is a cat on the mat."]),
    ],
)
def test_bleu_and_chrf_agree_with_sacrebleu(answer, references):
    assert bleu(answer, references) == pytest.approx(sacrebleu.sentence_bleu(answer, references).score)
    assert chrf(answer, references) == pytest.approx(sacrebleu.sentence_chrf(answer, references).score)
    assert 0 <= bleu(answer, references) <= 100 and 0 <= chrf(answer, references) <= 100


def test_bleu_chrf_identical_is_100():
    assert bleu("the cat is on the mat", "the cat is on the mat") == pytest.approx(100.0)
    assert chrf("Allemagne", "Allemagne") == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("answer", "references"),
    [
        ("The cat sat on the mat.", ["The cat is on the mat."]),
        ("police killed the gunman", ["the gunman kill police", "police kill the gunman"]),
        ("nothing alike", ["The cat is on the mat."]),
    ],
)
def test_rouge_l_agrees_with_rouge_score_on_ascii(answer, references):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = max(scorer.score(ref, answer)["rougeL"].fmeasure for ref in references)
    assert rouge_l(answer, references) == pytest.approx(expected)


def test_rouge_l_by_hand_and_unicode():
    # LCS("a b c d", "a c d e") = "a c d" (3): P = R = 3/4 → F = 0.75
    assert rouge_l("w x y z", "w y z q") == pytest.approx(0.75)
    # rouge-score's own tokeniser drops non-ASCII letters; ours keeps them
    assert rouge_l("Москва столица", "Москва") == pytest.approx(2 * 0.5 * 1 / 1.5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234", 1234),
        ("The answer is 1,234.", 1234),
        ("-5", -5),
        ("It is \u22125 degrees", -5),
        ("47 + 38 = 85", 85),
        ("x = 12.0", 12),
        ("12.5 apples", Decimal("12.5")),
        ("no digits", None),
        ("85 =", 85),
        ("**42**", 42),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def _dataset(rule: str) -> Dataset:
    return Dataset(
        name="t", version="1", items=[Item(id="t/1", prompt="q?", references=["a"])], correctness=rule
    )


def test_judge_contains():
    verdict = judge(_dataset("contains"), "The capital is Canberra.", ["Canberra"])
    assert verdict == Quality(correct=True, quality=1.0, rule="contains")
    wrong = judge("contains", "The capital is Sydney.", ["Canberra"])
    assert wrong.correct is False and wrong.quality == 0.0
    partial = judge("contains", "South America", ["North America"])
    assert partial.correct is False and partial.quality == pytest.approx(0.5)


def test_judge_exact_numeric_and_text():
    assert judge(_dataset("exact"), "The answer is 1,234.", ["1234"]).correct
    assert judge("exact", "-5", ["-5"]).correct
    assert not judge("exact", "The answer is 1235", ["1234"]).correct
    assert not judge("exact", "12.5", ["12"]).correct
    assert judge("exact", "I don't know", ["12"]) == Quality(correct=False, quality=0.0, rule="exact")
    assert judge("exact", "the Canberra", ["Canberra"]).correct
    text = judge("exact", "Canberra city", ["Canberra"])
    assert not text.correct and text.quality == pytest.approx(token_f1("Canberra city", "Canberra"))


def test_judge_threshold_rules():
    hyp, ref = "The cat sat on the mat.", ["The cat is on the mat."]
    score = sacrebleu.sentence_chrf(hyp, ref).score
    verdict = judge("chrf>=50", hyp, ref)
    assert verdict.quality == pytest.approx(score / 100) and verdict.correct is (score >= 50)
    assert judge("chrf>=99", hyp, ref).correct is False
    assert judge("rouge_l>=0.5", hyp, ref).quality == pytest.approx(rouge_l(hyp, ref))
    assert judge("f1>=0.5", "The capital is Canberra", "Canberra").correct
    assert judge("bleu>=0", "x", "y").correct
    for rule in ("contains", "exact", "chrf>=50", "bleu>=30", "rouge_l>=0.3", "f1>=0.5"):
        q = judge(rule, "Paris, France", ["Paris"])
        assert 0.0 <= q.quality <= 1.0


@pytest.mark.parametrize("rule", ["fuzzy", "chrf>50", "chrf>=150", "rouge_l>=2", "meteor>=0.5", ""])
def test_bad_rules(rule):
    with pytest.raises(UserInputError):
        check_rule(rule)


def test_check_rule_canonical():
    assert check_rule(" Contains ") == "contains"
    assert check_rule("chrf >= 50.0") == "chrf>=50"
    assert check_rule("rouge_l>=.5") == "rouge_l>=0.5"
