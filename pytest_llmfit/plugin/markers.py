"""The markers pytest-llmfit registers, with the one-line documentation
``pytest --markers`` shows. Kept apart so that registering them imports nothing else."""

from __future__ import annotations

MARKERS: dict[str, str] = {
    "requires_vram": "requires_vram(size, *, per_device=False, on_nofit=None): free VRAM "
    "summed over the visible GPUs (llama.cpp splits layers across them), or on one GPU "
    "with per_device=True. Sizes like '24GB' (10**9) or '16GiB' (2**30).",
    "requires_ram": "requires_ram(size, *, on_nofit=None): available host RAM "
    "(a container's memory limit applied).",
    "requires_gpu": "requires_gpu(count=1, *, vendor=None, name=None, "
    "min_compute_capability=None, on_nofit=None): at least count matching GPUs.",
    "requires_model": "requires_model(path, *, n_ctx=4096, cache_type='f16', "
    "flash_attn='auto', n_ubatch=512, n_batch=512, n_seq=1, n_gpu_layers=None, "
    "tensor_split=None, n_cpu_moe=0, min_tokens_per_second=None, "
    "min_prompt_tokens_per_second=None, on_nofit=None, on_offload=None): the model's "
    "memory need, computed from its GGUF header, fits the host (a header-only stub is "
    "enough), and its predicted decode and prompt (512 tokens) speeds reach the minimums.",
}
