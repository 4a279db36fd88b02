"""``tt.openai.wrap``: the official SDK, sync and async, streamed and not, against ``tokentrust serve`` (its
extension kept) and the llama.cpp server (scored client-side from log-probs). Scores are checked against
sums and means of the log-probs the server sent, computed here."""

from __future__ import annotations

import asyncio
import warnings

import openai
import pytest
from _integrations import QUESTION, assert_scores_match

import tokentrust as tt
from tokentrust.errors import CapabilityError
from tokentrust.integrations import NoLogprobsWarning

MESSAGES = [{"role": "user", "content": QUESTION}]
NAMED = ["msp", "perplexity", "minimum_token_probability"]


def chat_logprobs(choice_logprobs) -> list[float]:
    return [e.logprob for e in choice_logprobs.content]


def test_chat_through_the_proxy_keeps_its_extension(tt_url):
    client = tt.openai.wrap(openai.OpenAI(base_url=tt_url, api_key="-", max_retries=0), estimators=NAMED)
    reply = client.chat.completions.create(model="any", messages=MESSAGES, max_tokens=12)
    result = reply.tokentrust
    assert isinstance(result, tt.Annotated) and result.trace.text == reply.choices[0].message.content
    # the wrapper asked for log-probs (the caller did not), and they are the trace's visible tokens
    assert reply.choices[0].logprobs is not None and len(reply.choices[0].logprobs.content[0].top_logprobs) == 5
    visible = [lp for lp, special in zip(result.trace.logprobs, result.trace.special, strict=True) if not special]
    assert chat_logprobs(reply.choices[0].logprobs) == pytest.approx(visible, abs=1e-6)
    # the proxy's own result: full distribution (entropy), its decision, and the end-of-turn token scored
    assert result.trace.has_distribution and result.trace.special[-1]
    assert result["mean_token_entropy"].value < 0 and result.decision is not None
    assert_scores_match(result, result.trace.logprobs)


def test_chat_stream_scored_client_side_from_llama_cpp(llama_server):
    client = tt.openai.wrap(openai.OpenAI(base_url=llama_server.url, api_key="-", max_retries=0), estimators=NAMED)
    stream = client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=12, temperature=0,
                                            stream=True)
    chunks = list(stream)
    assert stream.tokentrust is not None  # set once the stream ended
    assert all(isinstance(c, openai.types.chat.ChatCompletionChunk) for c in chunks)  # passed through unchanged
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    logprobs = [e.logprob for c in chunks if c.choices and c.choices[0].logprobs
                for e in c.choices[0].logprobs.content]
    result = stream.tokentrust
    assert result.trace.text == text and not result.trace.has_distribution
    assert result.trace.top_k == 5
    assert_scores_match(result, logprobs)
    assert {s.estimator for s in result.sequence_scores} == {
        "maximum_sequence_probability", "perplexity", "minimum_token_probability",
        "geometric_mean_token_probability"}  # the named scores and the default policy's
    assert result.decision.probability == pytest.approx(result["geometric_mean_token_probability"].value)


def test_async_completions_and_async_stream(llama_server, tt_url):
    async def run():
        local = tt.openai.wrap(openai.AsyncOpenAI(base_url=llama_server.url, api_key="-", max_retries=0))
        reply = await local.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=6,
                                               temperature=0)
        proxy = tt.openai.wrap(openai.AsyncOpenAI(base_url=tt_url, api_key="-", max_retries=0), estimators=NAMED)
        stream = await proxy.chat.completions.create(model="any", messages=MESSAGES, max_tokens=12, stream=True)
        async with stream:
            chunks = [c async for c in stream]
        return reply, stream, chunks

    reply, stream, chunks = asyncio.run(run())
    result = reply.tokentrust
    assert result.trace.text == reply.choices[0].text and not result.trace.config.chat
    assert_scores_match(result, reply.choices[0].logprobs.token_logprobs)
    streamed = stream.tokentrust  # the proxy's final chunk carries its whole result
    assert streamed.trace.text == "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed.trace.has_distribution
    assert_scores_match(streamed, streamed.trace.logprobs)


def test_no_logprobs_warns_once_and_passes_the_reply_through(llama_server):
    client = tt.openai.wrap(openai.OpenAI(base_url=llama_server.url, api_key="-", max_retries=0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replies = [client.chat.completions.create(model="smollm2", messages=MESSAGES, max_tokens=3, temperature=0,
                                                  logprobs=False) for _ in range(2)]
    assert [r.tokentrust for r in replies] == [None, None]
    assert all(r.choices[0].message.content for r in replies)
    ours = [w for w in caught if issubclass(w.category, NoLogprobsWarning)]
    assert len(ours) == 1 and "no log-probs" in str(ours[0].message)


def test_scores_log_probs_cannot_give_are_refused_up_front():
    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="-")
    with pytest.raises(CapabilityError, match="mean_token_entropy needs full_distribution"):
        tt.openai.wrap(client, estimators=["mean_token_entropy"])
    with pytest.raises(CapabilityError, match="semantic_entropy needs .*sampling"):
        tt.openai.wrap(client, estimators=["semantic_entropy"])
