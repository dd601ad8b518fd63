"""Measured CPU runs refine the CPU rates for a host: the scale kept in pytest's cache,
keyed by what makes a machine the same one."""

from __future__ import annotations

CALIBRATION_WEIGHT = 0.5  # how far one session's measurements move the stored scale
SCALE_LIMITS = (0.2, 5.0)


def host_fingerprint(cpu_model: str, logical_cpus: int, ram_total: int, gpus: list[str]) -> str:
    """What a calibration belongs to: the same CPU, core count, RAM and GPUs."""
    return f"{cpu_model}|{logical_cpus} threads|{ram_total // 2**30} GiB|{','.join(gpus)}"


def refine_scale(scale: float, ratios: list[float]) -> float:
    """The CPU rate scale after a session whose CPU-only runs measured ``ratios``
    (measured / predicted tokens/s): a geometric step towards their median, bounded."""
    if not ratios:
        return scale
    ordered = sorted(r for r in ratios if r > 0)
    if not ordered:
        return scale
    median = ordered[len(ordered) // 2]
    new = float(scale * median**CALIBRATION_WEIGHT)
    return min(max(new, SCALE_LIMITS[0]), SCALE_LIMITS[1])
