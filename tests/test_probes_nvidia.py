"""The NVIDIA probe against a fake ``pynvml`` module (no GPU, no driver needed)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_llmfit.hardware.probes import nvidia

MIB = 2**20

# NVML return codes (nvml.h)
NOT_SUPPORTED = 3
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
LIB_RM_VERSION_MISMATCH = 18

MESSAGES = {
    NOT_SUPPORTED: "Not Supported",
    NOT_FOUND: "Not Found",
    DRIVER_NOT_LOADED: "Driver Not Loaded",
    LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    FUNCTION_NOT_FOUND: "Function Not Found",
    GPU_IS_LOST: "GPU is lost",
    LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
}


class FakeNVMLError(Exception):
    """Like pynvml.NVMLError: carries the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeMig:
    uuid: str
    name: str
    total: int
    free: int
    gi: int = 1
    ci: int = 0


@dataclass
class FakeGpu:
    name: str
    uuid: str
    total: int
    free: int
    bus_width: int
    mem_clock: int
    cc: tuple[int, int] = (8, 0)
    reserved: int = 300 * MIB  # v2 reports it; v1's free includes it
    mig_enabled: bool = False
    migs: list[FakeMig] = field(default_factory=list)
    lost: bool = False
    v2_supported: bool = True
    memory_supported: bool = True
    bus_width_supported: bool = True


def rtx4090(uuid: str = "GPU-4090aaaa-0000-0000-0000-000000000000") -> FakeGpu:
    return FakeGpu("NVIDIA GeForce RTX 4090", uuid, 24564 * MIB, 23000 * MIB, 384, 10501, cc=(8, 9))


def a100(uuid: str = "GPU-a100aaaa-0000-0000-0000-000000000000") -> FakeGpu:
    return FakeGpu("NVIDIA A100-SXM4-40GB", uuid, 40960 * MIB, 40000 * MIB, 5120, 1215, cc=(8, 0))


def t4(uuid: str = "GPU-7400aaaa-0000-0000-0000-000000000000") -> FakeGpu:
    return FakeGpu("Tesla T4", uuid, 15360 * MIB, 15000 * MIB, 256, 5001, cc=(7, 5))


def make_fake_nvml(
    gpus: list[FakeGpu], *, init_error: int | None = None, name_as_bytes: bool = False
) -> types.ModuleType:
    """A module with the slice of pynvml's API the probe uses, in psutil's style of fakes."""
    mod = types.ModuleType("pynvml")
    calls: list[str] = []
    ns: Any = mod
    ns.calls = calls
    ns.NVMLError = FakeNVMLError
    ns.NVML_CLOCK_MEM = 2
    ns.NVML_DEVICE_MIG_ENABLE = 1
    ns.NVML_ERROR_LIBRARY_NOT_FOUND = LIBRARY_NOT_FOUND
    ns.NVML_ERROR_DRIVER_NOT_LOADED = DRIVER_NOT_LOADED
    ns.nvmlMemory_v2 = 0x02000028

    def gpu_of(handle: tuple[Any, ...]) -> FakeGpu:
        gpu = gpus[int(handle[1])]
        if gpu.lost:
            raise FakeNVMLError(GPU_IS_LOST)
        return gpu

    def nvmlInit() -> None:
        calls.append("init")
        if init_error is not None:
            raise FakeNVMLError(init_error)

    def nvmlShutdown() -> None:
        calls.append("shutdown")

    def nvmlDeviceGetCount() -> int:
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(index: int) -> tuple[Any, ...]:
        if gpus[index].lost:
            raise FakeNVMLError(GPU_IS_LOST)
        return ("gpu", index)

    def nvmlDeviceGetName(handle: tuple[Any, ...]) -> str | bytes:
        gpu = gpu_of(handle)
        name = gpu.migs[int(handle[2])].name if handle[0] == "mig" else gpu.name
        return name.encode() if name_as_bytes else name

    def nvmlDeviceGetUUID(handle: tuple[Any, ...]) -> str:
        if handle[0] == "mig":
            return gpu_of(handle).migs[int(handle[2])].uuid
        return gpu_of(handle).uuid

    def nvmlDeviceGetMemoryInfo(handle: tuple[Any, ...], version: int | None = None) -> Any:
        gpu = gpu_of(handle)
        calls.append(f"memory v{2 if version else 1}")
        if not gpu.memory_supported:
            raise FakeNVMLError(NOT_SUPPORTED)
        if version and not gpu.v2_supported:
            raise FakeNVMLError(FUNCTION_NOT_FOUND)
        if handle[0] == "mig":
            mig = gpu.migs[int(handle[2])]
            return types.SimpleNamespace(total=mig.total, free=mig.free, used=mig.total - mig.free)
        if version:
            free = gpu.free - gpu.reserved
            return types.SimpleNamespace(total=gpu.total, reserved=gpu.reserved, free=free)
        return types.SimpleNamespace(total=gpu.total, free=gpu.free, used=gpu.total - gpu.free)

    def nvmlDeviceGetMemoryBusWidth(handle: tuple[Any, ...]) -> int:
        gpu = gpu_of(handle)
        if not gpu.bus_width_supported:
            raise FakeNVMLError(NOT_SUPPORTED)
        return gpu.bus_width

    def nvmlDeviceGetMaxClockInfo(handle: tuple[Any, ...], clock: int) -> int:
        assert clock == 2, "the memory clock is NVML_CLOCK_MEM"
        return gpu_of(handle).mem_clock

    def nvmlDeviceGetCudaComputeCapability(handle: tuple[Any, ...]) -> tuple[int, int]:
        return gpu_of(handle).cc

    def nvmlDeviceGetMigMode(handle: tuple[Any, ...]) -> list[int]:
        gpu = gpu_of(handle)
        if gpu.cc < (8, 0):
            raise FakeNVMLError(NOT_SUPPORTED)
        return [int(gpu.mig_enabled), int(gpu.mig_enabled)]

    def nvmlDeviceGetMaxMigDeviceCount(handle: tuple[Any, ...]) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(handle: tuple[Any, ...], slot: int) -> tuple[Any, ...]:
        if slot >= len(gpu_of(handle).migs):
            raise FakeNVMLError(NOT_FOUND)
        return ("mig", handle[1], slot)

    def nvmlDeviceGetGpuInstanceId(handle: tuple[Any, ...]) -> int:
        return gpu_of(handle).migs[int(handle[2])].gi

    def nvmlDeviceGetComputeInstanceId(handle: tuple[Any, ...]) -> int:
        return gpu_of(handle).migs[int(handle[2])].ci

    for function in list(locals().values()):
        if callable(function) and getattr(function, "__name__", "").startswith("nvml"):
            setattr(mod, function.__name__, function)
    return mod


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Install a fake pynvml built from a list of FakeGpu; returns the module."""

    def install(gpus: list[FakeGpu], **kwargs: Any) -> types.ModuleType:
        module = make_fake_nvml(gpus, **kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return install


def run(env: dict[str, str] | None = None, **kwargs: Any) -> Any:
    return nvidia.probe(env or {}, driver_hint_paths=kwargs.pop("driver_hint_paths", ()))


# -- bandwidth and the fields of one GPU ----------------------------------------------------


@pytest.mark.parametrize(
    ("card", "gb_per_s"),
    [(rtx4090, 1008), (a100, 1555), (t4, 320)],
    ids=["rtx4090", "a100-40gb", "t4"],
)
def test_bandwidth_from_bus_width_and_memory_clock(
    fake_nvml: Any, card: Any, gb_per_s: int
) -> None:
    fake_nvml([card()])
    (gpu,) = run().gpus
    assert gpu.bandwidth is not None
    assert round(gpu.bandwidth / 1e9) == gb_per_s


def test_bandwidth_formula_exact() -> None:
    assert nvidia.bandwidth_from_bus(384, 10501) == 384 / 8 * 10501e6 * 2
    assert nvidia.bandwidth_from_bus(0, 10501) is None


def test_gpu_fields_from_nvml(fake_nvml: Any) -> None:
    module = fake_nvml([rtx4090()])
    result = run()
    (gpu,) = result.gpus
    assert gpu.vendor == "nvidia"
    assert gpu.name == "NVIDIA GeForce RTX 4090"
    assert gpu.uuid == "GPU-4090aaaa-0000-0000-0000-000000000000"
    assert gpu.memory_total == 24564 * MIB
    assert gpu.memory_free == 23000 * MIB - 300 * MIB  # v2: reserved memory left out
    assert gpu.compute_capability == (8, 9)
    assert (gpu.index, gpu.cuda_index, gpu.mig, gpu.unified) == (0, 0, False, False)
    assert result.problems == ()
    assert module.calls[0] == "init" and module.calls[-1] == "shutdown"
    assert "memory v2" in module.calls and "memory v1" not in module.calls


def test_bytes_names_from_old_bindings_are_decoded(fake_nvml: Any) -> None:
    fake_nvml([t4()], name_as_bytes=True)
    assert run().gpus[0].name == "Tesla T4"


def test_memory_info_v2_unsupported_falls_back_to_v1(fake_nvml: Any) -> None:
    card = rtx4090()
    card.v2_supported = False
    module = fake_nvml([card])
    result = run()
    assert result.gpus[0].memory_free == 23000 * MIB
    assert result.problems == ()
    assert module.calls.count("memory v1") == 1


def test_binding_without_v2_constant_uses_v1(fake_nvml: Any) -> None:
    module = fake_nvml([rtx4090()])
    del module.nvmlMemory_v2
    assert run().gpus[0].memory_free == 23000 * MIB


def test_memory_info_unsupported_gives_partial_data_and_a_problem(fake_nvml: Any) -> None:
    card = t4()
    card.memory_supported = False
    fake_nvml([card])
    result = run()
    (gpu,) = result.gpus
    assert (gpu.memory_total, gpu.memory_free) == (0, 0)
    assert round((gpu.bandwidth or 0) / 1e9) == 320  # the rest is still read
    assert result.problems == (
        "NVIDIA GPU 0 (Tesla T4): memory size unknown (Not Supported); counted as 0 bytes",
    )


def test_bandwidth_unsupported_is_none_with_a_problem(fake_nvml: Any) -> None:
    card = t4()
    card.bus_width_supported = False
    fake_nvml([card])
    result = run()
    assert result.gpus[0].bandwidth is None
    assert result.problems == ("NVIDIA GPU 0 (Tesla T4): memory bandwidth unknown (Not Supported)",)


# -- failures -------------------------------------------------------------------------------


def test_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    result = run()
    assert result.gpus == ()
    assert len(result.problems) == 1
    assert result.problems[0].startswith("NVML not available: the nvidia-ml-py package")


def test_library_missing_without_driver_is_a_note_not_a_problem(fake_nvml: Any) -> None:
    module = fake_nvml([], init_error=LIBRARY_NOT_FOUND)
    result = run(driver_hint_paths=("/nonexistent/nvidia",))
    assert result.gpus == () and result.problems == ()
    assert result.notes == ("no NVIDIA driver: libnvidia-ml.so.1 not found",)
    assert "shutdown" not in module.calls


def test_library_missing_with_driver_loaded_is_a_problem(fake_nvml: Any, tmp_path: Path) -> None:
    fake_nvml([], init_error=LIBRARY_NOT_FOUND)
    version = tmp_path / "version"
    version.write_text("NVRM version: 550.54")
    result = run(driver_hint_paths=(str(version),))
    assert result.gpus == ()
    (problem,) = result.problems
    assert problem.startswith("NVML not available: libnvidia-ml.so.1 not found")
    assert "--gpus all" in problem


def test_init_error_driver_library_mismatch(fake_nvml: Any) -> None:
    module = fake_nvml([rtx4090()], init_error=LIB_RM_VERSION_MISMATCH)
    result = run()
    assert result.gpus == ()
    assert result.problems == (
        "NVML initialisation failed: RM has detected an NVML/RM version mismatch.",
    )
    assert "shutdown" not in module.calls


def test_init_error_driver_not_loaded(fake_nvml: Any) -> None:
    fake_nvml([], init_error=DRIVER_NOT_LOADED)
    assert run().problems == ("NVML not available: the NVIDIA kernel driver is not loaded",)


def test_gpu_fallen_off_the_bus_is_skipped_others_kept(fake_nvml: Any) -> None:
    lost = a100("GPU-10570000-0000-0000-0000-000000000000")
    lost.lost = True
    module = fake_nvml([rtx4090(), lost, t4()])
    result = run({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert [(g.name, g.index, g.cuda_index) for g in result.gpus] == [
        ("NVIDIA GeForce RTX 4090", 0, 0),
        ("Tesla T4", 2, 1),
    ]
    assert result.problems == ("NVIDIA GPU 1 skipped: GPU is lost",)
    assert module.calls[-1] == "shutdown"


def test_unexpected_error_is_reported_not_raised(fake_nvml: Any) -> None:
    module = fake_nvml([rtx4090()])

    def broken() -> int:
        raise RuntimeError("boom")

    module.nvmlDeviceGetCount = broken
    result = run()
    assert result.gpus == ()
    assert result.problems == ("NVML query failed: boom",)
    assert module.calls[-1] == "shutdown"


# -- CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER ---------------------------------------------

UUIDS = [
    "GPU-11111111-aaaa-0000-0000-000000000000",
    "GPU-22222222-bbbb-0000-0000-000000000000",
    "GPU-22223333-cccc-0000-0000-000000000000",
]


def three_4090s(fake_nvml: Any) -> None:
    fake_nvml([rtx4090(uuid) for uuid in UUIDS])


def uuids(result: Any) -> list[str]:
    assert [g.cuda_index for g in result.gpus] == list(range(len(result.gpus)))
    return [g.uuid for g in result.gpus]


def test_visible_unset_shows_all_in_order(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run()
    assert uuids(result) == UUIDS
    assert result.notes == ()  # identical GPUs: FASTEST_FIRST is exact


def test_visible_by_index_reorders(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "2,0"})
    assert uuids(result) == [UUIDS[2], UUIDS[0]]
    assert [g.index for g in result.gpus] == [2, 0]  # NVML index kept
    assert result.problems == ()


def test_visible_by_uuid_prefix(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "GPU-22223, gpu-1111"})
    assert uuids(result) == [UUIDS[2], UUIDS[0]]


def test_visible_ambiguous_uuid_prefix_stops_the_list(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "GPU-1111,GPU-2222"})
    assert uuids(result) == [UUIDS[0]]
    assert result.problems == (
        "CUDA_VISIBLE_DEVICES='GPU-1111,GPU-2222': entry 'GPU-2222' matches no NVIDIA "
        "device; CUDA stops the list there (1 device(s) visible)",
    )


def test_visible_invalid_entry_stops_the_list_there(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "1,7,0"})
    assert uuids(result) == [UUIDS[1]]
    assert len(result.problems) == 1 and "entry '7'" in result.problems[0]


@pytest.mark.parametrize("value", ["foo", "-1", "GPU-ffff"])
def test_visible_invalid_first_entry_hides_everything(fake_nvml: Any, value: str) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": value})
    assert result.gpus == ()
    assert len(result.problems) == 1


@pytest.mark.parametrize("value", ["", " "])
def test_visible_empty_means_no_gpu(fake_nvml: Any, value: str) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": value})
    assert result.gpus == () and result.problems == ()


def test_visible_duplicate_hides_everything(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "0,1,0"})
    assert result.gpus == ()
    assert result.problems == ("CUDA_VISIBLE_DEVICES='0,1,0' names '0' twice: CUDA sees no device",)


def test_visible_mixing_indices_and_uuids_stops_at_the_switch(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    result = run({"CUDA_VISIBLE_DEVICES": "1,GPU-1111"})
    assert uuids(result) == [UUIDS[1]]
    assert "mixes indices and UUIDs" in result.problems[0]


def test_visible_index_reads_leading_digits_like_cuda(fake_nvml: Any) -> None:
    three_4090s(fake_nvml)
    assert uuids(run({"CUDA_VISIBLE_DEVICES": "2:x"})) == [UUIDS[2]]


def mixed(fake_nvml: Any) -> None:
    # PCI bus order (NVML): a T4 first, then an RTX 4090.
    fake_nvml([t4(), rtx4090()])


def test_fastest_first_is_the_default_order(fake_nvml: Any) -> None:
    mixed(fake_nvml)
    result = run()
    assert [(g.name, g.index, g.cuda_index) for g in result.gpus] == [
        ("NVIDIA GeForce RTX 4090", 1, 0),
        ("Tesla T4", 0, 1),
    ]
    assert len(result.notes) == 1 and "CUDA_DEVICE_ORDER=PCI_BUS_ID" in result.notes[0]


def test_pci_bus_id_order_is_nvml_order(fake_nvml: Any) -> None:
    mixed(fake_nvml)
    result = run({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert [g.name for g in result.gpus] == ["Tesla T4", "NVIDIA GeForce RTX 4090"]
    assert result.notes == ()


def test_visible_indices_count_in_cuda_order(fake_nvml: Any) -> None:
    mixed(fake_nvml)
    assert run({"CUDA_VISIBLE_DEVICES": "0"}).gpus[0].name == "NVIDIA GeForce RTX 4090"
    pci = run({"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert pci.gpus[0].name == "Tesla T4"


# -- MIG -------------------------------------------------------------------------------------

MIG_A = "MIG-aaaaaaaa-1111-0000-0000-000000000000"
MIG_B = "MIG-bbbbbbbb-2222-0000-0000-000000000000"


def mig_a100() -> FakeGpu:
    card = a100("GPU-a100a100-0000-0000-0000-000000000000")
    card.mig_enabled = True
    card.migs = [
        FakeMig(MIG_A, "NVIDIA A100-SXM4-40GB MIG 3g.20gb", 20096 * MIB, 19000 * MIB, gi=1),
        FakeMig(MIG_B, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 4864 * MIB, 4800 * MIB, gi=13),
    ]
    return card


def test_mig_unset_visible_shows_the_first_mig_device(fake_nvml: Any) -> None:
    fake_nvml([mig_a100()])
    result = run()
    (gpu,) = result.gpus
    assert (gpu.uuid, gpu.mig, gpu.cuda_index, gpu.index) == (MIG_A, True, 0, 0)
    assert gpu.name == "NVIDIA A100-SXM4-40GB MIG 3g.20gb"
    assert (gpu.memory_total, gpu.memory_free) == (20096 * MIB, 19000 * MIB)
    assert gpu.compute_capability == (8, 0)
    assert gpu.bandwidth == pytest.approx(1555.2e9 * 20096 / 40960)  # share of the memory
    assert len(result.notes) == 1 and "only one MIG device" in result.notes[0]


def test_mig_by_uuid(fake_nvml: Any) -> None:
    fake_nvml([rtx4090(), mig_a100()])
    result = run({"CUDA_VISIBLE_DEVICES": "MIG-bbbb"})
    assert uuids(result) == [MIG_B]
    assert result.gpus[0].memory_total == 4864 * MIB
    assert result.problems == ()


def test_mig_legacy_gpu_uuid_form(fake_nvml: Any) -> None:
    fake_nvml([mig_a100()])
    assert uuids(run({"CUDA_VISIBLE_DEVICES": "MIG-GPU-a100a100/13/0"})) == [MIG_B]
    assert run({"CUDA_VISIBLE_DEVICES": "MIG-GPU-a100a100/99/0"}).gpus == ()


def test_only_one_mig_device_per_process(fake_nvml: Any) -> None:
    fake_nvml([mig_a100()])
    result = run({"CUDA_VISIBLE_DEVICES": f"{MIG_B},{MIG_A}"})
    assert uuids(result) == [MIG_B]
    assert "sees only one MIG device" in result.problems[0]


def test_mig_enabled_without_instances_is_unusable(fake_nvml: Any) -> None:
    card = mig_a100()
    card.migs = []
    fake_nvml([card, t4()])
    result = run({"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    assert [g.name for g in result.gpus] == ["Tesla T4"]
    assert any("MIG enabled but no MIG instances" in note for note in result.notes)


def test_cuda_visible_is_pure_over_device_records() -> None:
    devices = [
        nvidia.NvidiaDevice(0, "A", "GPU-a", 10, 5, 1e9, (7, 5)),
        nvidia.NvidiaDevice(1, "B", "GPU-b", 20, 10, 2e9, (9, 0)),
    ]
    gpus, problems, notes = nvidia.cuda_visible(devices, {"CUDA_VISIBLE_DEVICES": "GPU-a"})
    assert [(g.name, g.cuda_index) for g in gpus] == [("A", 0)]
    assert problems == [] and len(notes) == 1
