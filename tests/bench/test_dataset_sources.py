"""One dataset registry for built-in and Hub datasets, each entry saying where its items come from."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokentrust.bench import datasets as ds
from tokentrust.bench.datasets import hub, load_dataset, sources
from tokentrust.errors import UnknownNameError, UserInputError
from tokentrust.registry import datasets as registry

BUILTINS = ["arithmetic", "capitals", "continents", "country_names_de", "country_names_es", "country_names_fr",
            "currencies"]
HUB = {"hf:trivia_qa": "mandarjoshi/trivia_qa", "hf:sciq": "allenai/sciq", "hf:gsm8k": "openai/gsm8k",
       "hf:wmt19": "wmt/wmt19"}


def test_one_listing_shows_every_dataset_and_its_source():
    listed = sources()
    assert {name: listed[name] for name in BUILTINS} == dict.fromkeys(BUILTINS, "builtin")
    assert {name: listed[name] for name in [*HUB, "hf:<name>"]} == dict.fromkeys([*HUB, "hf:<name>"], "hub")
    assert set(listed) == set(registry.names())
    for name, hub_id in HUB.items():
        adapter = registry.get(name)
        assert isinstance(adapter, hub.HubDataset) and adapter.hub_id == hub_id and adapter.description
    assert registry.get("hf:<name>").hub_id is None


def test_registering_hub_adapters_imports_no_hub_package():
    code = "import sys, tokentrust; print('datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


class _FakeHub:
    """Stands in for the `datasets` package: records each call and serves rows, or fails like the network."""

    def __init__(self, rows=None, error=None):
        self.calls = []
        self.rows = rows or []
        self.error = error

    def load_dataset(self, hub_id, config, split):
        self.calls.append((hub_id, config, split))
        if self.error:
            raise self.error
        return self.rows


def test_hub_without_network_is_a_clear_error(monkeypatch):
    fake = _FakeHub(error=ConnectionError("Couldn't reach the Hub"))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(UserInputError) as info:
        load_dataset("hf:trivia_qa")
    message = str(info.value)
    assert "could not load 'mandarjoshi/trivia_qa' from the Hugging Face Hub (offline" in message
    assert "Couldn't reach the Hub" in message
    assert "capitals" in message and ".jsonl" in message and "hf:gsm8k" not in message  # offline choices only
    assert fake.calls == [("mandarjoshi/trivia_qa", "rc.nocontext", "validation")]


def test_hub_grammar_is_kept(monkeypatch):
    rows = [{"translation": {"de": "Hallo", "en": "Hello"}}]
    fake = _FakeHub(rows=rows)
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setattr(ds.metadata, "version", lambda name: "9.9")
    data = load_dataset("hf:wmt19:en-de", limit=1)
    assert fake.calls[-1] == ("wmt/wmt19", "en-de", "validation[:1]")
    assert data.name == "hf:wmt19:en-de" and data.items[0].references == ["Hallo"] and data.correctness == "chrf>=50"

    fake.rows = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answers": ["6", "six"]}]
    data = load_dataset("hf:owner/qa:main", correctness="exact")
    assert fake.calls[-1] == ("owner/qa", "main", "test")
    assert [i.id for i in data.items] == ["owner/qa/line-1", "owner/qa/line-2"]
    assert data.items[1].references == ["6", "six"] and data.correctness == "exact"
    assert data.version == "hf+owner--qa+main+test+datasets-9.9"

    # a registered adapter called like any registry entry is the same as loading its hf: name
    fake.rows = [{"question": "Big?", "answer": "so\n#### 1,234"}]
    assert hub.gsm8k(limit=1) == load_dataset("hf:gsm8k", limit=1)


def test_the_generic_entry_needs_a_dataset_id():
    with pytest.raises(UserInputError, match=r"needs a dataset id: load 'hf:<owner/name>\[:<config>\]'"):
        registry.get("hf:<name>")()


def test_a_bare_hub_name_is_unknown_and_points_to_its_hf_form():
    with pytest.raises(UnknownNameError, match="Did you mean 'hf:trivia_qa'"):
        load_dataset("trivia_qa")
