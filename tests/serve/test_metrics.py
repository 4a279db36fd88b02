"""``GET /metrics``: after real requests to the in-process default model, the Prometheus text (parsed with
prometheus-client's own parser) counts exactly what was sent and answered."""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from _servers import API_KEY, RunningServer
from tokentrust.serve import create_app

KEY = {"Authorization": f"Bearer {API_KEY}"}
CHAT = "/v1/chat/completions"


def _chat(question: str, **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": question}], "max_tokens": 4, **extra}


@pytest.fixture(scope="module")
def measured(backend):
    """A metrics server after two chats, one streamed chat, one completion and one refused request; what each
    reply said, and the client-side wall time of all of them."""
    app = create_app(backend, api_key=API_KEY, metrics=True)
    replies, streamed = [], None
    with RunningServer(app) as srv:
        t0 = time.perf_counter()
        for body, path in ((_chat("What is the capital of France?"), CHAT), (_chat("Who wrote Hamlet?"), CHAT),
                           ({"model": "m", "prompt": "The capital of Italy is", "max_tokens": 4}, "/v1/completions")):
            r = httpx.post(srv.url + path, json=body, headers=KEY, timeout=300)
            assert r.status_code == 200
            replies.append(r.json())
        body = _chat("What is 2 + 2?", stream=True, stream_options={"include_usage": True})
        t1 = time.perf_counter()
        with httpx.stream("POST", srv.url + CHAT, json=body, headers=KEY, timeout=300) as r:
            events = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
        streamed = time.perf_counter() - t1
        last = next(e for e in events if e["choices"] and e["choices"][0]["finish_reason"])
        usage = next(e["usage"] for e in events if e.get("usage"))
        replies.append({"tokentrust": last["tokentrust"], "usage": usage})
        bad = httpx.post(srv.url + CHAT, json=_chat("x", max_tokens=0), headers=KEY, timeout=30)
        assert bad.status_code == 400
        wall = time.perf_counter() - t0
        unauthorized = httpx.get(f"{srv.url}/metrics", timeout=10)
        text = httpx.get(f"{srv.url}/metrics", headers=KEY, timeout=10)
    assert unauthorized.status_code == 401 and text.status_code == 200
    assert text.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text.text)}
    return families, replies, wall, streamed, backend.model_id


def _value(families, family: str, sample: str, **labels: str) -> float:
    return sum(s.value for s in families[family].samples
               if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def test_request_counts_and_latency(measured):
    families, _, wall, streamed, model = measured
    req = "tokentrust_requests"
    assert _value(families, req, req + "_total", model=model, route=CHAT, status="200") == 3
    assert _value(families, req, req + "_total", route="/v1/completions", status="200") == 1
    assert _value(families, req, req + "_total", route=CHAT, status="400") == 1
    assert _value(families, req, req + "_total", route="/metrics") == 0  # scraping is not counted
    lat = "tokentrust_request_duration_seconds"
    assert _value(families, lat, lat + "_count") == 5
    assert 0 < _value(families, lat, lat + "_sum") <= wall
    buckets = sorted((float(s.labels["le"]), s.value) for s in families[lat].samples
                     if s.name == lat + "_bucket" and s.labels["route"] == CHAT)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1] == (math.inf, 4)
    ttft = "tokentrust_time_to_first_token_seconds"
    assert _value(families, ttft, ttft + "_count") == 1  # the one streamed answer
    assert 0 < _value(families, ttft, ttft + "_sum") <= streamed


def test_tokens_confidence_and_actions_match_the_replies(measured):
    families, replies, _, _, model = measured
    tok = "tokentrust_tokens"
    for kind in ("prompt", "completion"):
        sent = sum(r["usage"][f"{kind}_tokens"] for r in replies)
        assert _value(families, tok, tok + "_total", model=model, kind=kind) == sent
    decisions = [r["tokentrust"]["decision"] for r in replies]
    conf = "tokentrust_answer_confidence"
    assert _value(families, conf, conf + "_count", model=model, score="geometric_mean_token_probability") == 4
    assert _value(families, conf, conf + "_sum") == pytest.approx(sum(d["probability"] for d in decisions), abs=1e-12)
    below_half = sum(d["probability"] <= 0.5 for d in decisions)
    assert _value(families, conf, conf + "_bucket", le="0.5") == below_half
    act = "tokentrust_decisions"
    for action in ("answer", "hedge", "abstain", "defer"):
        assert _value(families, act, act + "_total", model=model, action=action) == \
            sum(d["action"] == action for d in decisions)


def test_metrics_are_off_by_default(server):
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404
