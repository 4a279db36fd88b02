"""``serve --upstream`` in front of a server that answers well-formed JSON of the wrong shape.

The upstream answers its capability probes correctly, then garbage: the proxy answers 502 naming the bad
field, streamed or not; a stream whose first chunk is bad is refused before the HTTP 200; a bad chunk after
good ones ends the stream with a clear ``upstream_error`` event, never a numpy message or a 500.
"""

from __future__ import annotations

import copy
import json

import httpx
import pytest
from _shape_server import Shapes, chunk, make_app

from _servers import RunningServer
from tokentrust.backends.openai import OpenAIBackend
from tokentrust.errors import ServerError
from tokentrust.serve import create_app

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def shapes():
    return Shapes()


@pytest.fixture(scope="module")
def shape_upstream(shapes):
    with RunningServer(make_app(shapes)) as srv:
        yield f"{srv.url}/v1"


@pytest.fixture(scope="module")
def proxy(shape_upstream):
    backend = OpenAIBackend.upstream(shape_upstream)
    with RunningServer(create_app(backend)) as srv:
        yield srv
    backend.close()


@pytest.fixture
def armed(shapes):
    def arm(body=None, chunks=None):
        shapes.body, shapes.chunks = body, chunks
    yield arm
    shapes.body = shapes.chunks = None


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert "Traceback" not in r.text and "numpy" not in r.text and "array" not in r.text
    return r.json()["error"]


BAD_BODIES = [
    ({"choices": "nope"}, "choices"),
    ({"choices": ["nope"]}, "choices.0"),
    ({"choices": [{"index": 0, "message": "x"}]}, "message"),
    ({"choices": [{"index": 0, "message": {"content": 5}}]}, "content"),
    ({"choices": [{"index": 0, "message": {"content": "Hi"}, "logprobs": {"content": "nope"}}]},
     "logprobs.content"),
    ({"choices": [{"index": 0, "message": {"content": "Hi"}, "logprobs": {"content": [{"token": "Hi"}]}}]},
     "logprob: Field required"),
    ({"choices": [{"index": 0, "message": {"content": "Hi"},
                   "logprobs": {"content": [{"token": "Hi", "logprob": "low"}]}}]}, "logprob"),
    ({"choices": [{"index": 0, "message": {"content": "Hi"},
                   "logprobs": {"content": [{"token": "Hi", "logprob": -1, "top_logprobs": [3]}]}}]},
     "top_logprobs.0"),
    ({"choices": [{"index": 0, "message": {"content": "Hi"}, "logprobs": {"weird": 1}}]}, "unrecognised"),
    ({"choices": [{"index": 0, "message": {"content": ""}, "logprobs": {"content": []}}]}, "without any token"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_wrong_shapes_are_a_502_naming_the_field(proxy, armed, body, named):
    armed(body=body)
    err = _error(httpx.post(f"{proxy.url}/v1/chat/completions", json=CHAT, timeout=30), 502)
    assert err["type"] == "upstream_error" and named in err["message"]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_a_bad_first_chunk_is_a_502_before_the_stream_starts(proxy, armed, body, named):
    first = copy.deepcopy(body)
    for choice in first["choices"] if isinstance(first["choices"], list) else []:
        if isinstance(choice, dict) and "message" in choice:
            choice["delta"] = choice.pop("message")
    armed(chunks=[first])
    err = _error(httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30), 502)
    assert err["type"] == "upstream_error"
    assert named.replace("message", "delta") in err["message"] or "without any token" in err["message"]


@pytest.mark.parametrize("bad", [{"choices": "nope"}, "{not json", {"error": {"message": "out of memory"}}])
def test_a_bad_chunk_after_good_ones_ends_the_stream_with_a_clear_error(proxy, armed, bad):
    armed(chunks=[chunk("Hel"), chunk("lo"), bad])
    r = httpx.post(f"{proxy.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30)
    assert r.status_code == 200  # tokens were sent: the error comes in-band, as OpenAI does
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    err = json.loads(events[-2])["error"]
    assert err["type"] == "upstream_error" and "numpy" not in err["message"]
    assert any(word in err["message"] for word in ("unexpected format", "unreadable", "mid-stream"))
    texts = [json.loads(e)["choices"][0]["delta"].get("content") for e in events[1:-2]]
    assert texts == ["Hel", "lo"]


def test_the_backend_raises_server_error_not_a_traceback(shape_upstream, armed):
    backend = OpenAIBackend(shape_upstream, "shape-model", max_retries=0)
    try:
        for body, named in BAD_BODIES[:-1]:
            armed(body=body)
            with pytest.raises(ServerError, match="unexpected format|without a list|unrecognised") as info:
                backend.generate("Hi", max_new_tokens=4)
            assert named.split(":")[0] in str(info.value)
    finally:
        backend.close()


def test_probes_of_the_wrong_shape_are_a_server_error(shapes):
    """A server whose very first answer has the wrong shape is named when its capabilities are probed."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict:
        return {"data": [{"id": "m"}]}

    @app.post("/v1/chat/completions")
    async def chat() -> dict:
        return {"choices": "nope"}

    with RunningServer(app) as srv:
        backend = OpenAIBackend(f"{srv.url}/v1", "m", max_retries=0)
        with pytest.raises(ServerError, match=r"chat/completions answered in an unexpected format: .*choices"):
            backend.capabilities  # noqa: B018
        backend.close()
