"""The generation cache (SQLite) and the append-only item log: keys, persistence, torn writes, kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from _bench_helpers import make_trace

from tokentrust import GenerationConfig, Trace
from tokentrust.bench.store import GenerationCache, ItemLog, canonical_json

CFG = GenerationConfig(max_new_tokens=24)


def test_cache_round_trip_and_keys(tmp_path):
    trace = make_trace([-0.1, -0.2])
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        assert cache.get("m", "q?", CFG) is None
        cache.put_many("m", ["q?"], CFG, [trace])
        assert cache.get("m", "q?", CFG) == trace
        # every part of the key matters
        assert cache.get("other-model", "q?", CFG) is None
        assert cache.get("m", "q2?", CFG) is None
        assert cache.get("m", "q?", GenerationConfig(max_new_tokens=25)) is None
        assert cache.get("m", "q?", GenerationConfig(max_new_tokens=24, top_k=5)) is None
        assert len(cache) == 1
    with GenerationCache(tmp_path / "c.sqlite") as again:  # persists across processes / reopen
        got = again.get("m", "q?", CFG)
        assert isinstance(got, Trace) and got.digest == trace.digest
        mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_chat_prompts_keyed_by_canonical_json(tmp_path):
    a = [{"role": "user", "content": "Hi?"}]
    b = [{"content": "Hi?", "role": "user"}]
    assert canonical_json(a) == canonical_json(b)
    trace = make_trace([-0.3])
    with GenerationCache(tmp_path / "c.sqlite") as cache:
        cache.put_many("m", [a], CFG, [trace])
        assert cache.get("m", b, CFG) == trace
        assert cache.get("m", "Hi?", CFG) is None  # a plain string is another prompt


def test_cache_entry_survives_kill_9(tmp_path):
    path = tmp_path / "c.sqlite"
    here = str(Path(__file__).parent)
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = [{here!r}, {str(Path(here).parent)!r}]
        from _bench_helpers import make_trace
        from tokentrust import GenerationConfig
        from tokentrust.bench.store import GenerationCache
        cache = GenerationCache({str(path)!r})
        cache.put_many("m", ["q?"], GenerationConfig(max_new_tokens=24), [make_trace([-0.5])])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False, cwd=os.getcwd(), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with GenerationCache(path) as cache:
        assert cache.get("m", "q?", CFG).logprobs == [-0.5]
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_item_log_appends_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "items.jsonl"
    with ItemLog(path) as log:
        log.append({"id": "a", "x": 1})
        log.append({"id": "b", "x": float("nan")})
    with path.open("a") as fh:  # what a kill in the middle of a write leaves
        fh.write('{"id": "c", "x"')
    log = ItemLog(path)
    assert [r["id"] for r in log.read()] == ["a", "b"]
    assert log.done_ids() == {"a", "b"}
    before = path.read_bytes()
    with log:  # opening for append cuts the torn line, keeps the finished ones byte for byte
        log.append({"id": "c", "x": 3})
    after = path.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])
    assert [json.loads(line)["id"] for line in after.splitlines()] == ["a", "b", "c"]
