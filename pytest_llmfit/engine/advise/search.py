"""The planner's answer in a few placements: what :func:`~pytest_llmfit.engine.plan.plan`
finds, found by bisection.

Role: :func:`plan` searches n_gpu_layers from all layers down, one placement per step (127
for a 405B model that does not fit: a tenth of a second); the advisor asks that question
hundreds of times. The GPU side fits for every n_gpu_layers up to some largest one and the
host side from some smallest one on, so the planner's answer is the largest n_gpu_layers on
which the GPUs fit, if the host fits there too: ``all layers`` is tried first (a model that
fits on the GPUs), then a bisection. Each step is one placement
(:func:`~pytest_llmfit.engine.plan.placement_fits`), and the answer is then planned with
``plan(n_gpu_layers=N)`` and marked as searched: the same Plan as the planner's own search
(tests/test_advise.py checks every alternative against it).
"""

from __future__ import annotations

from dataclasses import replace

from ...hardware.types import Host
from ..context import Settings
from ..estimate import Footprint
from ..gguf import GGUFFile
from ..plan import Plan, placement_fits, plan
from ..speed import SpeedModel


def gpu_ok(p: Plan) -> bool:
    return all(d.need_bytes <= d.budget_bytes for d in p.devices)


def fast_plan(
    model: GGUFFile,
    host: Host,
    settings: Settings,
    footprint: Footprint,
    *,
    headroom: int,
    speed_model: SpeedModel,
    n_cpu_moe: int = 0,
) -> Plan:
    """``plan(model, host, settings, footprint=footprint, n_cpu_moe=...)``, in about
    log2(n_layer) placements instead of up to n_layer, and one full plan."""

    def holds(n_gpu: int) -> bool:
        return placement_fits(footprint, host, n_gpu, headroom=headroom, n_cpu_moe=n_cpu_moe)[0]

    total = footprint.n_layer + 1 if host.gpus else 0
    if not holds(total):
        low, high = 0, total - 1  # the GPUs hold `low` layers (0: nothing), not `high + 1`
        while low < high:
            middle = (low + high + 1) // 2
            if holds(middle):
                low = middle
            else:
                high = middle - 1
        total = low
    found = plan(
        model,
        host,
        settings,
        headroom=headroom,
        footprint=footprint,
        speed_model=speed_model,
        n_gpu_layers=total,
        n_cpu_moe=n_cpu_moe,
    )
    return replace(found, given=False)
