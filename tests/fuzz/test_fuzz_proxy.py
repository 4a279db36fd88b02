"""Fuzz the proxy's request bodies against the real app and the real default model (in process, built once).

Bodies are valid chat / completions requests mutated a little, arbitrary JSON, or arbitrary bytes. Property: the
answer is a 2xx, or a 4xx/502/503/504 with a JSON ``error`` carrying a message; never a 500, a traceback, or
a stream that ends in a ``server_error`` event. Answers are at most 2 tokens long and extra passes are capped,
so every request finishes in well under a second.
"""

from __future__ import annotations

import json

import pytest
from _strategies import FUZZ, JSON, mutated
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentrust.serve import Limits, create_app

CHEAP = ["msp", "perplexity", "mean_token_entropy", "token_probability", "logprob_quantile:alpha=0.1"]
CHAT = {"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Capital of France?"}],
        "max_tokens": 2, "temperature": 0, "logprobs": True, "top_logprobs": 2,
        "tokentrust": {"estimators": ["msp", "perplexity"], "policy": {"hedge_below": 0.3}}}
COMPLETION = {"model": "SmolLM2-135M-Instruct", "prompt": "The capital of France is", "max_tokens": 1,
              "logprobs": 2, "tokentrust": {"estimators": ["msp"]}}
KEYS = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream", "seed",
        "stream_options", "logprobs", "top_logprobs", "tokentrust", "estimators", "policy", "role", "content",
        "prompt", "stop", "user"]


@pytest.fixture(scope="module")
def client(backend, tmp_path_factory):
    from starlette.testclient import TestClient

    limits = Limits(max_tokens=2, default_max_tokens=2, max_samples=2, max_pass_tokens=32, request_timeout=30.0,
                    max_body_bytes=20_000)
    app = create_app(backend, runs_dir=tmp_path_factory.mktemp("runs"), limits=limits)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _estimators(doc):
    """Keep sampled fuzz on cheap scores: an ``estimators`` list of strings becomes cheap names or junk."""
    ext = doc.get("tokentrust") if isinstance(doc, dict) else None
    if isinstance(ext, dict) and isinstance(ext.get("estimators"), list):
        ext["estimators"] = [e if not isinstance(e, str) or e in CHEAP else (e if ":" not in e else "msp")
                             for e in ext["estimators"]][:3]
    return doc


def _check(response) -> None:
    assert response.status_code != 500, response.text[:500]
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert response.status_code in (400, 401, 404, 405, 409, 413, 415, 422, 429, 502, 503, 504), response.text
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"].strip()
    elif "text/event-stream" in response.headers.get("content-type", ""):
        assert "server_error" not in response.text, response.text[-500:]


# Field-level edits with values near the valid range: these reach the model far more often than random JSON.
FIELD_VALUES = {
    "max_tokens": st.sampled_from([1, 2, 3, 0, -1, 2**63, 1.5, "2", None, True]),
    "temperature": st.sampled_from([0, 0.0, 0.7, 2, 2.5, -1, None, "0", 1e308]) | st.floats(0, 2),
    "top_p": st.sampled_from([1, 0.5, 0, 1.5, None, 1e-300]),
    "seed": st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64, -1, None, 3.0, "7"]),
    "stream": st.sampled_from([True, False, None, "yes", 1]),
    "stream_options": st.sampled_from([{"include_usage": True}, {"include_usage": False}, {}, {"x": 1}, None]),
    "n": st.sampled_from([1, 2, 0, None]),
    "logprobs": st.sampled_from([True, False, None, 0, 5, 21]),
    "top_logprobs": st.sampled_from([0, 2, 20, 21, -1, None]),
    "user": st.sampled_from(["u", "", None, 3]),
    "tokentrust": st.fixed_dictionaries(
        {}, optional={"estimators": st.lists(st.sampled_from([*CHEAP, "all", "nope", "msp:alpha=2", "",
                                                             "logprob_quantile:alpha=abc", "token_entropy"]),
                                             max_size=3) | st.none(),
                      "policy": st.fixed_dictionaries({}, optional={
                          "hedge_below": st.sampled_from([0, 0.5, 1, 1.5, -0.1, None]),
                          "abstain_below": st.sampled_from([0, 0.2, 2, None]),
                          "score": st.sampled_from(["msp", "perplexity", "nope", None])})}),
}
CONTENT = st.one_of(st.sampled_from(["Capital of France?", "", " ", "\u0000", "é" * 50, "<script>x</script>"]),
                    st.just("Capital of France?"),
                    st.text(max_size=20),
                    st.just([{"type": "text", "text": "Capital of France?"}]),
                    st.just([{"type": "image_url", "image_url": {"url": "x"}}]))


@st.composite
def near_valid(draw: st.DrawFn) -> dict:
    """A valid chat request with a few fields set to values at or past the edge of their range."""
    body = {"model": CHAT["model"], "messages": [{"role": draw(st.sampled_from(["user", "user", "system", "assistant",
                                                                                 "tool"])),
                                                  "content": draw(CONTENT)}], "max_tokens": 1}
    for key in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=2, unique=True)):
        body[key] = draw(FIELD_VALUES[key])
    return body


BODIES = st.one_of(
    near_valid(),
    near_valid(),
    near_valid(),
    mutated(CHAT, keys=KEYS).map(_estimators),
    mutated(COMPLETION, keys=KEYS).map(_estimators),
    JSON,
)


@settings(FUZZ, max_examples=80)
@given(BODIES, st.sampled_from(["/v1/chat/completions", "/v1/completions"]))
def test_request_bodies_never_give_a_500(client, body, path):
    if path == "/v1/completions" and isinstance(body, dict) and "messages" in body:
        path = "/v1/chat/completions"
    _check(client.post(path, content=json.dumps(body, allow_nan=True),
                       headers={"content-type": "application/json"}))


@settings(FUZZ, max_examples=25)
@given(st.binary(max_size=60) | st.text(max_size=40).map(str.encode),
       st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]))
def test_arbitrary_bytes_never_give_a_500(client, data, content_type):
    _check(client.post("/v1/chat/completions", content=data, headers={"content-type": content_type}))
