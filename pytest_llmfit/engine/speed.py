"""Speed: decode tokens/s, prompt tokens/s and time to first token of a placement.

A physical model, every constant set by published measurements (llama-bench tables in
``tests/data/llama_bench/``, ``benchmarks/bench_published.py`` prints predicted against
published) or by this project's own CPU runs (``benchmarks/bench_speed.py``).

**Decode** (one token) runs the layers one after another, so the devices' times add up.
On a GPU a layer costs

* streaming its weights and KV cache: bytes over the achievable share of the datasheet
  bandwidth. That share depends on the memory: llama.cpp's batch-1 matrix-vector kernels
  reach about 88% of GDDR6/6X/7 and of Apple's and AMD's unified LPDDR5, but about 54% of
  HBM2e/HBM3: they keep too few loads in flight to cover HBM's latency, which is why an
  A100 (2039 GB/s) decodes an 8B model no faster than an RTX 4090 (1008 GB/s);
* or, when slower, the arithmetic of unpacking the weights: ALU operations per weight over
  the FP32 shader throughput (binds for K-quants on Metal's first-generation M1 Max);
* a fixed time per layer: some 25 kernels (norms, RoPE, the attention ops, the matrix
  products) each with a launch and a ramp that no bytes pay for. This is what makes small
  models on fast cards launch-bound: TinyLlama's 22 layers cost an RTX 4090 about as much
  in overhead as in streaming its 0.6 GB. Builds before mid-2024 (before CUDA graphs were
  on and before op fusion) paid 1.37x this; MoE layers (router, top-k, three expert
  products) 1.3x.

On the CPU a token costs the slower of RAM bandwidth and what the decode threads unpack
per second (measured per weight type on this project's x86 machine and refined by measured
runs: :attr:`SpeedModel.cpu_rate_scale`), plus a small fixed cost per layer.

**Prompt processing** (a batch of ``n_ubatch`` tokens at a time) is compute-bound: two
flops per weight per token (MoE: per used expert) plus attention over the context so far,
over the matrix units' FP16 throughput (tensor cores; Apple's shader rate) at a
backend-dependent efficiency; each ubatch also reads every weight once, and quantized
weights cost a dequantizing pass (older CUDA builds dequantized to FP16 before cuBLAS).
The time to first token is the prompt's ubatches plus one decode step.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..hardware.types import Gpu, Host
    from .arch import ModelParams
    from .gguf import GGUFFile

# --------------------------------------------------------------------------- CPU decode

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
LAYER_OVERHEAD_S = 3e-6  # per layer per token, CPU backend

# CPU prompt processing: flops one thread sustains in llama.cpp's batched matrix products
# (int8 dot products for quantized weights after the activations are quantized to Q8).
# Set by the one counted CPU row: a Ryzen 9 7940HS laptop (Zen 4 with AVX-512, 8 threads)
# processed Llama 2 7B Q4_0 prompts at 61.8 tokens/s, 13 Gflop a token: 100 Gflop/s per
# thread. Measured runs rescale it with the decode rates (SpeedModel.cpu_rate_scale).
CPU_THREAD_FLOPS = 100e9

# --------------------------------------------------------------------------- GPU decode

# Achievable share of the datasheet bandwidth for a batch-1 matrix-vector product, by the
# memory behind it: least squares (log error) over the 78 counted decode rows of
# tests/data/llama_bench together with the fixed costs below. GDDR6/6X/7 (RTX 30/40, RTX
# A/Ada/PRO, A40, L40S, RX 7900, W7900, Radeon iGPUs): 0.87. HBM (A100 PCIe and SXM, H100
# PCIe, MI300X, V100): 0.54: with the fixed costs this gives the A100 SXM's 135 tokens/s
# on Llama 3 8B Q4_K_M where 0.87 of 2039 GB/s would give 300. Apple's unified LPDDR (M1 to
# M3): 0.86.
STREAM_EFFICIENCY: dict[str, float] = {"gddr": 0.87, "hbm": 0.54, "unified": 0.86}

# Fixed time per layer per decoded token, by backend, for current builds (seconds), fitted
# with the efficiencies above. CUDA 42 us: an RTX PRO 6000 Blackwell (b6413) decodes Llama
# 2 7B Q4_0 in 3.58 ms, 2.5 ms of it streaming 3.75 GB, about 35-40 us for each of its 33
# layers; an RTX 6000 Ada decodes Llama 3 8B Q4_0 at 169 tokens/s (2026) where streaming
# alone would give 205. Metal 113 us (command encoding): an M1 Ultra (b7825) spends 3.2 of
# its 4.1 ms per TinyLlama token on 23 layers. ROCm 132 us (MI300X, Radeon 780M, Ryzen AI
# Max rows); Vulkan 38 us (RTX 4090 and 2080 Ti TinyLlama rows). SYCL: no rows, a guess.
LAYER_SECONDS: dict[str, float] = {
    "cuda": 42e-6,
    "rocm": 132e-6,
    "metal": 113e-6,
    "vulkan": 38e-6,
    "sycl": 100e-6,
}
DEFAULT_LAYER_SECONDS = 100e-6
# llama.cpp builds before this one (mid-2024) spent 1.65x longer per layer: fitted on the
# May 2024 tables (b2795-b2843: RTX 30/40, RTX Ada, A40, A100, H100, L40S, M1-M3) beside
# the 2025-2026 ones. Op fusion and CUDA graphs came after; CUDA graphs are off before
# Ampere still, so Volta and Turing pay the same (see layer_seconds).
LEGACY_BUILD = 3000
LEGACY_LAYER_FACTOR = 1.65
# A MoE layer runs more kernels (router, top-k, gather, three expert products): 1.5x,
# fitted on Qwen3-30B-A3B and gpt-oss rows (RTX PRO 6000, RTX 6000 Ada, Ryzen AI Max).
MOE_LAYER_FACTOR = 1.5

# ALU work of unpacking a weight and multiplying it, in FP32-equivalent flops per weight,
# by backend. CUDA and ROCm unpack with integer dot products (dp4a), which leaves them
# bandwidth-bound on every card measured; Metal unpacks with float arithmetic, so the
# K-quants bind on a GPU with little ALU per byte: an M1 Max (10.4 TFLOPS, 400 GB/s)
# decodes Llama 3 8B Q4_K_M at 35.7 tokens/s where its F16 speed predicts 50.
# The Metal K-quant figure (25 flops per weight) is fitted to the M1 Max rows; the others
# scale with the unpacking work and never bind on the chips in the data.
DEQUANT_FLOPS: dict[str, dict[str, float]] = {
    "metal": {"F16": 8.0, "F32": 8.0, "BF16": 8.0, "Q8_0": 12.0, "Q4_0": 15.0, "K": 25.0},
    "default": {"F16": 2.0, "F32": 2.0, "BF16": 2.0, "Q8_0": 3.0, "Q4_0": 4.0, "K": 6.5},
}

# --------------------------------------------------------------------------- GPU prompt

# Share of the matrix units' FP16 peak (dense, FP16 accumulate; Apple: the shader rate)
# that llama.cpp's batched products reach, by backend: a robust least squares (soft L1 on
# the log error) over the 76 counted prompt rows, with the weight reads and activation
# passes below. CUDA 0.70 (RTX 30/40/Ada/PRO, A100, H100, L40S), Metal 0.70 (M1-M3), ROCm
# 0.12 (MI300X, W7900, Radeon 780M/8060S: llama.cpp's HIP kernels are far from the matrix
# peak), Vulkan 0.18 (RTX 2080 Ti/4090, Radeon 8060S).
PROMPT_EFFICIENCY: dict[str, float] = {
    "cuda": 0.70,
    "rocm": 0.12,
    "metal": 0.70,
    "vulkan": 0.18,
    "sycl": 0.3,
}
DEFAULT_PROMPT_EFFICIENCY = 0.3
# Builds before mid-2024 ran quantized prompts through a dequantize-to-FP16 pass and
# cuBLAS; the MMQ kernels on tensor cores (llama.cpp PR 7676, June 2024) replaced that.
# Each quantized weight then costs writing and reading back an FP16 copy.
LEGACY_DEQUANT_BYTES_PER_WEIGHT = 4.0
MFMA_BUILD = 5800  # ROCm: CDNA's matrix cores in the quantized kernels from about here
# Besides the matrix products, a layer's other ops (norms, RoPE, softmax over the scores,
# adds, copies into the cache) stream the activations: about this many passes over a
# token's n_embd-wide FP32 row per layer, at the memory's bandwidth.
ACTIVATION_PASSES = 47.0  # fitted with the efficiencies above
DEFAULT_PROMPT_TOKENS = 512  # the prompt length a plan's prompt speed is quoted at
# Partial offload: batches of at least this many tokens run the host layers' products on the
# main GPU, their weights copied over PCIe each ubatch at this rate (pageable host memory;
# an RTX 5090 with gpt-oss-120b's 59 GB of experts in RAM processes 512-token prompts at
# 246 tokens/s, 2.1 s per ubatch: 28 GB/s).
OP_OFFLOAD_MIN_BATCH = 32
PCIE_BANDWIDTH = 25e9

# --------------------------------------------------------------------------- the model


def thread_rate(type_name: str) -> float:
    return CPU_THREAD_RATES.get(type_name.upper(), DEFAULT_THREAD_RATE)


@dataclass(frozen=True)
class SpeedModel:
    """What the speed prediction assumes beyond the hardware: the calibration of the CPU
    rates, the decode threads, the backend and the llama.cpp build."""

    ram_efficiency: float = RAM_EFFICIENCY
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
        return self.build is not None and self.build < LEGACY_BUILD


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
        from ..hardware.catalog import builtin_catalog

        profile = builtin_catalog().find(name)
    except Exception:  # an unknown card, or no catalog: the compute terms are left out
        return None
    return profile.fp16_tflops, profile.fp32_tflops, profile.int8_tops


# --------------------------------------------------------------------------- the work


@dataclass(frozen=True)
class LayerWork:
    """What one layer (the blocks, then the output layer at index n_layer) costs per token."""

    index: int
    weights: tuple[tuple[str, int], ...]  # (ggml type, bytes) read per decoded token
    experts: tuple[tuple[str, int], ...] = ()  # the routed experts' share of that (MoE)
    expert_bytes_all: int = 0  # every routed expert: what a large batch reads once
    flops: int = 0  # 2 x weights' elements per token (MoE: the used experts)
    expert_flops: int = 0  # the routed experts' share of ``flops``
    attn_flops_per_cell: int = 0  # QK and PV flops per token per context cell
    row_bytes: int = 0  # one token's activation row (n_embd FP32 values)
    moe: bool = False
    idle: bool = False  # a block that takes no part in decoding (MTP/NextN)

    @property
    def read_bytes(self) -> int:
        return sum(b for _, b in self.weights)


def _type_class(type_name: str) -> str:
    name = type_name.upper()
    if name in ("F16", "F32", "BF16", "Q8_0", "Q4_0"):
        return name
    if name in ("Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4"):
        return "Q4_0"
    return "K"


def model_work(model: GGUFFile, params: ModelParams | None = None) -> tuple[LayerWork, ...]:
    """Per-layer work of ``model``: weights by type, flops, attention cost per cell."""
    from .arch import model_params

    params = params or model_params(model)
    n_run = params.n_layer  # blocks that take part in the forward pass
    n_layer = params.n_layer_all  # the output layer's index, as placement counts it
    used = (
        params.n_expert_used / params.n_expert if params.n_expert and params.n_expert_used else 1.0
    )
    weights: list[dict[str, float]] = [{} for _ in range(n_layer + 1)]
    experts: list[dict[str, float]] = [{} for _ in range(n_layer + 1)]
    all_experts = [0] * (n_layer + 1)
    flops = [0.0] * (n_layer + 1)
    expert_flops = [0.0] * (n_layer + 1)
    tied = model.tensor("output.weight") is None
    for info in model.tensors:
        kind = info.ggml_type
        if kind is None:
            continue
        match = re.match(r"blk\.(\d+)\.", info.name)
        if match:
            il = int(match.group(1))
            if il >= n_run:
                continue  # MTP/NextN blocks take no part in decoding
        elif info.name.startswith("output") or (tied and info.name == "token_embd.weight"):
            il = n_layer  # the output layer (a tied model multiplies by token_embd)
        else:
            continue  # token_embd: one row per token; rope factors and the like
        share = used if "_exps." in info.name else 1.0
        name = kind.name.upper()
        weights[il][name] = weights[il].get(name, 0.0) + info.nbytes * share
        matrix = len([n for n in info.shape if n > 1]) >= 2
        if matrix:
            flops[il] += 2 * info.n_elements * share
        if "_exps." in info.name:
            experts[il][name] = experts[il].get(name, 0.0) + info.nbytes * share
            all_experts[il] += info.nbytes
            if matrix:
                expert_flops[il] += 2 * info.n_elements * share
    out: list[LayerWork] = []
    for il in range(n_layer + 1):
        attn = 0
        if il < n_run and il < len(params.layers):
            shape = params.layers[il]
            if not shape.recurrent:
                attn = 2 * shape.n_head * (shape.head_dim_k + shape.head_dim_v)
        out.append(
            LayerWork(
                index=il,
                weights=tuple(sorted((t, int(b)) for t, b in weights[il].items())),
                experts=tuple(sorted((t, int(b)) for t, b in experts[il].items())),
                expert_bytes_all=all_experts[il],
                flops=int(flops[il]),
                expert_flops=int(expert_flops[il]),
                attn_flops_per_cell=attn,
                row_bytes=4 * params.n_embd if il < n_run else 0,
                moe=bool(all_experts[il]),
                idle=n_run <= il < n_layer,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class DeviceWork:
    """The layers one device runs: a GPU (``gpu`` set) or the host's CPU (``gpu`` None).

    ``layers`` are whole layers; ``experts_of`` are layers whose routed experts alone run
    here and ``shared_of`` layers whose all-but-routed-experts run here (``--n-cpu-moe``
    splits a block so). ``kv_bytes`` is the KV cache and recurrent state read per token.
    """

    gpu: Gpu | None
    layers: tuple[int, ...] = ()
    experts_of: tuple[int, ...] = ()
    shared_of: tuple[int, ...] = ()
    kv_bytes: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.layers or self.experts_of or self.shared_of)

    def parts(self, work: Sequence[LayerWork]) -> list[tuple[LayerWork, str]]:
        """(layer, "all" | "experts" | "shared") for every layer part this device runs."""
        out = [(work[il], "all") for il in self.layers]
        out += [(work[il], "experts") for il in self.experts_of]
        out += [(work[il], "shared") for il in self.shared_of]
        return out


def _part_weights(layer: LayerWork, part: str) -> list[tuple[str, int]]:
    if part == "all":
        return list(layer.weights)
    if part == "experts":
        return list(layer.experts)
    experts = dict(layer.experts)
    return [(t, b - experts.get(t, 0)) for t, b in layer.weights]


def _part_flops(layer: LayerWork, part: str) -> int:
    if part == "all":
        return layer.flops
    return layer.expert_flops if part == "experts" else layer.flops - layer.expert_flops


def _part_batch_bytes(layer: LayerWork, part: str) -> int:
    """Bytes a large batch reads of this part: every routed expert, not just the used ones."""
    experts = sum(b for _, b in layer.experts)
    if part == "experts":
        return layer.expert_bytes_all
    if part == "shared":
        return layer.read_bytes - experts
    return layer.read_bytes - experts + layer.expert_bytes_all


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


@dataclass(frozen=True)
class SpeedInputs:
    """Everything a prediction is made from, kept to predict other prompt lengths."""

    work: tuple[LayerWork, ...]
    devices: tuple[DeviceWork, ...]
    host: Host
    model: SpeedModel
    cpu_seconds_per_byte: float
    n_ubatch: int = 512


@dataclass(frozen=True)
class Speed:
    """Predicted speeds of one placement, and the parts they come from."""

    decode_tokens_per_second: float | None
    prompt_tokens_per_second: float | None  # over a prompt of ``prompt_tokens``
    prompt_tokens: int
    decode: tuple[DeviceTime, ...] = ()
    prompt_seconds: float | None = None  # for ``prompt_tokens``
    inputs: SpeedInputs | None = field(default=None, repr=False, compare=False)

    def at(self, prompt_tokens: int) -> Speed:
        """The same placement's prediction for a prompt of ``prompt_tokens``."""
        if self.inputs is None or prompt_tokens == self.prompt_tokens:
            return self
        return predict_inputs(self.inputs, prompt_tokens=prompt_tokens)

    def time_to_first_token(self, prompt_tokens: int | None = None) -> float | None:
        """Seconds from a prompt of ``prompt_tokens`` (this prediction's by default) to the
        first generated token: the prompt's ubatches, then one decode step."""
        speed = self if prompt_tokens is None else self.at(prompt_tokens)
        if speed.prompt_seconds is None or not speed.decode_tokens_per_second:
            return None
        return speed.prompt_seconds + 1.0 / speed.decode_tokens_per_second

    def explain(self) -> str:
        """Where a decoded token's time goes, device by device (the plan's speed line)."""
        total = sum(d.seconds for d in self.decode)
        if total <= 0:
            return ""
        parts = []
        for d in self.decode:
            text = f"{d.name} {d.seconds * 1e3:.2f} ms {d.bound}-bound: weights+KV "
            text += f"{d.stream_s * 1e3:.2f}"
            if d.compute_s > 0:
                text += f" + unpacking {d.compute_s * 1e3:.2f}"
            text += f" + fixed {d.overhead_s * 1e3:.2f}"
            parts.append(text)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decode_tokens_per_second": self.decode_tokens_per_second,
            "prompt_tokens_per_second": self.prompt_tokens_per_second,
            "prompt_tokens": self.prompt_tokens,
            "time_to_first_token_s": self.time_to_first_token(),
            "decode": [
                {
                    "device": d.name,
                    "seconds": d.seconds,
                    "stream_s": d.stream_s,
                    "compute_s": d.compute_s,
                    "overhead_s": d.overhead_s,
                    "bound": d.bound,
                }
                for d in self.decode
            ],
        }


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


def layer_seconds(gpu: Gpu, model: SpeedModel) -> float:
    """The fixed time per layer per decoded token on ``gpu``."""
    backend = gpu_backend(gpu, model)
    per_layer = LAYER_SECONDS.get(backend, DEFAULT_LAYER_SECONDS)
    # CUDA graphs (one launch per token instead of one per kernel) are off before Ampere
    # (compute capability 8.0): Volta and Turing pay the legacy builds' launch costs.
    no_graphs = backend == "cuda" and (gpu.compute_capability or (9, 0)) < (8, 0)
    return per_layer * (LEGACY_LAYER_FACTOR if model.legacy or no_graphs else 1.0)


def _gpu_decode(
    work: Sequence[LayerWork], dev: DeviceWork, gpu: Gpu, model: SpeedModel
) -> DeviceTime:
    backend = gpu_backend(gpu, model)
    bandwidth = (gpu.bandwidth or 0.0) * STREAM_EFFICIENCY[memory_kind(gpu)]
    alu = gpu.fp32_tflops * 1e12 if gpu.fp32_tflops else None
    dequant = DEQUANT_FLOPS.get(backend, DEQUANT_FLOPS["default"])
    per_layer = layer_seconds(gpu, model)
    stream = compute = overhead = alu_bound = 0.0
    for layer, part in dev.parts(work):
        s, c, b = _weights_time(_part_weights(layer, part), bandwidth, alu, dequant)
        stream += s
        compute += c
        alu_bound += b
        if part != "experts" and not layer.idle:  # a split layer pays its fixed cost once
            overhead += per_layer * (MOE_LAYER_FACTOR if layer.moe else 1.0)
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
    bandwidth = (host.ram.bandwidth or FALLBACK_RAM_BANDWIDTH) * model.ram_efficiency
    threads = model.decode_threads(host.cpu.cores_logical)
    memory = read / bandwidth
    compute = read * seconds_per_byte / (threads * model.cpu_rate_scale)
    overhead = TOKEN_OVERHEAD_S + LAYER_OVERHEAD_S * len(parts)
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
    bandwidth = (ram_bandwidth or FALLBACK_RAM_BANDWIDTH) * model.ram_efficiency
    memory = read_bytes / bandwidth
    compute = read_bytes * seconds_per_byte_per_thread / (threads * model.cpu_rate_scale)
    return max(memory, compute) + TOKEN_OVERHEAD_S + LAYER_OVERHEAD_S * n_layers


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


def _matrix_rate(gpu: Gpu, model: SpeedModel) -> float | None:
    """Flops/s llama.cpp's batched products reach on ``gpu``."""
    backend = gpu_backend(gpu, model)
    peak = gpu.fp16_tflops or gpu.fp32_tflops
    # Before mid-2025 llama.cpp's HIP kernels did not use CDNA's matrix cores (MFMA): an
    # MI300X (1307 matrix TFLOPS, 163 vector) processed Llama 2 7B prompts at 1334 tokens/s
    # (b3891), where RDNA3 cards with a tenth of its matrix rate reach 2200.
    instinct = backend == "rocm" and "instinct" in gpu.name.lower()
    if instinct and model.build is not None and model.build < MFMA_BUILD:
        peak = gpu.fp32_tflops or peak
    if not peak:
        return None
    return peak * 1e12 * PROMPT_EFFICIENCY.get(backend, DEFAULT_PROMPT_EFFICIENCY)


def _gpu_prompt_seconds(
    inputs: SpeedInputs, dev: DeviceWork, gpu: Gpu, n_tokens: int
) -> float | None:
    rate = _matrix_rate(gpu, inputs.model)
    if rate is None or not gpu.bandwidth:
        return None
    legacy_cuda = gpu_backend(gpu, inputs.model) == "cuda" and inputs.model.legacy
    bandwidth = gpu.bandwidth * STREAM_EFFICIENCY[memory_kind(gpu)]
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
            read += layer.flops / 2 * share * LEGACY_DEQUANT_BYTES_PER_WEIGHT
        seconds += n_ubatches * read / bandwidth
        if part != "experts":
            seconds += ACTIVATION_PASSES * layer.row_bytes * n_tokens / bandwidth
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
    if main_gpu is not None and n_tokens >= OP_OFFLOAD_MIN_BATCH:
        rate = _matrix_rate(main_gpu, inputs.model)
        if rate is None:
            return None
        n_ubatches = -(-n_tokens // inputs.n_ubatch)
        flops = sum(_part_flops(layer, part) for layer, part in parts) * n_tokens
        copied = sum(_part_batch_bytes(layer, part) for layer, part in parts)
        return flops / rate + n_ubatches * copied / PCIE_BANDWIDTH
    flops = sum(_part_flops(layer, part) for layer, part in parts)
    attn = sum(layer.attn_flops_per_cell for layer, part in parts if part != "experts")
    threads = inputs.model.decode_threads(inputs.host.cpu.cores_logical)
    rate = CPU_THREAD_FLOPS * threads * inputs.model.cpu_rate_scale
    return (flops * n_tokens + attn * n_tokens * n_tokens / 2) / rate


def predict_inputs(inputs: SpeedInputs, *, prompt_tokens: int = DEFAULT_PROMPT_TOKENS) -> Speed:
    """Decode and prompt speed of ``inputs`` (see the module docstring)."""
    times = decode_times(inputs)
    decode = None
    if times is not None:
        total = sum(t.seconds for t in times)
        decode = round(1.0 / total, 2) if total > 0 else None
    prompt_tokens = max(int(prompt_tokens), 1)
    gpus = [d for d in inputs.devices if d.gpu is not None and d.busy]
    main_gpu = _figures(gpus[0].gpu) if gpus and gpus[0].gpu is not None else None
    prompt_s: float | None = 0.0
    for dev in inputs.devices:
        if dev.gpu is None:
            part = _host_prompt_seconds(inputs, dev, main_gpu, prompt_tokens)
        elif dev.busy:
            part = _gpu_prompt_seconds(inputs, dev, _figures(dev.gpu), prompt_tokens)
        else:
            continue
        prompt_s = None if part is None or prompt_s is None else prompt_s + part
    pp = round(prompt_tokens / prompt_s, 2) if prompt_s else None
    return Speed(
        decode_tokens_per_second=decode,
        prompt_tokens_per_second=pp,
        prompt_tokens=prompt_tokens,
        decode=times or (),
        prompt_seconds=prompt_s or None,
        inputs=inputs,
    )


def predict(
    work: Sequence[LayerWork],
    devices: Sequence[DeviceWork],
    host: Host,
    model: SpeedModel,
    *,
    cpu_seconds_per_byte: float,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    n_ubatch: int = 512,
) -> Speed:
    """Decode and prompt speed of ``devices`` running ``work`` (see the module docstring)."""
    inputs = SpeedInputs(
        tuple(work), tuple(devices), host, model, cpu_seconds_per_byte, max(n_ubatch, 1)
    )
    return predict_inputs(inputs, prompt_tokens=prompt_tokens)


def gpu_seconds(read_bytes: int, bandwidth: float, model: SpeedModel, *, n_layers: int) -> float:
    """Seconds a CUDA GDDR card spends reading ``read_bytes`` over ``n_layers`` layers (the
    plain form of :func:`decode_times`, for callers without a model's per-layer work)."""
    if read_bytes <= 0:
        return 0.0
    per_layer = LAYER_SECONDS["cuda"] * (LEGACY_LAYER_FACTOR if model.legacy else 1.0)
    return read_bytes / (bandwidth * STREAM_EFFICIENCY["gddr"]) + per_layer * n_layers


# --------------------------------------------------------------------------- calibration

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


__all__ = [
    "CPU_THREAD_RATES",
    "DEFAULT_THREAD_RATE",
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
