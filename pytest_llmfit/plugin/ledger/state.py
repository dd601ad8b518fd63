"""The ledger's data: what ``ledger.json`` holds, a transaction's changes and events, and
what callers see (:class:`Holding`, :class:`Blockage`, the errors). No I/O here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ...errors import LlmfitError
from ...units import format_size

STATE_VERSION = 1


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


@dataclass
class Claim:
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
    def from_json(cls, raw: object) -> Claim:
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
class State:
    reservations: dict[str, Claim] = field(default_factory=dict)
    waiters: dict[int, Claim] = field(default_factory=dict)  # ticket -> request
    next_ticket: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "next_ticket": self.next_ticket,
            "reservations": {rid: c.to_json() for rid, c in self.reservations.items()},
            "waiters": {str(t): c.to_json() for t, c in self.waiters.items()},
        }

    @classmethod
    def from_json(cls, raw: object) -> State:
        if not isinstance(raw, dict) or raw.get("version") != STATE_VERSION:
            raise ValueError(f"not a version {STATE_VERSION} ledger object")
        reservations, waiters = raw["reservations"], raw["waiters"]
        if not isinstance(reservations, dict) or not isinstance(waiters, dict):
            raise ValueError("reservations or waiters is not an object")
        next_ticket = raw["next_ticket"]
        if type(next_ticket) is not int:
            raise ValueError("next_ticket is not an integer")
        return cls(
            {str(rid): Claim.from_json(c) for rid, c in reservations.items()},
            {int(t): Claim.from_json(c) for t, c in waiters.items()},
            next_ticket,
        )

    def total(self, device: str) -> int:
        return sum(c.needs.get(device, 0) for c in self.reservations.values())


@dataclass
class Txn:
    state: State
    dirty: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, kind: str, device: str, n_bytes: int, claim: Claim, rid: str) -> None:
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
