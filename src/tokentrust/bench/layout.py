"""What a run folder holds: its file names, and reading its finished items.

Shared by the runner, which writes the folder, and the report and calibration, which read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserInputError
from .lock import LOCK_FILE
from .store import ItemLog

__all__ = [
    "GENERATION_FAILURES_FILE",
    "ITEMS_FILE",
    "LOCK_FILE",
    "META_FILE",
    "METRICS_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SPEC_FILE",
    "load_items",
]

SPEC_FILE = "spec.toml"
ITEMS_FILE = "items.jsonl"
RESULTS_FILE = "results.parquet"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
META_FILE = "run.json"
GENERATION_FAILURES_FILE = "generation_failures.jsonl"


def load_items(out: str | Path) -> list[dict[str, Any]]:
    """Every finished item of a run folder, in the order written, each id once (the first record of it)."""
    out = Path(out)
    if not (out / SPEC_FILE).exists():
        raise UserInputError(f"{out} is not a run folder (no {SPEC_FILE}); give the folder `tokentrust bench` wrote")
    return ItemLog(out / ITEMS_FILE).unique()
