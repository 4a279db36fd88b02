"""``--upstream``: a second tokentrust server takes answers (with logprobs) from the first, a real server.

Its confidence must come from the logprobs the upstream returned: same tokens, same log-probs, and
sequence scores recomputed here with numpy from those numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import openai

MESSAGES = [{"role": "user", "content": "What is the capital of Australia?"}]


@pytest.fixture(scope="module")
def direct(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    return client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)


@pytest.fixture(scope="module")
def proxied_client(upstream_server):
    return openai.OpenAI(base_url=f"{upstream_server.url}/v1", api_key="x", max_retries=0, timeout=120)


def _check_against_direct(ext, text, direct):
    visible = [t for t in direct.model_extra["tokentrust"]["tokens"] if not t["special"]]
    assert text == direct.choices[0].message.content
    assert [t["token"] for t in ext["tokens"]] == [t["token"] for t in visible]
    assert np.allclose([t["logprob"] for t in ext["tokens"]], [t["logprob"] for t in visible], atol=1e-9)
    assert all(t["entropy"] is None and t["id"] is None for t in ext["tokens"])  # black-box: no distribution
    assert [a["token"] for a in ext["tokens"][0]["top"]] == [a["token"] for a in visible[0]["top"]]
    lps = np.array([t["logprob"] for t in visible])
    seq = ext["sequence_scores"]
    assert "mean_token_entropy" not in seq  # needs the full distribution, which an upstream never gives
    assert seq["maximum_sequence_probability"]["value"] == pytest.approx(math.exp(lps.sum()), rel=1e-9)
    assert seq["geometric_mean_token_probability"]["value"] == pytest.approx(math.exp(lps.mean()), rel=1e-9)
    assert seq["minimum_token_probability"]["value"] == pytest.approx(math.exp(lps.min()), rel=1e-9)
    assert ext["action"]["value"] == pytest.approx(math.exp(lps.mean()), rel=1e-9)


def test_upstream_chat_scores_come_from_upstream_logprobs(proxied_client, direct, backend):
    assert [m.id for m in proxied_client.models.list()] == [backend.model_id]
    r = proxied_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16)
    _check_against_direct(r.model_extra["tokentrust"], r.choices[0].message.content, direct)


def test_upstream_chat_stream(proxied_client, direct):
    chunks = list(proxied_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    per_token = [t for c in chunks if c.choices for t in (c.model_extra.get("tokentrust") or {}).get("tokens", [])
                 if "action" not in c.model_extra["tokentrust"]]
    final = chunks[-1].model_extra["tokentrust"]
    assert [t["token"] for t in per_token] == [t["token"] for t in final["tokens"]]
    _check_against_direct(final, text, direct)


def test_upstream_completions(proxied_client, server):
    direct = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    want = direct.completions.create(model="m", prompt="The capital of France is", max_tokens=5)
    got = proxied_client.completions.create(model="m", prompt="The capital of France is", max_tokens=5)
    assert got.choices[0].text == want.choices[0].text
    assert [t["logprob"] for t in got.model_extra["tokentrust"]["tokens"]] == pytest.approx(
        [t["logprob"] for t in want.model_extra["tokentrust"]["tokens"]], abs=1e-9)
    assert len(got.model_extra["tokentrust"]["tokens"][0]["top"]) == 5  # completions logprobs ask for 5
