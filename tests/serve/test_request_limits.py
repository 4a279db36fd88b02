"""What one request may ask of the served model: cost limits, bounded numbers, and requests refused outright.

Every refusal is a 400 (413/415) in OpenAI's error shape naming the parameter, the limit and the requested
value, never a 500, and the keep-alive connection goes on serving. Also here: the run folders the page
serves (reports and metrics only) and the CSRF check on cookie-carrying POSTs.
"""

from __future__ import annotations

import time

import httpx
import pytest

from _servers import RunningServer
from tokentrust.backends.scheduler import scheduler_for
from tokentrust.serve import Limits, create_app
from tokentrust.serve.planning import request_cost

CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _with(**extra) -> dict:
    return {**CHAT, **extra}


def test_too_many_samples_is_refused_before_any_work(server, backend):
    steps = scheduler_for(backend).steps
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("/v1/chat/completions",
                      json=_with(tokentrust={"estimators": ["semantic_entropy:n_samples=1000"]}))
        err = _error(r, 400)
        assert err["code"] == "cost_limit_exceeded" and err["param"] == "tokentrust.estimators"
        assert "n_samples=1000" in err["message"] and "at most 32" in err["message"]
        r = http.post("/v1/chat/completions",
                      json=_with(tokentrust={"estimators": ["lexical_similarity:max_new_tokens=100000"]}))
        err = _error(r, 400)
        assert "max_new_tokens=100000" in err["message"] and "at most 512" in err["message"]
        r = http.post("/v1/chat/completions", json=_with(tokentrust={"estimators": ["p_true:n_brainstorm=99"]}))
        assert "n_brainstorm=99" in _error(r, 400)["message"]
        # the same connection goes on answering
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert scheduler_for(backend).steps - steps <= 4  # only the last request decoded anything


def test_total_tokens_of_all_passes_is_bounded_and_configurable(backend):
    limits = Limits(max_tokens=64, default_max_tokens=16, max_samples=8, max_pass_tokens=100, request_timeout=60)
    spec = "lexical_similarity:n_samples=4"
    # by hand: an answer of 25 tokens, then 4 samples of 25 tokens each: 125 > 100
    assert request_cost([], 25).tokens == 25
    with RunningServer(create_app(backend, limits=limits)) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60,
                       json=_with(max_tokens=25, tokentrust={"estimators": [spec]}))
        err = _error(r, 400)
        assert err["code"] == "cost_limit_exceeded"
        assert "may generate 125 tokens" in err["message"] and "4 extra answers" in err["message"]
        assert "at most 100" in err["message"]
        # 20 tokens and 4 samples of 20: 100 tokens, within the limit
        ok = httpx.post(f"{srv.url}/v1/chat/completions", timeout=120,
                        json=_with(max_tokens=20, tokentrust={"estimators": [spec]}))
        assert ok.status_code == 200, ok.text
        too_many = httpx.post(f"{srv.url}/v1/chat/completions", timeout=60,
                              json=_with(tokentrust={"estimators": ["lexical_similarity:n_samples=9"]}))
        assert "at most 8 samples" in _error(too_many, 400)["message"]


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [("seed", 2**63, "[0, 2**63 - 1]"), ("seed", 2**64 + 5, "[0, 2**63 - 1]"), ("seed", -1, "[0, 2**63 - 1]"),
     ("temperature", 2.5, "[0, 2]"), ("temperature", -0.1, "[0, 2]"), ("top_p", 0, "(0, 1]"),
     ("top_p", 1.5, "(0, 1]"), ("max_tokens", 0, "≥ 1"), ("top_logprobs", 21, "[0, 20]"), ("n", 2, "n=1")],
)
def test_numbers_out_of_range_are_400_naming_the_range_and_the_connection_survives(server, field, value, valid):
    body = _with(**{field: value}, **({"logprobs": True} if field == "top_logprobs" else {}))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        err = _error(http.post("/v1/chat/completions", json=body), 400)
        assert err["param"] == field and err["code"] == "invalid_value"
        assert valid in err["message"] and str(value) in err["message"]
        again = http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 1})  # the same keep-alive connection
        assert again.status_code == 200


def test_nan_and_infinite_numbers_are_refused(server):
    with httpx.Client(base_url=server.url, timeout=60, headers={"Content-Type": "application/json"}) as http:
        for raw in (b'"temperature": NaN', b'"top_p": Infinity', b'"tokentrust": {"policy": {"hedge_below": NaN}}'):
            body = b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], ' + raw + b"}"
            assert _error(http.post("/v1/chat/completions", content=body), 400)["code"] == "invalid_value"


def test_the_largest_valid_seed_is_answered(server):
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                   json=_with(seed=2**63 - 1, temperature=1.0, max_tokens=3))
    assert r.status_code == 200, r.text
    assert r.json()["tokentrust"]["trace"]["config"]["seed"] == 2**63 - 1


@pytest.mark.parametrize("content", ["", "   ", "\n\t", [{"type": "text", "text": " "}]])
def test_an_empty_user_message_is_refused_like_ask(server, content):
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                   json=_with(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": content}]))
    err = _error(r, 400)
    assert err["param"] == "messages.1.content" and "empty" in err["message"]
    r = httpx.post(f"{server.url}/v1/completions", timeout=60, json={"model": "m", "prompt": "  ", "max_tokens": 2})
    assert _error(r, 400)["param"] == "prompt"


def test_a_request_past_its_wall_clock_limit_is_504_and_its_work_stops(backend):
    scheduler = scheduler_for(backend)
    limits = Limits(request_timeout=1.0)
    # a raw prompt the model goes on counting from for all 500 tokens (well over a second on any machine)
    long = {"model": "m", "prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 500}
    with RunningServer(create_app(backend, limits=limits)) as srv:
        start = time.perf_counter()
        r = httpx.post(f"{srv.url}/v1/completions", json=long, timeout=120)
        elapsed = time.perf_counter() - start
        err = _error(r, 504)
        assert err["code"] == "request_timeout" and "limit of 1 s" in err["message"]
        assert elapsed < 10
        streamed = httpx.post(f"{srv.url}/v1/completions", json={**long, "stream": True}, timeout=120)
        assert streamed.status_code == 200  # tokens came before the limit: the error is the last event
        events = [line for line in streamed.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]" and "request_timeout" in events[-2]
    deadline = time.time() + 10
    while scheduler._active and time.time() < deadline:
        time.sleep(0.05)
    assert not scheduler._active  # nothing is decoded for the abandoned answers
    steps = scheduler.steps
    time.sleep(0.3)
    assert scheduler.steps == steps


def test_limits_are_checked_when_made():
    from tokentrust.errors import UserInputError

    with pytest.raises(UserInputError, match="max_samples must be an integer ≥ 1, got 0"):
        Limits(max_samples=0)
    with pytest.raises(UserInputError, match="request_timeout must be > 0 seconds"):
        Limits(request_timeout=-1)


def test_runs_serves_only_reports_and_metrics(backend, tmp_path):
    run = tmp_path / "2026-11-26-capitals"
    run.mkdir()
    (run / "report.html").write_text("<html><body>report</body></html>")
    (run / "metrics.json").write_text('{"roc_auc": 0.71}')
    (run / "items.jsonl").write_text('{"trace": "private"}\n')
    (run / "spec.toml").write_text('dataset = "capitals"\n')
    (run / "traces.html").symlink_to(run / "items.jsonl")
    with RunningServer(create_app(backend, runs_dir=tmp_path)) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.get("/runs/2026-11-26-capitals/report.html").status_code == 200
        assert http.get("/runs/2026-11-26-capitals/metrics.json").json() == {"roc_auc": 0.71}
        for path in ("items.jsonl", "spec.toml", "traces.html", "../2026-11-26-capitals/items.jsonl"):
            err = _error(http.get(f"/runs/2026-11-26-capitals/{path}"), 404)
            assert "report.html, metrics.json" in err["message"]
        _error(http.get("/runs/../../etc/passwd"), 404)


def test_a_cookie_carrying_post_must_be_json(server):
    body = b'{"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}'
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"Cookie": "tt_key=abc"} | ({"Content-Type": kind} if kind else {})
            err = _error(http.post("/v1/chat/completions", content=body, headers=headers), 415)
            assert err["code"] == "unsupported_media_type" and (kind or "none") in err["message"]
        ok = http.post("/v1/chat/completions", content=body,
                       headers={"Cookie": "tt_key=abc", "Content-Type": "application/json; charset=utf-8"})
        assert ok.status_code == 200


def test_request_cost_counts_shared_samples_once():
    from tokentrust.estimators.base import build_estimator
    from tokentrust.serve.planning import Cost

    specs = ["semantic_entropy", "lexical_similarity", "lexical_similarity:n_samples=3,max_new_tokens=7",
             "verbalized", "maximum_sequence_probability"]
    cost = request_cost([build_estimator(s) for s in specs], 20)
    # by hand: the answer (20), 10 samples of 20 shared by the first two, 3 of 7, one verbalized reply of 32
    assert cost == Cost(samples=10 + 3 + 1, tokens=20 + 10 * 20 + 3 * 7 + 32)
