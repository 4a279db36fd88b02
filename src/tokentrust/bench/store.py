"""Where benchmark work is kept: the generation cache (SQLite) and a run's append-only item log (JSONL).

:class:`GenerationCache` maps *(model id, prompt, generation config)* to the :class:`~tokentrust.Trace`
the model produced, so re-scoring the same questions with new estimators never calls the model again.
The prompt and the config are keyed by their canonical JSON (sorted keys, no spaces), so ``{"a", "b"}``
written in any key order is one entry. The database runs in WAL mode with ``synchronous=NORMAL``: a
committed entry survives the process being killed (``kill -9``, Ctrl-C); only a power cut can lose the
last commits, which are then simply generated again. Several processes may share one cache file.

:class:`ItemLog` is a run's ``items.jsonl``: one JSON object per finished item, written with a single
``write`` and flushed as soon as the item is done, never rewritten. A kill can at worst leave a torn
last line (no trailing newline); :meth:`ItemLog.open` drops it, so that item is simply done again.
Opening a log for writing holds its folder's :class:`~tokentrust.bench.lock.RunLock`, so a second process
appending to the same run is refused; :meth:`ItemLog.unique` keeps one record per id all the same.

DESIGN.md keys the cache "by trace digest"; a digest only exists after generation, so the key
(model, prompt, config) is used and the digest is checked when a trace is read back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config import GenerationConfig
from ..errors import UserInputError
from ..trace import Trace
from .lock import RunLock

__all__ = ["GenerationCache", "ItemLog", "canonical_json", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    model_id TEXT NOT NULL,
    prompt   TEXT NOT NULL,
    config   TEXT NOT NULL,
    trace    TEXT NOT NULL,
    created  REAL NOT NULL,
    PRIMARY KEY (model_id, prompt, config)
)
"""


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, unicode kept (pydantic models are dumped first)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    elif isinstance(value, (list, tuple)):
        value = [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def default_cache_path() -> Path:
    """``<tokentrust cache>/generations.sqlite`` (``$TOKENTRUST_CACHE`` moves the cache folder)."""
    from ..config import cache_dir

    return cache_dir() / "generations.sqlite"


class GenerationCache:
    """Traces by (model id, prompt, generation config) in one SQLite file. Use as a context manager."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UserInputError(f"cannot open the generation cache {self.path}: {exc}") from None

    @staticmethod
    def key(model_id: str, prompt: Any, config: GenerationConfig) -> tuple[str, str, str]:
        return model_id, canonical_json(prompt), canonical_json(config)

    def get_many(self, model_id: str, prompts: Sequence[Any], config: GenerationConfig) -> list[Trace | None]:
        """The cached trace of each prompt, or ``None`` where there is none."""
        cfg = canonical_json(config)
        out: list[Trace | None] = []
        for prompt in prompts:
            row = self._db.execute(
                "SELECT trace FROM generations WHERE model_id=? AND prompt=? AND config=?",
                (model_id, canonical_json(prompt), cfg),
            ).fetchone()
            out.append(Trace.from_json(row[0]) if row else None)
        return out

    def get(self, model_id: str, prompt: Any, config: GenerationConfig) -> Trace | None:
        return self.get_many(model_id, [prompt], config)[0]

    def put_many(self, model_id: str, prompts: Sequence[Any], config: GenerationConfig, traces: Iterable[Trace]) -> None:
        """Store traces in one transaction (all or none survive a kill)."""
        cfg = canonical_json(config)
        now = time.time()
        rows = [(model_id, canonical_json(p), cfg, t.to_json(), now) for p, t in zip(prompts, traces, strict=True)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GenerationCache:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ItemLog:
    """A run's append-only ``items.jsonl``: one finished item per line, flushed as it is written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None
        self._lock: RunLock | None = None

    def read(self) -> list[dict[str, Any]]:
        """Every complete record, in the order written (a torn last line is ignored)."""
        return list(self._records())

    def _records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.endswith(b"\n"):
                    return  # torn by a kill: the item was not finished
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserInputError(f"{self.path} line {number} is not valid JSON ({exc}); the run is damaged")

    def unique(self) -> list[dict[str, Any]]:
        """Every complete record, the first one of each ``id`` only (an item finished twice counts once)."""
        first: dict[str, dict[str, Any]] = {}
        for record in self._records():
            first.setdefault(record["id"], record)
        return list(first.values())

    def done_ids(self) -> set[str]:
        return {r["id"] for r in self._records()}

    def open(self) -> ItemLog:
        """Hold the folder (refused while another process writes to it), open for appending; first cut a torn
        last line left by a killed run."""
        self._lock = RunLock(self.path.parent).acquire()
        if self.path.exists():
            data = self.path.read_bytes()
            if data and not data.endswith(b"\n"):
                with self.path.open("r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line and push it to the OS (it survives the process being killed)."""
        if self._file is None:
            raise RuntimeError("ItemLog.append before open()")
        self._file.write(json.dumps(record, ensure_ascii=False, allow_nan=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> ItemLog:  # noqa: PYI034
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
