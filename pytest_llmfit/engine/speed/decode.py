"""Decode: each device's time per generated token, by cause (streaming the weights and
KV cache, unpacking them where that is slower, fixed per-layer costs) and what bounds it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import constants as C
from .model import _figures, gpu_backend, layer_seconds, memory_kind
from .work import DeviceWork, LayerWork, SpeedInputs, _part_weights, _type_class

if TYPE_CHECKING:  # pragma: no cover
    from ...hardware.types import Gpu, Host
    from .model import SpeedModel


@dataclass(frozen=True)
class DeviceTime:
    """One device's share of a token: seconds by cause, and what bounds it."""

    name: str
    stream_s: float  # weights and KV cache at the achievable bandwidth
    compute_s: float  # the part of the weights' time bound by arithmetic instead
    overhead_s: float  # fixed per-layer and per-token costs
    bound: str  # "memory", "compute", "overhead" (launch-bound) or "cpu threads"

    @property
    def seconds(self) -> float:
        return self.stream_s + self.compute_s + self.overhead_s


# Weights per byte, by type class: F32 1/4, F16 1/2, Q8_0 32/34, Q4_0-like 32/18,
# K-quants about 1.8 (Q4_K 1.78, Q6_K 1.22, Q3_K 2.3: the mixes average near Q4_K).
_ELEMENTS_PER_BYTE = {"F32": 0.25, "F16": 0.5, "BF16": 0.5, "Q8_0": 32 / 34, "Q4_0": 32 / 18}


def _weights_time(
    weights: Iterable[tuple[str, int]],
    bandwidth: float,
    alu_flops: float | None,
    dequant: Mapping[str, float],
) -> tuple[float, float, float]:
    """(streaming seconds, extra seconds where unpacking the weights is slower, the
    streaming seconds of the weights whose unpacking is slower)."""
    stream = extra = bound = 0.0
    for type_name, nbytes in weights:
        memory = nbytes / bandwidth
        compute = 0.0
        if alu_flops:
            kind = _type_class(type_name)
            per_byte = _ELEMENTS_PER_BYTE.get(kind, 1.8)
            compute = nbytes * per_byte * dequant.get(kind, dequant["K"]) / alu_flops
        stream += memory
        if compute > memory:
            extra += compute - memory
            bound += memory
    return stream, extra, bound


def _gpu_decode(
    work: Sequence[LayerWork], dev: DeviceWork, gpu: Gpu, model: SpeedModel
) -> DeviceTime:
    backend = gpu_backend(gpu, model)
    bandwidth = (gpu.bandwidth or 0.0) * C.STREAM_EFFICIENCY[memory_kind(gpu)]
    alu = gpu.fp32_tflops * 1e12 if gpu.fp32_tflops else None
    dequant = C.DEQUANT_FLOPS.get(backend, C.DEQUANT_FLOPS["default"])
    per_layer = layer_seconds(gpu, model)
    stream = compute = overhead = alu_bound = 0.0
    for layer, part in dev.parts(work):
        s, c, b = _weights_time(_part_weights(layer, part), bandwidth, alu, dequant)
        stream += s
        compute += c
        alu_bound += b
        if part != "experts" and not layer.idle:  # a split layer pays its fixed cost once
            overhead += per_layer * (C.MOE_LAYER_FACTOR if layer.moe else 1.0)
    stream += dev.kv_bytes / bandwidth
    bound = "memory"
    if overhead > stream + compute:
        bound = "overhead"
    elif alu_bound > stream / 2:  # unpacking outlasts the reads for most of the weights
        bound = "compute"
    return DeviceTime(gpu.name, stream, compute, overhead, bound)


def _cpu_decode(
    work: Sequence[LayerWork],
    dev: DeviceWork,
    host: Host,
    model: SpeedModel,
    seconds_per_byte: float,
) -> DeviceTime:
    parts = dev.parts(work)
    read = sum(sum(b for _, b in _part_weights(layer, part)) for layer, part in parts)
    read += dev.kv_bytes
    if read <= 0:
        return DeviceTime("CPU", 0.0, 0.0, 0.0, "memory")
    bandwidth = (host.ram.bandwidth or C.FALLBACK_RAM_BANDWIDTH) * model.ram_efficiency
    threads = model.decode_threads(host.cpu.cores_logical)
    memory = read / bandwidth
    compute = read * seconds_per_byte / (threads * model.cpu_rate_scale)
    overhead = C.TOKEN_OVERHEAD_S + C.LAYER_OVERHEAD_S * len(parts)
    bound = "memory" if memory >= compute else "cpu threads"
    return DeviceTime("CPU", memory, max(compute - memory, 0.0), overhead, bound)


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
    bandwidth = (ram_bandwidth or C.FALLBACK_RAM_BANDWIDTH) * model.ram_efficiency
    memory = read_bytes / bandwidth
    compute = read_bytes * seconds_per_byte_per_thread / (threads * model.cpu_rate_scale)
    return max(memory, compute) + C.TOKEN_OVERHEAD_S + C.LAYER_OVERHEAD_S * n_layers


def decode_times(inputs: SpeedInputs) -> tuple[DeviceTime, ...] | None:
    """Each device's time per decoded token; None when a GPU's bandwidth is unknown."""
    times: list[DeviceTime] = []
    for dev in inputs.devices:
        if dev.gpu is None:
            t = _cpu_decode(
                inputs.work, dev, inputs.host, inputs.model, inputs.cpu_seconds_per_byte
            )
            if t.seconds > 0:
                times.append(t)
            continue
        if not dev.busy:
            continue
        if not dev.gpu.bandwidth:
            return None
        times.append(_gpu_decode(inputs.work, dev, _figures(dev.gpu), inputs.model))
    return tuple(times)


def gpu_seconds(read_bytes: int, bandwidth: float, model: SpeedModel, *, n_layers: int) -> float:
    """Seconds a CUDA GDDR card spends reading ``read_bytes`` over ``n_layers`` layers (the
    plain form of :func:`decode_times`, for callers without a model's per-layer work)."""
    if read_bytes <= 0:
        return 0.0
    per_layer = C.LAYER_SECONDS["cuda"] * (C.LEGACY_LAYER_FACTOR if model.legacy else 1.0)
    return read_bytes / (bandwidth * C.STREAM_EFFICIENCY["gddr"]) + per_layer * n_layers
