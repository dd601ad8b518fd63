"""The speed model's constants, each with the measurements that set it.

Fitted constants come from the published llama-bench rows of ``tests/data/llama_bench/``
(least squares on the log error; ``benchmarks/bench_published.py`` prints the rows against
the predictions); the CPU rates from this project's own runs. Other modules read them as
``constants.NAME`` at call time, so a calibration or a fit can replace them.
"""

from __future__ import annotations

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
