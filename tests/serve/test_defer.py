"""``serve --defer-to``: the in-process default model answers, a real llama.cpp server is the large model.

The threshold is forced (``inf``: every answer deferred, ``-inf``: none) so the test knows which model must
answer; which one did is read from the reply: its text and log-probs equal the large model's own answer to the
same request (asked directly), or the small model's (the extension's trace), and the cascade's score equals
the mean token log-prob recomputed here from that trace.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from _cli import run_cli
from _servers import RunningServer, closed_port
from tokentrust import Annotated
from tokentrust.config import GenerationConfig
from tokentrust.decide.cascade import CascadePolicy
from tokentrust.serve import create_app
from tokentrust.serve.cascade import DEFAULT_THRESHOLD, ServeCascade, default_cascade_policy, load_large
from tokentrust.trace import Message, Trace

QUESTION = "What is the capital of France?"
TOKENS = 8
# llama.cpp's log-probs for the same greedy answer move by a few hundredths with its prompt-cache state
LLAMA_ATOL = 0.15
CHAT = {"model": "m", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": TOKENS,
        "logprobs": True, "top_logprobs": 2}


def _app(backend, large: str, threshold: float, **kw):
    return create_app(backend, defer_to=large, cascade_policy=default_cascade_policy(large, threshold), **kw)


@pytest.fixture(scope="module")
def always(backend, llama_server):
    with RunningServer(_app(backend, llama_server.spec, math.inf, metrics=True)) as srv:
        yield srv


@pytest.fixture(scope="module")
def large_answer(llama_server):
    """The large model's own answer to the proxy's request (same settings: greedy, 10 alternatives)."""
    cfg = GenerationConfig(max_new_tokens=TOKENS, temperature=0.0, top_k=10, chat=True)
    return load_large(llama_server.spec).generate([Message(role="user", content=QUESTION)], cfg)


def _sse(url: str, body: dict) -> list[dict]:
    with httpx.stream("POST", url, json={**body, "stream": True}, timeout=300) as r:
        assert r.status_code == 200
        lines = [ln[6:] for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(ln) for ln in lines[:-1]]


def _chow_average(ext: dict) -> float:
    return float(np.mean(Annotated.model_validate(ext).trace.logprobs))


def test_always_defer_returns_the_large_answer_with_the_small_scores(always, large_answer, llama_server):
    r = httpx.post(f"{always.url}/v1/chat/completions", json=CHAT, timeout=300)
    assert r.status_code == 200
    body = r.json()
    ext, content = body["tokentrust"], body["choices"][0]["message"]["content"]
    d = ext["decision"]
    assert d["action"] == "defer" and d["deferred_to"] == llama_server.spec
    assert content == large_answer.text == d["phrase"]
    got = [e["logprob"] for e in body["choices"][0]["logprobs"]["content"]]
    want = [rec.logprob for rec in large_answer.records() if not rec.special]
    shown = Trace.model_validate(d["cascade"]["trace"])  # the reply's log-probs are those of the large trace
    assert got == [rec.logprob for rec in shown.records() if not rec.special]
    assert np.allclose(got, want, atol=LLAMA_ATOL)
    small = Annotated.model_validate(ext)  # the small answer's trace and scores are kept
    assert small.trace.model_id != large_answer.model_id
    own = [rec.logprob for rec in small.trace.records() if not rec.special]
    n = min(len(own), len(got))
    assert not np.allclose(got[:n], own[:n], atol=LLAMA_ATOL)  # the two models' numbers differ
    lps = np.asarray(small.trace.logprobs)
    assert small["geometric_mean_token_probability"].value == pytest.approx(math.exp(lps.mean()), rel=1e-9)
    assert d["probability"] == pytest.approx(math.exp(lps.mean()), rel=1e-9)
    c = d["cascade"]
    assert c["rule"] == "chow_average" and c["deferred"] and c["note"] is None
    assert c["score"] == pytest.approx(_chow_average(ext), abs=1e-12)
    assert c["trace"]["text"] == content
    assert body["usage"]["completion_tokens"] == len(large_answer)


def _metrics(url: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text)}


def _counter(families: dict, name: str, **labels: str) -> float:
    return sum(s.value for s in families[name].samples
               if s.name == name + "_total" and all(s.labels.get(k) == v for k, v in labels.items()))


def test_always_defer_streams_the_large_answer(always, large_answer, llama_server):
    before = _metrics(always.url)
    events = _sse(f"{always.url}/v1/chat/completions", CHAT)
    tokens = [e for e in events if e["choices"] and "tokens" in (e.get("tokentrust") or {})]
    last = next(e for e in events if e["choices"] and e["choices"][0]["finish_reason"])
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == large_answer.text
    streamed = [e["tokentrust"]["tokens"][0]["logprob"] for e in tokens]
    assert streamed == last["tokentrust"]["decision"]["cascade"]["trace"]["logprobs"][:len(streamed)]
    assert np.allclose(streamed, large_answer.logprobs[:len(streamed)], atol=LLAMA_ATOL)
    d = last["tokentrust"]["decision"]
    assert d["action"] == "defer" and d["deferred_to"] == llama_server.spec
    assert d["cascade"]["score"] == pytest.approx(_chow_average(last["tokentrust"]), abs=1e-12)
    after = _metrics(always.url)  # the deferral is counted, and the large model's tokens under its name
    for action in ("answer", "hedge", "abstain", "defer"):
        grew = _counter(after, "tokentrust_decisions", action=action) - _counter(before, "tokentrust_decisions",
                                                                                  action=action)
        assert grew == (action == "defer")
    large = {"model": llama_server.spec, "kind": "completion"}
    assert (_counter(after, "tokentrust_tokens", **large) - _counter(before, "tokentrust_tokens", **large)
            == len(large_answer))


def test_never_defer_returns_the_small_answer(backend, llama_server):
    """A cascade policy alone (its large model, its rule: chow_sum) that never defers."""
    body = {"model": "m", "prompt": "The capital of France is", "max_tokens": TOKENS}
    policy = CascadePolicy(rule="chow_sum", threshold=-math.inf, large=llama_server.spec)
    with RunningServer(create_app(backend, cascade_policy=policy)) as srv:
        assert srv.app.state.tt.cascade.name == llama_server.spec
        r = httpx.post(f"{srv.url}/v1/completions", json=body, timeout=300).json()
    ext = r["tokentrust"]
    small = Annotated.model_validate(ext)
    assert r["choices"][0]["text"] == small.trace.text
    assert small.trace.model_id == backend.model_id
    d = ext["decision"]
    assert d["action"] in ("answer", "hedge", "abstain") and d["deferred_to"] is None
    assert not d["cascade"]["deferred"] and d["cascade"]["trace"] is None and d["cascade"]["rule"] == "chow_sum"
    assert d["cascade"]["score"] == pytest.approx(float(np.sum(small.trace.logprobs)), abs=1e-12)


def test_large_model_down_keeps_the_small_answer_with_a_note(backend):
    dead = f"openai:http://127.0.0.1:{closed_port()}/v1#big"
    with RunningServer(_app(backend, dead, math.inf)) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=CHAT, timeout=300)
        events = _sse(f"{srv.url}/v1/chat/completions", CHAT)
    assert r.status_code == 200
    body = r.json()
    d = body["tokentrust"]["decision"]
    assert body["choices"][0]["message"]["content"] == Annotated.model_validate(body["tokentrust"]).trace.text
    assert d["action"] != "defer" and d["deferred_to"] is None and not d["cascade"]["deferred"]
    assert dead in d["cascade"]["note"] and "unreachable" in d["cascade"]["note"]
    last = events[-1] if events[-1]["choices"] else events[-2]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == body["choices"][0]["message"]["content"]
    assert dead in last["tokentrust"]["decision"]["cascade"]["note"]


def test_policy_file_rule_and_threshold_decide_at_the_boundary(capital_trace, llama_server, tmp_path):
    """A saved chow_quantile policy: an answer scoring exactly the threshold is kept, one ulp above defers."""
    from tokentrust.annotated import annotate

    answer = annotate(capital_trace, ["geometric_mean_token_probability"]).decided()
    q = float(np.quantile(np.asarray(capital_trace.logprobs), 0.1))  # hand-computed Chow-Quantile-0.1
    for threshold, deferred in ((q, False), (math.nextafter(q, math.inf), True)):
        path = CascadePolicy(rule="chow_quantile:alpha=0.1", threshold=threshold, large="x").save(tmp_path / "p.json")
        check = ServeCascade.create(llama_server.spec, CascadePolicy.load(path)).check(answer)
        assert check.score == q and check.deferred is deferred and check.large == llama_server.spec


def test_default_rule_and_bad_input(capsys, tmp_path):
    assert default_cascade_policy("x").threshold == DEFAULT_THRESHOLD == math.log(0.8)
    code, _, err = run_cli(capsys, "serve", "--defer-below", "-0.5")
    assert code == 2 and "--defer-below needs --defer-to" in err
    bad = tmp_path / "policy.json"
    bad.write_text("{not json")
    code, _, err = run_cli(capsys, "serve", "--cascade-policy", str(bad))
    assert code == 2 and "not a cascade policy" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "serve", "--cascade-policy", str(bad), "--defer-to", "x", "--defer-below", "0")
    assert code == 2 and "not both" in err


def test_serve_process_defers_and_serves_metrics_behind_the_key(llama_server, tmp_path: Path):
    """The command as a user runs it (upstream mode: no model load); the large model is the same server."""
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokentrust", "serve", "--upstream", llama_server.url, "--upstream-model", "smollm2",
         "--defer-to", llama_server.spec, "--defer-below", "inf", "--metrics", "--port", str(port),
         "--runs", str(tmp_path)],
        env={**os.environ, "TOKENTRUST_API_KEY": "k1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url, key = f"http://127.0.0.1:{port}", {"Authorization": "Bearer k1"}
    try:
        deadline = time.time() + 90
        while True:
            try:
                httpx.get(f"{url}/v1/models", headers=key, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        r = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=key, timeout=300).json()
        assert r["tokentrust"]["decision"]["action"] == "defer"
        assert r["tokentrust"]["decision"]["deferred_to"] == llama_server.spec
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        m = httpx.get(f"{url}/metrics", headers=key, timeout=10)
        assert m.status_code == 200
        from prometheus_client.parser import text_string_to_metric_families

        families = {f.name: f for f in text_string_to_metric_families(m.text)}
        assert _counter(families, "tokentrust_decisions", action="defer", model="smollm2") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_page_says_whose_answer_a_deferred_reply_is(always, large_answer):
    """The page colours the served model's answer (the one the scores describe) and says the reply is the
    large model's, naming it and the rule's score against its threshold."""
    from _browser import chromium

    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(always.url + "/")
        page.wait_for_selector("#policy-score option", state="attached")
        page.fill("#question", QUESTION)
        page.fill("#max-tokens", str(TOKENS))
        page.click("#go")
        page.wait_for_selector("#action[data-action='defer']", timeout=120_000)
        note = page.inner_text("#action .cascade")
        phrase = page.inner_text("#action .phrase")
    assert not errors, errors
    assert note.startswith("deferred to openai:") and "chow_average" in note and "the coloured tokens" in note
    assert phrase == large_answer.text.strip()  # the reply's phrase is the large model's answer
