"""The fit engine inside a test, through the ``llmfit`` fixture: no marker, no decision;
the test asks its own questions, here to pick the longest context that stays on the GPU."""

from __future__ import annotations

LLAMA_8B = "Llama-3.1-8B-Instruct-Q4_K_M.gguf"


def longest_context_on_gpu(llmfit, model, candidates=(131072, 65536, 32768, 16384, 8192)):
    for n_ctx in candidates:
        if llmfit.plan(model, n_ctx=n_ctx).mode == "gpu":
            return n_ctx
    return None


def test_pick_context_for_this_host(llmfit, models_dir):
    model = models_dir / LLAMA_8B
    n_ctx = longest_context_on_gpu(llmfit, model)
    if llmfit.host.gpus:
        assert n_ctx is not None, llmfit.plan(model, n_ctx=8192)
    else:
        assert n_ctx is None  # no GPU: every plan is CPU-only
        assert llmfit.plan(model, n_ctx=8192).mode == "cpu"
    # fits() answers "is there this much VRAM?" for the session's (real or simulated) host.
    assert llmfit.fits("1GB") == bool(llmfit.host.gpus)
