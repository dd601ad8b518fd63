"""Hardware faults, seen from a real pytest session: warned once, reported, decided on facts.

Each test builds a machine from fakes (a ``pynvml`` module in ``sys.modules`` built with the
helpers of test_probes_nvidia, a ``psutil`` module, a cgroup tree in a temporary folder),
installed by a ``conftest.py`` before the plugin probes, runs a pytest session on it in its
own process (pytester) and checks three things:

* the problem is shown once, as an ``LlmfitProbeWarning`` in the warnings summary;
* the JSON report's ``host.notes`` says what is missing;
* the decisions are right for what is still known (the GPU that is left, the cgroup limit),
  and nothing crashes.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
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
)

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


def lost(card: FakeGpu) -> FakeGpu:
    """The card fell off the bus: every NVML call on it answers GPU_IS_LOST."""
    card.lost = True
    return card


def no_memory_info(card: FakeGpu) -> FakeGpu:
    card.memory_supported = False
    return card


def no_bus_width(card: FakeGpu) -> FakeGpu:
    card.bus_width_supported = False
    return card


def gb10() -> FakeGpu:
    """A unified-memory part (DGX Spark's GB10): NVML answers Not Supported for memory."""
    card = FakeGpu("NVIDIA GB10", "GPU-gb10aaaa-0000-0000-0000-000000000000", 0, 0, 256, 4266)
    card.cc = (12, 1)
    return no_memory_info(card)


# The machine, installed by a conftest.py before the plugin probes: the session runs in its
# own process (as users run it), so what it prints is exactly what a user sees.
CONFTEST = """
import atexit, json, sys
sys.path.insert(0, {tests!r})
from test_probes_nvidia import *
from test_faults import fake_psutil, gb10, lost, no_bus_width, no_memory_info
from pytest_llmfit.hardware.probes import ProbeResult, amd, apple, nvidia, system

sys.modules["psutil"] = fake_psutil()
sys.modules["pynvml"] = make_fake_nvml([])
amd.probe = lambda env, **kwargs: ProbeResult()
apple.probe = lambda env, **kwargs: ProbeResult()
_real_cgroup = system.cgroup_memory
system.cgroup_memory = lambda *args, host_total=0, **kwargs: _real_cgroup(
    {cgroup!r}, {proc!r}, host_total=host_total
)
{setup}

def _record_nvml_calls():
    calls = getattr(sys.modules.get("pynvml"), "calls", None)
    if calls:
        with open("nvml_calls.json", "w") as handle:
            json.dump(calls, handle)

atexit.register(_record_nvml_calls)
"""


@dataclass
class Machine:
    """The fake machine a session probes; ``session`` runs pytest on it."""

    pytester: pytest.Pytester
    monkeypatch: pytest.MonkeyPatch
    root: pathlib.Path
    setup: list[str] = field(default_factory=list)

    def gpus(self, cards: str, **kwargs: Any) -> None:
        """``cards`` is Python source over test_probes_nvidia's helpers: "[rtx4090(), a100()]"."""
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        self.setup.append(f'sys.modules["pynvml"] = make_fake_nvml({cards}{extra})')

    def line(self, source: str) -> None:
        self.setup.append(source)

    def driver_files(self, *paths: str) -> None:
        """Where the NVIDIA probe looks for a loaded kernel driver (see DRIVER_HINT_PATHS)."""
        self.line(f"nvidia.probe.__kwdefaults__ = {{'driver_hint_paths': {paths!r}}}")

    def cgroup_v2(self, limit: int, usage: int, inactive_file: int = 0) -> None:
        base = self.root / "cgroup"
        (base / "cgroup.controllers").write_text("cpu memory\n")
        (base / "memory.max").write_text(f"{limit}\n")
        (base / "memory.current").write_text(f"{usage}\n")
        (base / "memory.stat").write_text(f"anon {usage}\ninactive_file {inactive_file}\n")

    def session(self, source: str, *args: str, report: bool = True) -> Result:
        self.pytester.makeconftest(
            CONFTEST.format(
                tests=str(TESTS),
                cgroup=str(self.root / "cgroup"),
                proc=str(self.root / "proc"),
                setup="\n".join(self.setup),
            )
        )
        self.pytester.makepyfile(test_machine=textwrap.dedent(source))
        path = self.root / "report.json"
        options = [f"--llmfit-report-json={path}"] if report else []
        run = self.pytester.runpytest_subprocess("-rsx", "-p", "no:cacheprovider", *options, *args)
        data = json.loads(path.read_text()) if report else {}
        calls_file = self.pytester.path / "nvml_calls.json"
        calls = json.loads(calls_file.read_text()) if calls_file.exists() else []
        return Result(run, data, calls)


@dataclass
class Result:
    run: pytest.RunResult
    report: dict[str, Any]
    nvml_calls: list[str]

    @property
    def text(self) -> str:
        return self.run.stdout.str() + "\n" + self.run.stderr.str()

    @property
    def notes(self) -> list[str]:
        return list(self.report["host"]["notes"])

    def decisions(self) -> dict[str, tuple[str, str]]:
        return {
            t["nodeid"].split("::")[-1]: (t["decision"], t["reason"]) for t in self.report["tests"]
        }

    def warned_once(self, problem: str) -> None:
        """Shown exactly once, as an LlmfitProbeWarning, and kept in the report's host notes."""
        text = self.text
        assert "Traceback" not in text and "INTERNALERROR" not in text, text
        lines = [line for line in text.splitlines() if problem in line]
        assert len(lines) == 1, text
        assert f"{WARNING}: {problem}" in lines[0], lines[0]
        if self.report:
            assert problem in self.notes

    def not_warned(self) -> None:
        assert WARNING not in self.text, self.text
        assert "Traceback" not in self.text


TESTS = pathlib.Path(__file__).resolve().parent


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
    for name in [n for n in os.environ if n.startswith("LLMFIT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("LLMFIT_CACHE_DIR", str(tmp_path / "cache"))  # no cached RAM bandwidth
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("0::/\n")
    shutil.copy(stub_8b, pytester.path / "m8b.gguf")
    yield Machine(pytester, monkeypatch, tmp_path)


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
NO_GPU = "requires_gpu 1x: found 0 matching of 0 (no GPU)"


def assert_no_gpu_decisions(result: Result) -> None:
    """No GPU known: GPU tests skip, RAM tests and the model (on the CPU) still run."""
    decisions = result.decisions()
    assert decisions["test_one_gpu"] == ("skip", NO_GPU)
    assert decisions["test_vram_20gb"] == (
        "skip",
        "requires_vram 20GB: needs 20.0 GB VRAM; have no GPU; short by 20.0 GB",
    )
    assert decisions["test_ram_32gb"][0] == "run"
    assert decisions["test_model_8b"][0] == "run"
    assert "CPU only" in decisions["test_model_8b"][1]
    assert result.report["host"]["gpus"] == []
    result.run.assert_outcomes(passed=2, skipped=4)


# -- the machine itself is fine: the baseline the faults are compared with -----------------


def test_healthy_machine_has_no_warning(machine: Machine) -> None:
    machine.gpus("[rtx4090(), a100()]")
    result = machine.session(
        GPU_TESTS, "-W", "error::pytest_llmfit.hardware.probes.LlmfitProbeWarning"
    )
    result.run.assert_outcomes(passed=6)
    result.not_warned()
    assert result.notes == [  # a note, not a problem: never warned
        "CUDA_DEVICE_ORDER is FASTEST_FIRST and the GPUs differ: CUDA numbering approximated "
        "(compute capability first); set CUDA_DEVICE_ORDER=PCI_BUS_ID for an exact mapping"
    ]
    assert [g["name"] for g in result.report["host"]["gpus"]] == [
        "NVIDIA GeForce RTX 4090",
        "NVIDIA A100-SXM4-40GB",
    ]
    assert result.report["host"]["ram"]["cgroup_limit"] is None
    assert result.nvml_calls.count("init") == 1  # probed once for the whole session


# -- NVML missing or failing to start -------------------------------------------------------


def test_no_nvidia_package(machine: Machine) -> None:
    machine.line('sys.modules["pynvml"] = None')
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "NVML not available: the nvidia-ml-py package is not importable "
        "(import of pynvml halted; None in sys.modules)"
    )
    assert_no_gpu_decisions(result)


def test_no_driver_at_all_is_a_note_not_a_warning(machine: Machine) -> None:
    machine.gpus("[]", init_error=LIBRARY_NOT_FOUND)
    machine.driver_files("/nonexistent/proc/driver/nvidia/version")
    result = machine.session(GPU_TESTS)
    result.not_warned()
    assert result.notes == ["no NVIDIA driver: libnvidia-ml.so.1 not found"]
    assert_no_gpu_decisions(result)


def test_driver_loaded_but_library_missing_in_a_container(machine: Machine) -> None:
    version = machine.root / "version"
    version.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14\n")
    machine.gpus("[rtx4090()]", init_error=LIBRARY_NOT_FOUND)
    machine.driver_files(str(version))
    result = machine.session(GPU_TESTS)
    result.warned_once(
        f"NVML not available: libnvidia-ml.so.1 not found, although an NVIDIA driver is loaded "
        f"({version} exists); in a container, start it with the NVIDIA runtime "
        "(docker --gpus all)"
    )
    assert_no_gpu_decisions(result)


def test_driver_library_version_mismatch(machine: Machine) -> None:
    machine.gpus("[rtx4090()]", init_error=LIB_RM_VERSION_MISMATCH)
    result = machine.session(GPU_TESTS)
    result.warned_once("NVML initialisation failed: RM has detected an NVML/RM version mismatch.")
    assert_no_gpu_decisions(result)
    assert result.nvml_calls == ["init"]  # tried once, never shut down (it never started)


def test_kernel_driver_not_loaded(machine: Machine) -> None:
    machine.gpus("[]", init_error=DRIVER_NOT_LOADED)
    result = machine.session(GPU_TESTS)
    result.warned_once("NVML not available: the NVIDIA kernel driver is not loaded")
    assert_no_gpu_decisions(result)


def test_init_failing_with_an_unknown_error(machine: Machine) -> None:
    machine.gpus("[rtx4090()]", init_error=999)
    result = machine.session(GPU_TESTS)
    result.warned_once("NVML initialisation failed: NVML error 999")
    assert_no_gpu_decisions(result)


def test_a_query_raising_something_unexpected(machine: Machine) -> None:
    machine.gpus("[rtx4090()]")
    machine.line(
        "def _broken():\n    raise RuntimeError('driver returned garbage')\n"
        'sys.modules["pynvml"].nvmlDeviceGetCount = _broken'
    )
    result = machine.session(GPU_TESTS)
    result.warned_once("NVML query failed: driver returned garbage")
    assert_no_gpu_decisions(result)
    assert result.nvml_calls[-1] == "shutdown"  # NVML is shut down even then


# -- one GPU of two fell off the bus --------------------------------------------------------


def test_one_gpu_of_two_lost(machine: Machine) -> None:
    machine.gpus("[rtx4090(), lost(rtx4090('GPU-4090bbbb-0000-0000-0000-000000000000'))]")
    result = machine.session(GPU_TESTS)
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    decisions = result.decisions()
    # What is left: one RTX 4090 with 23000 - 300 MiB free (23.8 GB), not two cards' 47.6 GB.
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
    machine.gpus("[lost(rtx4090()), a100()]")
    machine.monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    result = machine.session(GPU_TESTS)
    result.warned_once("NVIDIA GPU 0 skipped: GPU is lost")
    (gpu,) = result.report["host"]["gpus"]
    # The NVML index stays 1; CUDA, which never saw the lost card, calls the A100 device 0.
    assert (gpu["name"], gpu["index"], gpu["cuda_index"]) == ("NVIDIA A100-SXM4-40GB", 1, 0)
    assert result.decisions()["test_vram_30gb"][0] == "run"  # 40000 - 300 MiB free


# -- memory info not supported (unified-memory parts) ---------------------------------------


def test_memory_info_not_supported(machine: Machine) -> None:
    machine.gpus("[gb10()]")
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "NVIDIA GPU 0 (NVIDIA GB10): memory size unknown (Not Supported); counted as 0 bytes"
    )
    decisions = result.decisions()
    assert decisions["test_one_gpu"][0] == "run"  # the GPU is known to be there
    assert decisions["test_vram_20gb"] == (  # its memory is not: counted as none
        "skip",
        "requires_vram 20GB: needs 20.0 GB VRAM; have 0 B VRAM (1x NVIDIA GB10); short by 20.0 GB",
    )
    assert decisions["test_ram_32gb"][0] == "run"
    # The model does not count on the unknown VRAM: it runs from RAM.
    decision, reason = decisions["test_model_8b"]
    assert decision == "run" and "CPU only" in reason, reason


def test_bandwidth_unknown_still_decides(machine: Machine) -> None:
    machine.gpus("[no_bus_width(rtx4090())]")
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "NVIDIA GPU 0 (NVIDIA GeForce RTX 4090): memory bandwidth unknown (Not Supported)"
    )
    assert result.decisions()["test_model_8b"][0] == "run"
    assert result.report["host"]["gpus"][0]["bandwidth"] is None


# -- MIG ------------------------------------------------------------------------------------


def test_mig_instance_is_one_gpu_of_its_own_size(machine: Machine) -> None:
    machine.gpus("[mig_a100()]")
    result = machine.session(GPU_TESTS)
    result.not_warned()  # MIG is a configuration, not a fault: a note
    (note,) = result.notes
    assert note == (
        "NVIDIA GPU 0 (NVIDIA A100-SXM4-40GB) is in MIG mode: a CUDA process sees only one MIG "
        "device (MIG-aaaaaaaa-1111-0000-0000-000000000000), 1 other device(s) hidden; pick one "
        "with CUDA_VISIBLE_DEVICES=MIG-<uuid>"
    )
    decisions = result.decisions()
    assert decisions["test_one_gpu"][0] == "run"
    assert decisions["test_two_gpus"][0] == "skip"
    # The 3g.20gb instance has 19000 MiB free (19.9 GB): 20 GB does not fit; the whole A100 would.
    assert decisions["test_vram_20gb"] == (
        "skip",
        "requires_vram 20GB: needs 20.0 GB VRAM; have 19.9 GB VRAM "
        "(1x NVIDIA A100-SXM4-40GB MIG 3g.20gb); short by 77.1 MB",
    )
    (gpu,) = result.report["host"]["gpus"]
    assert gpu["mig"] is True and gpu["memory_total"] == 20096 * MIB


def test_mig_instance_chosen_by_uuid(machine: Machine) -> None:
    machine.gpus("[mig_a100()]")
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-bbbbbbbb")
    result = machine.session(GPU_TESTS)
    result.not_warned()
    (gpu,) = result.report["host"]["gpus"]
    assert gpu["name"] == "NVIDIA A100-SXM4-40GB MIG 1g.5gb"
    decision, reason = result.decisions()["test_model_8b"]
    assert decision == "run" and "partial offload" in reason, reason  # 4.9 GB onto a 5 GB slice


def test_two_mig_devices_named_only_one_is_seen(machine: Machine) -> None:
    machine.gpus("[mig_a100()]")
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-bbbbbbbb,MIG-aaaaaaaa")
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "CUDA_VISIBLE_DEVICES='MIG-bbbbbbbb,MIG-aaaaaaaa' names a MIG device: a CUDA process sees "
        "only one MIG device (MIG-bbbbbbbb-2222-0000-0000-000000000000), 1 other device(s) hidden"
    )
    assert result.decisions()["test_two_gpus"][0] == "skip"


# -- CUDA_VISIBLE_DEVICES naming a device that does not exist ------------------------------


def test_cuda_visible_devices_names_a_missing_device(machine: Machine) -> None:
    machine.gpus("[rtx4090(), a100()]")
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
    assert result.decisions()["test_vram_30gb"][0] == "run"


def test_cuda_visible_devices_hides_everything(machine: Machine) -> None:
    machine.gpus("[rtx4090()]")
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-deadbeef")
    result = machine.session(GPU_TESTS)
    result.warned_once(
        "CUDA_VISIBLE_DEVICES='GPU-deadbeef': entry 'GPU-deadbeef' matches no NVIDIA device; "
        "CUDA stops the list there (0 device(s) visible)"
    )
    assert_no_gpu_decisions(result)


def test_empty_cuda_visible_devices_is_a_choice_not_a_fault(machine: Machine) -> None:
    machine.gpus("[rtx4090()]")
    machine.monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = machine.session(GPU_TESTS)
    result.not_warned()
    assert_no_gpu_decisions(result)


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
    # total is the limit; available = limit - (usage - inactive file cache) = 7 GiB.
    assert (ram["total"], ram["available"], ram["cgroup_limit"]) == (8 * GIB, 7 * GIB, 8 * GIB)
    decisions = result.decisions()
    assert decisions["test_ram_6gib"][0] == "run"
    assert decisions["test_ram_16gb"] == (
        "skip",
        "requires_ram 16GB: needs 16.0 GB RAM; have 7.5 GB (container limit); short by 8.5 GB",
    )
    assert decisions["test_model_8b"][0] == "run"  # 4.9 GB of weights on the CPU fit in 7.5 GB
    result.run.assert_outcomes(passed=2, skipped=1)


def test_cgroup_limit_too_small_for_the_model(machine: Machine) -> None:
    machine.cgroup_v2(limit=4 * GIB, usage=1 * GIB)
    result = machine.session(RAM_TESTS)
    decision, reason = result.decisions()["test_model_8b"]
    assert decision == "skip", reason
    assert reason.startswith("requires_model m8b.gguf @4096: needs ")
    assert "have 3.2 GB RAM (no GPU)" in reason  # the container's 3 GiB, not the host's 64


def test_cgroup_unreadable_falls_back_to_host_ram(machine: Machine) -> None:
    machine.line(
        "def _unreadable(*args, **kwargs):\n"
        "    raise PermissionError(13, 'Permission denied', '/sys/fs/cgroup/memory.max')\n"
        "system.cgroup_memory = _unreadable"
    )
    result = machine.session(RAM_TESTS)
    result.warned_once(
        "cgroup memory limit unreadable: [Errno 13] Permission denied: '/sys/fs/cgroup/memory.max'"
    )
    assert result.report["host"]["ram"]["available"] == HOST_AVAILABLE
    assert result.decisions()["test_ram_16gb"][0] == "run"


def test_psutil_missing_falls_back_to_sysconf(machine: Machine) -> None:
    machine.line('sys.modules["psutil"] = None')
    result = machine.session(RAM_TESTS)
    result.warned_once(
        "psutil not importable (import of psutil halted; None in sys.modules): RAM and CPU "
        "read from os.sysconf"
    )
    assert result.report["host"]["ram"]["total"] > 0  # this machine's own RAM
    assert result.decisions()["test_ram_6gib"][0] in ("run", "skip")  # decided, not crashed


# -- how the warning reaches the user -------------------------------------------------------


def test_without_a_report_the_warning_is_in_the_warnings_summary(machine: Machine) -> None:
    machine.gpus("[rtx4090(), lost(a100())]")
    result = machine.session(GPU_TESTS, report=False)
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    summary = result.run.stdout.str().split("warnings summary", 1)
    assert len(summary) == 2 and "NVIDIA GPU 1 skipped: GPU is lost" in summary[1]
    result.run.assert_outcomes(passed=4, skipped=2)


def test_every_problem_once_however_many_tests(machine: Machine) -> None:
    machine.gpus("[no_bus_width(rtx4090()), lost(a100())]")
    machine.cgroup_v2(limit=8 * GIB, usage=1 * GIB)
    source = "import pytest\n" + "".join(
        f"@pytest.mark.requires_vram('{n}GB')\ndef test_{n}(): pass\n" for n in range(1, 41)
    )
    result = machine.session(source)
    result.run.assert_outcomes(passed=23, skipped=17)  # 23.8 GB free on the 4090 left
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    result.warned_once(
        "NVIDIA GPU 0 (NVIDIA GeForce RTX 4090): memory bandwidth unknown (Not Supported)"
    )
    assert result.text.count(WARNING) == 2
    assert result.nvml_calls.count("init") == 1


def test_a_third_party_probe_that_raises_costs_only_its_own_answer(machine: Machine) -> None:
    machine.gpus("[rtx4090()]")
    machine.line(
        "from pytest_llmfit.hookspecs import hookimpl\n"
        "@hookimpl\n"
        "def pytest_llmfit_probe(env):\n"
        "    raise OSError('vendor tool crashed')"
    )
    result = machine.session(GPU_TESTS)
    result.warned_once("probe conftest failed: OSError: vendor tool crashed")
    assert result.decisions()["test_one_gpu"][0] == "run"


def test_under_xdist_the_controller_probes_and_warns_once(machine: Machine) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    machine.gpus("[rtx4090(), lost(rtx4090('GPU-4090bbbb-0000-0000-0000-000000000000'))]")
    source = """
        import pytest
        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.requires_gpu(2)
        def test_two(i): pass
        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.requires_vram("20GB")
        def test_vram(i): pass
    """
    result = machine.session(source, "-n", "2", "-p", "xdist")
    result.run.assert_outcomes(passed=4, skipped=4)
    result.warned_once("NVIDIA GPU 1 skipped: GPU is lost")
    assert len(result.report["host"]["gpus"]) == 1
    assert {t["worker"] for t in result.report["tests"]} <= {"gw0", "gw1"}
    assert result.nvml_calls.count("init") == 1  # the controller probed, the workers did not


def test_warnings_as_errors_is_not_an_internal_error(machine: Machine) -> None:
    machine.gpus("[rtx4090()]", init_error=LIB_RM_VERSION_MISMATCH)
    machine.pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    result = machine.session(GPU_TESTS, report=False)
    assert "INTERNALERROR" not in result.text and "Traceback" not in result.text, result.text
    assert "NVML initialisation failed: RM has detected an NVML/RM version mismatch." in (
        result.text
    )
