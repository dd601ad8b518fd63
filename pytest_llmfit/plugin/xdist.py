"""pytest-xdist integration, registered only when xdist is present.

The controller probes the host once and hands it to every worker through ``workerinput``
(xdist's own round trip), so all workers decide against the same snapshot; records come
back on the test reports themselves (see plugin.state.REPORT_KEY). ``--llmfit-pin-gpus`` gives
each worker its own share of the visible GPUs by writing CUDA_VISIBLE_DEVICES into the
environment the workers inherit, before any of them can import a CUDA library.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import pytest

PIN_ENV = "LLMFIT_WORKER_GPUS"  # JSON {worker id: [GPU UUID, ...]} set by the controller


def gpu_shares(uuids: list[str], n_workers: int) -> dict[str, list[str]]:
    """Each worker's GPUs: disjoint round-robin shares when there are enough GPUs,
    else one GPU per worker in turn (the ledger then keeps shared GPUs honest)."""
    shares: dict[str, list[str]] = {}
    for w in range(n_workers):
        if len(uuids) >= n_workers:
            shares[f"gw{w}"] = [u for i, u in enumerate(uuids) if i % n_workers == w]
        elif uuids:
            shares[f"gw{w}"] = [uuids[w % len(uuids)]]
        else:
            shares[f"gw{w}"] = []
    return shares


class XdistHooks:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.ledger_dir: str | None = None

    def pytest_unconfigure(self) -> None:
        if self.ledger_dir:
            shutil.rmtree(self.ledger_dir, ignore_errors=True)

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        if getattr(config, "workerinput", None) is not None:
            return
        workers = getattr(config.option, "numprocesses", None)
        if isinstance(workers, int) and workers > 0:
            from .ledger import default_directory

            base = default_directory()
            base.mkdir(parents=True, exist_ok=True)
            self.ledger_dir = tempfile.mkdtemp(prefix="session-", dir=base)
        if config.getoption("llmfit_pin_gpus") and isinstance(workers, int) and workers > 0:
            from .state import state_key

            host = config.stash[state_key].get_host()
            uuids = [g.uuid or str(g.cuda_index) for g in host.gpus if not host.simulated]
            os.environ[PIN_ENV] = json.dumps(gpu_shares(uuids, workers))

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        from .state import state_key

        state = self.config.stash[state_key]
        node.workerinput["llmfit_host"] = state.get_host().to_dict()
        node.workerinput["llmfit_ledger"] = self.ledger_dir


def pin_worker_gpus(env: dict[str, str] | None = None) -> str | None:
    """On a worker, narrow CUDA_VISIBLE_DEVICES to this worker's share; returns the value."""
    environ = os.environ if env is None else env
    worker = environ.get("PYTEST_XDIST_WORKER")
    shares = environ.get(PIN_ENV)
    if not worker or not shares:
        return None
    mine = json.loads(shares).get(worker)
    if mine is None:
        return None
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    return environ["CUDA_VISIBLE_DEVICES"]
