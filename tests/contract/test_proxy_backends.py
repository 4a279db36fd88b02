"""The confidence proxy over every kind of backend, through the Backend protocol alone.

The same app serves an in-process model (behind the batching scheduler), a llama.cpp server, another
tokentrust server (``serve --upstream``) and recorded traces (``replay:``). For each, a chat answer and its
stream must give an extension that loads as :class:`~tokentrust.Annotated`, streamed token records equal to
the final trace's records, deltas that add up to the answer, a decision, and capabilities reported as the
backend declares them; what a backend cannot give is refused with a 400 before any answer.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from _servers import RunningServer
from tokentrust import Annotated, Capability, Trace, build_estimator
from tokentrust.backends.openai import OpenAIBackend
from tokentrust.backends.replay import RecordingBackend, ReplayBackend
from tokentrust.serve import create_app

QUESTION = "What is the capital of Australia?"
MESSAGES = [{"role": "user", "content": QUESTION}]
KINDS = ("in_process", "llama_cpp", "tokentrust_server", "replay")
DETERMINISTIC = {"in_process", "tokentrust_server", "replay"}  # llama.cpp's quantised numbers vary a little


@pytest.fixture(scope="module", params=KINDS)
def served(request, backend) -> Iterator[tuple[str, object, RunningServer]]:
    kind = request.param
    inner = None
    if kind == "in_process":
        model = backend
    elif kind == "llama_cpp":
        llama = request.getfixturevalue("llama_server")
        model = OpenAIBackend.from_spec(llama.spec, extra_body={"repeat_penalty": 1.0})
    elif kind == "tokentrust_server":
        inner = RunningServer(create_app(backend)).__enter__()
        model = OpenAIBackend.upstream(f"{inner.url}/v1", backend.model_id)
    else:
        recorder = RecordingBackend(backend)
        recorder.generate(MESSAGES, max_new_tokens=16)
        model = recorder.replay()
    with RunningServer(create_app(model)) as srv:
        yield kind, model, srv
    if inner is not None:
        inner.__exit__(None, None, None)


def _chat(srv: RunningServer, **extra: object) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0, timeout=120)
    return client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=16, **extra)


def test_answer_carries_annotated_json(served):
    _, model, srv = served
    r = _chat(srv)
    result = Annotated.model_validate(r.model_extra["tokentrust"])
    assert isinstance(result.trace, Trace) and result.trace.text == r.choices[0].message.content
    assert result.decision is not None and result.decision.action in {"answer", "hedge", "abstain"}
    assert result.decision.score == "geometric_mean_token_probability"
    ids = {s.estimator for s in result.sequence_scores}
    assert {"maximum_sequence_probability", "geometric_mean_token_probability"} <= ids
    assert ("mean_token_entropy" in ids) == (Capability.FULL_DISTRIBUTION in model.capabilities)
    assert r.usage.completion_tokens == len(result.trace)


def test_stream_sends_the_records_of_the_final_trace(served):
    kind, _, srv = served
    chunks = list(_chat(srv, stream=True))
    pieces = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    streamed = [t for c in chunks if c.choices for t in (c.model_extra.get("tokentrust") or {}).get("tokens", [])]
    final = Annotated.model_validate(chunks[-1].model_extra["tokentrust"])
    assert pieces == final.trace.text
    assert streamed == [r.to_payload() for r in final.trace.records()]
    whole = Annotated.model_validate(_chat(srv).model_extra["tokentrust"])
    assert final.trace.text == whole.trace.text
    if kind in DETERMINISTIC:
        assert final.trace.logprobs == pytest.approx(whole.trace.logprobs, abs=1e-6)
        assert final.decision == whole.decision


def test_capabilities_are_reported_and_enforced(served):
    kind, model, srv = served
    info = httpx.get(f"{srv.url}/api/info", timeout=60).json()
    assert info["capabilities"] == sorted(c.value for c in model.capabilities)
    assert info["can_score"] == (Capability.FORCED_SCORING in model.capabilities)
    lacking = [e for e in ("mean_token_entropy", "p_true") if not build_estimator(e).requires <= model.capabilities]
    if not lacking:
        assert kind == "in_process"  # the in-process model gives everything
        return
    r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60,
                   json={"model": "m", "messages": MESSAGES, "tokentrust": {"estimators": lacking}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "estimator_not_supported"


class _NoStreaming(ReplayBackend):
    """Recorded answers from a backend that cannot stream."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities - {Capability.STREAMING}


def test_a_backend_that_cannot_stream_is_asked_to(backend):
    recorder = RecordingBackend(backend)
    recorder.generate(MESSAGES, max_new_tokens=8)
    model = _NoStreaming(recorder.traces)
    with RunningServer(create_app(model)) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60,
                       json={"model": "m", "messages": MESSAGES, "stream": True})
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["code"] == "streaming_not_supported" and "stream=false" in err["message"]
        ok = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60, json={"model": "m", "messages": MESSAGES})
        assert ok.status_code == 200 and Annotated.model_validate(ok.json()["tokentrust"]).decision is not None
        assert httpx.get(f"{srv.url}/api/info", timeout=60).json()["can_stream"] is False
