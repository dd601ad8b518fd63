"""Speed: decode tokens/s, prompt tokens/s and time to first token of a placement.

A physical model, every constant set by published measurements (llama-bench tables in
``tests/data/llama_bench/``, ``benchmarks/bench_published.py`` prints predicted against
published) or by this project's own CPU runs (``benchmarks/bench_speed.py``); the constants
and the rows that set each are in :mod:`.constants`.

**Decode** (one token) runs the layers one after another, so the devices' times add up.
On a GPU a layer costs

* streaming its weights and KV cache: bytes over the achievable share of the datasheet
  bandwidth. That share depends on the memory: llama.cpp's batch-1 matrix-vector kernels
  reach about 87% of GDDR6/6X/7 and of Apple's unified LPDDR5, but about 54% of HBM2e/HBM3:
  they keep too few loads in flight to cover HBM's latency, which is why an A100 (2039
  GB/s) decodes an 8B model no faster than an RTX 4090 (1008 GB/s);
* or, when slower, the arithmetic of unpacking the weights: ALU operations per weight over
  the FP32 shader throughput (binds for K-quants on Metal's first-generation M1 Max);
* a fixed time per layer: some 25 kernels (norms, RoPE, the attention ops, the matrix
  products) each with a launch and a ramp that no bytes pay for. This is what makes small
  models on fast cards launch-bound: TinyLlama's 22 layers cost an RTX 4090 about as much
  in fixed time as in streaming its 0.6 GB. Builds before mid-2024 (before CUDA graphs
  and op fusion) and pre-Ampere NVIDIA cards (no CUDA graphs) pay 1.65x this; MoE layers
  (router, top-k, three expert products) 1.5x.

On the CPU a token costs the slower of RAM bandwidth and what the decode threads unpack
per second (measured per weight type on this project's x86 machine and refined by measured
runs: :attr:`SpeedModel.cpu_rate_scale`), plus a small fixed cost per layer.

**Prompt processing** (a batch of ``n_ubatch`` tokens at a time) is compute-bound: two
flops per weight per token (MoE: per used expert) plus attention over the context so far,
over the matrix units' FP16 throughput (tensor cores; Apple's shader rate) at a
backend-dependent efficiency; each ubatch also reads every weight once and streams the
activations through the layer's other ops, and older CUDA builds dequantized quantized
weights to FP16 before cuBLAS. Host layers beside a GPU cross PCIe to it (op offload).
The time to first token is the prompt's ubatches plus one decode step.

Modules: :mod:`.constants` (every figure and its source), :mod:`.model` (the assumptions
beyond the hardware: backend, build, threads, calibration; what a GPU is), :mod:`.work`
(a model's per-layer work and a placement's share of it), :mod:`.decode` and
:mod:`.prompt` (the two phases), :mod:`.predict` (the result), :mod:`.calibration`
(measured CPU runs refining the CPU rates).
"""

from __future__ import annotations

from .calibration import CALIBRATION_WEIGHT, SCALE_LIMITS, host_fingerprint, refine_scale
from .constants import (
    CPU_THREAD_RATES,
    DEFAULT_PROMPT_TOKENS,
    DEFAULT_THREAD_RATE,
    LAYER_SECONDS,
    PROMPT_EFFICIENCY,
    STREAM_EFFICIENCY,
)
from .decode import DeviceTime, cpu_seconds, decode_times, gpu_seconds
from .model import SpeedModel, gpu_backend, layer_seconds, memory_kind, thread_rate
from .predict import Speed, predict, predict_inputs
from .work import DeviceWork, LayerWork, SpeedInputs, model_work

__all__ = [
    "CALIBRATION_WEIGHT",
    "CPU_THREAD_RATES",
    "DEFAULT_PROMPT_TOKENS",
    "DEFAULT_THREAD_RATE",
    "LAYER_SECONDS",
    "PROMPT_EFFICIENCY",
    "SCALE_LIMITS",
    "STREAM_EFFICIENCY",
    "DeviceTime",
    "DeviceWork",
    "LayerWork",
    "Speed",
    "SpeedInputs",
    "SpeedModel",
    "cpu_seconds",
    "decode_times",
    "gpu_backend",
    "gpu_seconds",
    "host_fingerprint",
    "layer_seconds",
    "memory_kind",
    "model_work",
    "predict",
    "predict_inputs",
    "refine_scale",
    "thread_rate",
]
