"""detect_host: the plugin manager, merging, warnings, and lazy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
import warnings
from collections.abc import Mapping
from typing import Any

import pytest

from pytest_llmfit import hookspecs
from pytest_llmfit.hardware.probes import (
    BUILTIN_PROBES,
    LlmfitProbeWarning,
    ProbeResult,
    builtin_probes,
    call_probes,
    detect_host,
    merge_results,
)
from pytest_llmfit.hardware.types import Cpu, Gpu, Host, Ram
from pytest_llmfit.hookspecs import hookimpl

GIB = 2**30
NO_BUILTINS = BUILTIN_PROBES
RAM = Ram(total=64 * GIB, available=60 * GIB)
CPU = Cpu(model="Test CPU", cores_physical=8, cores_logical=16)


def gpu(name: str, cuda_index: int | None = None, uuid: str | None = None) -> Gpu:
    return Gpu(
        vendor="test",
        name=name,
        index=0,
        memory_total=8 * GIB,
        memory_free=8 * GIB,
        cuda_index=cuda_index,
        uuid=uuid,
    )


class Probe:
    """A third-party probe plugin as an object; records the env it was given."""

    def __init__(self, result: ProbeResult | None) -> None:
        self.result = result
        self.envs: list[Mapping[str, str]] = []

    @hookimpl
    def pytest_llmfit_probe(self, env: Mapping[str, str]) -> ProbeResult | None:
        self.envs.append(env)
        return self.result


def base() -> Probe:
    return Probe(ProbeResult(ram=RAM, cpu=CPU))


def test_builtin_probes_are_named_plugins() -> None:
    names = [name for name, _ in builtin_probes()]
    assert tuple(names) == BUILTIN_PROBES == ("nvidia", "amd", "apple", "system")
    for _, plugin in builtin_probes():
        assert callable(plugin.pytest_llmfit_probe)  # type: ignore[attr-defined]


def test_third_party_probe_adds_a_gpu() -> None:
    extra = Probe(ProbeResult(gpus=(gpu("My NPU"),)))
    host = detect_host(env={"X": "1"}, plugins=[base(), extra], disable=NO_BUILTINS)
    assert isinstance(host, Host)
    assert [g.name for g in host.gpus] == ["My NPU"]
    assert (host.ram, host.cpu, host.notes, host.simulated) == (RAM, CPU, (), False)
    assert extra.envs == [{"X": "1"}]


def test_module_plugins_work_too() -> None:
    module = types.ModuleType("my_probe")

    @hookimpl
    def pytest_llmfit_probe(env: Mapping[str, str]) -> ProbeResult:
        return ProbeResult(gpus=(gpu("From a module"),))

    module.pytest_llmfit_probe = pytest_llmfit_probe  # type: ignore[attr-defined]
    host = detect_host(env={}, plugins=[base(), module], disable=NO_BUILTINS)
    assert [g.name for g in host.gpus] == ["From a module"]


def test_hookspec_docstring_example_runs() -> None:
    doc = hookspecs.pytest_llmfit_probe.__doc__ or ""
    code = textwrap.dedent(doc.split("``conftest.py``::", 1)[1])
    namespace: dict[str, Any] = {}
    exec(compile(code, "hookspec-example", "exec"), namespace)
    example = types.ModuleType("example")
    example.pytest_llmfit_probe = namespace["pytest_llmfit_probe"]  # type: ignore[attr-defined]
    off = detect_host(env={}, plugins=[base(), example], disable=NO_BUILTINS)
    assert off.gpus == ()
    on = detect_host(env={"MY_NPU_VISIBLE": "0"}, plugins=[base(), example], disable=NO_BUILTINS)
    assert [g.name for g in on.gpus] == ["My NPU 16GB"]


def test_gpus_in_cuda_order_then_registration_order() -> None:
    first = Probe(ProbeResult(gpus=(gpu("other-a"), gpu("cuda-1", cuda_index=1))))
    second = Probe(ProbeResult(gpus=(gpu("cuda-0", cuda_index=0), gpu("other-b"))))
    host = detect_host(env={}, plugins=[base(), first, second], disable=NO_BUILTINS)
    assert [g.name for g in host.gpus] == ["cuda-0", "cuda-1", "other-a", "other-b"]


def test_same_uuid_reported_twice_is_kept_once() -> None:
    builtin_like = Probe(ProbeResult(gpus=(gpu("driver name", 0, uuid="GPU-1"),)))
    override = Probe(ProbeResult(gpus=(gpu("better name", 0, uuid="GPU-1"),)))
    host = detect_host(env={}, plugins=[base(), builtin_like, override], disable=NO_BUILTINS)
    assert [g.name for g in host.gpus] == ["better name"]  # registered later, called first


def test_later_plugin_overrides_ram_and_cpu() -> None:
    small = Ram(total=8 * GIB, available=4 * GIB)
    host = detect_host(env={}, plugins=[base(), Probe(ProbeResult(ram=small))], disable=NO_BUILTINS)
    assert host.ram == small
    assert host.cpu == CPU  # not overridden: the earlier answer stands


def test_problems_are_warned_once_and_kept_as_notes() -> None:
    a = Probe(ProbeResult(problems=("disk on fire",), notes=("just so you know",)))
    b = Probe(ProbeResult(problems=("disk on fire", "fan missing")))
    with pytest.warns(LlmfitProbeWarning) as record:
        host = detect_host(env={}, plugins=[base(), a, b], disable=NO_BUILTINS)
    assert [str(w.message) for w in record] == ["disk on fire", "fan missing"]
    assert host.notes == ("disk on fire", "fan missing", "just so you know")


def test_warn_false_is_silent() -> None:
    noisy = Probe(ProbeResult(problems=("something",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        host = detect_host(env={}, plugins=[base(), noisy], disable=NO_BUILTINS, warn=False)
    assert host.notes == ("something",)


def test_nothing_reported_still_gives_a_host() -> None:
    with pytest.warns(LlmfitProbeWarning) as record:
        host = detect_host(env={}, plugins=[Probe(None)], disable=NO_BUILTINS)
    assert host.gpus == ()
    assert host.ram == Ram(total=0, available=0)
    assert host.cpu.model == "unknown"
    assert [str(w.message) for w in record] == [
        "RAM unknown: no probe reported host memory",
        "CPU unknown: no probe reported the processor",
    ]


def test_disable_blocks_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    import pytest_llmfit.hardware.probes.amd as amd_probe

    def fake_probe(env: Mapping[str, str]) -> ProbeResult:
        calls.append("amd")
        return ProbeResult()

    monkeypatch.setattr(amd_probe, "probe", fake_probe)
    detect_host(env={}, plugins=[base()], disable=("nvidia", "apple", "system"), warn=False)
    detect_host(env={}, plugins=[base()], disable=NO_BUILTINS, warn=False)
    assert calls == ["amd"]


def test_builtin_nvidia_probe_runs_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the package is not importable
    with pytest.warns(LlmfitProbeWarning, match="nvidia-ml-py"):
        host = detect_host(env={}, plugins=[base()], disable=("amd", "apple", "system"))
    assert host.gpus == ()


def test_a_probe_that_raises_costs_only_its_own_answer() -> None:
    class Broken:
        @hookimpl
        def pytest_llmfit_probe(self) -> ProbeResult:
            raise RuntimeError("sensor exploded")

    class Wrong:
        @hookimpl
        def pytest_llmfit_probe(self) -> object:
            return ["not", "a", "result"]

    extra = Probe(ProbeResult(gpus=(gpu("survivor"),)))
    plugins = [base(), Broken(), Wrong(), extra]
    with pytest.warns(LlmfitProbeWarning) as record:
        host = detect_host(env={}, plugins=plugins, disable=NO_BUILTINS)
    assert [g.name for g in host.gpus] == ["survivor"]
    assert sorted(str(w.message).split(".<locals>.")[-1] for w in record) == [
        "Broken failed: RuntimeError: sensor exploded",
        "Wrong returned list, not a ProbeResult; ignored",
    ]


def test_call_order_is_pluggys() -> None:
    import pluggy

    order: list[str] = []

    def named(name: str, tryfirst: bool = False) -> types.ModuleType:
        def pytest_llmfit_probe(env: Mapping[str, str]) -> None:
            order.append(name)

        module = types.ModuleType(name)
        module.pytest_llmfit_probe = hookimpl(tryfirst=tryfirst)(pytest_llmfit_probe)  # type: ignore[attr-defined]
        return module

    pm = pluggy.PluginManager("pytest")
    pm.add_hookspecs(hookspecs)
    for plugin in (named("first", tryfirst=True), named("a"), named("b")):
        pm.register(plugin)
    call_probes(pm, {})
    assert order == ["first", "b", "a"]


@pytest.mark.parametrize(("flag", "expected"), [(True, 51e9), (False, None)])
def test_ram_bandwidth_flag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, flag: bool, expected: float | None
) -> None:
    from pytest_llmfit.hardware.probes import system

    monkeypatch.setattr(system, "measure_ram_bandwidth", lambda size: 51e9)
    host = detect_host(
        env={},
        ram_bandwidth=flag,
        cache_dir=tmp_path,
        disable=("nvidia", "amd", "apple"),
        warn=False,
    )
    assert host.ram.bandwidth == expected


def test_merge_results_accepts_pluggy_order() -> None:
    results = [ProbeResult(gpus=(gpu("late"),)), None, ProbeResult(ram=RAM, cpu=CPU)]
    host = merge_results(results, warn=False)
    assert [g.name for g in host.gpus] == ["late"]


def test_real_machine_smoke() -> None:
    """On whatever runs the tests (no GPU here): returns a Host, never raises."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LlmfitProbeWarning)
        host = detect_host(ram_bandwidth="off")
    assert host.ram.total > 0
    assert host.cpu.cores_logical >= 1
    assert Host.from_dict(host.to_dict()) == host


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_probes_loads_no_nvml_and_no_pytest() -> None:
    out = run_python(
        """
        import sys
        import pytest_llmfit
        import pytest_llmfit.hookspecs
        import pytest_llmfit.hardware.probes
        import pytest_llmfit.hardware.probes.nvidia, pytest_llmfit.hardware.probes.amd
        import pytest_llmfit.hardware.probes.apple, pytest_llmfit.hardware.probes.system
        loaded = [m for m in ("pynvml", "pytest", "_pytest", "torch", "cupy") if m in sys.modules]
        maps = open("/proc/self/maps").read() if sys.platform.startswith("linux") else ""
        print(loaded, "libnvidia-ml" in maps)
        """
    )
    assert out == "[] False"
