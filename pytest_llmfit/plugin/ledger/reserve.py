"""The reservation protocol: :class:`Ledger` grants all-or-nothing :class:`Reservation` s.

Every reserve, release or inspection is one transaction: take the directory's lock, load
the state, reclaim the dead (:mod:`.reclaim`), act, save if changed, and log the events
(:mod:`.store`). A request that does not fit joins the queue and waits (:mod:`.waiting`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from types import TracebackType

from ...units import format_size
from .reclaim import hostname, reclaim, self_start
from .state import Claim, Holding, LedgerError, LedgerTimeout, Txn
from .store import Store
from .waiting import WAITER_STALE_S, Backoff, blockages, enlist


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
        self._store = store = Store(directory)
        self.directory = store.directory
        self.state_path = store.state_path
        self.lock_path = store.lock_path
        self.log_path = store.log_path

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
        pid, pid_start = self_start()
        rid = uuid.uuid4().hex
        t0 = time.monotonic()
        deadline = t0 + timeout
        backoff = Backoff(poll, deadline)
        ticket: int | None = None
        finished = False
        try:
            while True:
                with self._transaction() as txn:
                    state = txn.state
                    now = time.monotonic()
                    blocked = blockages(state, wanted, budgets, ticket)
                    if not blocked or now >= deadline:
                        finished = True
                        if ticket is not None and state.waiters.pop(ticket, None) is not None:
                            txn.dirty = True
                    if not blocked:
                        started = time.time()
                        claim = Claim(owner, pid, pid_start, hostname(), started, wanted)
                        state.reservations[rid] = claim
                        txn.dirty = True
                        for device, n_bytes in wanted.items():
                            txn.event("reserve", device, n_bytes, claim, rid)
                        return Reservation(self, rid, owner, wanted, pid, started, now - t0)
                    if finished:
                        me = Claim(owner, pid, pid_start, hostname(), time.time(), wanted)
                        for b in blocked:
                            txn.event("timeout", b.device, b.needed, me, rid)
                    else:
                        ticket = enlist(txn, ticket, owner, pid, pid_start, wanted)
                if finished:
                    raise LedgerTimeout(owner, timeout, blocked)
                backoff.sleep()
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

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Txn]:
        """Lock, load, reclaim the dead; on a normal exit save (if changed) and log."""
        store = self._store
        with store.locked():
            txn = store.load()
            reclaim(txn, stale_after=WAITER_STALE_S)
            yield txn
            if txn.dirty:
                store.save(txn.state)
            if txn.events:
                store.log(txn.events)


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
