"""Prompt processing: the seconds a prompt's ubatches take on each device (matrix
products at the backend's share of the matrix units, weight reads, activation passes,
attention over the growing context; host layers over PCIe beside a GPU, or the CPU's
threads without one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import constants as C
from .model import gpu_backend, memory_kind
from .work import (
    DeviceWork,
    SpeedInputs,
    _part_batch_bytes,
    _part_flops,
    _part_weights,
    _type_class,
)

if TYPE_CHECKING:  # pragma: no cover
    from ...hardware.types import Gpu
    from .model import SpeedModel


def _matrix_rate(gpu: Gpu, model: SpeedModel) -> float | None:
    """Flops/s llama.cpp's batched products reach on ``gpu``."""
    backend = gpu_backend(gpu, model)
    peak = gpu.fp16_tflops or gpu.fp32_tflops
    # Before mid-2025 llama.cpp's HIP kernels did not use CDNA's matrix cores (MFMA): an
    # MI300X (1307 matrix TFLOPS, 163 vector) processed Llama 2 7B prompts at 1334 tokens/s
    # (b3891), where RDNA3 cards with a tenth of its matrix rate reach 2200.
    instinct = backend == "rocm" and "instinct" in gpu.name.lower()
    if instinct and model.build is not None and model.build < C.MFMA_BUILD:
        peak = gpu.fp32_tflops or peak
    if not peak:
        return None
    return peak * 1e12 * C.PROMPT_EFFICIENCY.get(backend, C.DEFAULT_PROMPT_EFFICIENCY)


def _gpu_prompt_seconds(
    inputs: SpeedInputs, dev: DeviceWork, gpu: Gpu, n_tokens: int
) -> float | None:
    rate = _matrix_rate(gpu, inputs.model)
    if rate is None or not gpu.bandwidth:
        return None
    legacy_cuda = gpu_backend(gpu, inputs.model) == "cuda" and inputs.model.legacy
    bandwidth = gpu.bandwidth * C.STREAM_EFFICIENCY[memory_kind(gpu)]
    n_ubatches = -(-n_tokens // inputs.n_ubatch)
    seconds = 0.0
    for layer, part in dev.parts(inputs.work):
        # Attention: token i of the prompt looks at the i cells before it.
        cells = n_tokens * n_tokens / 2 if part != "experts" else 0.0
        seconds += (_part_flops(layer, part) * n_tokens + layer.attn_flops_per_cell * cells) / rate
        # Each ubatch reads the part's weights once (a MoE layer: every expert).
        read = float(_part_batch_bytes(layer, part))
        if legacy_cuda:
            quantized = sum(
                b
                for t, b in _part_weights(layer, part)
                if _type_class(t) not in ("F16", "F32", "BF16")
            )
            share = quantized / max(layer.read_bytes, 1)
            read += layer.flops / 2 * share * C.LEGACY_DEQUANT_BYTES_PER_WEIGHT
        seconds += n_ubatches * read / bandwidth
        if part != "experts":
            seconds += C.ACTIVATION_PASSES * layer.row_bytes * n_tokens / bandwidth
    return seconds


def _host_prompt_seconds(
    inputs: SpeedInputs, dev: DeviceWork, main_gpu: Gpu | None, n_tokens: int
) -> float | None:
    """The host's layers in a prompt. Beside a GPU, llama.cpp runs their batched products on
    the main GPU (op offload, batches of 32 tokens or more), copying each ubatch's weights
    over PCIe; without one, the CPU's threads do them."""
    parts = dev.parts(inputs.work)
    if not parts:
        return 0.0
    if main_gpu is not None and n_tokens >= C.OP_OFFLOAD_MIN_BATCH:
        rate = _matrix_rate(main_gpu, inputs.model)
        if rate is None:
            return None
        n_ubatches = -(-n_tokens // inputs.n_ubatch)
        flops = sum(_part_flops(layer, part) for layer, part in parts) * n_tokens
        copied = sum(_part_batch_bytes(layer, part) for layer, part in parts)
        return flops / rate + n_ubatches * copied / C.PCIE_BANDWIDTH
    flops = sum(_part_flops(layer, part) for layer, part in parts)
    attn = sum(layer.attn_flops_per_cell for layer, part in parts if part != "experts")
    threads = inputs.model.decode_threads(inputs.host.cpu.cores_logical)
    rate = C.CPU_THREAD_FLOPS * threads * inputs.model.cpu_rate_scale
    return (flops * n_tokens + attn * n_tokens * n_tokens / 2) / rate
