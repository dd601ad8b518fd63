"""Hardware faults, seen from a real pytest session: warned once, reported, decided on what is known.

Each test builds a machine from fakes (a ``pynvml`` module in ``sys.modules`` built with the
helpers of test_probes_nvidia, a ``psutil`` module, a cgroup tree in a temporary folder),
runs a pytest session on it with pytester (in process, so the fakes are what the plugin's
probes import) and checks three things:

* the problem is shown once, as an ``LlmfitProbeWarning`` in the warnings summary;
* the JSON report's ``host.notes`` says what is missing;
* the decisions are right for what is still known (the GPU that is left, the cgroup limit),
  and nothing crashes.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from test_probes_nvidia import (
    DRIVER_NOT_LOADED,
    LIB_RM_VERSION_MISMATCH,
    LIBRARY_NOT_FOUND,
    MIB,
    FakeGpu,
    a100,
    make_fake_nvml,
    mig_a100,
    rtx4090,
)

from pytest_llmfit.probes import ProbeResult, amd, apple, nvidia, system

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

GIB = 2**30
HOST_RAM = 64 * GIB
HOST_AVAILABLE = 60 * GIB
WARNING = "LlmfitProbeWarning"


def fake_psutil(total: int = HOST_RAM, available: int = HOST_AVAILABLE) -> types.ModuleType:
    """The two psutil calls the system probe makes, in psutil's own shapes."""
    module = types.ModuleType("psutil")
    ns: Any = module
    ns.virtual_memory = lambda: types.SimpleNamespace(
        total=total, available=available, percent=0.0, used=total - available, free=available
    )
    ns.cpu_count = lambda logical=True: 16 if logical else 8
    return module


@dataclass
class Machine:
    """The fake machine a session probes; ``session`` runs pytest on it."""

    pytester: pytest.Pytester
    monkeypatch: pytest.MonkeyPatch
    root: pathlib.Path
    model: pathlib.Path
    nvml: types.ModuleType | None = None
    extra_args: list[str] = field(default_factory=list)

    def gpus(self, gpus: list[FakeGpu], **kwargs: Any) -> types.ModuleType:
        self.nvml = make_fake_nvml(gpus, **kwargs)
        self.monkeypatch.setitem(sys.modules, "pynvml", self.nvml)
        return self.nvml

    def no_nvml_package(self) -> None:
        self.monkeypatch.setitem(sys.modules, "pynvml", None)

    def driver_files(self, *paths: str) -> None:
        """Where the NVIDIA probe looks for a loaded kernel driver (see DRIVER_HINT_PATHS)."""
        self.monkeypatch.setattr(nvidia.probe, "__kwdefaults__", {"driver_hint_paths": paths})

    def cgroup_v2(self, limit: int, usage: int, inactive_file: int = 0) -> None:
        base = self.root / "cgroup"
        (base / "cgroup.controllers").write_text("cpu memory\n")
        (base / "memory.max").write_text(f"{limit}\n")
        (base / "memory.current").write_text(f"{usage}\n")
        (base / "memory.stat").write_text(f"anon {usage}\ninactive_file {inactive_file}\n")

    def session(self, source: str, *args: str) -> Result:
        self.pytester.makepyfile(test_machine=textwrap.dedent(source))
        report = self.root / "report.json"
        result = self.pytester.runpytest_inprocess(
            "-rsx", "-p", "no:cacheprovider", f"--llmfit-report-json={report}", *args
        )
        return Result(result, json.loads(report.read_text()))


@dataclass
class Result:
    run: pytest.RunResult
    report: dict[str, Any]

    @property
    def text(self) -> str:
        return self.run.stdout.str() + self.run.stderr.str()

    @property
    def notes(self) -> list[str]:
        return list(self.report["host"]["notes"])

    def decisions(self) -> dict[str, tuple[str, str]]:
        return {
            t["nodeid"].split("::")[-1]: (t["decision"], t["reason"]) for t in self.report["tests"]
        }

    def warned_once(self, problem: str) -> None:
        """The problem is in the warnings summary exactly once, as an LlmfitProbeWarning."""
        text = self.text
        assert "Traceback" not in text and "INTERNALERROR" not in text, text
        lines = [line for line in text.splitlines() if problem in line]
        assert len(lines) == 1, text
        assert f"{WARNING}: {problem}" in lines[0], lines[0]
        assert problem in self.notes

    def not_warned(self) -> None:
        assert WARNING not in self.text, self.text


@pytest.fixture
def machine(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
    stub_8b: pathlib.Path,
) -> Iterator[Machine]:
    """A 64 GiB, 8-core Linux box with no GPU, no container limit and no AMD or Apple GPU;
    each test adds its fault."""
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HIP_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in list(__import__("os").environ) if n.startswith("LLMFIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LLMFIT_CACHE_DIR", str(tmp_path / "cache"))  # no cached RAM bandwidth
    monkeypatch.setitem(sys.modules, "psutil", fake_psutil())
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml([]))
    monkeypatch.setattr(amd, "probe", lambda env, **kwargs: ProbeResult())
    monkeypatch.setattr(apple, "probe", lambda env, **kwargs: ProbeResult())
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/\n")
    real_cgroup = system.cgroup_memory

    def cgroup_here(*args: Any, host_total: int = 0, **kwargs: Any) -> Any:
        return real_cgroup(tmp_path / "cgroup", tmp_path / "proc", host_total=host_total)

    monkeypatch.setattr(system, "cgroup_memory", cgroup_here)
    model = pytester.path / "m8b.gguf"
    shutil.copy(stub_8b, model)
    yield Machine(pytester, monkeypatch, tmp_path, model)


GPU_TESTS = """
    import pytest
    @pytest.mark.requires_gpu(1)
    def test_one_gpu(): pass
    @pytest.mark.requires_gpu(2)
    def test_two_gpus(): pass
    @pytest.mark.requires_vram("20GB")
    def test_vram_20gb(): pass
    @pytest.mark.requires_vram("30GB")
    def test_vram_30gb(): pass
    @pytest.mark.requires_ram("32GB")
    def test_ram_32gb(): pass
    @pytest.mark.requires_model("m8b.gguf")
    def test_model_8b(): pass
"""


# -- the machine itself is fine: the baseline the faults are compared with -----------------


def test_healthy_machine_has_no_warning_and_no_notes(machine: Machine) -> None:
    machine.gpus([rtx4090(), a100()])
    result = machine.session(GPU_TESTS, "-W", "error::pytest_llmfit.probes.LlmfitProbeWarning")
    result.run.assert_outcomes(passed=6)
    result.not_warned()
    assert result.notes == [
        "CUDA_DEVICE_ORDER is FASTEST_FIRST and the GPUs differ: CUDA numbering approximated "
        "(compute capability first); set CUDA_DEVICE_ORDER=PCI_BUS_ID for an exact mapping"
    ]
    assert [g["name"] for g in result.report["host"]["gpus"]] == [
        "NVIDIA GeForce RTX 4090",
        "NVIDIA A100-SXM4-40GB",
    ]


# -- NVML missing or failing to start -------------------------------------------------------


def test_no_nvidia_package(machine: Machine) -> None:
    machine.no_nvml_package()
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)  # RAM and the model on the CPU run
    result.warned_once(
        "NVML not available: the nvidia-ml-py package is not importable "
        "(import of pynvml halted; None in sys.modules)"
    )
    decisions = result.decisions()
    assert decisions["test_one_gpu"] == (
        "skip",
        "requires_gpu 1x: found 0 matching of 0 (no GPU)",
    )
    assert decisions["test_ram_32gb"][0] == "run"
    assert decisions["test_model_8b"][0] == "run"
    assert "CPU only" in decisions["test_model_8b"][1]


def test_no_driver_at_all_is_a_note_not_a_warning(machine: Machine) -> None:
    machine.gpus([], init_error=LIBRARY_NOT_FOUND)
    machine.driver_files("/nonexistent/proc/driver/nvidia/version")
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.not_warned()
    assert result.notes == ["no NVIDIA driver: libnvidia-ml.so.1 not found"]


def test_driver_loaded_but_library_missing_in_a_container(machine: Machine) -> None:
    version = machine.root / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14\n")
    machine.gpus([rtx4090()], init_error=LIBRARY_NOT_FOUND)
    machine.driver_files(str(version))
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.warned_once(
        f"NVML not available: libnvidia-ml.so.1 not found, although an NVIDIA driver is loaded "
        f"({version} exists); in a container, start it with the NVIDIA runtime "
        "(docker --gpus all)"
    )


def test_driver_library_version_mismatch(machine: Machine) -> None:
    nvml = machine.gpus([rtx4090()], init_error=LIB_RM_VERSION_MISMATCH)
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.warned_once("NVML initialisation failed: RM has detected an NVML/RM version mismatch.")
    assert result.report["host"]["gpus"] == []
    assert nvml.calls == ["init"]  # probed once for the whole session, never shut down


def test_kernel_driver_not_loaded(machine: Machine) -> None:
    machine.gpus([], init_error=DRIVER_NOT_LOADED)
    result = machine.session(GPU_TESTS)
    result.warned_once("NVML not available: the NVIDIA kernel driver is not loaded")
    assert result.decisions()["test_ram_32gb"][0] == "run"


def test_init_failing_with_an_unknown_error(machine: Machine) -> None:
    machine.gpus([rtx4090()], init_error=999)
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.warned_once("NVML initialisation failed: NVML error 999")


def test_a_query_raising_something_unexpected(machine: Machine) -> None:
    nvml = machine.gpus([rtx4090()])

    def broken() -> int:
        raise RuntimeError("driver returned garbage")

    nvml.nvmlDeviceGetCount = broken  # type: ignore[attr-defined]
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.warned_once("NVML query failed: driver returned garbage")
    assert nvml.calls[-1] == "shutdown"  # NVML is shut down even then


# -- one GPU of two fell off the bus --------------------------------------------------------


def test_one_gpu_of_two_lost(machine: Machine) -> None:
    lost = rtx4090("GPU-4090bbbb-0000-0000-0000-000000000000")
    lost.lost = True
    machine.gpus([rtx4090(), lost])
    result = machine.session(GPU_TESTS)
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    decisions = result.decisions()
    # What is left: one RTX 4090 with 23000 - 300 MiB free (24.1 GB, not two cards' 48 GB).
    assert decisions["test_one_gpu"][0] == "run"
    assert decisions["test_two_gpus"] == (
        "skip",
        "requires_gpu 2x: found 1 matching of 1 (NVIDIA GeForce RTX 4090)",
    )
    assert decisions["test_vram_20gb"][0] == "run"
    assert decisions["test_vram_30gb"] == (
        "skip",
        "requires_vram 30GB: needs 30.0 GB VRAM; have 23.8 GB VRAM (1x NVIDIA GeForce RTX 4090); "
        "short by 6.2 GB",
    )
    assert decisions["test_model_8b"][0] == "run"
    assert "all 33 layers on GPU" in decisions["test_model_8b"][1]
    (gpu,) = result.report["host"]["gpus"]
    assert (gpu["index"], gpu["cuda_index"], gpu["memory_free"]) == (0, 0, 22700 * MIB)
    result.run.assert_outcomes(passed=4, skipped=2)


def test_first_gpu_lost_renumbers_the_rest(machine: Machine) -> None:
    lost = rtx4090("GPU-4090bbbb-0000-0000-0000-000000000000")
    lost.lost = True
    machine.gpus([lost, a100()])
    machine.monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    result = machine.session(GPU_TESTS)
    result.warned_once("NVIDIA GPU 0 skipped: GPU is lost")
    (gpu,) = result.report["host"]["gpus"]
    # NVML index 1 stays the NVML index; CUDA, which never saw the lost card, calls it 0.
    assert (gpu["name"], gpu["index"], gpu["cuda_index"]) == ("NVIDIA A100-SXM4-40GB", 1, 0)
    assert result.decisions()["test_vram_30gb"][0] == "run"  # 40000 - 300 MiB free


# -- memory info not supported (unified-memory parts) ---------------------------------------


def test_memory_info_not_supported(machine: Machine) -> None:
    # Grace-Blackwell GB10 style: NVML answers Not Supported for memory on unified parts.
    gb10 = FakeGpu("NVIDIA GB10", "GPU-gb10aaaa-0000-0000-0000-000000000000", 0, 0, 256, 4266)
    gb10.cc = (12, 1)
    gb10.memory_supported = False
    machine.gpus([gb10])
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "NVIDIA GPU 0 (NVIDIA GB10): memory size unknown (Not Supported); counted as 0 bytes"
    )
    decisions = result.decisions()
    assert decisions["test_one_gpu"][0] == "run"  # the GPU is known to be there
    assert decisions["test_vram_20gb"] == (
        "skip",
        "requires_vram 20GB: needs 20.0 GB VRAM; have 0 B VRAM (1x NVIDIA GB10); short by 20.0 GB",
    )
    assert decisions["test_ram_32gb"][0] == "run"
    # The model does not count on the unknown VRAM: it fits in RAM, on the CPU side.
    assert decisions["test_model_8b"][0] == "run"
    assert (
        "0/33 layers on GPU" in decisions["test_model_8b"][1]
        or "CPU" in (decisions["test_model_8b"][1])
    )


# -- MIG ------------------------------------------------------------------------------------


def test_mig_instances_count_as_one_gpu_of_their_own_size(machine: Machine) -> None:
    machine.gpus([mig_a100()])
    result = machine.session(GPU_TESTS)
    result.not_warned()  # MIG is a configuration, not a fault: a note
    (note,) = result.notes
    assert note.startswith("NVIDIA GPU 0 (NVIDIA A100-SXM4-40GB) is in MIG mode: a CUDA process ")
    decisions = result.decisions()
    assert decisions["test_one_gpu"][0] == "run"
    assert decisions["test_two_gpus"][0] == "skip"
    # The 3g.20gb instance has 19000 MiB free (19.9 GB): 20 GB does not fit, the A100's 40 would.
    assert decisions["test_vram_20gb"] == (
        "skip",
        "requires_vram 20GB: needs 20.0 GB VRAM; have 19.9 GB VRAM "
        "(1x NVIDIA A100-SXM4-40GB MIG 3g.20gb); short by 78.7 MB",
    )
    (gpu,) = result.report["host"]["gpus"]
    assert gpu["mig"] is True and gpu["memory_total"] == 20096 * MIB


def test_mig_selected_by_uuid(machine: Machine) -> None:
    machine.gpus([mig_a100()])
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-bbbbbbbb")
    result = machine.session(GPU_TESTS)
    result.not_warned()
    (gpu,) = result.report["host"]["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    assert result.decisions()["test_model_8b"][0] == "run"  # partial offload onto 5 GB


# -- CUDA_VISIBLE_DEVICES naming a device that does not exist ------------------------------


def test_cuda_visible_devices_names_a_missing_device(machine: Machine) -> None:
    machine.gpus([rtx4090(), a100()])
    machine.monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,7")
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "CUDA_VISIBLE_DEVICES='1,7': entry '7' matches no NVIDIA device; CUDA stops the list "
        "there (1 device(s) visible)"
    )
    (gpu,) = result.report["host"]["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB"
    assert result.decisions()["test_two_gpus"][0] == "skip"


def test_cuda_visible_devices_hides_everything(machine: Machine) -> None:
    machine.gpus([rtx4090()])
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-deadbeef")
    result = machine.session(GPU_TESTS)
    result.run.assert_outcomes(passed=2, skipped=4)
    result.warned_once(
        "CUDA_VISIBLE_DEVICES='GPU-deadbeef': entry 'GPU-deadbeef' matches no NVIDIA device; "
        "CUDA stops the list there (0 device(s) visible)"
    )


def test_empty_cuda_visible_devices_is_a_choice_not_a_fault(machine: Machine) -> None:
    machine.gpus([rtx4090()])
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = machine.session(GPU_TESTS)
    result.not_warned()
    assert result.report["host"]["gpus"] == []


# -- a container whose cgroup limit is below the host's RAM --------------------------------


RAM_TESTS = """
    import pytest
    @pytest.mark.requires_ram("6GiB")
    def test_ram_6gib(): pass
    @pytest.mark.requires_ram("16GB")
    def test_ram_16gb(): pass
    @pytest.mark.requires_model("m8b.gguf")
    def test_model_8b(): pass
"""


def test_cgroup_limit_below_host_ram(machine: Machine) -> None:
    machine.cgroup_v2(limit=8 * GIB, usage=2 * GIB, inactive_file=1 * GIB)
    result = machine.session(RAM_TESTS)
    result.not_warned()
    ram = result.report["host"]["ram"]
    assert (ram["total"], ram["available"], ram["cgroup_limit"]) == (8 * GIB, 7 * GIB, 8 * GIB)
    decisions = result.decisions()
    assert decisions["test_ram_6gib"][0] == "run"
    assert decisions["test_ram_16gb"] == (
        "skip",
        "requires_ram 16GB: needs 16.0 GB RAM; have 7.5 GB (container limit); short by 8.5 GB",
    )
    # A 4.9 GB model on the CPU fits in 7.5 GB; the host's 64 GiB would not be the reason.
    assert decisions["test_model_8b"][0] == "run"
    result.run.assert_outcomes(passed=2, skipped=1)


def test_cgroup_limit_too_small_for_the_model(machine: Machine) -> None:
    machine.cgroup_v2(limit=4 * GIB, usage=1 * GIB)
    result = machine.session(RAM_TESTS)
    decision, reason = result.decisions()["test_model_8b"]
    assert decision == "skip"
    assert reason.startswith("requires_model m8b.gguf @4096: needs ")
    assert "+ 3.2 GB RAM" not in reason and "3.2 GB RAM (no GPU)" in reason


def test_cgroup_unreadable_falls_back_to_host_ram(machine: Machine) -> None:
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/sys/fs/cgroup/memory.max")

    machine.monkeypatch.setattr(system, "cgroup_memory", unreadable)
    result = machine.session(RAM_TESTS)
    result.warned_once(
        "cgroup memory limit unreadable: [Errno 13] Permission denied: '/sys/fs/cgroup/memory.max'"
    )
    assert result.report["host"]["ram"]["available"] == HOST_AVAILABLE
    assert result.decisions()["test_ram_16gb"][0] == "run"


def test_psutil_missing_falls_back_to_sysconf(machine: Machine) -> None:
    machine.monkeypatch.setitem(sys.modules, "psutil", None)
    result = machine.session(RAM_TESTS)
    result.warned_once(
        "psutil not importable (import of psutil halted; None in sys.modules): RAM and CPU "
        "read from os.sysconf"
    )
    assert result.report["host"]["ram"]["total"] > 0
    assert result.decisions()["test_ram_6gib"][0] in ("run", "skip")  # decided, not crashed


# -- many faults at once, many tests, xdist -------------------------------------------------


def test_every_problem_once_however_many_tests(machine: Machine) -> None:
    lost = a100()
    lost.lost = True
    card = rtx4090()
    card.bus_width_supported = False
    machine.gpus([card, lost])
    machine.cgroup_v2(limit=8 * GIB, usage=1 * GIB)
    source = "import pytest\n" + "".join(
        f"@pytest.mark.requires_vram('{n}GB')\ndef test_{n}(): pass\n" for n in range(1, 41)
    )
    result = machine.session(source)
    result.run.assert_outcomes(passed=23, skipped=17)
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    result.warned_once(
        "NVIDIA GPU 0 (NVIDIA GeForce RTX 4090): memory bandwidth unknown (Not Supported)"
    )
    assert result.text.count(WARNING) == 2


def test_a_third_party_probe_that_raises_costs_only_its_own_answer(machine: Machine) -> None:
    machine.gpus([rtx4090()])
    machine.pytester.makeconftest(
        """
        from pytest_llmfit.hookspecs import hookimpl

        @hookimpl
        def pytest_llmfit_probe(env):
            raise OSError("vendor tool crashed")
        """
    )
    result = machine.session(GPU_TESTS)
    result.warned_once("probe conftest failed: OSError: vendor tool crashed")
    assert result.decisions()["test_one_gpu"][0] == "run"


XDIST_CONFTEST = """
import sys
sys.path.insert(0, {tests!r})
from test_probes_nvidia import make_fake_nvml, rtx4090

lost = rtx4090("GPU-4090bbbb-0000-0000-0000-000000000000")
lost.lost = True
sys.modules["pynvml"] = make_fake_nvml([rtx4090(), lost])
"""


def test_under_xdist_the_controller_probes_and_warns_once(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    pytester.makeconftest(XDIST_CONFTEST.format(tests=str(pathlib.Path(__file__).parent)))
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.requires_gpu(2)
        def test_two(i): pass
        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.requires_vram("20GB")
        def test_vram(i): pass
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "--llmfit-report-json=r.json")
    result.assert_outcomes(passed=4, skipped=4)
    text = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in text
    problem = "NVIDIA GPU 1 skipped: GPU is lost"
    assert text.count(problem) == 1, text
    report = json.loads((pytester.path / "r.json").read_text())
    assert problem in report["host"]["notes"]
    assert len(report["host"]["gpus"]) == 1
