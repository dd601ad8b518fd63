"""The header cache: the bytes of remote headers kept on disk, so a second session fetches
nothing (or asks the server only whether the file changed), plus the file lock that makes
pytest-xdist workers wait for the one that fetches.

Layout under ``default_cache_dir()/headers`` (``$LLMFIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/pytest-llmfit``, else ``~/.cache/pytest-llmfit``):

``specs/<hash>.json``
    one per model as written (``hf://ORG/REPO/FILE.gguf``): where it was read from, its
    revision, ETag and size, when it was fetched and last checked, and its data key;
``data/<key>.bin``
    the prefix of the file the parser read, keyed by address, revision, ETag and size;
``locks/<hash>.lock``
    held while one process checks or fetches that model.

What is stored is the raw prefix, not a parse: a cached header goes through the same
bounded reader as a fresh one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

_VERSION = 1


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Identity:
    """What a cached header is valid for: the file's address, revision, ETag and size."""

    address: str
    revision: str | None
    etag: str | None
    size: int

    @property
    def key(self) -> str:
        return _hash(f"{self.address}\0{self.revision}\0{self.etag}\0{self.size}")


@dataclass(frozen=True)
class Entry:
    """One cached header, as ``cache list`` shows it."""

    spec: str
    address: str
    url: str
    revision: str | None
    etag: str | None
    size: int
    header_bytes: int
    fetched_at: float
    checked_at: float
    immutable: bool
    key: str

    @property
    def identity(self) -> Identity:
        return Identity(self.address, self.revision, self.etag, self.size)

    def fresh(self, within: float, now: float | None = None) -> bool:
        """Checked against the server less than ``within`` seconds ago."""
        return (time.time() if now is None else now) - self.checked_at < within


class HeaderCache:
    """The cache directory; every method tolerates a missing or half-written entry (it is a
    miss) and writes atomically (a temporary file, then a rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _spec_file(self, spec: str) -> Path:
        return self.root / "specs" / f"{_hash(spec)}.json"

    def _data_file(self, key: str) -> Path:
        return self.root / "data" / f"{key}.bin"

    def lookup(self, spec: str) -> Entry | None:
        try:
            raw = json.loads(self._spec_file(spec).read_text(encoding="utf-8"))
            if raw.pop("version", None) != _VERSION or raw.get("spec") != spec:
                return None
            return Entry(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def data(self, entry: Entry) -> bytes | None:
        try:
            data = self._data_file(entry.key).read_bytes()
        except OSError:
            return None
        return data if len(data) == entry.header_bytes else None

    def store(
        self, spec: str, identity: Identity, url: str, data: bytes, *, immutable: bool
    ) -> Entry:
        now = time.time()
        entry = Entry(
            spec=spec,
            address=identity.address,
            url=url,
            revision=identity.revision,
            etag=identity.etag,
            size=identity.size,
            header_bytes=len(data),
            fetched_at=now,
            checked_at=now,
            immutable=immutable,
            key=identity.key,
        )
        _write(self._data_file(entry.key), data)
        self._write_entry(entry)
        return entry

    def touch(self, entry: Entry) -> Entry:
        """Record that the server just confirmed ``entry``."""
        updated = replace(entry, checked_at=time.time())
        self._write_entry(updated)
        return updated

    def _write_entry(self, entry: Entry) -> None:
        payload: dict[str, Any] = {"version": _VERSION, **asdict(entry)}
        _write(self._spec_file(entry.spec), json.dumps(payload, indent=1).encode())

    def entries(self) -> list[Entry]:
        found = []
        for path in sorted((self.root / "specs").glob("*.json")):
            try:
                spec = json.loads(path.read_text(encoding="utf-8")).get("spec")
            except (OSError, ValueError, AttributeError):
                continue
            entry = self.lookup(spec) if isinstance(spec, str) else None
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda e: e.spec)

    def disk_bytes(self) -> int:
        total = 0
        for path in self.root.rglob("*"):
            with contextlib.suppress(OSError):
                if path.is_file():
                    total += path.stat().st_size
        return total

    def clear(self) -> tuple[int, int]:
        """Remove every entry; returns (entries, bytes) removed. Locks stay (a process may
        hold one)."""
        count, size = len(self.entries()), self.disk_bytes()
        for sub in ("specs", "data"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        return count, size

    @contextlib.contextmanager
    def lock(self, spec: str) -> Iterator[None]:
        """Held while this process checks or fetches ``spec``: others wait, then find it."""
        with file_lock(self.root / "locks" / f"{_hash(spec)}.lock"):
            yield


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (flock; msvcrt on Windows),
    released when the holder exits, even when it is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
