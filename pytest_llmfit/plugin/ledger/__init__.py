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

One module per role: :mod:`.state` (the data and the errors), :mod:`.store` (the files, the
lock, the log), :mod:`.reclaim` (whether a claim's process is alive), :mod:`.waiting` (the
queue and the pauses) and :mod:`.reserve` (:class:`Ledger`, the protocol). No pytest here:
the glue passes plain values in.
"""

from __future__ import annotations

from .reserve import Ledger, Reservation
from .state import Blockage, Holding, LedgerError, LedgerTimeout
from .store import LOG_ROTATE_BYTES, default_directory

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
