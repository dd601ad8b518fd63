"""The system probe: fake psutil values and fake cgroup and /proc trees in tmp_path."""

from __future__ import annotations

import json
import sys
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from pytest_llmfit.hardware.probes import default_cache_dir, system

GIB = 2**30
HOST_TOTAL = 64 * GIB
HOST_AVAILABLE = 40 * GIB

svmem = namedtuple("svmem", ["total", "available", "percent", "used", "free"])


def make_fake_psutil(
    total: int = HOST_TOTAL,
    available: int = HOST_AVAILABLE,
    physical: int | None = 8,
    logical: int | None = 16,
) -> types.ModuleType:
    mod = types.ModuleType("psutil")
    ns: Any = mod

    def virtual_memory() -> Any:
        return svmem(total, available, 100 * (total - available) / total, total - available, 0)

    def cpu_count(logical: bool = True) -> int | None:
        return counts[logical]

    counts = {True: logical, False: physical}
    ns.virtual_memory = virtual_memory
    ns.cpu_count = cpu_count
    return mod


@pytest.fixture
def fake_psutil(monkeypatch: pytest.MonkeyPatch) -> Any:
    def install(**kwargs: Any) -> types.ModuleType:
        module = make_fake_psutil(**kwargs)
        monkeypatch.setitem(sys.modules, "psutil", module)
        return module

    install()
    return install


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    (root / "self").mkdir(parents=True)
    (root / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\n"
        "model name\t: AMD Ryzen 9 7950X 16-Core Processor\n\n"
        "processor\t: 1\nmodel name\t: AMD Ryzen 9 7950X 16-Core Processor\n"
    )
    (root / "self" / "cgroup").write_text("0::/\n")
    return root


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(cgroup: Path, proc: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("ram_bandwidth", "off")
    return system.probe({}, cgroup_root=cgroup, proc_root=proc, system="Linux", **kwargs)


# -- RAM and cgroups -------------------------------------------------------------------------


def test_no_cgroup_uses_host_memory(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    result = run(tmp_path / "no-cgroup-fs", proc)
    assert result.ram.total == HOST_TOTAL
    assert result.ram.available == HOST_AVAILABLE
    assert result.ram.cgroup_limit is None
    assert result.ram.bandwidth is None
    assert result.problems == ()


def test_cgroup_v2_limit_below_host_ram(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cgroup = write(
        tmp_path / "cg",
        {
            "cgroup.controllers": "cpu memory pids",
            "memory.max": f"{8 * GIB}\n",
            "memory.current": f"{3 * GIB}\n",
            "memory.stat": f"anon {2 * GIB}\nfile {GIB}\ninactive_file {GIB}\nactive_file 0\n",
        },
    )
    ram = run(cgroup, proc).ram
    assert ram.cgroup_limit == 8 * GIB
    assert ram.total == 8 * GIB
    # working set = current - inactive file cache = 2 GiB; 8 - 2 = 6 GiB left
    assert ram.available == 6 * GIB


def test_cgroup_v2_max_means_no_limit(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cgroup = write(
        tmp_path / "cg",
        {"cgroup.controllers": "memory", "memory.max": "max\n", "memory.current": "123\n"},
    )
    ram = run(cgroup, proc).ram
    assert (ram.total, ram.available, ram.cgroup_limit) == (HOST_TOTAL, HOST_AVAILABLE, None)


def test_cgroup_v2_nested_path_lowest_limit_wins(
    fake_psutil: Any, proc: Path, tmp_path: Path
) -> None:
    (proc / "self" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-1.scope\n")
    cgroup = write(
        tmp_path / "cg",
        {
            "cgroup.controllers": "memory",
            "user.slice/memory.max": f"{16 * GIB}",
            "user.slice/memory.current": f"{4 * GIB}",
            "user.slice/user-1000.slice/memory.max": f"{32 * GIB}",
            "user.slice/user-1000.slice/memory.current": f"{4 * GIB}",
            "user.slice/user-1000.slice/session-1.scope/memory.max": "max",
            "user.slice/user-1000.slice/session-1.scope/memory.current": f"{GIB}",
        },
    )
    ram = run(cgroup, proc).ram
    assert ram.cgroup_limit == 16 * GIB
    assert ram.available == 12 * GIB


def test_cgroup_v2_namespace_reads_the_mount_root(
    fake_psutil: Any, proc: Path, tmp_path: Path
) -> None:
    (proc / "self" / "cgroup").write_text("0::/kubepods/pod-1234/abc\n")  # not under the mount
    cgroup = write(
        tmp_path / "cg",
        {"cgroup.controllers": "memory", "memory.max": f"{2 * GIB}", "memory.current": "0"},
    )
    assert run(cgroup, proc).ram.cgroup_limit == 2 * GIB


def test_cgroup_v1_limit(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    (proc / "self" / "cgroup").write_text(
        "12:cpuset:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n"
    )
    cgroup = write(
        tmp_path / "cg",
        {
            "memory/memory.limit_in_bytes": f"{4 * GIB}\n",
            "memory/memory.usage_in_bytes": f"{GIB}\n",
            "memory/memory.stat": f"cache {GIB}\ntotal_inactive_file {GIB // 2}\n",
        },
    )
    ram = run(cgroup, proc).ram
    assert ram.cgroup_limit == 4 * GIB
    assert ram.total == 4 * GIB
    assert ram.available == 4 * GIB - GIB // 2


def test_cgroup_v1_unlimited(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cgroup = write(
        tmp_path / "cg",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
            "memory/memory.usage_in_bytes": f"{GIB}\n",
        },
    )
    assert run(cgroup, proc).ram.cgroup_limit is None


def test_limit_above_host_ram_is_not_a_limit(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cgroup = write(
        tmp_path / "cg",
        {"cgroup.controllers": "", "memory.max": f"{128 * GIB}", "memory.current": "0"},
    )
    ram = run(cgroup, proc).ram
    assert (ram.total, ram.cgroup_limit) == (HOST_TOTAL, None)


def test_available_is_the_smaller_of_host_and_cgroup(
    fake_psutil: Any, proc: Path, tmp_path: Path
) -> None:
    fake_psutil(available=3 * GIB)  # the host itself is short of memory
    cgroup = write(
        tmp_path / "cg",
        {"cgroup.controllers": "", "memory.max": f"{8 * GIB}", "memory.current": f"{GIB}"},
    )
    ram = run(cgroup, proc).ram
    assert (ram.total, ram.available) == (8 * GIB, 3 * GIB)


def test_cgroup_memory_function_directly(proc: Path, tmp_path: Path) -> None:
    cgroup = write(
        tmp_path / "cg",
        {"cgroup.controllers": "", "memory.max": "1000", "memory.current": "1500"},
    )
    found = system.cgroup_memory(cgroup, proc)
    assert found == system.CgroupMemory(version=2, limit=1000, usage=1500)
    assert found is not None and found.available == 0  # never negative


# -- CPU ---------------------------------------------------------------------------------------


def test_cpu_model_and_cores(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cpu = run(tmp_path, proc).cpu
    assert cpu.model == "AMD Ryzen 9 7950X 16-Core Processor"
    assert (cpu.cores_physical, cpu.cores_logical) == (8, 16)


def test_cpu_model_on_arm(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    (proc / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\n")
    assert run(tmp_path, proc).cpu.model == "BCM2835"


def test_cpu_model_fallback_without_cpuinfo(fake_psutil: Any, tmp_path: Path) -> None:
    result = run(tmp_path, tmp_path / "no-proc")
    assert result.cpu.model  # platform.processor() or platform.machine()
    assert result.problems == ()


def test_physical_cores_unknown_uses_logical_with_a_note(
    fake_psutil: Any, proc: Path, tmp_path: Path
) -> None:
    fake_psutil(physical=None, logical=4)
    result = run(tmp_path, proc)
    assert (result.cpu.cores_physical, result.cpu.cores_logical) == (4, 4)
    assert result.notes == ("CPU physical core count unknown: using the logical count (4)",)
    assert result.problems == ()


def test_psutil_missing_falls_back_to_sysconf(
    monkeypatch: pytest.MonkeyPatch, proc: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)
    result = run(tmp_path, proc)
    assert result.ram.total > 0
    assert result.cpu.cores_logical >= 1
    assert result.problems[0].startswith("psutil not importable")


# -- RAM bandwidth -------------------------------------------------------------------------


class Meter:
    def __init__(self, value: float = 50e9) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.value


def test_bandwidth_off_does_not_measure(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    meter = Meter()
    result = run(tmp_path, proc, ram_bandwidth="off", cache_dir=tmp_path / "c", measure=meter)
    assert result.ram.bandwidth is None and meter.calls == 0


def test_bandwidth_cached_mode_never_measures(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    meter = Meter()
    result = run(tmp_path, proc, ram_bandwidth="cached", cache_dir=tmp_path / "c", measure=meter)
    assert result.ram.bandwidth is None and meter.calls == 0


def test_bandwidth_measured_once_then_cached(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    meter = Meter(61.5e9)
    first = run(tmp_path, proc, ram_bandwidth="measure", cache_dir=cache, measure=meter)
    assert first.ram.bandwidth == 61.5e9 and meter.calls == 1
    data = json.loads((cache / system.CACHE_FILE).read_text())
    assert data["schema_version"] == 1
    key = f"AMD Ryzen 9 7950X 16-Core Processor|{HOST_TOTAL}"
    assert data["entries"][key]["bytes_per_second"] == 61.5e9
    again = run(tmp_path, proc, ram_bandwidth="measure", cache_dir=cache, measure=meter)
    cached = run(tmp_path, proc, ram_bandwidth="cached", cache_dir=cache, measure=meter)
    assert again.ram.bandwidth == cached.ram.bandwidth == 61.5e9
    assert meter.calls == 1


def test_bandwidth_cache_is_keyed_by_ram_size(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    meter = Meter()
    run(tmp_path, proc, ram_bandwidth="measure", cache_dir=cache, measure=meter)
    fake_psutil(total=128 * GIB)  # same CPU, more RAM: another machine
    run(tmp_path, proc, ram_bandwidth="measure", cache_dir=cache, measure=meter)
    assert meter.calls == 2
    assert len(json.loads((cache / system.CACHE_FILE).read_text())["entries"]) == 2


def test_corrupt_cache_is_ignored(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / system.CACHE_FILE).write_text("{not json")
    meter = Meter()
    result = run(tmp_path, proc, ram_bandwidth="measure", cache_dir=cache, measure=meter)
    assert result.ram.bandwidth == meter.value and result.problems == ()


def test_unwritable_cache_is_a_problem_but_the_value_is_kept(
    fake_psutil: Any, proc: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    result = run(tmp_path, proc, ram_bandwidth="measure", cache_dir=blocker, measure=Meter())
    assert result.ram.bandwidth == 50e9
    assert len(result.problems) == 1
    assert result.problems[0].startswith("RAM bandwidth cache not writable")


def test_cache_dir_defaults(tmp_path: Path) -> None:
    assert default_cache_dir({"LLMFIT_CACHE_DIR": str(tmp_path / "x")}) == tmp_path / "x"
    xdg = default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
    assert xdg == tmp_path / "pytest-llmfit"
    both = {"LLMFIT_CACHE_DIR": str(tmp_path / "x"), "XDG_CACHE_HOME": str(tmp_path)}
    assert default_cache_dir(both) == tmp_path / "x"
    assert default_cache_dir({}) == Path.home() / ".cache" / "pytest-llmfit"


def test_env_cache_dir_is_used(fake_psutil: Any, proc: Path, tmp_path: Path) -> None:
    env = {"LLMFIT_CACHE_DIR": str(tmp_path / "envcache")}
    system.probe(
        env,
        cgroup_root=tmp_path,
        proc_root=proc,
        system="Linux",
        ram_bandwidth="measure",
        measure=Meter(),
    )
    assert (tmp_path / "envcache" / system.CACHE_FILE).exists()


def test_real_measurement_is_a_positive_rate() -> None:
    rate = system.measure_ram_bandwidth(4 * 2**20, budget_s=0.01, max_copies=3)
    assert rate > 1e8  # 100 MB/s: any machine copies faster
