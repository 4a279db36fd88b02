"""LangChain: ``ChatOpenAI`` under ``with_confidence`` (invoke and stream) against ``tokentrust serve`` and the
llama.cpp server, ``Trace.from_langchain``, and ``ConfidenceCallback`` on a two-step chain. Scores are
checked against sums and means of the log-probs each answer carries, computed here."""

from __future__ import annotations

import asyncio
import warnings
from functools import reduce

import pytest
from _integrations import QUESTION, assert_scores_match
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

import tokentrust as tt
from tokentrust.errors import CapabilityError
from tokentrust.integrations import NoLogprobsWarning
from tokentrust.integrations.langchain import ConfidenceCallback, LowConfidenceError, with_confidence

NAMED = ["msp", "perplexity"]


def metadata_logprobs(message) -> list[float]:
    return [e["logprob"] for e in message.response_metadata["logprobs"]["content"]]


def merged(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    return reduce(lambda a, b: a + b, chunks)


@pytest.fixture(scope="module")
def proxy_model(tt_url):
    return ChatOpenAI(base_url=tt_url, api_key="-", model="any", max_tokens=12, max_retries=0)


@pytest.fixture(scope="module")
def llama_model(llama_server):
    return ChatOpenAI(base_url=llama_server.url, api_key="-", model="smollm2", max_tokens=8, temperature=0,
                      max_retries=0)


def test_invoke_and_stream_through_the_proxy_keep_its_extension(proxy_model):
    llm = with_confidence(proxy_model, estimators=NAMED)
    callback = ConfidenceCallback()
    msg = llm.invoke(QUESTION, config={"callbacks": [callback]})
    result = tt.Annotated.model_validate(msg.response_metadata["tokentrust"])
    assert callback.last == result  # the callback reads the kept extension too
    assert result.trace.text == msg.content and result.trace.has_distribution  # the proxy's trace, not rebuilt
    visible = [lp for lp, special in zip(result.trace.logprobs, result.trace.special, strict=True) if not special]
    assert metadata_logprobs(msg) == pytest.approx(visible, abs=1e-6)  # the same answer the log-probs describe
    assert "mean_token_entropy" in {s.estimator for s in result.sequence_scores}
    assert_scores_match(result, result.trace.logprobs)
    assert tt.Trace.from_langchain(msg).digest == result.trace.digest

    chunks = list(llm.stream(QUESTION))
    full = merged(chunks)
    carrying = [c for c in chunks if "tokentrust" in c.response_metadata]
    assert len(carrying) == 1 and carrying[0].content == ""  # one extra empty chunk at the end
    assert full.content == msg.content
    streamed = tt.Annotated.model_validate(full.response_metadata["tokentrust"])
    assert streamed.trace.text == msg.content
    for s in result.sequence_scores:  # greedy: the same answer, so the same scores
        assert streamed[s.estimator].value == pytest.approx(s.value, abs=1e-6)


def test_invoke_and_stream_from_llama_cpp_are_scored_client_side(llama_model):
    assert llama_model.logprobs is None
    llm = with_confidence(llama_model, estimators=NAMED)
    assert llm.logprobs is True and llm.top_logprobs == 5 and llama_model.logprobs is None  # a copy
    msg = llm.invoke(QUESTION)
    assert isinstance(msg, AIMessage)
    result = tt.Annotated.model_validate(msg.response_metadata["tokentrust"])
    assert not result.trace.has_distribution and result.trace.text == msg.content
    assert result.trace.prompt == [tt.Message(role="user", content=QUESTION)]
    assert_scores_match(result, metadata_logprobs(msg))

    full = merged(list(llm.stream(QUESTION)))
    assert full.content == msg.content
    assert_scores_match(tt.Annotated.model_validate(full.response_metadata["tokentrust"]), metadata_logprobs(full))
    trace = tt.Trace.from_langchain(full)  # from a merged chunk's log-probs
    assert trace.text == full.content and trace.logprobs == pytest.approx(metadata_logprobs(full), abs=1e-12)


def two_step_chain(llm):
    first = ChatPromptTemplate.from_messages([("user", "{question}")])
    second = ChatPromptTemplate.from_messages([("user", "Say this again in French: {answer}")])
    return first | llm | StrOutputParser() | (lambda answer: {"answer": answer}) | second | llm


@pytest.fixture(scope="module")
def chain_run(llama_model):
    callback = ConfidenceCallback(estimators=NAMED)
    out = two_step_chain(llama_model.bind(logprobs=True, top_logprobs=3)).invoke(
        {"question": QUESTION}, config={"callbacks": [callback]})
    return callback, out


def test_callback_scores_every_call_of_a_two_step_chain(chain_run):
    callback, out = chain_run
    assert len(callback.results) == 2
    first, second = callback.results.values()
    assert second.trace.prompt[0].content == f"Say this again in French: {first.trace.text}"
    assert second.trace.text == out.content
    assert_scores_match(second, metadata_logprobs(out))
    assert_scores_match(first, first.trace.logprobs)
    assert callback.last is second
    for result in (first, second):  # default policy: geometric mean thresholds, flagged unless answered
        assert result.decision.probability == pytest.approx(result["geometric_mean_token_probability"].value)
    assert callback.flagged == [rid for rid, r in callback.results.items() if r.decision.action != "answer"]


def test_callback_stops_the_chain_below_the_threshold(chain_run, llama_model):
    first = next(iter(chain_run[0].results.values()))
    callback = ConfidenceCallback(stop_below=min(1.0, first.decision.probability + 1e-6))
    with pytest.raises(LowConfidenceError, match="geometric_mean_token_probability") as err:
        two_step_chain(llama_model.bind(logprobs=True, top_logprobs=3)).invoke(
            {"question": QUESTION}, config={"callbacks": [callback]})
    assert len(callback.results) == 1  # stopped at the first answer: the second call never ran
    assert err.value.result.trace.text == first.trace.text


def test_answer_without_logprobs_passes_through_with_one_warning(llama_model):
    llm = with_confidence(llama_model.model_copy(update={"logprobs": False}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        msg = llm.invoke(QUESTION)
        chunks = list(llm.stream(QUESTION))
    assert msg.content and "tokentrust" not in msg.response_metadata
    assert merged(chunks).content == msg.content and "tokentrust" not in merged(chunks).response_metadata
    ours = [w for w in caught if issubclass(w.category, NoLogprobsWarning)]
    assert len(ours) == 1 and "with_confidence(ChatOpenAI)" in str(ours[0].message)
    with pytest.raises(tt.UserInputError, match="no log-probs"):
        tt.Trace.from_langchain(msg)


def test_bad_choices_are_refused_up_front(llama_model, tmp_path):
    with pytest.raises(CapabilityError, match="semantic_entropy needs"):
        with_confidence(llama_model, estimators=["semantic_entropy"])
    with pytest.raises(tt.UserInputError, match="stop_below"):
        ConfidenceCallback(stop_below=1.5)
    policy = tt.Policy(score="minimum_token_probability", hedge_below=0.6, abstain_below=0.2)
    policy.save(tmp_path / "policy.json")
    assert ConfidenceCallback(policy=tmp_path / "policy.json").policy == policy
    with pytest.raises(tt.UserInputError, match="cannot read policy"):
        ConfidenceCallback(policy=tmp_path)
    tt.Policy(score="mean_token_entropy").save(tmp_path / "entropy.json")  # needs the full distribution
    with pytest.raises(CapabilityError, match="mean_token_entropy needs full_distribution"):
        ConfidenceCallback(policy=str(tmp_path / "entropy.json"))


def test_async_invoke_and_stream(llama_model):
    llm = with_confidence(llama_model, estimators=NAMED)

    async def run():
        msg = await llm.ainvoke(QUESTION)
        chunks = [c async for c in llm.astream(QUESTION)]
        return msg, merged(chunks)

    msg, full = asyncio.run(run())
    assert full.content == msg.content
    for message in (msg, full):
        result = tt.Annotated.model_validate(message.response_metadata["tokentrust"])
        assert result.trace.text == msg.content
        assert_scores_match(result, metadata_logprobs(message))
