"""Reclaiming the dead: reservations and waiters whose process is gone.

A claim records its process's pid, start time (``/proc/<pid>/stat`` field 22, or psutil
elsewhere) and host name. A claim of this host is dead when its pid is gone, is a zombie,
or now belongs to another process (a different start time). Claims of other hosts are never
judged: their pids mean nothing here.
"""

from __future__ import annotations

import functools
import os
import socket
import time

from .state import Claim, Txn


@functools.cache
def _have_proc() -> bool:
    return os.path.isdir("/proc/self")


@functools.cache
def hostname() -> str:
    """This machine's name, as claims record it."""
    return socket.gethostname()


def probe(pid: int) -> tuple[bool, str | None]:
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


def self_start() -> tuple[int, str | None]:
    """This process's pid and start time (recomputed after a fork)."""
    pid = os.getpid()
    if pid not in _SELF:
        _SELF[pid] = probe(pid)[1]
    return pid, _SELF[pid]


def reclaim(txn: Txn, *, stale_after: float) -> None:
    """Drop reservations and waiters of this host whose process is gone or was replaced, and
    waiters whose heartbeat is older than ``stale_after`` seconds. Each reclaimed reservation
    is logged (``reclaim``), device by device."""
    state, host = txn.state, hostname()
    probes: dict[int, tuple[bool, str | None]] = {}

    def dead(claim: Claim) -> bool:
        if claim.host != host:
            return False
        if claim.pid not in probes:
            probes[claim.pid] = probe(claim.pid)
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
        if dead(waiter) or now - waiter.seen > stale_after:
            del state.waiters[ticket]
            txn.dirty = True
