"""The official openai client against a running server: chat and completions, streamed and not.

The ``tokentrust`` extension is ``Annotated``'s own JSON (trace, scores, decision) and must agree with the
library on the same text: teacher-forcing the answer with ``backend.score`` (what ``tokentrust score``
runs) gives the same log-probs within 1e-4, and the sequence scores equal those of ``annotate`` on that trace.
"""

from __future__ import annotations

import math

import numpy as np
import openai
import pytest

from tokentrust import Annotated, Level, annotate
from tokentrust.annotated import DEFAULT_ESTIMATORS

QUESTION = "What is the capital of Australia?"
MESSAGES = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)


def sequence_scores(ext: dict) -> dict[str, dict]:
    return {s["estimator"]: s for s in ext["scores"] if s["level"] == "sequence"}


@pytest.fixture(scope="module")
def chat(client):
    return client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=20, logprobs=True,
                                          top_logprobs=3)


def test_models_lists_the_served_model(client, backend):
    assert [m.id for m in client.models.list()] == [backend.model_id]
    assert client.models.retrieve(backend.model_id).id == backend.model_id


def test_chat_answer_and_extension_agree_with_teacher_forced_scoring(chat, backend):
    ext = chat.model_extra["tokentrust"]
    result = Annotated.model_validate(ext)  # the extension loads back with the library
    trace = result.trace
    text = chat.choices[0].message.content
    assert text == trace.text and chat.choices[0].finish_reason == "stop"
    assert "".join(r.text for r in trace.records()) == text
    assert trace.special[-1]  # the end-of-turn token is scored too
    # what `tokentrust score --prompt Q --answer A` computes, on the same text
    forced = backend.score(QUESTION, text)
    assert forced.token_ids == trace.token_ids
    assert np.allclose(forced.logprobs, trace.logprobs, atol=1e-4)
    assert np.allclose(forced.entropy, trace.entropy, atol=1e-4)
    scored = annotate(forced, list(DEFAULT_ESTIMATORS) + ["geometric_mean_token_probability"])
    assert {s.estimator for s in result.sequence_scores} == {s.estimator for s in scored.sequence_scores}
    for s in scored.sequence_scores:
        assert result[s.estimator].value == pytest.approx(s.value, abs=1e-4)
    # independent arithmetic: geometric mean of the token probabilities, and the policy's verdict
    gm = math.exp(np.mean(trace.logprobs))
    assert sequence_scores(ext)["geometric_mean_token_probability"]["values"][0] == pytest.approx(gm, abs=1e-9)
    decision = ext["decision"]
    assert decision["value"] == pytest.approx(gm, abs=1e-9)
    expected = "answer" if gm >= 0.8 else "hedge" if gm >= 0.3 else "abstain"
    assert decision["action"] == expected == result.decision.action
    if expected == "hedge":
        assert decision["text"].startswith("I'm not sure, but ")
    # token-level scores colour the text: token_probability is exp(logprob)
    probs = result["token_probability"]
    assert probs.level is Level.TOKEN and np.allclose(probs.values, np.exp(trace.logprobs))


def test_chat_logprobs_in_openai_format(chat, backend):
    trace = Annotated.model_validate(chat.model_extra["tokentrust"]).trace
    content = chat.choices[0].logprobs.content
    visible = [r for r in trace.records() if not r.special]
    assert [c.token for c in content] == [r.token for r in visible]
    assert [c.logprob for c in content] == [r.logprob for r in visible]
    assert all(len(c.top_logprobs) == 3 for c in content)
    assert content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob
    assert chat.usage.completion_tokens == len(trace)
    assert chat.usage.prompt_tokens == trace.prompt_tokens == backend.render(MESSAGES).n_tokens


def test_chat_stream_sends_tokens_one_by_one_then_the_scores(client, chat):
    stream = client.chat.completions.create(model="default", messages=MESSAGES, max_tokens=20, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    token_chunks = [c for c in chunks if c.choices and "tokens" in (c.model_extra.get("tokentrust") or {})]
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    whole = Annotated.model_validate(chat.model_extra["tokentrust"])
    assert "".join(pieces) == whole.trace.text
    assert len(token_chunks) == len(whole.trace)  # one chunk per token
    assert all(len(c.model_extra["tokentrust"]["tokens"]) == 1 for c in token_chunks)
    streamed = [c.model_extra["tokentrust"]["tokens"][0] for c in token_chunks]
    assert [c.choices[0].delta.content for c in token_chunks] == [t["text"] for t in streamed]
    assert len(final) == 1 and final[0].choices[0].finish_reason == "stop"
    last = Annotated.model_validate(final[0].model_extra["tokentrust"])
    # one token record everywhere: what was streamed is the final trace's records, which are generate's
    assert streamed == [r.to_payload() for r in last.trace.records()]
    assert last.trace.digest == whole.trace.digest and last.scores == whole.scores
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == len(streamed)


def test_completions_plain_and_streamed(client, backend):
    prompt = "The capital of France is"
    done = client.completions.create(model="default", prompt=prompt, max_tokens=6, logprobs=2)
    trace = Annotated.model_validate(done.model_extra["tokentrust"]).trace
    assert done.choices[0].finish_reason == "length" and len(trace) == 6
    assert done.choices[0].logprobs.tokens == trace.tokens
    assert all(len(d) == 2 for d in done.choices[0].logprobs.top_logprobs)
    forced = backend.score(prompt, trace.token_ids, chat=False)  # raw prompt, no template
    assert np.allclose(forced.logprobs, trace.logprobs, atol=1e-4)
    streamed = list(client.completions.create(model="default", prompt=prompt, max_tokens=6, stream=True))
    assert "".join(c.choices[0].text for c in streamed) == done.choices[0].text
    assert streamed[-1].choices[0].finish_reason == "length"
    assert streamed[-1].model_extra["tokentrust"]["decision"] == done.model_extra["tokentrust"]["decision"]


def test_estimators_and_policy_chosen_per_request(client):
    r = client.chat.completions.create(
        model="default", messages=MESSAGES, max_tokens=12,
        extra_body={"tokentrust": {"estimators": ["msp", "logprob_quantile:alpha=0.2"],
                                   "policy": {"score": "msp", "hedge_below": 1.0, "abstain_below": 0.0}}},
    )
    ext = r.model_extra["tokentrust"]
    result = Annotated.model_validate(ext)
    assert set(sequence_scores(ext)) == {"maximum_sequence_probability", "logprob_quantile(alpha=0.2)"}
    msp = math.exp(sum(result.trace.logprobs))
    assert result["msp"].value == pytest.approx(msp, rel=1e-9)
    assert ext["decision"]["score"] == "maximum_sequence_probability" and ext["decision"]["action"] == "hedge"
    q = np.quantile(result.trace.logprobs, 0.2)
    assert result["logprob_quantile(alpha=0.2)"].value == pytest.approx(q, abs=1e-6)
