"""Llama 3.1 8B at Q4_K_M: 4.9 GB of weights, the model most of the suite uses."""

from __future__ import annotations

from pytest_llmfit import requires_model

LLAMA_8B = "Llama-3.1-8B-Instruct-Q4_K_M.gguf"


@requires_model(LLAMA_8B, n_ctx=8192)
def test_8b_chat(llmfit, models_dir):
    # Fits everywhere with 8 GB of RAM or VRAM: on a GPU, or on the CPU from host RAM.
    plan = llmfit.plan(models_dir / LLAMA_8B, n_ctx=8192)
    assert plan.fits
    # What a real test would do with the plan:
    #   Llama(model_path, n_ctx=8192, n_gpu_layers=plan.n_gpu_layers, ...)


@requires_model(LLAMA_8B, n_ctx=8192, min_tokens_per_second=30)
def test_8b_interactive_latency(llmfit, models_dir):
    # Fitting is not enough for a latency test: it needs a predicted 30 tokens/s or more,
    # which CPU decoding of a 4.9 GB model does not reach.
    plan = llmfit.plan(models_dir / LLAMA_8B, n_ctx=8192)
    assert plan.tokens_per_second is not None and plan.tokens_per_second >= 30


@requires_model(LLAMA_8B, n_ctx=32768, cache_type="q8_0", flash_attn="on", on_offload="skip")
def test_8b_long_context_on_gpu(llmfit, models_dir):
    # 32k context with a q8_0 KV cache (needs flash attention). on_offload="skip": pointless
    # from host RAM, so it runs only where every layer is on a GPU.
    plan = llmfit.plan(
        models_dir / LLAMA_8B,
        n_ctx=32768,
        cache_type_k="q8_0",
        cache_type_v="q8_0",
        flash_attn="on",
    )
    assert plan.mode == "gpu"


@requires_model(LLAMA_8B, n_ctx=16384, n_seq=4, on_offload="xfail")
def test_8b_four_parallel_sessions(llmfit, models_dir):
    # Four sequences sharing a 16k context: a GPU serving test. From host RAM it would be
    # too slow to mean anything, so a CPU-only runner reports an expected failure
    # (on_offload="xfail") instead of a run or a silent skip.
    plan = llmfit.plan(models_dir / LLAMA_8B, n_ctx=16384, n_seq=4)
    assert plan.mode == "gpu"
