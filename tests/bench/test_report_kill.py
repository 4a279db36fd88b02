"""`kill -9` while `tokentrust report` writes report.html, then a rerun: the old page survives whole, the rerun
writes the same page and leaves no temporary file.

The writer is stopped mid-write, not at a guessed moment: its temporary file is made a named pipe, so the
write blocks until this test has read part of the page, and the process is killed with that write under way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pandas as pd
from _bench_helpers import hand_run_folder

from _cli import run_cli
from tokentrust.bench.runner import METRICS_FILE, REPORT_FILE, RESULTS_FILE, finalize

TMP = "report.tmp"  # where write_report puts the page before renaming it


def test_kill_during_the_report_write_keeps_the_old_page_and_the_rerun_completes(tmp_path, capsys):
    out = hand_run_folder(tmp_path)
    finalize(out)
    page = (out / REPORT_FILE).read_bytes()
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert page.rstrip().endswith(b"</html>")

    os.mkfifo(out / TMP)
    proc = subprocess.Popen([sys.executable, "-m", "tokentrust", "report", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got: list[bytes] = []

    def read_part() -> None:  # opening the pipe lets the writer start; read a part, then it is killed
        with open(out / TMP, "rb") as pipe:
            got.append(pipe.read(64 * 1024))
            proc.send_signal(signal.SIGKILL)

    reader = threading.Thread(target=read_part, daemon=True)
    reader.start()
    reader.join(timeout=120)
    assert not reader.is_alive(), "the report was never written"
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert 0 < len(got[0]) < len(page)  # killed with the page half written

    assert (out / REPORT_FILE).read_bytes() == page  # the old page is untouched
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    (out / TMP).unlink()
    (out / TMP).write_bytes(got[0])  # what the kill leaves on a real disk: a partial temporary file

    code, stdout, _ = run_cli(capsys, "report", str(out))
    assert code == 0 and stdout.strip() == str(out / REPORT_FILE)
    assert (out / REPORT_FILE).read_bytes() == page
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    assert len(pd.read_parquet(out / RESULTS_FILE)) == metrics["n_items"] == 30
    assert not (out / TMP).exists()
