"""One writer per run folder: an advisory ``flock`` on ``<folder>/.lock`` held while a process appends to it.

Two processes appending to one run folder would finish the same items twice. The first writer takes an
exclusive lock and writes its pid into the lock file; a second one is refused at once with the folder and
that pid. The kernel drops the lock when its holder exits, however it exits (``kill -9`` included), so a
lock left behind by a dead process never blocks a rerun. Within one process the lock is re-entrant: a
run's items log and its failures log share it. On a system without ``fcntl`` the lock is a no-op.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

from ..errors import UserInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "RunFolderBusyError", "RunLock", "holder_pid"]

LOCK_FILE = ".lock"

_held: dict[str, list[int]] = {}  # real path of a folder → [file descriptor, holds] in this process
_guard = threading.Lock()


class RunFolderBusyError(UserInputError):
    """Another live process is writing to this run folder."""


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def holder_pid(folder: str | Path) -> int | None:
    """The pid of the live process that holds ``folder``'s lock (this one included), or ``None`` if free."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    with _guard:
        if key in _held:
            return os.getpid()
    path = folder / LOCK_FILE
    if fcntl is None or not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    """Hold ``folder`` for writing (a context manager; creates the folder if needed).

    Raises :class:`RunFolderBusyError` naming the folder and the holder's pid when another process holds it.
    A folder this lock created and left holding nothing but the lock file is removed on release.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._key: str | None = None
        self._created = False

    def acquire(self) -> RunLock:
        if self._key is not None:
            return self
        self._created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.folder)
        with _guard:
            if key in _held:
                _held[key][1] += 1
            else:
                _held[key] = [self._lock(), 1]
        self._key = key
        return self

    def _lock(self) -> int:
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            holder = f"pid {pid}" if pid else "pid not yet written"
            raise RunFolderBusyError(
                f"{self.folder} is being written by another tokentrust process ({holder}); wait for it to finish, "
                "or give another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        return fd

    def release(self) -> None:
        if self._key is None:
            return
        with _guard:
            entry = _held[self._key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[self._key]
                if self._created and [p.name for p in self.folder.iterdir()] == [LOCK_FILE]:
                    (self.folder / LOCK_FILE).unlink()  # nothing was written: leave no empty folder behind
                    self.folder.rmdir()
                os.close(entry[0])  # closing the descriptor drops the flock
        self._key = None

    def __enter__(self) -> RunLock:  # noqa: PYI034
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
