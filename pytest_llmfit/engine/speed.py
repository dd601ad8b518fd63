"""Decode speed: how many tokens per second a placement reaches.

Decoding one token reads every active weight and the KV cache once. On a GPU that is
memory-bound: bytes over the achievable share of the datasheet bandwidth. On the CPU it is
the slower of two limits: RAM bandwidth, and the rate at which the decode threads
dequantize and multiply (a few GB/s per thread, lower for denser quantizations: measured
on this project's 2-core x86 machine, see benchmarks/bench_speed.py). A fixed cost per
token and per layer (graph build and scheduling) dominates only for tiny models.

Defaults describe an x86-64 core with AVX2; :class:`SpeedModel` carries them so that a
calibration measured on the real machine (kept in pytest's cache by the plugin) can
replace them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

GPU_EFFICIENCY = 0.8  # achievable share of datasheet bandwidth (70-90% seen)
RAM_EFFICIENCY = 0.7
FALLBACK_RAM_BANDWIDTH = 50e9  # bytes/s, when the host's RAM bandwidth is unknown

# Bytes of weights one decode thread gets through per second, per ggml type (x86 AVX2).
# Medians of four runs here (llama.cpp 0c1e570, generated 100-300 MB models, one decode
# thread, AMD EPYC VM): F16 5.6-7.7 GB/s, Q8_0 5.1-6.4, Q4_0 (repacked) 5.5-5.9; single
# runs scatter by +-30% on this shared machine. Types not
# measured are placed by their unpacking work: repacked ones (Q4_K, IQ4_NL, MXFP4) near
# Q4_0, the other K-quants below Q8_0.
CPU_THREAD_RATES: dict[str, float] = {
    "F32": 6.5e9,
    "F16": 6.5e9,
    "BF16": 6.0e9,
    "Q8_0": 5.7e9,
    "Q4_0": 5.7e9,
    "Q4_K": 5.3e9,
    "IQ4_NL": 5.3e9,
    "MXFP4": 5.3e9,
    "Q6_K": 4.5e9,
    "Q5_K": 4.5e9,
    "Q5_0": 4.5e9,
    "Q5_1": 4.5e9,
    "Q4_1": 4.5e9,
    "IQ4_XS": 4.3e9,
    "Q3_K": 4.0e9,
    "Q2_K": 4.0e9,
}
DEFAULT_THREAD_RATE = 4.0e9  # types not in the table (IQ1-3, TQ)
TOKEN_OVERHEAD_S = 20e-6  # per decoded token, CPU backend
LAYER_OVERHEAD_S = 3e-6  # per layer per token
# GPU: kernel launches and synchronisation per token and per layer (not measured here: no
# GPU was available; about what llama.cpp's CUDA backend shows for small models).
GPU_TOKEN_OVERHEAD_S = 100e-6
GPU_LAYER_OVERHEAD_S = 10e-6


def thread_rate(type_name: str) -> float:
    return CPU_THREAD_RATES.get(type_name.upper(), DEFAULT_THREAD_RATE)


@dataclass(frozen=True)
class SpeedModel:
    gpu_efficiency: float = GPU_EFFICIENCY
    ram_efficiency: float = RAM_EFFICIENCY
    # Multiplies the CPU compute rates: 1.0 for the defaults, else a measured calibration.
    cpu_rate_scale: float = 1.0
    # Decode threads; None means llama-cpp-python's default, max(1, logical CPUs // 2).
    threads: int | None = None
    # What measured runs taught (source, runs); kept in reports, not used in the maths.
    calibration: Mapping[str, Any] = field(default_factory=dict)

    def decode_threads(self, logical_cpus: int) -> int:
        return self.threads or max(1, logical_cpus // 2)

    def with_scale(self, scale: float, **calibration: Any) -> SpeedModel:
        return replace(self, cpu_rate_scale=scale, calibration=dict(calibration))


def cpu_seconds(
    read_bytes: int,
    seconds_per_byte_per_thread: float,
    *,
    ram_bandwidth: float | None,
    threads: int,
    n_layers: int,
    model: SpeedModel,
) -> float:
    """Seconds the CPU spends on one token reading ``read_bytes`` of weights and cache."""
    if read_bytes <= 0:
        return 0.0
    bandwidth = (ram_bandwidth or FALLBACK_RAM_BANDWIDTH) * model.ram_efficiency
    memory = read_bytes / bandwidth
    compute = read_bytes * seconds_per_byte_per_thread / (threads * model.cpu_rate_scale)
    return max(memory, compute) + TOKEN_OVERHEAD_S + LAYER_OVERHEAD_S * n_layers


def gpu_seconds(read_bytes: int, bandwidth: float, model: SpeedModel, *, n_layers: int) -> float:
    if read_bytes <= 0:
        return 0.0
    memory = read_bytes / (bandwidth * model.gpu_efficiency)
    return memory + GPU_TOKEN_OVERHEAD_S + GPU_LAYER_OVERHEAD_S * n_layers


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
