"""A request may use only the models the server was started with: an estimator parameter naming another model
(``claims=llm:model=…``, ``similarity=nli:…`` / ``embedding:…``) is a 400 before any work. Otherwise any client
could make the server load a model folder of its choosing, or post to a URL of its choosing with the server's
``OPENAI_API_KEY`` and read the reply in the error."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

CHAT = {"model": "m", "messages": [{"role": "user", "content": "What is the capital of France and its size?"}],
        "max_tokens": 16}


@pytest.fixture
def listener():
    """A loopback port that records every connection made to it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    seen: list[bytes] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(4096))
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1], seen
    done.set()
    thread.join(timeout=2)
    sock.close()


@pytest.mark.parametrize("spec", [
    "ccp:claims=llm:model=openai:http://127.0.0.1:{port}/v1#other",
    "claim_probability:claims=llm:model=openai:http://127.0.0.1:{port}/v1#other",
    "semantic_entropy:n_samples=2,similarity=nli:{folder}",
    "lexical_similarity:n_samples=2",  # accepted: no model named
    "eccentricity:n_samples=2,similarity=embedding:{folder}",
    "ccp:claims=llm:model={folder}",
])
def test_an_estimator_naming_another_model_is_refused(server, listener, tmp_path, spec):
    port, seen = listener
    spec = spec.format(port=port, folder=tmp_path)
    with httpx.Client(base_url=server.url, timeout=120) as http:
        r = http.post("/v1/chat/completions", json={**CHAT, "tokentrust": {"estimators": [spec]}})
        if spec.startswith("lexical_similarity"):
            assert r.status_code == 200, r.text[:300]
            return
        assert r.status_code == 400, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == "model_not_allowed" and err["param"] == "tokentrust.estimators"
        assert "model" in err["message"] and "this server" in err["message"]
        assert str(port) in err["message"] or str(tmp_path) in err["message"]  # names the value asked for
        scored = http.post("/api/score", json={"prompt": "Hi", "answer": "Hello.",
                                               "tokentrust": {"estimators": [spec]}})
        assert scored.status_code == 400 and scored.json()["error"]["code"] == "model_not_allowed"
    assert seen == []  # nothing was sent to the other address
