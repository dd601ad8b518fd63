"""What a speed prediction assumes beyond the hardware (:class:`SpeedModel`: backend,
llama.cpp build, threads, the CPU calibration) and what it needs to know of a GPU: its
backend, its kind of memory, its compute figures (from the catalog when a probe has none)
and its fixed time per layer."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import constants as C

if TYPE_CHECKING:  # pragma: no cover
    from ...hardware.types import Gpu


def thread_rate(type_name: str) -> float:
    return C.CPU_THREAD_RATES.get(type_name.upper(), C.DEFAULT_THREAD_RATE)


@dataclass(frozen=True)
class SpeedModel:
    """What the speed prediction assumes beyond the hardware: the calibration of the CPU
    rates, the decode threads, the backend and the llama.cpp build."""

    ram_efficiency: float = C.RAM_EFFICIENCY
    # Multiplies the CPU compute rates: 1.0 for the defaults, else a measured calibration.
    cpu_rate_scale: float = 1.0
    # Decode threads; None means llama-cpp-python's default, max(1, logical CPUs // 2).
    threads: int | None = None
    # What measured runs taught (source, runs); kept in reports, not used in the maths.
    calibration: Mapping[str, Any] = field(default_factory=dict)
    # The GPU backend ("cuda", "rocm", "metal", "vulkan", "sycl"); None: the vendor's own.
    backend: str | None = None
    # llama.cpp build number (bNNNN); None: a current build.
    build: int | None = None

    def decode_threads(self, logical_cpus: int) -> int:
        return self.threads or max(1, logical_cpus // 2)

    def with_scale(self, scale: float, **calibration: Any) -> SpeedModel:
        return replace(self, cpu_rate_scale=scale, calibration=dict(calibration))

    @property
    def legacy(self) -> bool:
        return self.build is not None and self.build < C.LEGACY_BUILD


def gpu_backend(gpu: Gpu, model: SpeedModel | None = None) -> str:
    """The llama.cpp backend that drives ``gpu``: the model's choice, else the vendor's."""
    if model is not None and model.backend:
        return model.backend.lower()
    return {"nvidia": "cuda", "amd": "rocm", "apple": "metal", "intel": "sycl"}.get(
        gpu.vendor.lower(), "vulkan"
    )


# Data-centre parts whose memory is HBM (the driver names them; NVML gives no memory type).
_HBM = re.compile(
    r"\b(A100|A800|A30|H100|H800|H200|H20|GH200|B100|B200|B300|GB200|GB300|V100|P100|"
    r"MI\d{2,3}X?|Instinct|Radeon VII|Radeon Pro VII|TITAN V)\b",
    re.IGNORECASE,
)


def memory_kind(gpu: Gpu) -> str:
    """``"unified"`` (shares the CPU's RAM), ``"hbm"`` or ``"gddr"``, from what the driver says."""
    if gpu.unified:
        return "unified"
    return "hbm" if _HBM.search(gpu.name) else "gddr"


def _figures(gpu: Gpu) -> Gpu:
    """``gpu`` with the catalog's compute figures filled in where a probe left them out."""
    if gpu.fp16_tflops is not None and gpu.fp32_tflops is not None:
        return gpu
    known = _catalog_figures(gpu.name)
    if known is None:
        return gpu
    return replace(
        gpu,
        fp16_tflops=gpu.fp16_tflops if gpu.fp16_tflops is not None else known[0],
        fp32_tflops=gpu.fp32_tflops if gpu.fp32_tflops is not None else known[1],
        int8_tops=gpu.int8_tops if gpu.int8_tops is not None else known[2],
    )


@functools.lru_cache(maxsize=64)
def _catalog_figures(name: str) -> tuple[float | None, float | None, float | None] | None:
    try:
        from ...hardware.catalog import builtin_catalog

        profile = builtin_catalog().find(name)
    except Exception:  # an unknown card, or no catalog: the compute terms are left out
        return None
    return profile.fp16_tflops, profile.fp32_tflops, profile.int8_tops


def layer_seconds(gpu: Gpu, model: SpeedModel) -> float:
    """The fixed time per layer per decoded token on ``gpu``."""
    backend = gpu_backend(gpu, model)
    per_layer = C.LAYER_SECONDS.get(backend, C.DEFAULT_LAYER_SECONDS)
    # CUDA graphs (one launch per token instead of one per kernel) are off before Ampere
    # (compute capability 8.0): Volta and Turing pay the legacy builds' launch costs.
    no_graphs = backend == "cuda" and (gpu.compute_capability or (9, 0)) < (8, 0)
    return per_layer * (C.LEGACY_LAYER_FACTOR if model.legacy or no_graphs else 1.0)
