"""The ways out: what each alternative claims is what the planner gives when it is re-planned
from the fields that make it reproducible, counts are the fewest, and the order holds."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from pytest_llmfit.engine.advise import AdviceCache, Alternative, advise, with_suggestions
from pytest_llmfit.engine.advise.base import tier
from pytest_llmfit.engine.advise.rank import beats
from pytest_llmfit.engine.advise.search import fast_plan
from pytest_llmfit.engine.advise.sibling import recognise
from pytest_llmfit.engine.advise.sibling import twin_header as build_twin
from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import GGUFFile
from pytest_llmfit.engine.plan import Plan, plan
from pytest_llmfit.engine.quantize import requantize
from pytest_llmfit.engine.speed import SpeedModel
from pytest_llmfit.hardware.catalog import builtin_catalog
from pytest_llmfit.hardware.specs import host_from_spec
from pytest_llmfit.hardware.types import Cpu, Gpu, Host, Ram

TwinHeader = Callable[..., GGUFFile]
GB = 10**9
SEED_HOST = "rtx-4090, ram=64GB"
DATA_CENTRE = re.compile(r"\b(A100|H100|H200|H20|B200|B300|GB200|GH200|MI3\d\dX?)\b")


@pytest.fixture(scope="module")
def llama405b(twin_header: TwinHeader) -> GGUFFile:
    return twin_header("llama-3.1-405b", "q3_k_m")


@pytest.fixture(scope="module")
def seed(llama405b: GGUFFile) -> tuple[GGUFFile, Host, Settings, tuple[Alternative, ...]]:
    host = host_from_spec(SEED_HOST)
    settings = Settings(n_ctx=8192)
    found = advise(llama405b, host, settings, cache=AdviceCache())
    return llama405b, host, settings, found.alternatives


def _replan(
    twin_header: TwinHeader, model: GGUFFile, host: Host, settings: Settings, a: Alternative
) -> Plan:
    """Plan an alternative from its reproducible fields, as a user would from the CLI."""
    if a.model is not None:
        assert a.quant is not None
        model = twin_header(a.model, a.quant.lower())  # pytest-llmfit twin ID --quant Q
    elif a.quant is not None:
        model = requantize(model, a.quant)  # plan --quant Q
    if a.hardware is not None:
        host = host_from_spec(a.hardware)  # plan --hardware SPEC
    if a.n_ctx is not None:
        settings = replace(settings, n_ctx=a.n_ctx)
    if a.cache_type is not None:
        assert a.flash_attn == "on"
        settings = replace(
            settings, cache_type_k=a.cache_type, cache_type_v=a.cache_type, flash_attn="on"
        )
    return plan(model, host, settings, n_cpu_moe=a.n_cpu_moe or 0)


def _holds_its_claim(a: Alternative, p: Plan) -> None:
    assert (p.fits, p.mode, p.n_gpu_layers, p.n_layers_total) == (
        a.fits,
        a.mode,
        a.n_gpu_layers,
        a.n_layers_total,
    ), a.label
    assert p.footprint.total_bytes == a.total_bytes, a.label
    assert sum(d.need_bytes for d in p.devices) == a.vram_bytes, a.label
    assert p.host.need_bytes == a.ram_bytes, a.label
    assert p.tokens_per_second == a.tokens_per_second, a.label


def test_seed_case_lists_fitting_quant_gpus_and_model(seed: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, alternatives = seed
    fitting = {a.kind for a in alternatives if a.fits}
    assert {"quant", "gpus", "model"} <= fitting
    names = [builtin_catalog().find(a.gpu).name for a in alternatives if a.kind == "gpus" and a.gpu]
    assert any(DATA_CENTRE.search(name) for name in names), names
    quant = next(a for a in alternatives if a.kind == "quant")
    assert quant.quant is not None and quant.quant.startswith("IQ1")
    assert quant.weights_bytes < 90 * GB
    models = {a.model for a in alternatives if a.kind == "model"}
    assert models & {"llama-3.1-70b", "llama-3.1-8b"}


def test_seed_alternatives_replan_to_what_they_claim(
    seed: tuple,  # type: ignore[type-arg]
    twin_header: TwinHeader,
) -> None:
    model, host, settings, alternatives = seed
    assert alternatives
    for a in alternatives:
        _holds_its_claim(a, _replan(twin_header, model, host, settings, a))


def test_gpu_counts_are_the_fewest(seed: tuple) -> None:  # type: ignore[type-arg]
    model, _, settings, alternatives = seed
    for a in alternatives:
        if a.kind != "gpus" or a.count == 1:
            continue
        assert a.hardware is not None and a.hardware.startswith(f"{a.count}x {a.gpu},")
        fewer = host_from_spec(a.hardware.replace(f"{a.count}x", f"{a.count - 1}x", 1))
        assert tier(plan(model, fewer, settings)) < a.tier, a.label


def test_ranking_fits_first_then_speed_and_nothing_beaten(seed: tuple) -> None:  # type: ignore[type-arg]
    _, _, _, alternatives = seed
    fits = [a.fits for a in alternatives]
    assert fits == sorted(fits, reverse=True)
    speeds = [a.tokens_per_second or 0.0 for a in alternatives if a.fits]
    assert speeds == sorted(speeds, reverse=True)
    for a in alternatives:
        assert not any(beats(b, a) for b in alternatives), a.label


def test_mixtral_spills_and_its_experts_go_to_ram(twin_header: TwinHeader) -> None:
    model = twin_header("mixtral-8x7b", "q4_k_m")
    host = host_from_spec(SEED_HOST)
    settings = Settings(n_ctx=4096)
    found = advise(model, host, settings, cache=AdviceCache())
    assert found.plan.mode == "partial"
    moe = next(a for a in found.alternatives if a.kind == "moe_offload")
    assert moe.fits and moe.mode == "gpu" and moe.n_cpu_moe
    assert moe.tokens_per_second is not None and found.plan.tokens_per_second is not None
    assert moe.tokens_per_second > found.plan.tokens_per_second  # only active experts read
    _holds_its_claim(moe, _replan(twin_header, model, host, settings, moe))
    one_fewer = plan(model, host, settings, n_cpu_moe=moe.n_cpu_moe - 1)
    assert one_fewer.mode != "gpu"  # the smallest N
    for a in found.alternatives:
        _holds_its_claim(a, _replan(twin_header, model, host, settings, a))


def _card(vram: int) -> Host:
    gpu = Gpu("nvidia", "card", 0, vram, vram, bandwidth=900e9, cuda_index=0)
    return Host((gpu,), Cpu("cpu", 8, 16), Ram(64 * GB, 64 * GB, 60e9), simulated=True)


def test_the_longest_context_and_a_smaller_cache(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    settings = Settings(n_ctx=131072)
    fp = estimate(model, settings)
    # The weights and a q4_0 cache (4.8 GB at 128k), not a q8_0 (9.1 GB) or f16 one (17.2 GB).
    host = _card(fp.weights_bytes + fp.compute_bytes + 6 * GB)
    found = advise(model, host, settings, cache=AdviceCache())
    assert found.plan.mode == "partial"
    context = next(a for a in found.alternatives if a.kind == "context")
    assert context.mode == "gpu" and context.n_ctx is not None
    assert context.n_ctx % 256 == 0 and context.n_ctx not in (65536, 32768)  # bisected
    longer = plan(model, host, replace(settings, n_ctx=context.n_ctx + 256))
    assert longer.mode != "gpu"
    cache = [a for a in found.alternatives if a.kind == "cache_type"]
    assert [(a.cache_type, a.mode) for a in cache] == [("q4_0", "gpu")]
    for a in found.alternatives:
        if a.kind in ("context", "cache_type", "quant"):
            _holds_its_claim(a, _replan(twin_header, model, host, settings, a))


def test_a_model_on_gpu_needs_no_advice(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    found = advise(model, host_from_spec("h100-sxm"), Settings(), cache=AdviceCache())
    assert found.plan.mode == "gpu" and found.alternatives == ()


def test_cpu_only_host(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    host = host_from_spec("cpu-only, ram=4GB")
    settings = Settings(n_ctx=4096)
    found = advise(model, host, settings, cache=AdviceCache())
    kinds = {a.kind for a in found.alternatives}
    assert {"quant", "ram", "gpus", "model"} <= kinds
    for a in found.alternatives:
        _holds_its_claim(a, _replan(twin_header, model, host, settings, a))


@pytest.mark.parametrize(
    ("model_id", "quant", "spec", "n_cpu_moe"),
    [
        ("llama-3.1-405b", "q3_k_m", "rtx-4090, ram=64GB", 0),
        ("llama-3.1-405b", "q3_k_m", "2x a100-80gb, ram=64GB", 0),
        ("llama-3.1-70b", "q4_k_m", "rtx-4090, rtx-3090, ram=32GB", 0),
        ("mixtral-8x7b", "q4_k_m", "rtx-4090, ram=64GB", 0),
        ("mixtral-8x7b", "q4_k_m", "rtx-4090, ram=64GB", 7),
        ("qwen2.5-7b", "q4_k_m", "cpu-only, ram=16GB", 0),
        ("gemma-2-9b", "q4_k_m", "m2-max", 0),
    ],
)
def test_fast_plan_is_the_planners_search(
    twin_header: TwinHeader, model_id: str, quant: str, spec: str, n_cpu_moe: int
) -> None:
    model = twin_header(model_id, quant)
    host = host_from_spec(spec)
    settings = Settings(n_ctx=8192)
    fp = estimate(model, settings)
    slow = plan(model, host, settings, footprint=fp, n_cpu_moe=n_cpu_moe)
    quick = fast_plan(
        model, host, settings, fp, headroom=2**30, speed_model=SpeedModel(), n_cpu_moe=n_cpu_moe
    )
    assert quick.to_dict() == slow.to_dict()


def test_advice_is_fast_and_cached(llama405b: GGUFFile) -> None:
    host = host_from_spec(SEED_HOST)
    cache = AdviceCache()
    base = plan(llama405b, host, Settings(n_ctx=8192))
    started = time.perf_counter()
    first = advise(llama405b, host, Settings(n_ctx=8192), base=base, cache=cache)
    took = time.perf_counter() - started
    assert took < 10  # about 0.6 s on an idle core; the suite shares two
    started = time.perf_counter()
    again = advise(llama405b, host, Settings(n_ctx=8192), base=base, cache=cache)
    assert again is first and time.perf_counter() - started < 0.05


def test_with_suggestions_fills_the_plan(llama405b: GGUFFile) -> None:
    p = with_suggestions(llama405b, host_from_spec(SEED_HOST), Settings(n_ctx=8192))
    assert p.mode == "none" and p.suggestions
    assert all(line.startswith("fits ") for line in p.suggestions)
    assert not plan(llama405b, host_from_spec(SEED_HOST), Settings(n_ctx=8192)).suggestions


def test_skip_phrase_names_a_change_to_the_model_and_hardware(llama405b: GGUFFile) -> None:
    found = advise(llama405b, host_from_spec(SEED_HOST), Settings(n_ctx=8192))
    phrase = found.ways_out()
    assert re.fullmatch(
        r"fits as IQ1_\w+ with a q\d_0 KV cache at n_ctx \d+ or on \d+x [\w.-]+", phrase
    )


def test_siblings_are_sized_in_memory_like_written_twins(twin_header: TwinHeader) -> None:
    settings = Settings(n_ctx=4096)
    for model_id, quant in (("llama-3.1-70b", "Q3_K_M"), ("gemma-2-2b", "Q4_K_M")):
        written = estimate(twin_header(model_id, quant.lower()), settings)
        built = estimate(build_twin(model_id, quant), settings)
        assert built.total_bytes == written.total_bytes
        assert [layer.weights_bytes for layer in built.layers] == [
            layer.weights_bytes for layer in written.layers
        ]


def test_recognised_by_shape_or_by_name(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-70b", "q4_k_m")
    shape = recognise(model)
    assert shape is not None and shape.id == "llama-3.1-70b"
    metadata = dict(model.metadata)
    metadata["llama.feed_forward_length"] = 12345  # a variant: the shapes no longer match
    assert recognise(replace(model, metadata=metadata)) is None
    metadata |= {"general.basename": "Meta-Llama-3.1", "general.size_label": "70B"}
    named = recognise(replace(model, metadata=metadata))
    assert named is not None and named.id == "llama-3.1-70b"
    assert recognise(twin_header("phi-3-mini-4k", "q4_k_m")) is None  # no family
