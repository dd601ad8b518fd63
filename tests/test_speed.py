"""Unit tests of the speed model's terms (pytest_llmfit.engine.speed), on hand-built work.

Each test isolates one term: streaming at the memory's achievable bandwidth, the fixed
per-layer cost (and what makes a small model launch-bound), the legacy-build and
no-CUDA-graphs factors, MoE layers, Metal's unpacking roofline, several GPUs in layer
split, the CPU's share, and prompt processing (compute, weight reads, activations, the
legacy dequantizing pass, op offload over PCIe, time to first token).
"""

from __future__ import annotations

import math
import pathlib

import pytest

from pytest_llmfit.engine.speed import (
    DeviceWork,
    LayerWork,
    Speed,
    SpeedModel,
    gpu_backend,
    memory_kind,
    model_work,
    predict,
)
from pytest_llmfit.engine.speed import constants as S
from pytest_llmfit.engine.speed.model import _figures
from pytest_llmfit.hardware.types import Cpu, Gpu, Host, Ram

GB = 10**9


def _gpu(
    name: str = "NVIDIA GeForce RTX 4090",
    *,
    vendor: str = "nvidia",
    bandwidth: float = 1000e9,
    fp16: float | None = 300.0,
    fp32: float | None = 80.0,
    cc: tuple[int, int] | None = (8, 9),
    unified: bool = False,
) -> Gpu:
    return Gpu(
        vendor=vendor,
        name=name,
        index=0,
        memory_total=80 * GB,
        memory_free=80 * GB,
        bandwidth=bandwidth,
        compute_capability=cc,
        unified=unified,
        fp16_tflops=fp16,
        fp32_tflops=fp32,
    )


def _host(gpus: tuple[Gpu, ...] = (), *, ram_bw: float = 100e9, cpus: int = 16) -> Host:
    return Host(
        gpus=gpus,
        cpu=Cpu("test CPU", cpus, cpus),
        ram=Ram(total=512 * GB, available=512 * GB, bandwidth=ram_bw),
        simulated=True,
    )


def _layers(n: int, nbytes: int, *, type_name: str = "F16", moe: bool = False) -> list[LayerWork]:
    elements = nbytes // 2 if type_name == "F16" else int(nbytes * 1.8)
    experts = ((type_name, nbytes // 2),) if moe else ()
    return [
        LayerWork(
            index=i,
            weights=((type_name, nbytes),),
            experts=experts,
            expert_bytes_all=nbytes * 8 if moe else 0,
            flops=2 * elements,
            expert_flops=elements if moe else 0,
            attn_flops_per_cell=2 * 32 * 256,
            row_bytes=4 * 4096,
            moe=moe,
        )
        for i in range(n)
    ]


def _decode_seconds(work: list[LayerWork], gpu: Gpu, model: SpeedModel | None = None) -> float:
    model = model or SpeedModel()
    devices = [DeviceWork(gpu, tuple(range(len(work)))), DeviceWork(None)]
    speed = predict(work, devices, _host((gpu,)), model, cpu_seconds_per_byte=1 / 5e9)
    assert speed.decode_tokens_per_second
    return sum(d.seconds for d in speed.decode)


# --------------------------------------------------------------------------- the GPU's kind


@pytest.mark.parametrize(
    ("name", "unified", "kind"),
    [
        ("NVIDIA A100-SXM4-80GB", False, "hbm"),
        ("NVIDIA H100 PCIe", False, "hbm"),
        ("NVIDIA H200", False, "hbm"),
        ("AMD Instinct MI300X", False, "hbm"),
        ("Tesla V100-PCIE-16GB", False, "hbm"),
        ("NVIDIA GeForce RTX 4090", False, "gddr"),
        ("NVIDIA L40S", False, "gddr"),
        ("NVIDIA A40", False, "gddr"),
        ("AMD Radeon RX 7900 XTX", False, "gddr"),
        ("Apple M2 Ultra", True, "unified"),
    ],
)
def test_memory_kind_from_the_driver_name(name: str, unified: bool, kind: str) -> None:
    assert memory_kind(_gpu(name, unified=unified)) == kind


def test_backend_from_the_vendor_or_the_model() -> None:
    assert gpu_backend(_gpu()) == "cuda"
    assert gpu_backend(_gpu(vendor="amd")) == "rocm"
    assert gpu_backend(_gpu(vendor="apple")) == "metal"
    assert gpu_backend(_gpu(vendor="intel")) == "sycl"
    assert gpu_backend(_gpu(), SpeedModel(backend="Vulkan")) == "vulkan"


# --------------------------------------------------------------------------- decode terms


def test_streaming_at_the_achievable_share_plus_a_cost_per_layer() -> None:
    work = _layers(32, 500_000_000)  # 16 GB of F16
    gpu = _gpu(bandwidth=1000e9)
    seconds = _decode_seconds(work, gpu)
    stream = 16 * GB / (1000e9 * S.STREAM_EFFICIENCY["gddr"])
    assert seconds == pytest.approx(stream + 32 * S.LAYER_SECONDS["cuda"], rel=1e-9)


def test_hbm_streams_at_a_lower_share_than_gddr() -> None:
    work = _layers(32, 500_000_000)
    gddr = _decode_seconds(work, _gpu("NVIDIA L40S", bandwidth=2000e9))
    hbm = _decode_seconds(work, _gpu("NVIDIA A100-SXM4-80GB", bandwidth=2000e9))
    fixed = 32 * S.LAYER_SECONDS["cuda"]
    ratio = (hbm - fixed) / (gddr - fixed)
    assert ratio == pytest.approx(S.STREAM_EFFICIENCY["gddr"] / S.STREAM_EFFICIENCY["hbm"])


def test_a_small_model_on_a_fast_card_is_launch_bound() -> None:
    work = _layers(22, 4_000_000, type_name="Q4_K")  # a TinyLlama-sized layer
    devices = [DeviceWork(_gpu(bandwidth=1800e9), tuple(range(22))), DeviceWork(None)]
    speed = predict(work, devices, _host(), SpeedModel(), cpu_seconds_per_byte=1 / 5e9)
    (gpu_time,) = speed.decode
    assert gpu_time.bound == "overhead"
    assert gpu_time.overhead_s > gpu_time.stream_s
    # twice the bandwidth barely helps a launch-bound model
    faster = [DeviceWork(_gpu(bandwidth=3600e9), tuple(range(22))), DeviceWork(None)]
    again = predict(work, faster, _host(), SpeedModel(), cpu_seconds_per_byte=1 / 5e9)
    assert again.decode_tokens_per_second is not None and speed.decode_tokens_per_second
    assert again.decode_tokens_per_second / speed.decode_tokens_per_second < 1.3


def test_legacy_builds_and_pre_ampere_cards_pay_more_per_layer() -> None:
    work = _layers(10, 1000)
    gpu = _gpu()
    now = _decode_seconds(work, gpu)
    old = _decode_seconds(work, gpu, SpeedModel(build=2824))
    volta = _decode_seconds(work, _gpu("Tesla V100-PCIE-16GB", cc=(7, 0)))
    fixed = 10 * S.LAYER_SECONDS["cuda"]
    assert old - now == pytest.approx(fixed * (S.LEGACY_LAYER_FACTOR - 1), rel=1e-6)
    stream_hbm = 10 * 1000 / (1000e9 * S.STREAM_EFFICIENCY["hbm"])
    assert volta == pytest.approx(fixed * S.LEGACY_LAYER_FACTOR + stream_hbm, rel=1e-6)
    assert not SpeedModel(build=S.LEGACY_BUILD).legacy and SpeedModel(build=2000).legacy


def test_moe_layers_cost_more_fixed_time() -> None:
    dense = _decode_seconds(_layers(10, 1000), _gpu())
    moe = _decode_seconds(_layers(10, 1000, moe=True), _gpu())
    assert moe / dense == pytest.approx(S.MOE_LAYER_FACTOR, rel=0.01)


def test_metal_k_quants_bind_on_alu_when_a_chip_has_little_of_it() -> None:
    work = _layers(32, 140_000_000, type_name="Q4_K")
    m1_max = _gpu("Apple M1 Max", vendor="apple", bandwidth=400e9, fp32=10.4, unified=True)
    speed = predict(
        work,
        [DeviceWork(m1_max, tuple(range(32))), DeviceWork(None)],
        _host(),
        SpeedModel(),
        cpu_seconds_per_byte=1 / 5e9,
    )
    (t,) = speed.decode
    assert t.bound == "compute" and t.compute_s > 0
    expected = 32 * 140_000_000 * 1.8 * S.DEQUANT_FLOPS["metal"]["K"] / 10.4e12
    assert t.stream_s + t.compute_s == pytest.approx(expected, rel=1e-6)
    # the same weights in F16 stay bandwidth-bound
    f16 = predict(
        _layers(32, 140_000_000),
        [DeviceWork(m1_max, tuple(range(32))), DeviceWork(None)],
        _host(),
        SpeedModel(),
        cpu_seconds_per_byte=1 / 5e9,
    )
    assert f16.decode[0].bound == "memory"


def test_layer_split_adds_the_devices_times() -> None:
    work = _layers(80, 500_000_000)
    one = _decode_seconds(work, _gpu())
    a, b = _gpu(), _gpu()
    devices = [DeviceWork(a, tuple(range(40))), DeviceWork(b, tuple(range(40, 80)))]
    two = predict(
        work, [*devices, DeviceWork(None)], _host((a, b)), SpeedModel(), cpu_seconds_per_byte=0
    )
    assert len(two.decode) == 2
    assert sum(d.seconds for d in two.decode) == pytest.approx(one, rel=1e-9)


def test_cpu_layers_bound_by_ram_bandwidth_or_threads() -> None:
    work = _layers(10, 1_000_000_000)  # 10 GB on the host
    devices = [DeviceWork(None, tuple(range(10)))]
    fast_threads = predict(
        work, devices, _host(ram_bw=100e9, cpus=64), SpeedModel(), cpu_seconds_per_byte=1 / 6.5e9
    )
    (cpu,) = fast_threads.decode
    assert cpu.bound == "memory"
    assert cpu.stream_s == pytest.approx(10 * GB / (100e9 * S.RAM_EFFICIENCY))
    few_threads = predict(
        work, devices, _host(ram_bw=100e9, cpus=2), SpeedModel(), cpu_seconds_per_byte=1 / 6.5e9
    )
    assert few_threads.decode[0].bound == "cpu threads"
    # a measured calibration scales the thread rates
    scaled = predict(
        work,
        devices,
        _host(ram_bw=100e9, cpus=2),
        SpeedModel(cpu_rate_scale=2.0),
        cpu_seconds_per_byte=1 / 6.5e9,
    )
    assert scaled.decode_tokens_per_second and few_threads.decode_tokens_per_second
    assert scaled.decode_tokens_per_second > few_threads.decode_tokens_per_second


def test_partial_offload_is_bound_by_the_host_part() -> None:
    work = _layers(126, 1_500_000_000, type_name="Q4_K")  # a 405B-sized model, ~190 GB
    gpu = _gpu()
    devices = [DeviceWork(gpu, tuple(range(112, 126))), DeviceWork(None, tuple(range(112)))]
    speed = predict(
        work, devices, _host((gpu,), ram_bw=60e9), SpeedModel(), cpu_seconds_per_byte=1 / 5e9
    )
    assert speed.decode_tokens_per_second is not None and speed.decode_tokens_per_second < 0.5
    gpu_t, cpu_t = speed.decode
    assert cpu_t.seconds > 50 * gpu_t.seconds


def test_experts_on_the_host_split_a_layer() -> None:
    work = _layers(4, 1000, moe=True)
    gpu = _gpu()
    split = [DeviceWork(gpu, (), (), (0, 1, 2, 3)), DeviceWork(None, (), (0, 1, 2, 3))]
    speed = predict(work, split, _host((gpu,)), SpeedModel(), cpu_seconds_per_byte=1 / 5e9)
    gpu_t, cpu_t = speed.decode
    assert gpu_t.stream_s == pytest.approx(4 * 500 / (1000e9 * S.STREAM_EFFICIENCY["gddr"]))
    assert gpu_t.overhead_s == pytest.approx(4 * S.LAYER_SECONDS["cuda"] * S.MOE_LAYER_FACTOR)
    assert cpu_t.overhead_s == pytest.approx(S.TOKEN_OVERHEAD_S + 4 * S.LAYER_OVERHEAD_S)


def test_unknown_bandwidth_gives_no_decode_speed() -> None:
    gpu = _gpu(bandwidth=0.0)
    speed = predict(
        _layers(2, 10),
        [DeviceWork(gpu, (0, 1))],
        _host((gpu,)),
        SpeedModel(),
        cpu_seconds_per_byte=0,
    )
    assert speed.decode_tokens_per_second is None


# --------------------------------------------------------------------------- prompt terms


def _all_on(gpu: Gpu, work: list[LayerWork]) -> Speed:
    """The speed of ``work`` (32 layers) with every layer on ``gpu``."""
    return predict(
        work,
        [DeviceWork(gpu, tuple(range(32)))],
        _host((gpu,)),
        SpeedModel(),
        cpu_seconds_per_byte=0,
    )


def test_prompt_is_compute_bound_and_scales_with_the_matrix_units() -> None:
    work = _layers(32, 500_000_000)
    slow = _gpu(fp16=100.0)
    fast = _gpu(fp16=400.0)

    def pp(gpu: Gpu) -> float:
        s = _all_on(gpu, work)
        assert s.prompt_tokens_per_second is not None
        return s.prompt_tokens_per_second

    assert 2.0 < pp(fast) / pp(slow) < 4.0  # reads and activations do not scale with flops


def test_prompt_seconds_are_its_terms() -> None:
    work = _layers(1, 200_000_000)
    gpu = _gpu(fp16=100.0, bandwidth=1000e9)
    s = predict(work, [DeviceWork(gpu, (0,))], _host((gpu,)), SpeedModel(), cpu_seconds_per_byte=0)
    n = S.DEFAULT_PROMPT_TOKENS
    rate = 100e12 * S.PROMPT_EFFICIENCY["cuda"]
    bw = 1000e9 * S.STREAM_EFFICIENCY["gddr"]
    layer = work[0]
    expected = (
        (layer.flops * n + layer.attn_flops_per_cell * n * n / 2) / rate
        + layer.read_bytes / bw
        + S.ACTIVATION_PASSES * layer.row_bytes * n / bw
    )
    assert s.prompt_seconds == pytest.approx(expected, rel=1e-9)


def test_legacy_cuda_dequantizes_quantized_weights_before_cublas() -> None:
    work = _layers(8, 100_000_000, type_name="Q4_K")
    gpu = _gpu()
    devices = [DeviceWork(gpu, tuple(range(8)))]
    now = predict(work, devices, _host((gpu,)), SpeedModel(), cpu_seconds_per_byte=0)
    old = predict(work, devices, _host((gpu,)), SpeedModel(build=2824), cpu_seconds_per_byte=0)
    assert now.prompt_seconds and old.prompt_seconds
    extra = 8 * (work[0].flops / 2) * S.LEGACY_DEQUANT_BYTES_PER_WEIGHT
    bw = 1000e9 * S.STREAM_EFFICIENCY["gddr"]
    assert old.prompt_seconds - now.prompt_seconds == pytest.approx(extra / bw, rel=1e-6)


def test_rocm_on_instinct_used_the_vector_units_before_mfma() -> None:
    mi300x = _gpu("AMD Instinct MI300X", vendor="amd", fp16=1307.4, fp32=163.4, cc=None)
    work = _layers(32, 400_000_000, type_name="Q4_0")
    devices = [DeviceWork(mi300x, tuple(range(32)))]
    old = predict(work, devices, _host((mi300x,)), SpeedModel(build=3891), cpu_seconds_per_byte=0)
    new = predict(work, devices, _host((mi300x,)), SpeedModel(build=7000), cpu_seconds_per_byte=0)
    assert old.prompt_tokens_per_second and new.prompt_tokens_per_second
    assert new.prompt_tokens_per_second > 3 * old.prompt_tokens_per_second


def test_host_layers_beside_a_gpu_cross_pcie_in_a_prompt() -> None:
    work = _layers(10, 2_000_000_000)  # 20 GB on the host
    gpu = _gpu()
    devices = [DeviceWork(gpu, ()), DeviceWork(None, tuple(range(10)))]
    s = predict(work, devices, _host((gpu,)), SpeedModel(), cpu_seconds_per_byte=1 / 5e9)
    assert s.prompt_seconds is not None
    assert s.prompt_seconds >= 20 * GB / S.PCIE_BANDWIDTH
    # a prompt of a few tokens stays on the CPU
    short = s.at(8)
    cpu_flops = sum(w.flops for w in work) * 8
    assert short.prompt_seconds is not None
    assert short.prompt_seconds >= cpu_flops / (S.CPU_THREAD_FLOPS * 8)


def test_time_to_first_token_grows_faster_than_the_prompt() -> None:
    s = _all_on(_gpu(), _layers(32, 500_000_000))
    assert s.decode_tokens_per_second and s.prompt_seconds
    assert s.time_to_first_token() == pytest.approx(
        s.prompt_seconds + 1 / s.decode_tokens_per_second
    )
    short, long = s.time_to_first_token(512), s.time_to_first_token(8192)
    assert short is not None and long is not None
    assert long > 16 * (short - 1 / s.decode_tokens_per_second)  # attention is quadratic
    assert s.at(8192).prompt_tokens == 8192


def test_explain_names_the_device_and_what_bounds_it() -> None:
    s = _all_on(_gpu(), _layers(32, 500_000_000))
    text = s.explain()
    assert "NVIDIA GeForce RTX 4090" in text and "memory-bound" in text and "fixed" in text
    assert s.to_dict()["decode"][0]["bound"] == "memory"


def test_catalog_figures_fill_a_probed_gpu() -> None:
    probed = _gpu("NVIDIA H100 PCIe", fp16=None, fp32=None)
    filled = _figures(probed)
    assert filled.fp16_tflops and filled.fp16_tflops > 700
    assert _figures(_gpu("Some Unknown Accelerator", fp16=None, fp32=None)).fp16_tflops is None


# --------------------------------------------------------------------------- a model's work


def test_model_work_of_a_moe_twin_reads_the_used_experts(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("gguf")
    from pytest_llmfit.engine.gguf import read_gguf
    from pytest_llmfit.twins import write_twin

    path = write_twin("qwen3-30b-a3b", tmp_path / "moe.gguf", header_only=True)
    work = model_work(read_gguf(path))
    assert len(work) == 48 + 1  # the blocks, then the output layer
    block = work[0]
    assert block.moe and block.expert_bytes_all > 0
    experts_read = sum(b for _, b in block.experts)
    assert experts_read == pytest.approx(block.expert_bytes_all * 8 / 128, rel=1e-6)
    assert block.attn_flops_per_cell == 2 * 32 * (128 + 128)
    assert not work[-1].moe and work[-1].read_bytes > 0  # output.weight


def test_model_work_of_a_tied_model_multiplies_by_token_embd(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("gguf")
    from pytest_llmfit.engine.gguf import read_gguf
    from pytest_llmfit.twins import write_twin

    path = write_twin("llama-3.2-1b", tmp_path / "tied.gguf", quant="f16", header_only=True)
    work = model_work(read_gguf(path))
    output = work[-1]
    assert output.read_bytes == pytest.approx(2048 * 128256 * 2, rel=0.001)
    assert math.isclose(output.flops, 2 * 2048 * 128256, rel_tol=0.001)
