"""Cross-process VRAM reservations, so pytest-xdist workers sharing a GPU never oversubscribe it.

Each test that fits a GPU alone may still not fit next to the tests other workers run at the
same moment. pytest-xdist's ``--dist loadgroup`` does not group on pytest 9.2 (xdist issue
1386), so exclusivity comes from this ledger: a directory shared by the workers of one machine
holding

``ledger.json``
    the live reservations and the queue of waiters, rewritten atomically (temp file then
    ``os.replace``) under the lock, so a crash mid-write leaves the previous state;
``ledger.lock``
    an empty file whose exclusive ``fcntl.flock`` guards every read-modify-write (``msvcrt``
    byte locking on Windows; where neither exists, a no-op lock with a warning);
``ledger.log``
    an append-only JSON-lines event log, one line per device per event (``reserve``,
    ``release``, ``reclaim``, ``timeout``, ``clear``, and ``corrupt`` when ``ledger.json`` had
    to be discarded), each with the device's live total after the event, so a run can be
    audited: the live total never exceeds the budget, every ``reserve`` is ended by a
    ``release``, ``reclaim`` or ``clear`` of the same ``id``. Past 8 MiB it is renamed to
    ``ledger.log.1`` (one generation kept), so a machine-wide directory stays small.

:func:`default_directory` suggests a per-user directory on tmpfs; a directory shared by every
session on the machine is the point (the GPUs are shared too), so do not :meth:`Ledger.clear`
it at session start: the dead are reclaimed anyway.

>>> ledger = Ledger(tmp_dir)                                          # doctest: +SKIP
>>> with ledger.reserve({"GPU-0a1b": 9 * 10**9}, {"GPU-0a1b": 24 * 10**9},
...                     owner="tests/test_chat.py::test_reply"):     # doctest: +SKIP
...     run_the_model()

Semantics:

* A reservation is all or nothing across its devices. It is granted when, on every device it
  needs, live total + queued-ahead + need <= budget; otherwise the caller joins a FIFO queue
  (recorded in ``ledger.json``) and polls with backoff, holding the lock only while looking.
  Waiters ahead of you count as held on the devices they need, so a large test is not starved
  by a stream of small ones. A need larger than its budget raises :class:`LedgerError` at once.
* A reservation records its owner (a test node id), pid, the process's start time
  (``/proc/<pid>/stat`` field 22, or psutil elsewhere) and host name. Any reserve, release or
  inspection first reclaims reservations and waiters of this host whose process is gone, is a
  zombie, or is a different process that reused the pid; a reclaim is logged. A worker killed
  with SIGKILL therefore holds nothing beyond the next call by another process. Entries of
  other hosts are never reclaimed (their pids mean nothing here): keep the directory local to
  the machine whose GPUs it guards.
* Budgets are given per call (the caller knows the card); keys are device ids such as GPU
  UUIDs or ``"host"`` for system RAM.
* Files are not fsync'ed: a process crash cannot tear them (atomic rename), a power loss can
  lose the last writes, and an unreadable ``ledger.json`` is set aside as
  ``ledger.json.corrupt``, logged, and replaced by an empty state.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import socket
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LlmfitError
from ..units import format_size

if sys.platform == "win32":  # pragma: no cover
    import msvcrt

    _HAVE_FCNTL = False
else:
    try:
        import fcntl

        _HAVE_FCNTL = True
    except ImportError:  # pragma: no cover - WASI and the like
        _HAVE_FCNTL = False

__all__ = [
    "LOG_ROTATE_BYTES",
    "Blockage",
    "Holding",
    "Ledger",
    "LedgerError",
    "LedgerTimeout",
    "Reservation",
    "default_directory",
]

STATE_VERSION = 1
_WAITER_HEARTBEAT_S = 1.0  # a waiter refreshes its queue entry this often ...
_WAITER_STALE_S = 10.0  # ... and an entry not refreshed for this long is dropped
_MAX_SLEEP_S = 2.0  # the longest single sleep between attempts (keeps heartbeats fresh)
LOG_ROTATE_BYTES = 8 * 2**20  # ledger.log beyond this becomes ledger.log.1


class LedgerError(LlmfitError):
    """A reservation that can never be granted, or a malformed request."""


@dataclass(frozen=True)
class Holding:
    """One live reservation's share of one device, as :meth:`Ledger.live` lists it."""

    id: str
    owner: str
    pid: int
    bytes: int
    started: float  # time.time() when granted
    host: str


@dataclass(frozen=True)
class Blockage:
    """Why one device could not take a request when a :class:`LedgerTimeout` was raised."""

    device: str
    needed: int
    held: int
    budget: int
    holders: tuple[Holding, ...]
    queued: int  # bytes waiters ahead of the request need on this device
    queued_owners: tuple[str, ...]

    def describe(self) -> str:
        text = f"{format_size(self.held)} of {format_size(self.budget)} held"
        if self.holders:
            text += " by " + ", ".join(
                f"{h.owner} ({format_size(h.bytes)}, pid {h.pid})" for h in self.holders
            )
        if self.queued:
            text += f", {format_size(self.queued)} queued ahead by " + ", ".join(self.queued_owners)
        return text


class LedgerTimeout(LedgerError):
    """Waited ``timeout`` seconds and some device still had no room; says who holds it.

    ``could not reserve 12.0 GB on GPU-0 for tests/b.py::t within 0.2 s: 16.0 GB of
    24.0 GB held by tests/a.py::t (16.0 GB, pid 4242)``
    """

    def __init__(self, owner: str, timeout: float, blocked: tuple[Blockage, ...]) -> None:
        self.owner = owner
        self.timeout = timeout
        self.blocked = blocked
        first, *rest = blocked
        message = (
            f"could not reserve {format_size(first.needed)} on {first.device} for {owner} "
            f"within {timeout:g} s: {first.describe()}"
        )
        for other in rest:
            message += f"; and {format_size(other.needed)} on {other.device}: {other.describe()}"
        super().__init__(message)


# -- processes -----------------------------------------------------------------------------


@functools.cache
def _have_proc() -> bool:
    return os.path.isdir("/proc/self")


@functools.cache
def _hostname() -> str:
    return socket.gethostname()


def _probe(pid: int) -> tuple[bool, str | None]:
    """(alive, start time) of ``pid``; zombies count as dead, the start time may be unknown."""
    if _have_proc():
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                data = stat.read()
        except (FileNotFoundError, ProcessLookupError):
            return False, None
        except OSError:
            return True, None
        fields = data[data.rfind(b")") + 2 :].split()
        if not fields:
            return True, None
        if fields[0] in (b"Z", b"X", b"x"):  # zombie or dead: killed, not yet reaped
            return False, None
        return True, fields[19].decode() if len(fields) > 19 else None
    return _probe_without_proc(pid)  # pragma: no cover - macOS, Windows


def _probe_without_proc(pid: int) -> tuple[bool, str | None]:  # pragma: no cover
    try:
        import psutil
    except ImportError:
        if os.name != "posix":
            return True, None  # os.kill(pid, 0) would terminate the process on Windows
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False, None
        except PermissionError:
            return True, None
        return True, None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False, None
        return True, f"{process.create_time():.3f}"
    except psutil.NoSuchProcess:  # ZombieProcess included
        return False, None
    except psutil.Error:
        return True, None


_SELF: dict[int, str | None] = {}


def _self_start() -> tuple[int, str | None]:
    """This process's pid and start time (recomputed after a fork)."""
    pid = os.getpid()
    if pid not in _SELF:
        _SELF[pid] = _probe(pid)[1]
    return pid, _SELF[pid]


# -- locking -------------------------------------------------------------------------------


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


# -- state ---------------------------------------------------------------------------------


@dataclass
class _Claim:
    """A reservation, or a waiter's queued request (``seen`` is its heartbeat)."""

    owner: str
    pid: int
    pid_start: str | None
    host: str
    started: float
    needs: dict[str, int]
    seen: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "host": self.host,
            "started": self.started,
            "needs": self.needs,
            "seen": self.seen,
        }

    @classmethod
    def from_json(cls, raw: object) -> _Claim:
        if not isinstance(raw, dict):
            raise ValueError("an entry is not an object")
        needs = raw["needs"]
        if not isinstance(needs, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in needs.items()
        ):
            raise ValueError("an entry's needs are not {device: bytes}")
        owner, pid, pid_start, host = raw["owner"], raw["pid"], raw["pid_start"], raw["host"]
        if not (isinstance(owner, str) and type(pid) is int and isinstance(host, str)):
            raise ValueError("an entry's owner, pid or host has the wrong type")
        if pid_start is not None and not isinstance(pid_start, str):
            raise ValueError("an entry's pid_start has the wrong type")
        return cls(
            owner, pid, pid_start, host, float(raw["started"]), needs, float(raw.get("seen", 0))
        )


@dataclass
class _State:
    reservations: dict[str, _Claim] = field(default_factory=dict)
    waiters: dict[int, _Claim] = field(default_factory=dict)  # ticket -> request
    next_ticket: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "next_ticket": self.next_ticket,
            "reservations": {rid: c.to_json() for rid, c in self.reservations.items()},
            "waiters": {str(t): c.to_json() for t, c in self.waiters.items()},
        }

    @classmethod
    def from_json(cls, raw: object) -> _State:
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} ledger object")
        reservations, waiters = raw["reservations"], raw["waiters"]
        if not isinstance(reservations, dict) or not isinstance(waiters, dict):
            raise ValueError("reservations or waiters is not an object")
        next_ticket = raw["next_ticket"]
        if type(next_ticket) is not int:
            raise ValueError("next_ticket is not an integer")
        return cls(
            {str(rid): _Claim.from_json(c) for rid, c in reservations.items()},
            {int(t): _Claim.from_json(c) for t, c in waiters.items()},
            next_ticket,
        )

    def total(self, device: str) -> int:
        return sum(c.needs.get(device, 0) for c in self.reservations.values())


@dataclass
class _Txn:
    state: _State
    dirty: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str, device: str, n_bytes: int, claim: _Claim, rid: str) -> None:
        self.events.append(
            {
                "time": time.time(),
                "event": kind,
                "id": rid,
                "device": device,
                "bytes": n_bytes,
                "owner": claim.owner,
                "pid": claim.pid,
                "live": self.state.total(device),
            }
        )


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


# -- the ledger ----------------------------------------------------------------------------


class Reservation:
    """Bytes held on one or more devices until :meth:`release` (or the ``with`` block ends)."""

    def __init__(
        self,
        ledger: Ledger,
        rid: str,
        owner: str,
        needs: Mapping[str, int],
        pid: int,
        started: float,
        waited: float,
    ) -> None:
        self.ledger = ledger
        self.id = rid
        self.owner = owner
        self.needs = dict(needs)
        self.pid = pid
        self.started = started
        self.waited = waited  # seconds spent queued before the grant
        self._released = False

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Give the bytes back; idempotent, and harmless if the entry was reclaimed or cleared."""
        if not self._released:
            self.ledger._release(self.id)
            self._released = True

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        needs = ", ".join(f"{d}: {format_size(n)}" for d, n in self.needs.items())
        state = "released" if self._released else "held"
        return f"<Reservation {self.owner} {{{needs}}} {state}>"


class Ledger:
    """The reservations of one machine's GPUs, kept in ``directory`` (created if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.state_path = self.directory / "ledger.json"
        self.lock_path = self.directory / "ledger.lock"
        self.log_path = self.directory / "ledger.log"
        self._tmp_path = self.directory / "ledger.json.tmp"

    def __repr__(self) -> str:
        return f"Ledger({str(self.directory)!r})"

    # -- public API

    def reserve(
        self,
        needs: Mapping[str, int],
        budgets: Mapping[str, int],
        *,
        owner: str,
        timeout: float = 600.0,
        poll: float = 0.05,
    ) -> Reservation:
        """Reserve ``needs[device]`` bytes on every device at once, waiting up to ``timeout`` s.

        Raises :class:`LedgerError` at once when a need exceeds its device's budget (or the
        request is malformed), and :class:`LedgerTimeout` when the wait runs out. ``poll`` is
        the first pause between attempts; pauses grow 1.5x up to ``max(poll, 0.1)`` s
        (at most 2 s), with jitter.
        """
        wanted = _check_request(needs, budgets, owner, timeout, poll)
        pid, pid_start = _self_start()
        rid = uuid.uuid4().hex
        t0 = time.monotonic()
        deadline = t0 + timeout
        delay = poll
        max_delay = min(max(poll, 0.1), _MAX_SLEEP_S)
        ticket: int | None = None
        finished = False
        try:
            while True:
                with self._transaction() as txn:
                    state = txn.state
                    now = time.monotonic()
                    blocked = _blockages(state, wanted, budgets, ticket)
                    if not blocked or now >= deadline:
                        finished = True
                        if ticket is not None and state.waiters.pop(ticket, None) is not None:
                            txn.dirty = True
                    if not blocked:
                        started = time.time()
                        claim = _Claim(owner, pid, pid_start, _hostname(), started, wanted)
                        state.reservations[rid] = claim
                        txn.dirty = True
                        for device, n_bytes in wanted.items():
                            txn.event("reserve", device, n_bytes, claim, rid)
                        return Reservation(self, rid, owner, wanted, pid, started, now - t0)
                    if finished:
                        me = _Claim(owner, pid, pid_start, _hostname(), time.time(), wanted)
                        for b in blocked:
                            txn.event("timeout", b.device, b.needed, me, rid)
                    else:
                        ticket = self._enlist(txn, ticket, owner, pid, pid_start, wanted)
                if finished:
                    raise LedgerTimeout(owner, timeout, blocked)
                pause = min(delay, deadline - time.monotonic()) * random.uniform(0.8, 1.0)
                if pause > 0:
                    time.sleep(pause)
                delay = min(delay * 1.5, max_delay)
        finally:
            if not finished and ticket is not None:  # interrupted while queued
                with contextlib.suppress(Exception), self._transaction() as txn:
                    if txn.state.waiters.pop(ticket, None) is not None:
                        txn.dirty = True

    def live(self) -> dict[str, list[Holding]]:
        """Live reservations per device (after reclaiming the dead), largest first."""
        with self._transaction() as txn:
            result: dict[str, list[Holding]] = {}
            for rid, claim in txn.state.reservations.items():
                for device, n_bytes in claim.needs.items():
                    result.setdefault(device, []).append(
                        Holding(rid, claim.owner, claim.pid, n_bytes, claim.started, claim.host)
                    )
        for holdings in result.values():
            holdings.sort(key=lambda h: (-h.bytes, h.started))
        return result

    def waiting(self) -> dict[str, list[Holding]]:
        """Queued requests per device, in queue order (``id`` is the ticket), for reports."""
        with self._transaction() as txn:
            result: dict[str, list[Holding]] = {}
            for ticket, w in sorted(txn.state.waiters.items()):
                for device, n_bytes in w.needs.items():
                    result.setdefault(device, []).append(
                        Holding(str(ticket), w.owner, w.pid, n_bytes, w.started, w.host)
                    )
        return result

    def held(self, device: str) -> int:
        """Bytes live reservations hold on ``device`` (after reclaiming the dead)."""
        with self._transaction() as txn:
            return txn.state.total(device)

    def clear(self) -> None:
        """Drop every reservation and waiter (logged as ``clear``).

        For a directory one session owns; a machine-wide one needs no clearing (the dead are
        reclaimed) and clearing it would let this session overrun another's reservations.
        """
        with self._transaction() as txn:
            state = txn.state
            for rid, claim in list(state.reservations.items()):
                del state.reservations[rid]
                for device, n_bytes in claim.needs.items():
                    txn.event("clear", device, n_bytes, claim, rid)
            state.waiters.clear()
            txn.dirty = True

    # -- internals

    def _release(self, rid: str) -> None:
        with self._transaction() as txn:
            claim = txn.state.reservations.pop(rid, None)
            if claim is not None:
                txn.dirty = True
                for device, n_bytes in claim.needs.items():
                    txn.event("release", device, n_bytes, claim, rid)

    def _enlist(
        self,
        txn: _Txn,
        ticket: int | None,
        owner: str,
        pid: int,
        pid_start: str | None,
        wanted: dict[str, int],
    ) -> int:
        """Join the queue, or refresh this waiter's heartbeat; returns the ticket."""
        state, now = txn.state, time.time()
        if ticket is None:
            ticket = state.next_ticket
            state.next_ticket += 1
        entry = state.waiters.get(ticket)
        if entry is None:  # new, or dropped as stale after a long stall: same place in line
            state.waiters[ticket] = _Claim(owner, pid, pid_start, _hostname(), now, wanted, now)
            txn.dirty = True
        elif now - entry.seen >= _WAITER_HEARTBEAT_S:
            entry.seen = now
            txn.dirty = True
        return ticket

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(fd)
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[_Txn]:
        """Lock, load, reclaim the dead; on a normal exit save (if changed) and log."""
        with self._locked():
            txn = self._load()
            self._reclaim(txn)
            yield txn
            if txn.dirty:
                self._save(txn.state)
            if txn.events:
                self._log(txn.events)

    def _load(self) -> _Txn:
        try:
            with open(self.state_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return _Txn(_State())
        try:
            return _Txn(_State.from_json(json.loads(data)))
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            # Unreadable despite atomic writes (disk full, a person's edit): keep a copy,
            # start empty, and say so in the log; holders' later releases become no-ops.
            with contextlib.suppress(OSError):
                os.replace(self.state_path, self.directory / "ledger.json.corrupt")
            txn = _Txn(_State(), dirty=True)
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

    def _save(self, state: _State) -> None:
        data = json.dumps(state.to_json(), separators=(",", ":")).encode()
        fd = os.open(self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(self._tmp_path, self.state_path)

    def _log(self, events: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events)
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, text.encode())
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > LOG_ROTATE_BYTES:  # one generation kept: ledger.log.1
            os.replace(self.log_path, self.directory / "ledger.log.1")

    def _reclaim(self, txn: _Txn) -> None:
        """Drop reservations and waiters of this host whose process is gone or was replaced."""
        state, host = txn.state, _hostname()
        probes: dict[int, tuple[bool, str | None]] = {}

        def dead(claim: _Claim) -> bool:
            if claim.host != host:
                return False
            if claim.pid not in probes:
                probes[claim.pid] = _probe(claim.pid)
            alive, start = probes[claim.pid]
            return not alive or (
                claim.pid_start is not None and start is not None and claim.pid_start != start
            )

        for rid, claim in list(state.reservations.items()):
            if dead(claim):
                del state.reservations[rid]
                txn.dirty = True
                for device, n_bytes in claim.needs.items():
                    txn.event("reclaim", device, n_bytes, claim, rid)
        now = time.time()
        for ticket, waiter in list(state.waiters.items()):
            if dead(waiter) or now - waiter.seen > _WAITER_STALE_S:
                del state.waiters[ticket]
                txn.dirty = True


def _check_request(
    needs: Mapping[str, int],
    budgets: Mapping[str, int],
    owner: str,
    timeout: float,
    poll: float,
) -> dict[str, int]:
    if not isinstance(owner, str) or not owner:
        raise LedgerError(f"a reservation needs an owner (a test node id), got {owner!r}")
    if not timeout >= 0:
        raise LedgerError(f"timeout must be >= 0 seconds, got {timeout!r} (owner {owner})")
    if not poll > 0:
        raise LedgerError(f"poll must be > 0 seconds, got {poll!r} (owner {owner})")
    wanted: dict[str, int] = {}
    for device, n_bytes in needs.items():
        if not isinstance(device, str) or type(n_bytes) is not int or n_bytes < 0:
            raise LedgerError(
                f"{device!r}: {n_bytes!r} is not a device id and a byte count >= 0 "
                f"(reservation for {owner})"
            )
        if n_bytes == 0:
            continue
        budget = budgets.get(device)
        if budget is None:
            raise LedgerError(
                f"no budget for {device} (budgets name {sorted(budgets)}; reservation for {owner})"
            )
        if n_bytes > budget:
            raise LedgerError(
                f"{owner} needs {format_size(n_bytes)} on {device}, more than its whole "
                f"budget of {format_size(budget)}; it can never fit"
            )
        wanted[device] = n_bytes
    return wanted


def _blockages(
    state: _State, wanted: dict[str, int], budgets: Mapping[str, int], ticket: int | None
) -> tuple[Blockage, ...]:
    """The devices where the request does not fit now, counting earlier waiters as held."""
    ahead = [w for t, w in sorted(state.waiters.items()) if ticket is None or t < ticket]
    blocked = []
    for device, n_bytes in wanted.items():
        held = state.total(device)
        queued = sum(w.needs.get(device, 0) for w in ahead)
        if held + queued + n_bytes <= budgets[device]:
            continue
        holders = sorted(
            (
                Holding(rid, c.owner, c.pid, c.needs[device], c.started, c.host)
                for rid, c in state.reservations.items()
                if c.needs.get(device)
            ),
            key=lambda h: (-h.bytes, h.started),
        )
        blocked.append(
            Blockage(
                device,
                n_bytes,
                held,
                budgets[device],
                tuple(holders),
                queued,
                tuple(f"{w.owner} (pid {w.pid})" for w in ahead if w.needs.get(device)),
            )
        )
    return tuple(blocked)
