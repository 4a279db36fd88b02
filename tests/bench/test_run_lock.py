"""One writer per run folder: a second `bench` on the same --out is refused; a dead holder never blocks;
an item written twice counts once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from tokentrust.bench.layout import ITEMS_FILE, LOCK_FILE, METRICS_FILE, RESULTS_FILE
from tokentrust.bench.lock import RunFolderBusyError, RunLock, holder_pid
from tokentrust.bench.runner import finalize

ENV = {**os.environ, "COLUMNS": "150", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
CMD = [sys.executable, "-m", "tokentrust"]


def test_second_bench_on_the_same_folder_is_refused_and_nothing_is_counted_twice(tmp_path):
    out = tmp_path / "dup"
    args = ["bench", "--dataset", "capitals", "--limit", "10", "--batch-size", "2", "-e", "msp", "--out", str(out),
            "--cache", str(tmp_path / "cache.sqlite"), "--no-progress", "-n", "8"]
    first = subprocess.Popen([*CMD, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None and holder_pid(out) != first.pid:
        time.sleep(0.02)  # the first run holds the folder from before it loads its model
    assert first.poll() is None, f"the first run ended before the second started: {first.stderr.read()[-2000:]}"

    began = time.monotonic()
    second = subprocess.run([*CMD, *args], check=False, env=ENV, capture_output=True, text=True, timeout=240)
    refused_in = time.monotonic() - began
    still_running = first.poll() is None
    assert second.returncode == 2, second.stderr
    message = second.stderr.strip()
    assert str(out) in message and f"pid {first.pid}" in message, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert still_running, "the first run finished before the second was refused; the test proved nothing"
    print(f"second writer refused in {refused_in:.1f} s")

    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    rows = [json.loads(line) for line in (out / ITEMS_FILE).read_text().splitlines()]
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10
    assert holder_pid(out) is None  # released on exit

    # a log written twice (two writers before the lock existed): finalize counts every id once
    with (out / ITEMS_FILE).open("a") as fh:
        for r in rows[:5]:
            fh.write(json.dumps({**r, "correct": not r["correct"]}) + "\n")
    metrics = finalize(out)
    assert metrics["n_items"] == 10 and metrics["complete"]
    frame = pd.read_parquet(out / RESULTS_FILE)
    assert list(frame["id"]) == [r["id"] for r in rows]  # the first record of each id, in order
    assert metrics["accuracy"] == pytest.approx(sum(r["correct"] for r in rows) / 10)
    assert json.loads((out / METRICS_FILE).read_text())["n_items"] == 10


def test_a_killed_holder_does_not_block(tmp_path):
    folder = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        from tokentrust.bench.lock import RunLock
        RunLock({str(folder)!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    assert proc.wait(timeout=120) == -signal.SIGKILL, proc.stderr.read()
    assert (folder / LOCK_FILE).read_text().strip() == str(proc.pid)  # the dead holder's pid is still written
    assert holder_pid(folder) is None
    with RunLock(folder):
        assert holder_pid(folder) == os.getpid()
        assert (folder / LOCK_FILE).read_text().strip() == str(os.getpid())
        with RunLock(folder):  # re-entrant within one process (items log and failures log)
            pass
        assert holder_pid(folder) == os.getpid()
    assert holder_pid(folder) is None


def test_a_live_holder_in_another_process_is_named(tmp_path):
    folder = tmp_path / "held"
    script = textwrap.dedent(f"""
        import sys, time
        from tokentrust.bench.lock import RunLock
        RunLock({str(folder)!r}).acquire()
        print("held", flush=True)
        sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusyError, match=rf"{folder}.*pid {holder.pid}"):
            RunLock(folder).acquire()
        # a cascade on that folder is refused before it loads a model (a missing one would be another error)
        from tokentrust.decide.cascade import run_cascade

        with pytest.raises(RunFolderBusyError, match=rf"pid {holder.pid}"):
            run_cascade("capitals", str(folder / "no-such-model"), small=str(folder / "no-such-model"), limit=2,
                        out=folder)
    finally:
        holder.communicate("\n", timeout=60)
    with RunLock(folder):  # free once the holder has exited
        pass


def test_a_failed_start_leaves_no_empty_folder(tmp_path):
    folder = tmp_path / "new"
    with RunLock(folder):
        assert (folder / LOCK_FILE).exists()
    assert not folder.exists()
