"""``tokentrust serve`` as a user runs it: a real process bound to 127.0.0.1 (upstream mode: no model load)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from _servers import closed_port

CLI = [sys.executable, "-m", "tokentrust"]


def test_serve_upstream_process_binds_loopback_checks_key_and_reports_502(tmp_path: Path):
    port, dead = closed_port(), closed_port()
    env = {**os.environ, "TOKENTRUST_API_KEY": "k1"}
    proc = subprocess.Popen(
        [*CLI, "serve", "--upstream", f"http://127.0.0.1:{dead}/v1", "--upstream-model", "foo", "--port", str(port),
         "--runs", str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer k1"}, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert r.json()["data"][0]["id"] == "foo"
        assert httpx.get(f"{url}/v1/models", timeout=5).status_code == 401
        chat = {"model": "foo", "messages": [{"role": "user", "content": "Hi"}]}
        r = httpx.post(f"{url}/v1/chat/completions", json=chat, headers={"Authorization": "Bearer k1"}, timeout=30)
        assert r.status_code == 502 and "unreachable" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/", timeout=5).status_code == 200
        # bound to loopback only: the listening socket is 127.0.0.1, not 0.0.0.0
        listening = Path("/proc/net/tcp").read_text()
        assert f"0100007F:{port:04X}" in listening and f"00000000:{port:04X}" not in listening
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_serve_refuses_bad_combinations():
    r = subprocess.run([*CLI, "serve", "--model", "x", "--upstream", "http://127.0.0.1:1/v1"],
                       check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not both" in r.stderr
    r = subprocess.run([*CLI, "serve", "--upstream", f"http://127.0.0.1:{closed_port()}/v1"],
                       check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--upstream-model" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*CLI, "serve", "--upstream", "http://127.0.0.1:1/v1", "--upstream-model", "m",
                        "--policy-score", "perplexity"], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "sequence-level probability" in r.stderr
