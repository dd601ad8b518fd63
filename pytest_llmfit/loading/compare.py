"""Estimate vs actual: an :class:`~pytest_llmfit.engine.estimate.Footprint` beside what
llama.cpp logged it allocated (:class:`~.logs.Allocations`), component by component."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .logs import MIB_ROUNDING, Allocations, MiB

if TYPE_CHECKING:
    from ..engine.estimate import Footprint


@dataclass(frozen=True)
class ComponentMiss:
    """One component's estimate beside what llama.cpp allocated."""

    component: str  # "weights", "kv", "compute", "output", "repack"
    estimated: int
    actual: int
    flagged: bool  # the miss is beyond both the tolerance and the MiB rounding

    @property
    def miss_bytes(self) -> int:
        return self.estimated - self.actual

    @property
    def relative(self) -> float:
        """(estimated - actual) / actual; 0 when both are 0, inf when only actual is 0."""
        if self.actual == 0:
            return 0.0 if self.estimated == 0 else math.inf
        return self.miss_bytes / self.actual

    def describe(self) -> str:
        sign = "+" if self.miss_bytes >= 0 else "-"
        pct = "n/a" if math.isinf(self.relative) else f"{self.relative:+.1%}"
        return (
            f"{self.component}: estimated {self.estimated / MiB:.2f} MiB, "
            f"llama.cpp {self.actual / MiB:.2f} MiB ({sign}{abs(self.miss_bytes) / MiB:.2f} MiB, "
            f"{pct}){' FLAGGED' if self.flagged else ''}"
        )


def compare(
    footprint: Footprint,
    allocations: Allocations,
    *,
    tolerance: float = 0.05,
    rounding: int = MIB_ROUNDING,
) -> list[ComponentMiss]:
    """Estimate vs llama.cpp, per component: weights, kv (+ recurrent state), compute,
    output, and, when the CPU backend repacked weights, ``repack`` (the CPU_REPACK copies).
    A component is flagged when it misses by more than ``tolerance`` of the actual figure
    *and* by more than ``rounding`` bytes (the logged MiB figures' precision).

    Weights compare the mapped and device model buffers (all but ``*_REPACK``) with
    ``mapped_bytes`` (what llama.cpp maps, repacked originals included); compute compares
    the sum over every device's compute buffer with ``compute_bytes`` (a single-device
    figure: expect misses under partial offload).
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ConfigError(tolerance, "a tolerance >= 0 (0.05 = 5%)", source="compare")
    repack = allocations.repack_bytes
    pairs = [
        ("weights", footprint.mapped_bytes, allocations.model_bytes - repack),
        (
            "kv",
            footprint.kv_cache_bytes + footprint.recurrent_bytes,
            allocations.kv_bytes + allocations.rs_bytes,
        ),
        ("compute", footprint.compute_bytes, allocations.compute_bytes),
        ("output", footprint.output_bytes, allocations.output_bytes),
    ]
    if repack or footprint.repack_bytes:
        pairs.append(("repack", footprint.repack_bytes, repack))
    out = []
    for name, est, act in pairs:
        miss = abs(est - act)
        flagged = miss > rounding and miss > tolerance * act
        out.append(ComponentMiss(name, est, act, flagged))
    return out
