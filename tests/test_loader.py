"""Real loading of generated models through llama-cpp-python: allocations, retries, release,
speed, and the estimate checked against what llama.cpp reports."""

from __future__ import annotations

import ctypes
import math
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.errors import ConfigError, LlmfitError
from pytest_llmfit.loading import (
    MIB_ROUNDING,
    Allocations,
    capture_llama_log,
    close_and_check,
    compare,
    device_of,
    load_model,
    load_planned,
    measure_speed,
    parse_buffers,
    settings_kwargs,
)
from pytest_llmfit.twins.tiny import ARCHS, DTYPES, tiny_model_cached

MiB = 2**20
pytest.importorskip(
    "gguf", reason="writing tiny models needs the gguf package (pip install -e .[dev])"
)
llama_cpp = pytest.importorskip(
    "llama_cpp", reason="needs the llama extra: pip install -e .[llama]"
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("tiny-cache")


def tiny(cache: pathlib.Path, **kwargs: Any) -> pathlib.Path:
    return tiny_model_cached(cache, **kwargs)


# --- parsing (no llama.cpp) --------------------------------------------------------------------

LOG = """\
load_tensors: offloaded 33/33 layers to GPU
load_tensors:   CPU_Mapped model buffer size =   281.81 MiB
load_tensors:        CUDA0 model buffer size =  4403.49 MiB
load_tensors:   CPU_REPACK model buffer size =    10.00 MiB
llama_context:  CUDA_Host  output buffer size =     0.49 MiB
llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB
llama_kv_cache_iswa:      CUDA0 KV buffer size =    64.00 MiB
llama_memory_recurrent:        CPU RS buffer size =     1.50 MiB
sched_reserve:      CUDA0 compute buffer size =   296.00 MiB
sched_reserve:  CUDA_Host compute buffer size =    16.01 MiB
llama_context: graph nodes  = 1030
"""


def test_parse_buffers() -> None:
    a = parse_buffers(LOG.splitlines())
    assert a.model == {
        "CPU_Mapped": round(281.81 * MiB),
        "CUDA0": round(4403.49 * MiB),
        "CPU_REPACK": 10 * MiB,
    }
    assert a.kv == {"CUDA0": 576 * MiB}  # iSWA base + SWA caches summed
    assert a.rs == {"CPU": round(1.5 * MiB)}
    assert a.compute == {"CUDA0": 296 * MiB, "CUDA_Host": round(16.01 * MiB)}
    assert a.output == {"CUDA_Host": round(0.49 * MiB)}
    assert a.repack_bytes == 10 * MiB
    assert a.totals()["kv"] == a.kv_bytes == 576 * MiB
    assert a.total_bytes == sum(a.totals().values())
    dev = a.by_device()
    assert set(dev) == {"CPU", "CUDA0"}
    assert dev["CUDA0"] == round(4403.49 * MiB) + 576 * MiB + 296 * MiB
    assert a.device_component()["CPU"]["model"] == round(281.81 * MiB) + 10 * MiB
    assert Allocations.from_dict(a.to_dict()) == a
    assert parse_buffers([]).total_bytes == 0


@pytest.mark.parametrize(
    ("name", "device"),
    [
        ("CPU", "CPU"),
        ("CPU_Mapped", "CPU"),
        ("CUDA_Host", "CPU"),
        ("CUDA1", "CUDA1"),
        ("Metal_Mapped", "Metal"),
        ("Vulkan0", "Vulkan0"),
    ],
)
def test_device_of(name: str, device: str) -> None:
    assert device_of(name) == device


def test_import_loads_neither_llama_cpp_nor_gguf() -> None:
    code = (
        "import sys, pytest_llmfit.loading, pytest_llmfit.twins.tiny; "
        "print(sorted(m for m in ('llama_cpp', 'gguf', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- loading -----------------------------------------------------------------------------------


def test_load_is_silent_and_log_is_captured(
    cache: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tiny(cache)
    capfd.readouterr()
    before, before_ud = llama_cpp.llama_log_callback(), ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(before), ctypes.byref(before_ud))
    loaded = load_model(path, n_ctx=512)
    try:
        out = loaded.llm("hello", max_tokens=4, temperature=0.0)
        assert out["usage"]["completion_tokens"] > 0
    finally:
        close_and_check(loaded)
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    assert any("model buffer size" in line for line in loaded.log_lines)
    assert any("flash_attn" in line and "enabled" in line for line in loaded.log_lines)
    assert loaded.n_ctx == 512
    assert loaded.attempts[-1].ok and not loaded.retried
    # the previous callback is back in place
    after, after_ud = llama_cpp.llama_log_callback(), ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(after), ctypes.byref(after_ud))
    as_int = ctypes.c_void_p
    assert ctypes.cast(after, as_int).value == ctypes.cast(before, as_int).value
    assert after_ud.value == before_ud.value


def test_capture_nests() -> None:
    with capture_llama_log() as outer:
        with capture_llama_log() as inner:
            llama_cpp.llama_print_system_info()  # logs nothing: just exercises the set/get
        assert inner.lines == [] or all(isinstance(x, str) for x in inner.lines)
    assert isinstance(outer.lines, list)


# estimate vs llama.cpp for every tiny model, flash attention on and off, two context shapes.
# Measured on llama-cpp-python 0.3.36 (CPU): weights, KV and output equal llama.cpp's figures
# to its two-decimal MiB rounding (+-5243 bytes), except that Q4_0 weights repacked by the
# CPU backend (CPU_REPACK) are a copy the estimate does not model. Compute: within 3% over
# 192 combinations (vocab 260/2000/32000, n_embd 64/256, FA on/off, four n_ctx/n_ubatch);
# the worst, +2.9%, is one [n_embd, n_ubatch] f32 tensor the estimate counts in the head
# phase (n_vocab 2000, n_embd 64, where the logits are small).
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flash_attn", ["on", "off"])
@pytest.mark.parametrize(("n_ctx", "n_ubatch"), [(4096, 512), (1000, 128)])
def test_estimate_matches_llama_cpp(
    cache: pathlib.Path, arch: str, dtype: str, flash_attn: str, n_ctx: int, n_ubatch: int
) -> None:
    path = tiny(cache, arch=arch, dtype=dtype, n_vocab=2000)
    settings = Settings(n_ctx=n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn)
    fp = estimate(read_gguf(path), settings)
    loaded = load_model(path, n_ctx=n_ctx, n_ubatch=n_ubatch, flash_attn=flash_attn)
    try:
        misses = {m.component: m for m in compare(fp, loaded.allocations, tolerance=0.03)}
    finally:
        close_and_check(loaded)
    for name in ("kv", "output"):
        assert abs(misses[name].miss_bytes) <= MIB_ROUNDING, misses[name].describe()
    # Q4_0 on an x86 CPU with AVX2: the matrices are copied into a CPU_REPACK buffer and the
    # mapped range shrinks to the tensors left in place; the estimate models both.
    weights = misses["weights"]
    assert abs(weights.miss_bytes) <= MIB_ROUNDING, weights.describe()
    if dtype == "q4_0":
        repack = misses["repack"]
        assert repack.actual > 0
        assert abs(repack.miss_bytes) <= MIB_ROUNDING, repack.describe()
    else:
        assert "repack" not in misses and fp.repack_bytes == 0
    assert not misses["compute"].flagged, misses["compute"].describe()
    assert abs(misses["compute"].relative) < 0.03
    assert misses["kv"].actual > 0 and misses["compute"].actual > 0


def test_refusal_is_one_line_and_not_retried(
    cache: pathlib.Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A quantized V cache without flash attention: llama.cpp refuses the context, and fewer
    GPU layers would not help."""
    path = tiny(cache)
    capfd.readouterr()
    with pytest.raises(LlmfitError) as info:
        load_model(path, n_gpu_layers=8, type_v="q8_0", flash_attn="off")
    message = str(info.value)
    assert "\n" not in message
    assert "quantized V cache requires flash_attn" in message
    assert "n_gpu_layers tried: 8)" in message
    assert capfd.readouterr().err == ""


class _FailsAbove:
    """Stands in for llama_cpp.Llama: refuses more than ``limit`` GPU layers the way
    llama.cpp does when an allocation fails, then builds the real thing."""

    def __init__(self, limit: int, real: Any) -> None:
        self.limit = limit
        self.real = real
        self.calls: list[int] = []

    def __call__(self, path: str, *, n_gpu_layers: int, **kwargs: Any) -> Any:
        self.calls.append(n_gpu_layers)
        if n_gpu_layers > self.limit or n_gpu_layers < 0:
            raise ValueError("Failed to create llama_context (cudaMalloc failed: out of memory)")
        return self.real(path, n_gpu_layers=n_gpu_layers, **kwargs)


def test_retry_with_fewer_layers(cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiny(cache)
    fake = _FailsAbove(4, llama_cpp.Llama)
    monkeypatch.setattr(llama_cpp, "Llama", fake)
    loaded = load_model(path, n_gpu_layers=33, n_ctx=256)
    try:
        assert fake.calls == [33, 16, 8, 4]
        assert [a.n_gpu_layers for a in loaded.attempts] == [33, 16, 8, 4]
        assert [a.ok for a in loaded.attempts] == [False, False, False, True]
        assert "out of memory" in loaded.attempts[0].reason
        assert loaded.n_gpu_layers_used == 4 and loaded.retried
        assert isinstance(loaded.llm, fake.real)  # the real Llama, on the CPU here
        assert loaded.llm("hi", max_tokens=2)["usage"]["completion_tokens"] > 0
        assert loaded.allocations.kv_bytes > 0
    finally:
        close_and_check(loaded)


def test_all_layers_retry_uses_the_block_count(
    cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tiny(cache, n_layer=5)
    calls: list[int] = []
    real = llama_cpp.Llama

    def fails_on_all(path: str, *, n_gpu_layers: int, **kwargs: Any) -> Any:
        calls.append(n_gpu_layers)
        llm = real(path, n_gpu_layers=0, **kwargs)  # logs the model's n_layer
        if n_gpu_layers < 0:
            llm.close()
            raise ValueError("Failed to load model from file: out of memory")
        return llm

    monkeypatch.setattr(llama_cpp, "Llama", fails_on_all)
    loaded = load_model(path, n_gpu_layers=-1, n_ctx=256)
    try:
        assert calls == [-1, 3]  # (5 blocks + output) // 2
    finally:
        close_and_check(loaded)


def test_nothing_loads(cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tiny(cache)

    def always_fails(path: str, **kwargs: Any) -> Any:
        raise ValueError(f"Failed to load model from file: {path}")

    monkeypatch.setattr(llama_cpp, "Llama", always_fails)
    with pytest.raises(LlmfitError, match=r"n_gpu_layers tried: 5, 2, 1, 0\)") as info:
        load_model(path, n_gpu_layers=5)
    assert "\n" not in str(info.value)
    with pytest.raises(LlmfitError, match=r"tried: 5\)"):
        load_model(path, n_gpu_layers=5, retry_fewer_layers=False)


def test_load_planned_follows_the_plan(cache: pathlib.Path) -> None:
    """A plan for a 24 GB card puts every layer on it; this CPU build runs them on the CPU
    anyway (n_gpu_layers is accepted and ignored), and the footprint still matches."""
    from pytest_llmfit.engine.plan import plan
    from pytest_llmfit.hardware.specs import host_from_spec

    path = tiny(cache, n_vocab=2000)
    p = plan(read_gguf(path), host_from_spec("rtx-4090, ram=64GB"), Settings(n_ctx=1024))
    assert p.n_gpu_layers == p.n_layers_total == 3
    loaded = load_planned(path, p)
    try:
        assert loaded.n_gpu_layers_used == 3 and not loaded.retried
        assert loaded.n_ctx == 1024
        misses = {m.component: m for m in compare(p.footprint, loaded.allocations)}
        assert not any(m.flagged for m in misses.values()), [m.describe() for m in misses.values()]
    finally:
        close_and_check(loaded)
    with pytest.raises(ConfigError, match="one sequence"):
        settings_kwargs(Settings(n_seq=2))
    assert settings_kwargs(Settings(cache_type_v="Q8_0", flash_attn="true"))["type_v"] == "q8_0"


def test_bad_input(tmp_path: pathlib.Path, cache: pathlib.Path) -> None:
    with pytest.raises(LlmfitError, match="no such file"):
        load_model(tmp_path / "missing.gguf")
    path = tiny(cache)
    with pytest.raises(ConfigError, match="flash attention mode"):
        load_model(path, flash_attn="maybe")
    with pytest.raises(ConfigError, match="KV cache type"):
        load_model(path, type_k="q3_k")
    with pytest.raises(ConfigError, match=">= 1"):
        load_model(path, n_batch=0)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    with pytest.raises(LlmfitError, match="could not load") as info:
        load_model(bad, n_gpu_layers=4)
    assert "tried: 4)" in str(info.value)  # a corrupt file is not retried


def test_compare_flags(cache: pathlib.Path) -> None:
    fp = estimate(read_gguf(tiny(cache, n_layer=1)), Settings(n_ctx=256))
    exact = Allocations(
        model={"CPU_Mapped": fp.mapped_bytes},
        kv={"CPU": fp.kv_cache_bytes},
        compute={"CPU": fp.compute_bytes},
        output={"CPU": fp.output_bytes},
    )
    assert not any(m.flagged for m in compare(fp, exact))
    off = Allocations(
        model={"CPU_Mapped": fp.mapped_bytes},
        kv={"CPU": fp.kv_cache_bytes},
        compute={"CPU": fp.compute_bytes * 2},
        output={"CPU": fp.output_bytes},
    )
    misses = {m.component: m for m in compare(fp, off)}
    assert misses["compute"].flagged
    assert misses["compute"].relative == pytest.approx(-0.5, abs=0.01)
    assert "FLAGGED" in misses["compute"].describe()
    assert not misses["weights"].flagged
    assert math.isinf(compare(fp, Allocations())[0].relative)  # nothing reported
    with pytest.raises(ConfigError):
        compare(fp, exact, tolerance=-1)


# --- release and speed -------------------------------------------------------------------------


def test_memory_is_released_after_close(cache: pathlib.Path) -> None:
    """A 45 MB f16 model with a 32 MiB KV cache. Measured in a fresh process: RSS grows by
    80-90% of llama.cpp's host buffers while loaded (not every page of the compute buffer
    is touched) and 95-100% of that growth comes back on close; the first load of a process
    keeps up to ~15 MiB for good (ggml's thread pool and backend state), hence the slack."""
    path = tiny(cache, n_layer=8, n_embd=512, n_head=8, n_head_kv=4, dtype="f16")
    loaded = load_model(path, n_ctx=4096)
    loaded.llm.eval(loaded.llm.tokenize(b"warm every weight page once"))
    release = close_and_check(loaded)
    assert loaded.llm is None
    assert release.looks_released, release.reason
    host = loaded.allocations.by_device()["CPU"]
    assert release.host_allocated == host > 80 * MiB
    assert release.rss_before is not None and release.rss_baseline is not None
    assert release.rss_after is not None and release.rss_released is not None
    gained = release.rss_before - release.rss_baseline
    assert gained > 0.6 * host
    assert release.rss_released > 0.6 * gained  # measured 0.95-1.0 (malloc_trim on close)
    assert release.rss_after - release.rss_baseline < release.slack
    assert release.vram_released is None  # no NVML here (a GPU runner measures it)
    assert close_and_check(loaded).looks_released  # closing twice is harmless


def test_measure_speed(cache: pathlib.Path) -> None:
    path = tiny(cache, n_layer=2, n_embd=128, n_head=2, n_head_kv=1)
    loaded = load_model(path, n_ctx=256, n_threads=1)
    try:
        assert loaded.llm.context_params.n_threads_batch == 1  # batch threads follow n_threads
        speed = measure_speed(loaded.llm, prompt_tokens=32, gen_tokens=8, repeats=2, warmup=1)
        assert speed.prompt_tokens == 32 and speed.gen_tokens == 8 and speed.repeats == 2
        for v in (speed.prompt_tps, speed.decode_tps, speed.ttft_s):
            assert v > 0 and math.isfinite(v)
        lo, hi = speed.decode_tps_range
        assert lo <= speed.decode_tps <= hi
        assert len(speed.prompt_tps_samples) == 2
        assert speed.peak_rss is not None and speed.peak_rss > 0
        assert speed.to_dict()["decode_tps"] == speed.decode_tps
        assert speed.n_threads == 1
        with pytest.raises(ConfigError, match="within the context"):
            measure_speed(loaded.llm, prompt_tokens=250, gen_tokens=10)
        # the context is usable afterwards
        assert loaded.llm("x", max_tokens=2)["usage"]["completion_tokens"] > 0
    finally:
        close_and_check(loaded)
