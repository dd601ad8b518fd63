"""The offload planner on the seed case and on hand-made hosts."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pytest_llmfit.engine.advise import with_suggestions
from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import GGUFFile
from pytest_llmfit.engine.plan import DEFAULT_HEADROOM, plan
from pytest_llmfit.hardware.specs import host_from_spec
from pytest_llmfit.hardware.types import Cpu, Gpu, Host, Ram

TwinHeader = Callable[..., GGUFFile]
GB = 10**9


@pytest.fixture(scope="module")
def llama405b(twin_header: TwinHeader) -> GGUFFile:
    return twin_header("llama-3.1-405b", "q3_k_m")


def _host(*gpus: tuple[str, int, float], ram: int = 64 * GB, ram_bw: float = 60e9) -> Host:
    return Host(
        gpus=tuple(
            Gpu(
                vendor="nvidia",
                name=name,
                index=i,
                cuda_index=i,
                memory_total=mem,
                memory_free=mem,
                bandwidth=bw,
            )
            for i, (name, mem, bw) in enumerate(gpus)
        ),
        cpu=Cpu("test cpu", 8, 16),
        ram=Ram(total=ram, available=ram, bandwidth=ram_bw),
        simulated=True,
        source="test",
    )


def test_405b_q3km_twin_is_the_published_size(llama405b: GGUFFile) -> None:
    assert 190 * GB <= llama405b.weights_bytes <= 197 * GB
    assert len([t for t in llama405b.tensors if t.name.startswith("blk.")]) == 126 * 9


def test_seed_case_rtx4090_64gb_does_not_fit_and_says_by_how_much(llama405b: GGUFFile) -> None:
    p = plan(llama405b, host_from_spec("rtx-4090, ram=64GB"), Settings(n_ctx=8192))
    assert p.mode == "none" and not p.fits
    assert p.n_layers_total == 127
    assert 13 <= p.n_gpu_layers <= 15
    assert 170 * GB <= p.host_bytes <= 180 * GB
    assert p.shortfall_bytes == p.host_bytes - p.host.budget_bytes
    assert 100 * GB < p.shortfall_bytes < 120 * GB
    assert p.tokens_per_second is not None and 0 < p.tokens_per_second < 1
    (gpu,) = p.devices
    assert gpu.need_bytes <= gpu.free_bytes - DEFAULT_HEADROOM
    assert any("short by" in reason for reason in p.reasons)
    assert not p.suggestions  # the ways out are the advisor's
    tips = with_suggestions(llama405b, host_from_spec("rtx-4090, ram=64GB"), Settings(n_ctx=8192))
    ram = "fits with 179.0 GB RAM: partial offload"
    assert any(tip.startswith(ram) for tip in tips.suggestions)


def test_seed_case_with_256gb_ram_fits_as_partial_offload(llama405b: GGUFFile) -> None:
    p = plan(llama405b, host_from_spec("rtx-4090, ram=256GB"), Settings(n_ctx=8192))
    assert p.mode == "partial" and p.fits and p.shortfall_bytes == 0
    assert 13 <= p.n_gpu_layers <= 15
    assert p.host_bytes <= p.host.budget_bytes


def test_seed_case_on_three_h200_fits_fully_split_evenly(llama405b: GGUFFile) -> None:
    p = plan(llama405b, host_from_spec("3x h200"), Settings(n_ctx=8192))
    assert p.mode == "gpu" and p.n_gpu_layers == 127
    assert p.tensor_split == pytest.approx((1 / 3, 1 / 3, 1 / 3), abs=1e-3)
    assert sum(d.n_layers for d in p.devices) == 127
    assert max(d.n_layers for d in p.devices) - min(d.n_layers for d in p.devices) <= 1
    # Only the token embeddings, the logits and the staging buffers stay on the host.
    assert p.host_bytes < 2 * GB
    assert p.tokens_per_second is not None and p.tokens_per_second > 5


def test_layers_go_to_the_gpu_output_first_then_blocks_from_the_back(
    twin_header: TwinHeader,
) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    fp = estimate(model, Settings(n_ctx=4096))
    block = max(layer.weights_bytes + layer.kv_bytes for layer in fp.layers)
    staged = max(layer.weights_bytes for layer in fp.layers)  # a CPU layer's weights in flight
    # Room for the compute buffer, the output layer and exactly three blocks.
    budget = fp.compute_bytes + staged + fp.output_layer_bytes + 3 * block + block // 2
    host = _host(("small", budget + DEFAULT_HEADROOM, 500e9), ram=64 * GB)
    p = plan(model, host, Settings(n_ctx=4096), footprint=fp)
    assert p.mode == "partial"
    assert p.n_gpu_layers == 4  # the output layer and blocks 31, 30, 29
    assert p.devices[0].n_layers == 4
    assert p.host.n_layers == fp.n_layer - 3


def test_two_unequal_gpus_share_layers_in_proportion_to_free_memory(
    twin_header: TwinHeader,
) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    host = _host(("big", 48 * GB, 900e9), ("small", 16 * GB, 900e9))
    p = plan(model, host, Settings(n_ctx=4096))
    assert p.mode == "gpu"
    assert p.tensor_split == pytest.approx((0.75, 0.25))
    big, small = p.devices
    assert big.n_layers == pytest.approx(0.75 * 33, abs=1)
    assert small.n_layers == pytest.approx(0.25 * 33, abs=1)


def test_cpu_only_host_runs_a_small_model_on_the_cpu(twin_header: TwinHeader) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    p = plan(model, host_from_spec("cpu-only, ram=16GB"), Settings(n_ctx=4096))
    assert p.mode == "cpu" and p.fits and p.n_gpu_layers == 0 and not p.devices
    # The host holds every weight once (a repacked copy replaces its mapped original).
    fp = p.footprint
    assert fp.repack_bytes > 0  # Q4_K tensors are repacked on x86 with AVX2
    assert p.host_bytes == fp.total_bytes
    assert p.tokens_per_second is not None and p.tokens_per_second > 1


def test_nothing_fits_a_tiny_host_and_suggestions_name_numbers(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    p = with_suggestions(model, host_from_spec("cpu-only, ram=4GB"), Settings(n_ctx=32768))
    assert p.mode == "none" and p.shortfall_bytes > 0
    assert any(re.match(r"fits with [\d.]+ GB RAM: CPU only", tip) for tip in p.suggestions)


def test_a_shorter_context_or_quantized_kv_is_suggested_when_it_helps(
    twin_header: TwinHeader,
) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    fp = estimate(model, Settings(n_ctx=131072))
    # A GPU that holds the weights and a 128k q4_0 cache, not a q8_0 or f16 one.
    vram = fp.weights_bytes + fp.compute_bytes + 6 * GB
    p = with_suggestions(model, _host(("gpu", vram, 900e9)), Settings(n_ctx=131072))
    assert p.mode == "partial"
    assert any(tip.startswith("fits at n_ctx ") for tip in p.suggestions)
    assert any(tip.startswith("fits with a q4_0 KV cache") for tip in p.suggestions)


def test_headroom_is_kept_free_on_every_device(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    fp = estimate(model, Settings(n_ctx=4096))
    vram = fp.total_bytes + DEFAULT_HEADROOM // 2
    host = _host(("gpu", vram, 900e9))
    assert plan(model, host, Settings(n_ctx=4096), headroom=0).mode == "gpu"
    assert plan(model, host, Settings(n_ctx=4096)).mode == "partial"


def test_moe_decode_reads_only_the_used_experts(twin_header: TwinHeader) -> None:
    model = twin_header("qwen3-30b-a3b")
    host = host_from_spec("h100-sxm")
    p = plan(model, host, Settings(n_ctx=4096))
    fp = p.footprint
    read = sum(d.read_bytes_per_token for d in p.devices) + p.host.read_bytes_per_token
    # 8 of 128 experts: far less than the weights are read per token.
    assert read < fp.weights_bytes / 4
    assert p.tokens_per_second is not None and p.tokens_per_second > 50


def test_plan_to_dict_has_the_documented_keys(llama405b: GGUFFile) -> None:
    data = plan(llama405b, host_from_spec("rtx-4090, ram=64GB"), Settings(n_ctx=8192)).to_dict()
    assert set(data["memory"]) >= {
        "weights_bytes",
        "kv_cache_bytes",
        "compute_bytes",
        "output_bytes",
        "total_bytes",
    }
    assert set(data["plan"]) >= {
        "mode",
        "n_gpu_layers",
        "tensor_split",
        "devices",
        "host_bytes",
        "shortfall_bytes",
        "tokens_per_second",
    }
    assert set(data["plan"]["devices"][0]) >= {"name", "need_bytes", "free_bytes"}
    assert data["fits"] is False
    assert all(any(ch.isdigit() for ch in reason) for reason in data["reasons"])
