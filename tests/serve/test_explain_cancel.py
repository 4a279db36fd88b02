"""`/api/explain` under abuse: a 504 past the wall-clock limit whose attribution work then stops, so the next
request is answered at once (the model is shared by every client); integrated gradients' path points bounded
before any work (their quadrature nodes cost steps³ time and steps² memory)."""

from __future__ import annotations

import time

import httpx
import pytest

from _servers import RunningServer
from tokentrust.attribution import make_attributor
from tokentrust.attribution.gradients import MAX_STEPS
from tokentrust.errors import UserInputError
from tokentrust.serve import Limits, create_app

LIMIT = 3.0
QUICK = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
EXPLAIN = {"prompt": "Answer in one word. What is the capital of Australia?", "answer": "Canberra."}


def test_integrated_gradients_steps_are_bounded():
    assert make_attributor(f"integrated_gradients:steps={MAX_STEPS}").steps == MAX_STEPS
    with pytest.raises(UserInputError, match=rf"steps must be an integer >= 1 and <= {MAX_STEPS} .*got 4000"):
        make_attributor("integrated_gradients:steps=4000")


def test_an_explain_past_its_limit_is_504_and_frees_the_model(backend):
    with RunningServer(create_app(backend, limits=Limits(request_timeout=LIMIT))) as srv:
        refused = httpx.post(f"{srv.url}/api/explain", json={**EXPLAIN, "method": "integrated_gradients:steps=4000"},
                             timeout=60)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "method"
        start = time.perf_counter()
        heavy = {**EXPLAIN, "method": f"integrated_gradients:steps={MAX_STEPS}"}  # far more than LIMIT s of passes
        r = httpx.post(f"{srv.url}/api/explain", json=heavy, timeout=120)
        assert r.status_code == 504, r.text[:300]
        assert r.json()["error"]["code"] == "request_timeout"
        assert time.perf_counter() - start < LIMIT + 5
        start = time.perf_counter()
        after = httpx.post(f"{srv.url}/v1/chat/completions", json=QUICK, timeout=120)
        assert after.status_code == 200, after.text[:300]  # before: 504, the model still busy with the explain
        assert time.perf_counter() - start < LIMIT
