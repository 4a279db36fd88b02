"""Safety: API key, body size and max_tokens limits, malformed input, unknown fields, upstream down.

Every error is a 4xx/502 in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import httpx
import openai
import pytest

from _servers import API_KEY, RunningServer, closed_port
from tokentrust.serve import create_app

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


def test_api_key_is_required_on_every_api_route(guarded_server):
    url = guarded_server.url
    with httpx.Client(base_url=url, timeout=60) as http:
        for method, path in [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
                             ("GET", "/api/info"), ("GET", "/api/runs"), ("POST", "/api/score"),
                             ("GET", "/runs/2026-11-26-capitals/report.html")]:
            err = _error(http.request(method, path, json=CHAT), 401)
            assert err["code"] == "invalid_api_key"
            wrong = http.request(method, path, json=CHAT, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        assert http.get("/").status_code == 200  # the page itself is public; it asks for the key
        ok = http.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200
        assert http.get("/api/runs", headers={"Cookie": f"tt_key={API_KEY}"}).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    r = good.chat.completions.create(model="m", messages=CHAT["messages"], max_tokens=3)
    assert r.model_extra["tokentrust"]["trace"]["tokens"]


def test_body_size_and_max_tokens_limits(guarded_server):
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=guarded_server.url, headers=auth, timeout=60) as http:
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        assert _error(http.post("/v1/chat/completions", json=big), 413)["code"] == "request_too_large"

        def chunks():  # no Content-Length: counted while reading
            yield b'{"model": "m", "prompt": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        assert _error(http.post("/v1/completions", content=chunks()), 413)["code"] == "request_too_large"
        err = _error(http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 33}), 400)
        assert err["param"] == "max_tokens" and "at most 32" in err["message"]
        err = _error(http.post("/v1/chat/completions", json={**CHAT, "max_completion_tokens": 1000}), 400)
        assert err["param"] == "max_tokens"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (b'{"model": "m"}', "messages", "missing_required_parameter"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "frobnicate": 1}', "frobnicate",
         "unknown_parameter"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi", "mood": "x"}]}', "messages.0.mood",
         "unknown_parameter"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "Hi"}]}', "messages.0.role", "invalid_value"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "temperature": -1}', "temperature",
         "invalid_value"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "n": 3}', "n", "invalid_value"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stop": ["x"]}', "stop", "invalid_value"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tokentrust": {"colour": 1}}',
         "tokentrust.colour", "unknown_parameter"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tokentrust": {"estimators": ["nope"]}}',
         "tokentrust.estimators", "unknown_estimator"),
        ((b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], '
          b'"tokentrust": {"policy": {"score": "perplexity"}}}'), "tokentrust.policy.score", "invalid_value"),
        ((b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], '
          b'"tokentrust": {"policy": {"hedge_below": 0.2, "abstain_below": 0.5}}}'), None, "invalid_value"),
        (b'[' * 100_000 + b']' * 100_000, None, "invalid_json"),
    ],
)
def test_malformed_requests_get_400_in_openai_shape(server, body, param, code):
    r = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"Content-Type": "application/json"},
                   timeout=60)
    err = _error(r, 400)
    assert err["code"] == code and err["param"] == param and err["type"] == "invalid_request_error"


def test_openai_client_sees_bad_request_and_unknown_routes(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="unrecognized request argument supplied: bogus"):
        client.chat.completions.create(model="m", messages=CHAT["messages"], extra_body={"bogus": True})
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model="m", prompt="word " * 9000, max_tokens=2)
    _error(httpx.get(f"{server.url}/v1/nothing-here"), 404)
    _error(httpx.get(f"{server.url}/v1/chat/completions"), 405)


def test_upstream_down_is_a_502_with_a_clear_message():
    from tokentrust.backends.openai import OpenAIBackend

    port = closed_port()
    app = create_app(OpenAIBackend.upstream(f"http://127.0.0.1:{port}/v1", "foo"), name="foo")
    with RunningServer(app) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=CHAT, timeout=60)
        err = _error(r, 502)
        assert f"127.0.0.1:{port}" in err["message"] and "unreachable" in err["message"]
        assert err["type"] == "upstream_error"
        streamed = httpx.post(f"{srv.url}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=60)
        assert _error(streamed, 502)["code"] == "upstream_unavailable"
        client = openai.OpenAI(base_url=f"{srv.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError, match="unreachable"):
            client.completions.create(model="foo", prompt="Hi", max_tokens=2)
        assert httpx.get(f"{srv.url}/v1/models", timeout=10).json()["data"][0]["id"] == "foo"
