"""LlamaIndex: its OpenAI LLM class against ``tokentrust serve`` (the proxy's result kept) and llama.cpp
(scored from log-probs), by ``score_response`` and by ``ConfidenceHandler`` on the instrumentation bus."""

from __future__ import annotations

import warnings

import pytest
from _integrations import QUESTION, assert_scores_match
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.llms import ChatMessage
from llama_index.llms.openai import OpenAI

from tokentrust.integrations import NoLogprobsWarning
from tokentrust.integrations.llamaindex import ConfidenceHandler, score_response

# LlamaIndex's OpenAI class only takes model names it knows; the servers here answer whatever the name.
MODEL = "gpt-4o-mini"


def test_score_response_keeps_the_proxy_result(tt_url):
    llm = OpenAI(model=MODEL, api_base=tt_url, api_key="-", logprobs=True, top_logprobs=3, max_tokens=12,
                 max_retries=0)
    reply = llm.chat([ChatMessage(role="user", content=QUESTION)])
    result = score_response(reply, estimators=["msp", "perplexity"])
    assert result.trace.text == reply.message.content and result.trace.has_distribution
    visible = [lp for lp, special in zip(result.trace.logprobs, result.trace.special, strict=True) if not special]
    assert [e.logprob for e in reply.raw.choices[0].logprobs.content] == pytest.approx(visible, abs=1e-6)
    assert_scores_match(result, result.trace.logprobs)


def test_handler_scores_calls_from_llama_cpp(llama_server):
    handler = ConfidenceHandler(estimators=["msp", "perplexity"])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    try:
        llm = OpenAI(model=MODEL, api_base=llama_server.url, api_key="-", logprobs=True, top_logprobs=3,
                     max_tokens=12, temperature=0, max_retries=0)
        reply = llm.chat([ChatMessage(role="user", content=QUESTION)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            streamed = list(llm.stream_chat([ChatMessage(role="user", content=QUESTION)]))
    finally:
        dispatcher.event_handlers.remove(handler)
    assert len(handler.results) == 1  # the streamed call passes through unscored
    result = next(iter(handler.results.values()))
    assert result.trace.text == reply.message.content == streamed[-1].message.content
    assert result.trace.prompt[0].content == QUESTION and not result.trace.has_distribution
    assert_scores_match(result, [e.logprob for e in reply.raw.choices[0].logprobs.content])
    assert len([w for w in caught if issubclass(w.category, NoLogprobsWarning)]) == 1
