"""The ledger's directory on disk: its files, the lock, atomic saves and the event log.

``ledger.json``
    the live reservations and the queue of waiters, rewritten atomically (temp file then
    ``os.replace``) under the lock, so a crash mid-write leaves the previous state; an
    unreadable one is set aside as ``ledger.json.corrupt``, logged, and replaced by an empty
    state;
``ledger.lock``
    an empty file whose exclusive ``fcntl.flock`` guards every read-modify-write (``msvcrt``
    byte locking on Windows; where neither exists, a no-op lock with a warning);
``ledger.log``
    an append-only JSON-lines event log, one line per device per event; past
    ``LOG_ROTATE_BYTES`` (8 MiB) it is renamed to ``ledger.log.1`` (one generation kept).

Files are not fsync'ed: a process crash cannot tear them (atomic rename), a power loss can
lose the last writes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .state import State, Txn

if sys.platform == "win32":  # pragma: no cover
    import msvcrt

    _HAVE_FCNTL = False
else:
    try:
        import fcntl

        _HAVE_FCNTL = True
    except ImportError:  # pragma: no cover - WASI and the like
        _HAVE_FCNTL = False

LOG_ROTATE_BYTES = 8 * 2**20  # ledger.log beyond this becomes ledger.log.1


def default_directory() -> Path:
    """A per-user, machine-wide place for the ledger: tmpfs (``/dev/shm``) when there is one.

    Machine-wide, so that two pytest sessions on one machine (two CI jobs, a developer and a
    watcher) also keep out of each other's VRAM; tmpfs, because it makes a reserve/release
    ten times cheaper than a disk whose journal is busy (``os.replace`` on ext4 flushes) and
    is emptied at boot together with every pid it records. Falls back to the temp directory.
    """
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"pytest-llmfit-{user}"


@functools.cache
def _warn_no_lock() -> None:  # pragma: no cover - platforms without fcntl or msvcrt
    warnings.warn(
        "pytest-llmfit: no file locking on this platform (neither fcntl nor msvcrt); "
        "the VRAM ledger cannot keep concurrent workers apart",
        RuntimeWarning,
        stacklevel=4,
    )


def _lock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return
            except OSError:
                time.sleep(0.002)
    elif _HAVE_FCNTL:
        fcntl.flock(fd, fcntl.LOCK_EX)
    else:  # pragma: no cover
        _warn_no_lock()


def _unlock(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    elif _HAVE_FCNTL:
        fcntl.flock(fd, fcntl.LOCK_UN)


class Store:
    """The files of one ledger directory (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_path = self.directory / "ledger.json"
        self.lock_path = self.directory / "ledger.lock"
        self.log_path = self.directory / "ledger.log"
        self._tmp_path = self.directory / "ledger.json.tmp"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's exclusive lock for the block."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(fd)
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)

    def load(self) -> Txn:
        """The state as a new transaction; an unreadable file is set aside and logged."""
        try:
            with open(self.state_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return Txn(State())
        try:
            return Txn(State.from_json(json.loads(data)))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            # Unreadable despite atomic writes (disk full, a person's edit): keep a copy,
            # start empty, and say so in the log; holders' later releases become no-ops.
            with contextlib.suppress(OSError):
                os.replace(self.state_path, self.directory / "ledger.json.corrupt")
            txn = Txn(State(), dirty=True)
            detail = f"{type(error).__name__}: {error}"
            txn.events.append(
                {
                    "time": time.time(),
                    "event": "corrupt",
                    "id": None,
                    "device": None,
                    "bytes": 0,
                    "owner": "",
                    "pid": os.getpid(),
                    "live": 0,
                    "detail": f"ledger.json unreadable ({len(data)} bytes, {detail}); "
                    "started from an empty state, copy kept as ledger.json.corrupt",
                }
            )
            return txn

    def save(self, state: State) -> None:
        """Replace ``ledger.json`` atomically (a temporary file renamed over it)."""
        data = json.dumps(state.to_json(), separators=(",", ":")).encode()
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(self._tmp_path, self.state_path)

    def log(self, events: list[dict[str, Any]]) -> None:
        """Append ``events`` to ``ledger.log``, rotating it past ``LOG_ROTATE_BYTES``."""
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, text.encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > LOG_ROTATE_BYTES:  # one generation kept: ledger.log.1
            os.replace(self.log_path, self.directory / "ledger.log.1")
