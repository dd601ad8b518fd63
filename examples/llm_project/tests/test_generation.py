"""A real generation, on a tiny model (models/tiny-llama-f32.gguf, made by tiny_model.py):
the loading code path end to end, in a fraction of a second, on any machine."""

from __future__ import annotations

import importlib.util

import pytest

from pytest_llmfit import requires_model

TINY = "tiny-llama-f32.gguf"

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (pip install llama-cpp-python)",
)


@needs_llama_cpp
@requires_model(TINY, n_ctx=256)
def test_tiny_model_generates(llmfit, models_dir):
    from llama_cpp import Llama

    path = models_dir / TINY
    plan = llmfit.plan(path, n_ctx=256)
    llm = Llama(
        model_path=str(path),
        n_ctx=256,
        n_gpu_layers=plan.n_gpu_layers,  # ignored by a CPU-only build of llama.cpp
        seed=1,
        verbose=False,
    )
    prompt = llm.tokenize(b"hello world")
    tokens = []
    for token in llm.generate(prompt, temp=0.0):
        tokens.append(token)
        if len(tokens) == 8:
            break
    assert len(tokens) == 8
    assert all(0 <= t < llm.n_vocab() for t in tokens)
    assert isinstance(llm.detokenize(tokens), bytes)
