"""Registry: derived ids, aliases, collisions, did-you-mean errors, lazy entries, the spec grammar; and the
estimator registry's promises (ids derived per class, aliases build the same estimator)."""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

import tokentrust as tt
from tokentrust import Trace, UnknownNameError, UserInputError, annotate, build_estimator
from tokentrust.registry import Registry, parse_spec

GREEDY = Path(__file__).resolve().parents[1] / "data" / "golden" / "greedy_chat.json"


def _fresh() -> Registry[Any]:
    return Registry("widget")


def _cls(name: str) -> type:
    return type(name, (), {})


# --------------------------------------------------------------------------- ids and aliases


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("MeanTokenEntropy", "mean_token_entropy"),
        ("PTrue", "p_true"),
        ("MSP", "msp"),
        ("HTTPServer", "http_server"),
        ("EigValLaplacian", "eig_val_laplacian"),
        ("Rouge2Score", "rouge2_score"),
        ("lowercase", "lowercase"),
    ],
)
def test_id_is_derived_from_the_class_name(class_name: str, expected: str) -> None:
    reg = _fresh()
    cls = reg.register(_cls(class_name))
    assert reg.names() == [expected]
    assert reg.get(expected) is cls and cls.registry_id == expected


def test_functions_register_under_their_name_and_stay_callable() -> None:
    reg = _fresh()

    @reg.register
    def roc_auc(x: int) -> int:
        return x + 1

    assert reg.get("roc_auc") is roc_auc and roc_auc(1) == 2


def test_explicit_name_overrides_the_derived_id() -> None:
    reg = _fresh()
    cls = reg.register(_cls("SomethingLong"), name="short")
    assert reg.names() == ["short"] and reg.get("short") is cls
    with pytest.raises(UnknownNameError):
        reg.get("something_long")


def test_aliases_resolve_to_the_canonical_id() -> None:
    reg = _fresh()
    cls = reg.register(aliases=("se", "sem_ent"))(_cls("SemanticEntropy"))
    assert reg.get("se") is reg.get("sem_ent") is reg.get("semantic_entropy") is cls
    assert reg.canonical("se") == reg.canonical("semantic_entropy") == "semantic_entropy"
    assert reg.aliases_of("se") == ["se", "sem_ent"]
    assert reg.aliases() == {"se": "semantic_entropy", "sem_ent": "semantic_entropy"}
    assert reg.names() == ["semantic_entropy"] and len(reg) == 1
    assert "se" in reg and "semantic_entropy" in reg and "sem" not in reg and 3 not in reg


@pytest.mark.parametrize(
    ("name", "aliases"),
    [
        ("taken", ()),  # same id
        ("fresh", ("taken",)),  # alias equal to an existing id
        ("fresh", ("t",)),  # alias equal to an existing alias
        ("t", ()),  # id equal to an existing alias
        ("fresh", ("",)),  # an empty alias
    ],
)
def test_collisions_raise_and_leave_the_registry_unchanged(name: str, aliases: tuple[str, ...]) -> None:
    reg = _fresh()
    first = reg.register(_cls("Taken"), aliases=("t",))
    with pytest.raises(ValueError, match="already registered"):
        reg.register(_cls("Other"), name=name, aliases=aliases)
    assert reg.names() == ["taken"] and reg.aliases() == {"t": "taken"} and reg.get("t") is first
    if name == "fresh":
        assert "fresh" not in reg
    with pytest.raises(ValueError):
        reg.register_lazy(name, "json:dumps", aliases=aliases)
    assert reg.names() == ["taken"]


def test_unknown_name_suggests_close_matches() -> None:
    reg = _fresh()
    for cls_name in ("SemanticEntropy", "MeanTokenEntropy", "Perplexity"):
        reg.register(_cls(cls_name))
    reg.register(_cls("DiscreteSemanticEntropy"), aliases=("dse",))
    with pytest.raises(UnknownNameError) as info:
        reg.get("semantic_entropi")
    message = str(info.value)
    assert "'semantic_entropi'" in message and "Did you mean" in message and "'semantic_entropy'" in message
    assert "widget" in message
    with pytest.raises(UnknownNameError, match="'perplexity'"):
        reg.canonical("perplexty")
    with pytest.raises(UnknownNameError) as far:
        reg.get("zzzz")
    assert "Did you mean" not in str(far.value) and "dse" in str(far.value)  # still lists the valid names
    assert isinstance(far.value, KeyError) and isinstance(far.value, UserInputError)


# --------------------------------------------------------------------------- lazy entries


def test_lazy_entries_import_on_first_get() -> None:
    reg = _fresh()
    reg.register_lazy("dumps", "json:dumps", aliases=("to_json",))
    reg.register_lazy("fromkeys", "collections:OrderedDict.fromkeys")
    reg.register_lazy("missing", "tokentrust_no_such_module:thing")  # registering imports nothing
    assert "missing" in reg and len(reg) == 3
    assert reg.get("to_json") is json.dumps and reg.get("dumps") is json.dumps
    assert reg.get("fromkeys") == collections.OrderedDict.fromkeys
    assert list(reg.get("fromkeys")("ab")) == ["a", "b"]
    with pytest.raises(ModuleNotFoundError):
        reg.get("missing")


def test_lazy_attribute_missing_fails_on_get() -> None:
    reg = _fresh()
    reg.register_lazy("nothing", "json:no_such_function")
    with pytest.raises(AttributeError):
        reg.get("nothing")


def test_lazy_target_must_name_module_and_attribute() -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        _fresh().register_lazy("bad", "json.dumps")


def test_items_are_sorted_and_resolved() -> None:
    reg = _fresh()
    zeta = reg.register(_cls("Zeta"))
    alpha = reg.register(_cls("Alpha"), aliases=("a",))
    reg.register_lazy("mid", "json:loads")
    assert [key for key, _ in reg.items()] == ["alpha", "mid", "zeta"] == reg.names()
    assert dict(reg.items()) == {"alpha": alpha, "mid": json.loads, "zeta": zeta}


def test_build_from_a_spec() -> None:
    reg = _fresh()

    @reg.register
    @dataclass(frozen=True, kw_only=True)
    class Knob:
        level: int = 1
        label: str = "x"

    assert reg.build("knob:level=3,label=nli:/m") == Knob(level=3, label="nli:/m")
    with pytest.raises(UserInputError, match="bad parameters for widget 'knob'"):
        reg.build("knob:volume=11")


# --------------------------------------------------------------------------- the spec grammar


@pytest.mark.parametrize(
    ("spec", "name", "params"),
    [
        ("perplexity", "perplexity", {}),
        ("  perplexity  ", "perplexity", {}),
        ("perplexity:", "perplexity", {}),
        ("se:n_samples=20", "se", {"n_samples": 20}),
        (
            "se:n_samples=20,temperature=0.5,flag=true,off=False,none=null",
            "se",
            {"n_samples": 20, "temperature": 0.5, "flag": True, "off": False, "none": None},
        ),
        ("x:ks=[1,2,3],b=2", "x", {"ks": [1, 2, 3], "b": 2}),
        ('x:nested={"a": [1, 2], "b": {"c": 3}},n=1', "x", {"nested": {"a": [1, 2], "b": {"c": 3}}, "n": 1}),
        ('x:words=["a,b", "c"]', "x", {"words": ["a,b", "c"]}),
        ('x:s="a,b",t=1', "x", {"s": "a,b", "t": 1}),
        ("se:similarity=nli:/models/x", "se", {"similarity": "nli:/models/x"}),
        ("se:similarity=nli:/models/x,n_samples=5", "se", {"similarity": "nli:/models/x", "n_samples": 5}),
        ("x:expr=a=b", "x", {"expr": "a=b"}),
        ("x:word=hello", "x", {"word": "hello"}),
        ("x: a = 1 , b = two ", "x", {"a": 1, "b": "two"}),
        ('x:num="3"', "x", {"num": "3"}),
    ],
)
def test_parse_spec(spec: str, name: str, params: dict[str, Any]) -> None:
    assert parse_spec(spec) == (name, params)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (":k=v", "empty name"),
        ("   ", "empty name"),
        ("x:k", "bad parameter"),
        ("x:a=1,,b=2", "bad parameter"),
        ("x:a=1,k", "bad parameter"),
        ("x:=1", "bad parameter"),
        ("x: =1", "bad parameter"),
        ("x:k=1,k=2", "given twice"),
        ("x:k=1, k =[2,3]", "given twice"),
    ],
)
def test_parse_spec_refuses_bad_specs_naming_them(spec: str, problem: str) -> None:
    with pytest.raises(UserInputError) as info:
        parse_spec(spec)
    assert problem in str(info.value) and repr(spec) in str(info.value)


def test_parse_spec_refuses_a_non_string() -> None:
    with pytest.raises(UserInputError, match="must be a string"):
        parse_spec(["perplexity"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the estimator registry


ESTIMATOR_NAMES = tt.registry.estimators.names()
ALIASES = sorted(tt.registry.estimators.aliases().items())


@pytest.mark.parametrize("name", ESTIMATOR_NAMES)
def test_registered_estimator_ids_are_derived_per_class(name: str) -> None:
    cls = tt.registry.estimators.get(name)
    assert cls.registry_id == name
    assert build_estimator(name).id == name  # default parameters add nothing to the id
    assert build_estimator(name).registry_id == name


def test_estimator_ids_are_unique_across_classes() -> None:
    classes = [tt.registry.estimators.get(n) for n in ESTIMATOR_NAMES]
    assert len(set(classes)) == len(classes)


def _spec_with_a_changed_parameter(name: str) -> tuple[str, str] | None:
    """``field=value`` for the first int parameter valid alone at ``default + 1``; its form in the id."""
    for f in fields(tt.registry.estimators.get(name)):
        if isinstance(f.default, int) and not isinstance(f.default, bool):
            param = f"{f.name}={f.default + 1}"
            try:
                build_estimator(f"{name}:{param}")
            except UserInputError:  # valid only together with other parameters
                continue
            return param, f"{f.name}={f.default + 1!r}"
    return None


@pytest.mark.parametrize(("alias", "canonical"), ALIASES)
def test_an_alias_builds_the_canonical_estimator(alias: str, canonical: str) -> None:
    assert build_estimator(alias) == build_estimator(canonical)
    assert build_estimator(alias).id == build_estimator(canonical).id == canonical
    changed = _spec_with_a_changed_parameter(canonical)
    if changed is not None:
        param, shown = changed
        a, c = build_estimator(f"{alias}:{param}"), build_estimator(f"{canonical}:{param}")
        assert a == c and a.id == c.id == f"{canonical}({shown})"


def test_annotate_with_an_alias_reports_the_canonical_id() -> None:
    trace = Trace.load(GREEDY)
    result = annotate(trace, ["msp"], with_token_forms=False)
    assert [s.estimator for s in result.scores] == ["maximum_sequence_probability"]
    assert result.scores == annotate(trace, ["maximum_sequence_probability"], with_token_forms=False).scores


def test_unregistered_subclass_gets_its_own_id_and_works_with_annotate() -> None:
    parent = tt.registry.estimators.get("perplexity")

    @dataclass(frozen=True, kw_only=True)
    class DoubtedPerplexity(parent):  # type: ignore[misc,valid-type]
        """Same computation under its own name."""

    assert (
        DoubtedPerplexity.registry_id == "doubted_perplexity"
        and DoubtedPerplexity().id == "doubted_perplexity"
    )
    assert parent.registry_id == "perplexity" and "doubted_perplexity" not in tt.registry.estimators
    trace = Trace.load(GREEDY)
    mine = annotate(trace, [DoubtedPerplexity()], with_token_forms=False).scores
    theirs = annotate(trace, ["perplexity"], with_token_forms=False).scores
    assert [s.estimator for s in mine] == ["doubted_perplexity"]
    assert mine[0].values == theirs[0].values and mine[0].raw == theirs[0].raw
    both = annotate(trace, [DoubtedPerplexity(), "perplexity"], with_token_forms=False)
    assert [s.estimator for s in both.scores] == ["doubted_perplexity", "perplexity"]


@pytest.mark.parametrize("class_name", ["Perplexity", "_Perplexity"])
def test_subclass_with_the_parents_id_is_refused(class_name: str) -> None:
    parent = tt.registry.estimators.get("perplexity")
    with pytest.raises(TypeError, match="'perplexity'"):
        type(class_name, (parent,), {})
    assert tt.registry.estimators.get("perplexity") is parent and parent.registry_id == "perplexity"
