"""``tokentrust bytes``, ``score --byte-level`` and ``ask --ensemble`` run end to end."""

from __future__ import annotations

import json

from _cli import run_cli


def test_bytes_command(capsys, backend):
    code, out, _ = run_cli(capsys, "bytes", "def fib(n):\\n    retu", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["text"] == "def fib(n):\n    retu" and data["next"][0]["value"] == "r"
    assert data["next"][0]["probability"] > 0.9
    code, out, _ = run_cli(capsys, "bytes", "caf\\xc3", "--unit", "byte", "--json")
    assert code == 0 and abs(sum(r["probability"] for r in json.loads(out)["next"]) - 1) < 0.05


def test_bytes_bad_input(capsys, backend):
    code, _, err = run_cli(capsys, "bytes", "caf\\xc3", "--unit", "char")
    assert code == 2 and "UTF-8" in err and "--unit byte" in err
    code, _, err = run_cli(capsys, "bytes", "x", "--model", "openai:http://127.0.0.1:9/v1#m")
    assert code == 2 and "whole vocabulary" in err


def test_score_byte_level(capsys, backend):
    code, out, _ = run_cli(capsys, "score", "--prompt", "Capital of France?", "--answer", "Paris", "--byte-level",
                           "--json")
    assert code == 0
    trace = json.loads(out)["trace"]
    assert trace["tokens"] == ["P", "a", "r", "i", "s", "<end>"]


def test_ask_ensemble(capsys, backend, toy_dirs):
    code, out, _ = run_cli(capsys, "ask", "Say hi", "--ensemble", "default", "--ensemble", toy_dirs["toy"], "-n", "2",
                           "--json")
    assert code == 0
    assert json.loads(out)["trace"]["model_id"].startswith("bytes:ensemble(")
    code, _, err = run_cli(capsys, "ask", "Say hi", "--ensemble", "default", "--ensemble", toy_dirs["lower"])
    assert code == 2 and "lower" in err and "spell" in err
