"""The VRAM ledger with real processes: waiting, crashes (SIGKILL), contention, corruption."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from typing import Any

import pytest

import pytest_llmfit.plugin.ledger.store as ledger_store
from pytest_llmfit.errors import LlmfitError
from pytest_llmfit.plugin.ledger import Ledger, LedgerError, LedgerTimeout, default_directory

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods() or not hasattr(signal, "SIGKILL"),
    reason="the ledger's process tests need fork and SIGKILL (Linux, macOS)",
)

GB = 10**9
GPU0, GPU1 = "SIM-GPU-0", "SIM-GPU-1"
BUDGETS = {GPU0: 24 * GB, GPU1: 24 * GB, "host": 64 * GB}


def _ctx() -> Any:
    return multiprocessing.get_context("fork")


def _events(directory: pathlib.Path) -> list[dict[str, Any]]:
    lines = (directory / "ledger.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _wait_until(predicate: Any, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# -- children (module level, so fork runs them) ----------------------------------------------


def _hold_until(directory: str, needs: dict[str, int], owner: str, ready: Any, go: Any) -> None:
    reservation = Ledger(directory).reserve(needs, BUDGETS, owner=owner, timeout=10)
    ready.set()
    go.wait(10)
    reservation.release()


def _hold_forever(directory: str, needs: dict[str, int], owner: str, ready: Any) -> None:
    Ledger(directory).reserve(needs, BUDGETS, owner=owner, timeout=10)
    ready.set()
    time.sleep(60)


def _wait_for(
    directory: str, needs: dict[str, int], owner: str, results: Any, timeout: float
) -> None:
    try:
        reservation = Ledger(directory).reserve(needs, BUDGETS, owner=owner, timeout=timeout)
    except LedgerTimeout as error:
        results.put(("timeout", str(error)))
        return
    results.put(("ok", reservation.waited))
    reservation.release()


def _churn(directory: str, seed: int, count: int, results: Any) -> None:
    rng = random.Random(seed)
    ledger = Ledger(directory)
    intervals = []
    for i in range(count):
        needs = {GPU0: rng.randint(1, 16) * GB}
        if rng.random() < 0.3:
            needs[GPU1] = rng.randint(1, 16) * GB
        reservation = ledger.reserve(needs, BUDGETS, owner=f"w{seed}::t{i}", timeout=20)
        granted = time.monotonic()
        time.sleep(rng.uniform(0, 0.004))
        ended = time.monotonic()
        reservation.release()
        intervals.append((granted, ended, needs, reservation.waited))
    results.put(intervals)


# -- basics ----------------------------------------------------------------------------------


def test_reserve_release_and_inspection(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    with ledger.reserve({GPU0: 9 * GB, "host": 2 * GB}, BUDGETS, owner="tests/a.py::t") as res:
        assert ledger.held(GPU0) == 9 * GB
        assert ledger.held("host") == 2 * GB
        assert ledger.held(GPU1) == 0
        live = ledger.live()
        assert sorted(live) == sorted([GPU0, "host"])
        (entry,) = live[GPU0]
        assert (entry.id, entry.owner, entry.pid, entry.bytes) == (
            res.id,
            "tests/a.py::t",
            os.getpid(),
            9 * GB,
        )
        assert not res.released
    assert res.released
    assert ledger.live() == {}
    res.release()  # idempotent: no second release line
    kinds = [(e["event"], e["device"], e["live"]) for e in _events(tmp_path / "ledger")]
    assert kinds == [
        ("reserve", GPU0, 9 * GB),
        ("reserve", "host", 2 * GB),
        ("release", GPU0, 0),
        ("release", "host", 0),
    ]


def test_release_removes_exactly_that_reservation(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    first = ledger.reserve({GPU0: 4 * GB}, BUDGETS, owner="same::t")
    second = ledger.reserve({GPU0: 6 * GB}, BUDGETS, owner="same::t")
    first.release()
    assert [h.id for h in ledger.live()[GPU0]] == [second.id]
    assert ledger.held(GPU0) == 6 * GB
    first.release()
    assert ledger.held(GPU0) == 6 * GB
    second.release()
    assert ledger.held(GPU0) == 0


def test_budget_is_respected_and_timeout_says_who_holds_it(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    held = ledger.reserve({GPU0: 16 * GB}, BUDGETS, owner="tests/a.py::t")
    started = time.monotonic()
    with pytest.raises(LedgerTimeout) as info:
        ledger.reserve({GPU0: 12 * GB}, BUDGETS, owner="tests/b.py::t", timeout=0.2)
    waited = time.monotonic() - started
    assert 0.2 <= waited < 1.0
    assert str(info.value) == (
        "could not reserve 12.0 GB on SIM-GPU-0 for tests/b.py::t within 0.2 s: "
        f"16.0 GB of 24.0 GB held by tests/a.py::t (16.0 GB, pid {os.getpid()})"
    )
    assert isinstance(info.value, LlmfitError)
    assert [b.device for b in info.value.blocked] == [GPU0]
    assert ledger.held(GPU0) == 16 * GB
    assert [e["event"] for e in _events(tmp_path)] == ["reserve", "timeout"]
    # Exactly at the budget fits.
    with ledger.reserve({GPU0: 8 * GB}, BUDGETS, owner="tests/c.py::t", timeout=0):
        assert ledger.held(GPU0) == 24 * GB
    held.release()


def test_all_or_nothing_across_two_devices(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    blocker = ledger.reserve({GPU1: 20 * GB}, BUDGETS, owner="blocker")
    with pytest.raises(LedgerTimeout) as info:
        ledger.reserve({GPU0: 10 * GB, GPU1: 10 * GB}, BUDGETS, owner="both", timeout=0.1)
    assert [b.device for b in info.value.blocked] == [GPU1]
    assert "could not reserve 10.0 GB on SIM-GPU-1 for both" in str(info.value)
    assert ledger.held(GPU0) == 0  # nothing taken on the device that had room
    blocker.release()
    with ledger.reserve({GPU0: 10 * GB, GPU1: 10 * GB}, BUDGETS, owner="both", timeout=0):
        assert (ledger.held(GPU0), ledger.held(GPU1)) == (10 * GB, 10 * GB)


def test_timeout_lists_every_blocked_device(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.reserve({GPU0: 20 * GB, GPU1: 15 * GB}, BUDGETS, owner="big::t")
    with pytest.raises(LedgerTimeout) as info:
        ledger.reserve({GPU0: 5 * GB, GPU1: 10 * GB}, BUDGETS, owner="x::t", timeout=0)
    pid = os.getpid()
    assert str(info.value) == (
        "could not reserve 5.0 GB on SIM-GPU-0 for x::t within 0 s: 20.0 GB of 24.0 GB held "
        f"by big::t (20.0 GB, pid {pid}); and 10.0 GB on SIM-GPU-1: 15.0 GB of 24.0 GB held "
        f"by big::t (15.0 GB, pid {pid})"
    )


@pytest.mark.parametrize(
    ("needs", "budgets", "owner", "message"),
    [
        (
            {GPU0: 25 * GB},
            BUDGETS,
            "tests/huge.py::t",
            "tests/huge.py::t needs 25.0 GB on SIM-GPU-0, more than its whole budget of "
            "24.0 GB; it can never fit",
        ),
        ({"GPU-unknown": 1}, BUDGETS, "o", "no budget for GPU-unknown"),
        ({GPU0: -1}, BUDGETS, "o", "'SIM-GPU-0': -1 is not a device id and a byte count"),
        ({GPU0: 1.5}, BUDGETS, "o", "'SIM-GPU-0': 1.5 is not a device id"),
        ({GPU0: 1}, BUDGETS, "", "a reservation needs an owner"),
    ],
)
def test_impossible_or_malformed_requests_fail_at_once(
    tmp_path: pathlib.Path,
    needs: dict[str, Any],
    budgets: dict[str, int],
    owner: str,
    message: str,
) -> None:
    ledger = Ledger(tmp_path)
    started = time.monotonic()
    with pytest.raises(LedgerError) as info:
        ledger.reserve(needs, budgets, owner=owner, timeout=600)
    assert time.monotonic() - started < 0.1
    assert not isinstance(info.value, LedgerTimeout)
    assert str(info.value).startswith(message)


def test_zero_needs_are_not_recorded(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    with ledger.reserve({GPU0: 0, GPU1: GB}, BUDGETS, owner="o") as res:
        assert res.needs == {GPU1: GB}
        assert list(ledger.live()) == [GPU1]


def test_clear_drops_everything_and_logs_it(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    res = ledger.reserve({GPU0: 3 * GB}, BUDGETS, owner="o")
    ledger.clear()
    assert ledger.held(GPU0) == 0
    res.release()  # a no-op now
    assert [(e["event"], e["live"]) for e in _events(tmp_path)] == [
        ("reserve", 3 * GB),
        ("clear", 0),
    ]


def test_uncontended_reserve_and_release_are_fast(tmp_path: pathlib.Path) -> None:
    # Where default_directory() puts the ledger (tmpfs): on a disk, os.replace's cost follows
    # the journal's load (0.4 ms idle, 4 ms next to other test suites on ext4).
    base = default_directory().parent
    directory = pathlib.Path(tempfile.mkdtemp(dir=base)) if base != tmp_path else tmp_path
    ledger = Ledger(directory)
    reserve, release = [], []
    for _ in range(200):
        t0 = time.perf_counter()
        res = ledger.reserve({GPU0: GB}, BUDGETS, owner="tests/fast.py::t")
        t1 = time.perf_counter()
        res.release()
        reserve.append(t1 - t0)
        release.append(time.perf_counter() - t1)
    shutil.rmtree(directory, ignore_errors=True)
    assert statistics.median(reserve) < 0.005
    assert statistics.median(release) < 0.005


def test_default_directory_is_per_user_and_machine_wide() -> None:
    directory = default_directory()
    assert directory.name == f"pytest-llmfit-{os.getuid()}"
    assert directory.parent.is_dir()


def test_log_rotates(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_store, "LOG_ROTATE_BYTES", 1000)
    ledger = Ledger(tmp_path)
    for _ in range(20):
        ledger.reserve({GPU0: GB}, BUDGETS, owner="tests/rotate.py::t").release()
        if (tmp_path / "ledger.log.1").exists():
            break
    assert (tmp_path / "ledger.log.1").stat().st_size > 1000
    ledger.reserve({GPU0: GB}, BUDGETS, owner="tests/rotate.py::t")
    assert [e["event"] for e in _events(tmp_path)] == ["reserve"]


# -- other processes -------------------------------------------------------------------------


def test_waits_then_succeeds_when_another_process_releases(tmp_path: pathlib.Path) -> None:
    ctx = _ctx()
    ready, go = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_until, args=(str(tmp_path), {GPU0: 20 * GB}, "h", ready, go))
    holder.start()
    try:
        assert ready.wait(10)
        timer = threading.Timer(0.3, go.set)
        timer.start()
        started = time.monotonic()
        with Ledger(tmp_path).reserve({GPU0: 10 * GB}, BUDGETS, owner="w", timeout=10) as res:
            elapsed = time.monotonic() - started
            assert 0.25 <= res.waited <= elapsed < 5
            assert Ledger(tmp_path).held(GPU0) == 10 * GB
    finally:
        go.set()
        holder.join(10)
    assert holder.exitcode == 0


def test_queue_is_fifo_so_large_requests_are_not_starved(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    small = ledger.reserve({GPU0: 16 * GB}, BUDGETS, owner="small::t")
    ctx = _ctx()
    results = ctx.Queue()
    big = ctx.Process(
        target=_wait_for, args=(str(tmp_path), {GPU0: 16 * GB}, "big::t", results, 10)
    )
    big.start()
    try:
        _wait_until(lambda: GPU0 in ledger.waiting())
        (waiter,) = ledger.waiting()[GPU0]
        assert (waiter.owner, waiter.pid, waiter.bytes) == ("big::t", big.pid, 16 * GB)
        # 16 + 8 <= 24, but big::t is ahead in the queue: the newcomer waits.
        with pytest.raises(LedgerTimeout) as info:
            ledger.reserve({GPU0: 8 * GB}, BUDGETS, owner="late::t", timeout=0.2)
        assert str(info.value).endswith(f"16.0 GB queued ahead by big::t (pid {big.pid})")
        small.release()
        status, _ = results.get(timeout=10)
        assert status == "ok"
    finally:
        big.join(10)
    assert ledger.waiting() == {}


def test_sigkilled_holder_is_reclaimed_by_the_next_reserve(tmp_path: pathlib.Path) -> None:
    ctx = _ctx()
    ready = ctx.Event()
    victim = ctx.Process(
        target=_hold_forever, args=(str(tmp_path), {GPU0: 20 * GB}, "tests/v.py::t", ready)
    )
    victim.start()
    assert victim.pid is not None
    try:
        assert ready.wait(10)
        ledger = Ledger(tmp_path)
        assert ledger.held(GPU0) == 20 * GB
        os.kill(victim.pid, signal.SIGKILL)
        # Not reaped yet: the victim is a zombie, which must count as dead.
        stat = pathlib.Path(f"/proc/{victim.pid}/stat")
        if stat.exists():
            _wait_until(lambda: stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")
        started = time.monotonic()
        with ledger.reserve({GPU0: 20 * GB}, BUDGETS, owner="next", timeout=1.0):
            assert time.monotonic() - started < 1.0
    finally:
        victim.join(10)
    reclaims = [e for e in _events(tmp_path) if e["event"] == "reclaim"]
    assert [(e["owner"], e["pid"], e["bytes"], e["live"]) for e in reclaims] == [
        ("tests/v.py::t", victim.pid, 20 * GB, 0)
    ]


def test_sigkilled_waiter_leaves_the_queue(tmp_path: pathlib.Path) -> None:
    ledger = Ledger(tmp_path)
    holder = ledger.reserve({GPU0: 20 * GB}, BUDGETS, owner="holder")
    ctx = _ctx()
    results = ctx.Queue()
    waiter = ctx.Process(
        target=_wait_for, args=(str(tmp_path), {GPU0: 20 * GB}, "doomed", results, 10)
    )
    waiter.start()
    assert waiter.pid is not None
    _wait_until(lambda: GPU0 in ledger.waiting())
    os.kill(waiter.pid, signal.SIGKILL)
    waiter.join(10)
    assert ledger.waiting() == {}
    holder.release()
    with ledger.reserve({GPU0: 4 * GB}, BUDGETS, owner="after", timeout=0):
        pass


def test_interrupted_waiter_leaves_the_queue(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    ledger.reserve({GPU0: 20 * GB}, BUDGETS, owner="holder")

    def interrupt(seconds: float) -> None:
        assert GPU0 in ledger.waiting()
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", interrupt)  # the ledger sleeps between polls
    with pytest.raises(KeyboardInterrupt):
        ledger.reserve({GPU0: 10 * GB}, BUDGETS, owner="impatient", timeout=5)
    monkeypatch.undo()
    assert ledger.waiting() == {}


def test_reused_pid_is_reclaimed_but_other_hosts_are_left_alone(
    tmp_path: pathlib.Path,
) -> None:
    ledger = Ledger(tmp_path)
    ledger.reserve({GPU0: 5 * GB}, BUDGETS, owner="reused")
    ledger.reserve({GPU1: 7 * GB}, BUDGETS, owner="remote")
    child = _ctx().Process(target=time.sleep, args=(0,))
    child.start()
    child.join()
    dead_pid = child.pid
    state = json.loads((tmp_path / "ledger.json").read_text())
    for entry in state["reservations"].values():
        if entry["owner"] == "reused":  # our pid, but another process's start time
            entry["pid_start"] = "1"
        else:  # a dead pid on another machine: this host cannot judge it
            entry["pid"], entry["host"] = dead_pid, "some-other-host"
    (tmp_path / "ledger.json").write_text(json.dumps(state))
    assert ledger.held(GPU0) == 0
    assert ledger.held(GPU1) == 7 * GB
    assert [e["owner"] for e in _events(tmp_path) if e["event"] == "reclaim"] == ["reused"]


def test_contention_never_exceeds_the_budget(tmp_path: pathlib.Path) -> None:
    ctx = _ctx()
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_churn, args=(str(tmp_path), seed, 50, results)) for seed in range(4)
    ]
    for worker in workers:
        worker.start()
    intervals = [item for _ in workers for item in results.get(timeout=60)]
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    assert len(intervals) == 200
    assert sum(waited for *_, waited in intervals) > 0  # there was contention

    # Replay the log: running totals match its "live" column and stay within budget, and
    # every reserve is matched by its own release.
    totals = dict.fromkeys(BUDGETS, 0)
    open_ids: dict[str, int] = {}
    peak = 0
    for event in _events(tmp_path):
        device, n_bytes = event["device"], event["bytes"]
        if event["event"] == "reserve":
            totals[device] += n_bytes
            open_ids[event["id"]] = open_ids.get(event["id"], 0) + 1
        else:
            assert event["event"] == "release", event
            totals[device] -= n_bytes
            open_ids[event["id"]] -= 1
        assert totals[device] == event["live"]
        assert 0 <= totals[device] <= BUDGETS[device], event
        peak = max(peak, totals[GPU0])
    assert set(open_ids.values()) == {0}
    assert len(open_ids) == 200
    assert peak > 16 * GB  # several workers did hold the card at once

    # An independent check from the workers' own clocks (CLOCK_MONOTONIC is system-wide):
    # the spans between "reserve returned" and "release called" never oversubscribe.
    for device in (GPU0, GPU1):
        edges = []
        for granted, ended, needs, _ in intervals:
            if device in needs:
                edges += [(granted, needs[device]), (ended, -needs[device])]
        running = 0
        for _, delta in sorted(edges, key=lambda edge: (edge[0], edge[1])):
            running += delta
            assert running <= BUDGETS[device]


# -- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"version": 1, "next_ticket": 3, "reserv',
        b"[1, 2]",
        b'{"version": 1, "next_ticket": 1, "reservations": {"x": {"owner": 1}}, "waiters": {}}',
        b"\xff\xfe garbage",
    ],
    ids=["empty", "truncated", "not-an-object", "bad-entry", "binary"],
)
def test_unreadable_state_starts_empty_and_is_logged(
    tmp_path: pathlib.Path, content: bytes
) -> None:
    (tmp_path / "ledger.json").write_bytes(content)
    (tmp_path / "ledger.json.tmp").write_bytes(b"half a write")  # a crash before the rename
    ledger = Ledger(tmp_path)
    with ledger.reserve({GPU0: 2 * GB}, BUDGETS, owner="after-crash") as res:
        assert [h.id for h in ledger.live()[GPU0]] == [res.id]
    assert (tmp_path / "ledger.json.corrupt").read_bytes() == content
    json.loads((tmp_path / "ledger.json").read_text())
    events = _events(tmp_path)
    assert [e["event"] for e in events] == ["corrupt", "reserve", "release"]
    assert "ledger.json unreadable" in events[0]["detail"]
