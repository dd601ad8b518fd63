"""The waiting policy: a FIFO queue of waiters with heartbeats, and the pauses between tries.

A request is granted when, on every device it needs, live total + queued-ahead + need <=
budget: waiters ahead of it count as held on the devices they need, so a large test is not
starved by a stream of small ones (:func:`blockages`). A waiter keeps its place with a
heartbeat (:func:`enlist`, every ``WAITER_HEARTBEAT_S``); one not refreshed for
``WAITER_STALE_S`` is dropped (:func:`~.reclaim.reclaim`). Between tries it sleeps
(:class:`Backoff`), holding the lock only while looking.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from .reclaim import hostname
from .state import Blockage, Claim, Holding, State, Txn

WAITER_HEARTBEAT_S = 1.0  # a waiter refreshes its queue entry this often ...
WAITER_STALE_S = 10.0  # ... and an entry not refreshed for this long is dropped
MAX_SLEEP_S = 2.0  # the longest single sleep between attempts (keeps heartbeats fresh)


def blockages(
    state: State, wanted: dict[str, int], budgets: Mapping[str, int], ticket: int | None
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


def enlist(
    txn: Txn,
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
        state.waiters[ticket] = Claim(owner, pid, pid_start, hostname(), now, wanted, now)
        txn.dirty = True
    elif now - entry.seen >= WAITER_HEARTBEAT_S:
        entry.seen = now
        txn.dirty = True
    return ticket


class Backoff:
    """The pauses between a waiter's tries: ``poll`` seconds first, growing 1.5x up to
    ``max(poll, 0.1)`` s (at most ``MAX_SLEEP_S``), each cut by up to 20% at random so
    waiters do not poll in step, and never past ``deadline`` (``time.monotonic()``)."""

    def __init__(self, poll: float, deadline: float) -> None:
        self.delay = poll
        self.max_delay = min(max(poll, 0.1), MAX_SLEEP_S)
        self.deadline = deadline

    def sleep(self) -> None:
        pause = min(self.delay, self.deadline - time.monotonic()) * random.uniform(0.8, 1.0)
        if pause > 0:
            time.sleep(pause)
        self.delay = min(self.delay * 1.5, self.max_delay)
