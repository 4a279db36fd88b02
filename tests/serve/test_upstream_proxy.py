"""``--upstream``: a second tokentrust server takes answers (with logprobs) from the first, a real server.

Its confidence must come from the logprobs the upstream returned: same tokens, same log-probs, and
sequence scores recomputed here with numpy from those numbers. The upstream's chat ``logprobs`` list the
visible tokens only (not the end-of-turn token), so those are what the second server scores.
"""

from __future__ import annotations

import math

import httpx
import numpy as np
import openai
import pytest

from tokentrust import Annotated

MESSAGES = [{"role": "user", "content": "What is the capital of Australia?"}]


@pytest.fixture(scope="module")
def direct(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    return client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)


@pytest.fixture(scope="module")
def proxied_client(upstream_server):
    return openai.OpenAI(base_url=f"{upstream_server.url}/v1", api_key="x", max_retries=0, timeout=120)


def _check_against_direct(ext, text, direct):
    got = Annotated.model_validate(ext)
    want = Annotated.model_validate(direct.model_extra["tokentrust"])
    visible = [r for r in want.trace.records() if not r.special]
    records = got.trace.records()
    assert text == direct.choices[0].message.content == got.trace.text
    assert [r.token for r in records] == [r.token for r in visible]
    assert np.allclose([r.logprob for r in records], [r.logprob for r in visible], atol=1e-9)
    assert not got.trace.has_distribution and all(r.id == -1 for r in records)  # black-box: no ids, no entropy
    assert records[0].top_tokens == visible[0].top_tokens
    lps = np.array([r.logprob for r in visible])
    ids = {s.estimator for s in got.sequence_scores}
    assert "mean_token_entropy" not in ids  # needs the full distribution, which a server never gives
    assert got["maximum_sequence_probability"].value == pytest.approx(math.exp(lps.sum()), rel=1e-9)
    assert got["geometric_mean_token_probability"].value == pytest.approx(math.exp(lps.mean()), rel=1e-9)
    assert got["minimum_token_probability"].value == pytest.approx(math.exp(lps.min()), rel=1e-9)
    assert got.decision is not None and got.decision.value == pytest.approx(math.exp(lps.mean()), rel=1e-9)


def test_upstream_chat_scores_come_from_upstream_logprobs(proxied_client, direct, backend):
    assert [m.id for m in proxied_client.models.list()] == [backend.model_id]
    r = proxied_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    _check_against_direct(r.model_extra["tokentrust"], r.choices[0].message.content, direct)
    assert r.usage.prompt_tokens == direct.usage.prompt_tokens  # the upstream's own count


def test_upstream_chat_stream(proxied_client, direct):
    chunks = list(proxied_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    per_token = [t for c in chunks if c.choices for t in (c.model_extra.get("tokentrust") or {}).get("tokens", [])]
    final = chunks[-1].model_extra["tokentrust"]
    assert per_token == [r.to_payload() for r in Annotated.model_validate(final).trace.records()]
    _check_against_direct(final, text, direct)


def test_upstream_completions(proxied_client, server):
    direct = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    want = direct.completions.create(model="m", prompt="The capital of France is", max_tokens=5)
    got = proxied_client.completions.create(model="m", prompt="The capital of France is", max_tokens=5)
    assert got.choices[0].text == want.choices[0].text
    got_trace = Annotated.model_validate(got.model_extra["tokentrust"]).trace
    want_trace = Annotated.model_validate(want.model_extra["tokentrust"]).trace
    assert got_trace.logprobs == pytest.approx(want_trace.logprobs, abs=1e-9)
    assert got_trace.top_k == 5  # completions logprobs ask for 5


def test_upstream_refuses_what_a_server_cannot_give(upstream_server):
    chat = {"model": "m", "messages": MESSAGES, "max_tokens": 4, "tokentrust": {"estimators": ["mean_token_entropy"]}}
    r = httpx.post(f"{upstream_server.url}/v1/chat/completions", json=chat, timeout=60)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "estimator_not_supported" and "full_distribution" in err["message"]
    info = httpx.get(f"{upstream_server.url}/api/info", timeout=60).json()
    assert "full_distribution" not in info["capabilities"] and "streaming" in info["capabilities"]
    assert info["can_score"] is False  # the upstream (tokentrust's own server) returns no echo log-probs
