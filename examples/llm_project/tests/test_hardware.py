"""Plain hardware requirements: VRAM, RAM, GPUs. Sizes: '24GB' is 24 * 10**9 bytes, '24GiB'
is 24 * 2**30; a "24 GB" card (24564 MiB) passes requires_vram("24GB")."""

from __future__ import annotations

from pytest_llmfit import requires_gpu, requires_ram, requires_vram


@requires_vram("24GB")
def test_fits_a_24gb_card(llmfit_host):
    assert sum(gpu.memory_total for gpu in llmfit_host.gpus) >= 24 * 10**9


@requires_vram("80GB", per_device=True)
def test_needs_one_80gb_card(llmfit_host):
    # per_device=True: one GPU must have it; two 40 GB cards do not count.
    assert max(gpu.memory_total for gpu in llmfit_host.gpus) >= 80 * 10**9


@requires_vram("160GB")
def test_needs_160gb_across_gpus(llmfit_host):
    # Summed over the visible GPUs, as llama.cpp splits layers across them.
    assert sum(gpu.memory_total for gpu in llmfit_host.gpus) >= 160 * 10**9


@requires_ram("32GB")
def test_embeddings_index_in_ram(llmfit_host):
    assert llmfit_host.ram.total >= 32 * 10**9


@requires_ram("2GB", on_nofit="fail")
def test_tokenizer_smoke(llmfit_host):
    # on_nofit="fail": this one must run on every runner; a host too small is a failure,
    # not a silent skip.
    assert llmfit_host.ram.total >= 2 * 10**9


@requires_gpu(vendor="nvidia", min_compute_capability="8.9")
def test_fp8_kernels(llmfit_host):
    # FP8 tensor cores: Ada (8.9) and Hopper (9.0), not Ampere (8.0).
    assert any(gpu.compute_capability >= (8, 9) for gpu in llmfit_host.gpus)


@requires_gpu(2, vendor="nvidia")
def test_tensor_split_two_gpus(llmfit_host):
    assert len(llmfit_host.gpus) >= 2
