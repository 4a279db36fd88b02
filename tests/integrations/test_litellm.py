"""LiteLLM: ``ConfidenceLogger`` on completions routed to ``tokentrust serve`` (``openai/<name>`` with
``api_base``), through LiteLLM's own sync and async success hooks; the scores are logged with each call."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from _integrations import QUESTION, assert_scores_match

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download of the price list at import
import litellm
from litellm.integrations.custom_logger import CustomLogger

from tokentrust.integrations.litellm import ConfidenceLogger

MESSAGES = [{"role": "user", "content": QUESTION}]


class MetadataRecorder(CustomLogger):
    """A logger registered after ours: what it sees in the standard logging payload is what gets logged."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, dict] = {}

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.seen[kwargs["litellm_call_id"]] = kwargs["standard_logging_object"]["metadata"].get("tokentrust")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.log_success_event(kwargs, response_obj, start_time, end_time)


@pytest.fixture
def loggers():
    logger, recorder = ConfidenceLogger(estimators=["msp", "perplexity"]), MetadataRecorder()
    saved = litellm.callbacks
    litellm.callbacks = [logger, recorder]
    yield logger, recorder
    litellm.callbacks = saved


def wait_for(results: dict, n: int) -> None:
    deadline = time.time() + 30  # LiteLLM runs sync success hooks on a background thread
    while len(results) < n and time.time() < deadline:
        time.sleep(0.05)
    assert len(results) >= n


def check(reply, logger, recorder) -> None:
    call_id = reply._hidden_params["litellm_call_id"]
    wait_for(recorder.seen, 1)
    result = logger.results[call_id]
    assert result.trace.text == reply.choices[0].message.content
    # the proxy's own result is kept (LiteLLM keeps the extension); its visible tokens are the reply's log-probs
    visible = [lp for lp, special in zip(result.trace.logprobs, result.trace.special, strict=True) if not special]
    assert [e.logprob for e in reply.choices[0].logprobs.content] == pytest.approx(visible, abs=1e-6)
    assert_scores_match(result, result.trace.logprobs)
    logged = recorder.seen[call_id]
    assert logged["scores"]["maximum_sequence_probability"] == result["msp"].value
    assert logged["decision"]["action"] == result.decision.action


def test_logger_scores_sync_and_async_completions(tt_url, loggers):
    logger, recorder = loggers
    common = {"model": "openai/any", "api_base": tt_url, "api_key": "-", "messages": MESSAGES, "max_tokens": 12,
              "logprobs": True, "top_logprobs": 3}
    check(litellm.completion(**common), logger, recorder)
    recorder.seen.clear()

    async def run():
        reply = await litellm.acompletion(**common)
        await asyncio.sleep(0)
        deadline = time.time() + 30
        while not recorder.seen and time.time() < deadline:
            await asyncio.sleep(0.05)
        return reply

    check(asyncio.run(run()), logger, recorder)
    assert len(logger.results) == 2
