"""Responses of the wrong shape and out-of-range numbers, refused with one clear line.

``Trace.from_openai`` (and so the ``openai:`` backend) checks every field it reads: a string where a list
belongs, a missing ``logprob``, a byte out of range each name the field's path and the value found. Seeds
and temperatures are bounded in ``GenerationConfig`` (the Python API), ``sample`` and ``bench``.
"""

from __future__ import annotations

import pytest

import tokentrust as tt
from _cli import run_cli
from tokentrust.bench.spec import RunSpec
from tokentrust.config import SEED_LIMIT, GenerationConfig
from tokentrust.errors import UserInputError


def _chat(logprobs: object, content: object = "Hi") -> dict:
    return {"model": "m", "choices": [{"index": 0, "message": {"content": content}, "logprobs": logprobs}]}


ENTRY = {"token": "Hi", "logprob": -0.5}


@pytest.mark.parametrize(
    ("response", "path", "found"),
    [
        ({"choices": ["nope"]}, "choices.0", "'nope'"),
        ({"choices": [{"message": "x"}]}, "choices.0.message", "'x'"),
        (_chat(None, content=5), "choices.0.message.content", "5"),
        (_chat({"content": "nope"}), "choices.0.logprobs.content", "'nope'"),
        (_chat({"content": [{"token": "Hi"}]}), "choices.0.logprobs.content.0.logprob", "Field required"),
        (_chat({"content": [{"logprob": -1}]}), "choices.0.logprobs.content.0.token", "Field required"),
        (_chat({"content": [{**ENTRY, "logprob": "low"}]}), "choices.0.logprobs.content.0.logprob", "'low'"),
        (_chat({"content": [{**ENTRY, "top_logprobs": "x"}]}), "choices.0.logprobs.content.0.top_logprobs", "'x'"),
        (_chat({"content": [{**ENTRY, "top_logprobs": [{"token": "a"}]}]}),
         "choices.0.logprobs.content.0.top_logprobs.0.logprob", "Field required"),
        (_chat({"content": [{**ENTRY, "bytes": [72, 999]}]}), "choices.0.logprobs.content.0.bytes.1", "999"),
        (_chat({"content": [{**ENTRY, "id": "q"}]}), "choices.0.logprobs.content.0.id", "'q'"),
        ({"choices": [{"text": "Hi", "logprobs": {"tokens": "Hi"}}]}, "choices.0.logprobs.tokens", "'Hi'"),
        ({"choices": [{"text": "Hi", "logprobs": {"tokens": ["H", "i"], "token_logprobs": [-1.0]}}]},
         "choices.0.logprobs", "token_logprobs has 1 entries for 2 tokens"),
        ({"choices": [{"text": "Hi", "logprobs": {"tokens": ["Hi"], "top_logprobs": ["x"]}}]},
         "choices.0.logprobs.top_logprobs.0", "'x'"),
        ({"choices": [{"text": "a", "index": "first"}, {"text": "b", "index": 1}]}, "choices.0.index", "'first'"),
    ],
)
def test_a_wrong_shape_names_the_field_and_the_value(response, path, found):
    with pytest.raises(UserInputError) as info:
        tt.Trace.from_openai(response)
    message = str(info.value)
    assert message.startswith("not in OpenAI's format: ") and f" {path}: " in message and found in message
    assert "\n" not in message and "instance of" not in message


def test_well_formed_null_fields_are_still_read():
    trace = tt.Trace.from_openai(_chat({"content": [{**ENTRY, "logprob": None, "bytes": None,
                                                      "top_logprobs": None}]}, content=None))
    assert trace.text == "" and len(trace) == 1 and trace.top_k == 0


@pytest.mark.parametrize("seed", [SEED_LIMIT, SEED_LIMIT * 4, -1])
def test_seeds_outside_0_to_2_63_are_refused_everywhere(seed, backend, capsys):
    with pytest.raises(UserInputError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
        GenerationConfig(seed=seed)
    with pytest.raises(UserInputError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\].*got"):
        backend.sample("Hi", n=2, seed=seed, max_new_tokens=2)
    with pytest.raises(UserInputError, match=r"invalid run spec: seed must be an integer in \[0, 2\*\*63 - 1\]"):
        RunSpec(dataset="capitals", seed=seed)
    code, _, err = run_cli(capsys, "bench", "--dataset", "capitals", "--limit", "1", "--seed", str(seed))
    assert code == 2 and "Traceback" not in err  # refused by the option itself or by the run spec
    assert "seed must be an integer in [0, 2**63 - 1]" in err or "--seed" in err


def test_the_largest_seed_samples_reproducibly(backend):
    first = backend.sample("Name a colour.", n=2, seed=SEED_LIMIT - 1, max_new_tokens=3)
    again = backend.sample("Name a colour.", n=2, seed=SEED_LIMIT - 1, max_new_tokens=3)
    assert [t.token_ids for t in first] == [t.token_ids for t in again]
    assert first[0].config.seed == SEED_LIMIT - 1


@pytest.mark.parametrize(("field", "value", "valid"), [
    ("temperature", float("inf"), "[0, 10]"), ("temperature", float("nan"), "[0, 10]"),
    ("temperature", -1.0, "[0, 10]"), ("top_p", 1.5, "(0, 1]"), ("top_k", 5000, "[0, 1000]"),
    ("max_new_tokens", 0, "≥ 1")])
def test_generation_numbers_name_their_range(field, value, valid):
    with pytest.raises(UserInputError) as info:
        GenerationConfig(**{field: value})
    assert field in str(info.value) and valid in str(info.value)
