import json

import pytest

from _traces import make_trace
from tokentrust import Trace, UserInputError


def test_json_round_trip_is_exact(capital_trace):
    text = capital_trace.to_json()
    again = Trace.from_json(text)
    assert again == capital_trace
    assert again.to_json() == text
    assert again.digest == capital_trace.digest


def test_save_and_load(tmp_path, capital_trace):
    path = capital_trace.save(tmp_path / "t.json")
    assert Trace.load(path) == capital_trace


def test_digest_detects_tampering(capital_trace):
    data = json.loads(capital_trace.to_json())
    data["logprobs"][0] += 0.5
    with pytest.raises(ValueError, match="digest"):
        Trace.model_validate(data)


def test_digest_depends_on_content():
    a = make_trace([-0.1, -0.2])
    b = make_trace([-0.1, -0.3])
    assert a.digest != b.digest and len(a.digest) == 64


def test_columns_must_align():
    good = make_trace([-0.1, -0.2]).model_dump()
    good["logprobs"] = [-0.1]
    good["digest"] = ""
    with pytest.raises(UserInputError, match="logprobs"):
        Trace(**good)


def test_offsets_index_the_answer_text(capital_trace):
    t = capital_trace
    assert "Canberra" in t.text
    for tok, (start, end), special in zip(t.tokens, t.offsets, t.special):
        if special:
            assert start == end
        else:
            assert t.text[start:end] == tok
    assert "".join(tok for tok, s in zip(t.tokens, t.special) if not s) == t.text
