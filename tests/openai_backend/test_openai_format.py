"""``Trace.from_openai`` on responses a user already has, and the ``openai:`` model spec grammar."""

from __future__ import annotations

import json
import math

import pytest

import tokentrust as tt
from tokentrust.backends.openai import ModelSpec, OpenAIBackend
from tokentrust.errors import UserInputError

CHAT = {
    "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Canberra é"},
        "logprobs": {"content": [
            {"token": "Can", "logprob": -0.25, "bytes": [67, 97, 110],
             "top_logprobs": [{"token": "Syd", "logprob": -1.9}, {"token": "Can", "logprob": -0.25}]},
            {"token": "berra", "logprob": -0.01, "bytes": [98, 101, 114, 114, 97], "top_logprobs": []},
            {"token": " \\xc3", "logprob": -2.0, "bytes": [32, 195], "top_logprobs": []},
            {"token": "\\xa9", "logprob": -0.5, "bytes": [169], "top_logprobs": []},
            {"token": "<|im_end|>", "logprob": -0.1, "bytes": None, "top_logprobs": []},
        ]},
    }],
}

COMPLETION = {
    "object": "text_completion", "model": "smollm2",
    "choices": [
        {"index": 1, "text": " Rome", "finish_reason": "length",
         "logprobs": {"tokens": [" Rome"], "token_logprobs": [-0.7], "top_logprobs": [{" Rome": -0.7, " Milan": -1.2}],
                      "text_offset": [10]}},
        {"index": 0, "text": " Paris.", "finish_reason": "stop",
         "logprobs": {"tokens": [" Paris", "."], "token_logprobs": [-0.1, -0.3],
                      "top_logprobs": [{" Lyon": -3.0, " Paris": -0.1}, {".": -0.3, "!": -2.5}],
                      "text_offset": [10, 16]}},
    ],
}


def test_chat_response_becomes_a_black_box_trace():
    request = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Capital of Australia?"}],
               "max_tokens": 12, "temperature": 0.7, "seed": 3, "logprobs": True, "top_logprobs": 2}
    trace = tt.Trace.from_openai(json.dumps(CHAT), request=request)
    assert trace.model_id == "gpt-4o-mini"
    assert trace.prompt == [tt.Message(role="user", content="Capital of Australia?")]
    assert trace.text == "Canberra é"
    assert trace.logprobs == [-0.25, -0.01, -2.0, -0.5, -0.1]
    # bytes join the split "é": the first piece gets an empty span, the completing piece the whole " é"
    assert trace.offsets == [(0, 3), (3, 8), (8, 8), (8, 10), (10, 10)]
    assert trace.special == [False, False, False, False, True]
    assert trace.top_tokens[0] == ["Can", "Syd"]  # sorted, most probable first
    assert trace.top_logprobs[0] == [-0.25, -1.9]
    assert trace.top_k == 2
    assert trace.token_ids == [-1] * 5
    assert trace.entropy is None and trace.max_prob is None and not trace.has_distribution
    assert trace.config.max_new_tokens == 12 and trace.config.temperature == 0.7 and trace.config.seed == 3
    assert trace.config.chat
    assert tt.Trace.from_json(trace.to_json()) == trace


def test_completions_response_orders_choices_by_index():
    first = tt.Trace.from_openai(COMPLETION, prompt="The capital of France is")
    second = tt.Trace.from_openai(COMPLETION, prompt="The capital of France is", choice=1)
    assert first.text == " Paris." and first.tokens == [" Paris", "."] and first.offsets == [(0, 6), (6, 7)]
    assert first.top_tokens == [[" Paris", " Lyon"], [".", "!"]]
    assert first.finish_reason == "stop"
    assert second.text == " Rome" and second.finish_reason == "length" and second.logprobs == [-0.7]
    assert not first.config.chat
    with pytest.raises(UserInputError, match=r"choice must be in \[0, 1\]"):
        tt.Trace.from_openai(COMPLETION, choice=2)


def test_vllm_token_id_tokens_are_read_as_ids():
    response = {"model": "m", "choices": [{"index": 0, "text": "", "logprobs": {
        "tokens": ["token_id:42", "token_id:7"], "token_logprobs": [-1.0, None],
        "top_logprobs": [{"token_id:42": -1.0}, None]}}]}
    trace = tt.Trace.from_openai(response)
    assert trace.token_ids == [42, 7] and trace.top_ids == [[42], []]
    assert trace.logprobs[0] == -1.0 and math.isnan(trace.logprobs[1])


def test_response_without_logprobs_keeps_the_text():
    trace = tt.Trace.from_openai({"model": "m", "choices": [{"index": 0, "message": {"content": "Paris."}}]})
    assert trace.text == "Paris." and len(trace) == 0 and trace.top_k == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [("{not json", "not valid JSON"), ({"data": []}, "needs a 'choices' list"),
     ({"choices": [{"index": 0, "delta": {}}]}, "needs 'message'")],
)
def test_malformed_responses_are_named(bad, message):
    with pytest.raises(UserInputError, match=message):
        tt.Trace.from_openai(bad)


def test_model_spec_grammar():
    spec = ModelSpec.parse("openai:http://gpu-box:8000/v1/#meta-llama/Llama-3.1-8B-Instruct")
    assert spec == ModelSpec("http://gpu-box:8000/v1", "meta-llama/Llama-3.1-8B-Instruct")
    assert str(spec) == "openai:http://gpu-box:8000/v1#meta-llama/Llama-3.1-8B-Instruct"
    assert ModelSpec.parse("openai:https://api.openai.com/v1").model is None
    with pytest.raises(UserInputError, match="must start with http"):
        ModelSpec.parse("openai:gpt-4o-mini")
    backend = tt.load("openai:http://127.0.0.1:9/v1#m", concurrency=64, read_timeout=30)
    assert isinstance(backend, OpenAIBackend)
    assert backend.concurrency == 64 and backend.read_timeout == 30 and backend.model_id == "openai:http://127.0.0.1:9/v1#m"
    with pytest.raises(UserInputError, match="concurrency must be ≥ 1"):
        OpenAIBackend("http://127.0.0.1:9/v1", "m", concurrency=0)
