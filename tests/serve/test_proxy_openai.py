"""The official openai client against a running server: chat and completions, streamed and not.

The ``tokentrust`` extension must agree with the library on the same text: teacher-forcing the answer
with ``backend.score`` (what ``tokentrust score`` runs) gives the same log-probs within 1e-4, and the
sequence scores equal those of ``annotate`` on that trace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import openai
from tokentrust import annotate
from tokentrust.annotated import DEFAULT_ESTIMATORS

QUESTION = "What is the capital of Australia?"
MESSAGES = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def chat(client):
    return client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=20, logprobs=True,
                                          top_logprobs=3)


def test_models_lists_the_served_model(client, backend):
    assert [m.id for m in client.models.list()] == [backend.model_id]
    assert client.models.retrieve(backend.model_id).id == backend.model_id


def test_chat_answer_and_extension_agree_with_teacher_forced_scoring(chat, backend):
    ext = chat.model_extra["tokentrust"]
    text = chat.choices[0].message.content
    assert text and chat.choices[0].finish_reason == "stop"
    assert "".join(t["text"] for t in ext["tokens"]) == text
    assert ext["tokens"][-1]["special"]  # the end-of-turn token is scored too
    # what `tokentrust score --prompt Q --answer A` computes, on the same text
    forced = backend.score(QUESTION, text)
    assert forced.token_ids == [t["id"] for t in ext["tokens"]]
    assert np.allclose(forced.logprobs, [t["logprob"] for t in ext["tokens"]], atol=1e-4)
    assert np.allclose(forced.entropy, [t["entropy"] for t in ext["tokens"]], atol=1e-4)
    scored = annotate(forced, list(DEFAULT_ESTIMATORS) + ["geometric_mean_token_probability"])
    assert set(ext["sequence_scores"]) == {s.estimator for s in scored.sequence_scores}
    for s in scored.sequence_scores:
        assert ext["sequence_scores"][s.estimator]["value"] == pytest.approx(s.value, abs=1e-4)
    # independent arithmetic: geometric mean of the token probabilities, and the policy's verdict
    gm = math.exp(np.mean([t["logprob"] for t in ext["tokens"]]))
    assert ext["sequence_scores"]["geometric_mean_token_probability"]["value"] == pytest.approx(gm, abs=1e-9)
    action = ext["action"]
    assert action["value"] == pytest.approx(gm, abs=1e-9)
    expected = "answer" if gm >= 0.8 else "hedge" if gm >= 0.3 else "abstain"
    assert action["action"] == expected
    if expected == "hedge":
        assert action["text"].startswith("I'm not sure, but ")
    # token-level scores colour the text: token_probability is exp(logprob)
    probs = ext["token_scores"]["token_probability"]["values"]
    assert np.allclose(probs, np.exp([t["logprob"] for t in ext["tokens"]]))


def test_chat_logprobs_in_openai_format(chat):
    ext = chat.model_extra["tokentrust"]
    content = chat.choices[0].logprobs.content
    visible = [t for t in ext["tokens"] if not t["special"]]
    assert [c.token for c in content] == [t["token"] for t in visible]
    assert [c.logprob for c in content] == [t["logprob"] for t in visible]
    assert all(len(c.top_logprobs) == 3 for c in content)
    assert content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob
    assert chat.usage.completion_tokens == len(ext["tokens"]) and chat.usage.prompt_tokens > 5


def test_chat_stream_sends_tokens_one_by_one_then_the_scores(client, chat):
    stream = client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=20, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    token_chunks = [c for c in chunks if c.choices and "tokens" in (c.model_extra.get("tokentrust") or {})
                    and "action" not in c.model_extra["tokentrust"]]
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert "".join(pieces) == chat.choices[0].message.content
    assert len(token_chunks) == len(chat.model_extra["tokentrust"]["tokens"])  # one chunk per token
    assert all(len(c.model_extra["tokentrust"]["tokens"]) == 1 for c in token_chunks)
    streamed = [c.model_extra["tokentrust"]["tokens"][0] for c in token_chunks]
    assert [t["logprob"] for t in streamed] == pytest.approx(
        [t["logprob"] for t in chat.model_extra["tokentrust"]["tokens"]], abs=1e-6)
    assert len(final) == 1 and final[0].choices[0].finish_reason == "stop"
    # the streamed trace is generate's bit for bit, so the scores are identical
    assert final[0].model_extra["tokentrust"]["sequence_scores"] == chat.model_extra["tokentrust"]["sequence_scores"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(streamed)


def test_completions_plain_and_streamed(client, backend):
    prompt = "The capital of France is"
    done = client.completions.create(model="default", prompt=prompt, max_tokens=6, logprobs=2)
    ext = done.model_extra["tokentrust"]
    assert done.choices[0].finish_reason == "length" and len(ext["tokens"]) == 6
    assert done.choices[0].logprobs.tokens == [t["token"] for t in ext["tokens"]]
    assert all(len(d) == 2 for d in done.choices[0].logprobs.top_logprobs)
    forced = backend.score(prompt, [t["id"] for t in ext["tokens"]], chat=False)  # raw prompt, no template
    assert np.allclose(forced.logprobs, [t["logprob"] for t in ext["tokens"]], atol=1e-4)
    streamed = list(client.completions.create(model="default", prompt=prompt, max_tokens=6, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == done.choices[0].text
    assert streamed[-1].choices[0].finish_reason == "length"
    assert streamed[-1].model_extra["tokentrust"]["action"] == ext["action"]


def test_estimators_and_policy_chosen_per_request(client):
    r = client.chat.completions.create(
        model="default", messages=MESSAGES, max_tokens=12,
        extra_body={"tokentrust": {"estimators": ["msp", "logprob_quantile:alpha=0.2"],
                                   "policy": {"score": "msp", "hedge_below": 1.0, "abstain_below": 0.0}}},
    )
    ext = r.model_extra["tokentrust"]
    assert set(ext["sequence_scores"]) == {"maximum_sequence_probability", "logprob_quantile(alpha=0.2)"}
    msp = math.exp(sum(t["logprob"] for t in ext["tokens"]))
    assert ext["sequence_scores"]["maximum_sequence_probability"]["value"] == pytest.approx(msp, rel=1e-9)
    assert ext["action"]["score"] == "maximum_sequence_probability" and ext["action"]["action"] == "hedge"
    q = np.quantile([t["logprob"] for t in ext["tokens"]], 0.2)
    assert ext["sequence_scores"]["logprob_quantile(alpha=0.2)"]["value"] == pytest.approx(q, abs=1e-6)
