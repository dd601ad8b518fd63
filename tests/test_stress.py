"""Parallel-load stress test of the xdist VRAM ledger (the hardening issue's scenario).

Four xdist workers run 800 generated tests on one simulated RTX 4090 (SIM-GPU-0, 24564 MiB
free): each holds a seeded random 1-20 GB ``requires_vram`` for a short random time, and one
extra test SIGKILLs its own worker while holding 8 GB. Afterwards the ledger's own event log
is replayed and checked:

(a) the live total on SIM-GPU-0 never exceeds the budget (recomputed from the events, and
    equal to the ``live`` each event records); every ``reserve`` ends in exactly one
    ``release`` or ``reclaim``; there is no ``timeout``, ``corrupt`` or ``clear``; no test
    waited for its reservation longer than the ledger timeout;
(b) every test is in the JSON report exactly once, with an outcome (800 passed; the killer
    failed, in pytest's count and in the llmfit report alike);
(c) the killed worker's reservation is reclaimed within a few seconds of the kill, by the
    next reservation of another worker, and the remaining tests still complete.

The plugin removes the session's ledger directory when the session ends, so the generated
conftest copies ``ledger.log`` at the end of each worker's session (the directory comes from
``config.workerinput["llmfit_ledger"]``); the longest copy is the whole log (it is
append-only, and the last worker to finish copies it after every reservation has ended).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SEED = 20261127
WORKERS = 4
PER_WORKER = 200
N_TESTS = WORKERS * PER_WORKER  # 800, plus the test that kills its worker
FILES = 4  # the generated tests are spread over four modules of 200
DEVICE = "SIM-GPU-0"
BUDGET = 24564 * 2**20  # the simulated RTX 4090's free memory, the ledger's budget
LEDGER_TIMEOUT = 60.0  # seconds a test may wait for its reservation (the plugin's is 600)
KILLER_NEED = 8 * 10**9
RECLAIM_WITHIN_S = 5.0

CONFTEST = """
import json, os, shutil, time
from pathlib import Path
import pytest

OUT = Path({out!r})

@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    start = time.time()
    try:
        return (yield)
    finally:
        from pytest_llmfit.plugin.state import reservation_key
        held = item.stash.get(reservation_key, None)
        line = {{
            "nodeid": item.nodeid, "pid": os.getpid(), "setup_start": start,
            "setup_end": time.time(), "id": getattr(held, "id", None),
            "waited": getattr(held, "waited", None),
        }}
        with open(OUT / f"setup-{{os.getpid()}}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\\n")

def pytest_sessionfinish(session):
    workerinput = getattr(session.config, "workerinput", None)
    if not workerinput or not workerinput.get("llmfit_ledger"):
        return
    directory = Path(workerinput["llmfit_ledger"])
    for name in ("ledger.log.1", "ledger.log"):
        if (directory / name).exists():
            shutil.copy(directory / name, OUT / f"{{name}}.{{os.getpid()}}")
"""

# Decisions are made at collection, so each case carries its marker through pytest.param.
TEST_MODULE = """
import time
import pytest

CASES = {cases!r}

@pytest.mark.parametrize(
    "pause", [pytest.param(p, marks=pytest.mark.requires_vram(s), id=f"{{i}}-{{s}}")
              for i, (s, p) in enumerate(CASES)]
)
def test_load(pause):
    time.sleep(pause)
"""

KILLER = """
import json, os, signal, time
import pytest

@pytest.mark.requires_vram({need!r})
def test_kill_holding():
    with open({stamp!r}, "w") as f:
        json.dump({{"pid": os.getpid(), "time": time.time()}}, f)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _generate(pytester: pytest.Pytester, out: Path) -> list[tuple[str, float]]:
    rng = random.Random(SEED)
    cases = [(f"{rng.uniform(1, 20):.3f}GB", rng.uniform(0.0, 0.04)) for _ in range(N_TESTS)]
    pytester.makeconftest(CONFTEST.format(out=str(out)))
    per_file = N_TESTS // FILES
    for f in range(FILES):
        chunk = cases[f * per_file : (f + 1) * per_file]
        pytester.makepyfile(**{f"test_load_{f}": TEST_MODULE.format(cases=chunk)})
    # "test_load_1b" sorts between the modules, so the kill comes while the others run
    pytester.makepyfile(
        test_load_1b=KILLER.format(need=f"{KILLER_NEED}B", stamp=str(out / "killed.json"))
    )
    return cases


def _read_log(out: Path) -> list[dict[str, Any]]:
    """The whole event log: the longest copy (plus the rotated generation, if any)."""
    copies = sorted(out.glob("ledger.log.[0-9]*"), key=lambda p: p.stat().st_size)
    assert copies, "no worker copied the ledger log"
    rotated = sorted(out.glob("ledger.log.1.*"), key=lambda p: p.stat().st_size)
    text = (rotated[-1].read_text() if rotated else "") + copies[-1].read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_800_tests_on_4_workers_share_one_gpu(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    out = pytester.path / "audit"
    out.mkdir()
    cases = _generate(pytester, out)

    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-n",
        str(WORKERS),
        "-p",
        "xdist",
        "--llmfit-hardware=rtx-4090",
        "--llmfit-report-json=r.json",
        # A shorter wait than the default 600 s, so "waited beyond its timeout" means
        # something in a run of a minute.
        f"--llmfit-ledger-timeout={LEDGER_TIMEOUT}",
        timeout=300,
    )
    elapsed = time.monotonic() - started
    result.assert_outcomes(passed=N_TESTS, failed=1)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_kill_holding*"])

    # -- (b) the report: every test once, with an outcome ------------------------------------
    report = json.loads((pytester.path / "r.json").read_text())
    ids = Counter(t["nodeid"] for t in report["tests"])
    assert len(ids) == N_TESTS + 1 and set(ids.values()) == {1}, ids.most_common(3)
    outcomes = {t["nodeid"]: t.get("outcome") for t in report["tests"]}
    killer = next(n for n in outcomes if n.endswith("::test_kill_holding"))
    # pytest counts xdist's crash report (phase "???") as failed, and so does the report
    assert outcomes.pop(killer) == "failed"
    assert Counter(outcomes.values()) == {"passed": N_TESTS}
    gpu = report["host"]["gpus"][0]
    assert gpu["memory_free"] == BUDGET

    # -- (a) replay the ledger's own log ------------------------------------------------------
    events = _read_log(out)
    kinds = Counter(e["event"] for e in events)
    assert set(kinds) <= {"reserve", "release", "reclaim"}, kinds
    live = 0
    peak = 0
    open_ids: dict[str, dict[str, Any]] = {}
    ended: dict[str, dict[str, Any]] = {}
    for e in events:
        assert e["device"] == DEVICE, e
        if e["event"] == "reserve":
            assert e["id"] not in open_ids and e["id"] not in ended, e
            open_ids[e["id"]] = e
            live += e["bytes"]
        else:
            begun = open_ids.pop(e["id"], None)
            assert begun is not None, f"{e['event']} without a live reserve: {e}"
            assert begun["bytes"] == e["bytes"] and begun["owner"] == e["owner"], (begun, e)
            ended[e["id"]] = e
            live -= e["bytes"]
        assert e["live"] == live, f"the log says {e['live']} live, the replay {live}: {e}"
        assert live <= BUDGET, f"{live} bytes held on a {BUDGET}-byte budget at {e}"
        peak = max(peak, live)
    assert not open_ids, f"reservations never released: {list(open_ids.values())[:3]}"
    reserves = [e for e in events if e["event"] == "reserve"]
    assert len(reserves) == N_TESTS + 1
    owners = Counter(e["owner"] for e in reserves)
    assert len(owners) == N_TESTS + 1, owners.most_common(3)  # each test reserved once
    expected = {f"test_load[{i % (N_TESTS // FILES)}-{s}]" for i, (s, _) in enumerate(cases)}
    assert {o.split("::", 1)[1] for o in owners} - {"test_kill_holding"} == expected
    by_id = {e["id"]: e for e in reserves}
    assert Counter(ended[i]["event"] for i in by_id) == {"release": N_TESTS, "reclaim": 1}

    # no test waited beyond the ledger timeout (setup start -> reserve event, same clock)
    setups = [
        json.loads(line)
        for path in out.glob("setup-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(setups) == N_TESTS + 1
    waits = []
    for s in setups:
        assert s["id"] in by_id, f"{s['nodeid']} ran without a reservation"
        waited = by_id[s["id"]]["time"] - s["setup_start"]
        assert s["waited"] <= waited + 0.01
        waits.append(waited)
    assert max(waits) <= LEDGER_TIMEOUT, max(waits)

    # -- (c) the killed worker's reservation was reclaimed, promptly ---------------------------
    killed = json.loads((out / "killed.json").read_text())
    [grant] = [e for e in reserves if e["owner"].endswith("::test_kill_holding")]
    assert grant["pid"] == killed["pid"] and grant["bytes"] == KILLER_NEED
    reclaim = ended[grant["id"]]
    assert reclaim["event"] == "reclaim" and reclaim["pid"] == killed["pid"]
    delay = reclaim["time"] - killed["time"]
    assert 0 <= delay <= RECLAIM_WITHIN_S, f"reclaimed {delay:.2f} s after the kill"
    after = [e for e in reserves if e["time"] > reclaim["time"]]
    assert after, "no test reserved after the reclaim: the rest did not go on"

    pids = Counter(e["pid"] for e in reserves)
    print(
        f"\nstress: {N_TESTS + 1} tests in {elapsed:.1f} s, {len(events)} ledger events, "
        f"peak {peak / 2**20:.0f} of {BUDGET / 2**20:.0f} MiB, longest wait {max(waits):.2f} s, "
        f"reclaim {delay:.3f} s after the kill, tests per worker process {sorted(pids.values())}"
    )
