"""The Apple Silicon probe with injected platform, sysctl answers and RAM."""

from __future__ import annotations

import pytest

from pytest_llmfit.hardware.probes import ProbeResult, apple

GIB = 2**30
GB = 10**9


def sysctls(**values: str) -> apple.Sysctl:
    table = {name.replace("__", "."): value for name, value in values.items()}
    return table.get


def mac(
    brand: str = "Apple M2 Max",
    cores: str = "12",
    ram: tuple[int, int] = (64 * GIB, 40 * GIB),
    **extra: str,
) -> ProbeResult:
    read = sysctls(machdep__cpu__brand_string=brand, hw__physicalcpu=cores, **extra)
    return apple.probe({}, system="Darwin", machine="arm64", read_sysctl=read, ram=ram)


def test_not_macos_reports_nothing() -> None:
    assert apple.probe({}, system="Linux", machine="aarch64") == ProbeResult()


def test_intel_mac_reports_nothing() -> None:
    result = apple.probe({}, system="Darwin", machine="x86_64", read_sysctl=sysctls())
    assert result == ProbeResult()


def test_rosetta_is_a_problem() -> None:
    read = sysctls(sysctl__proc_translated="1")
    result = apple.probe({}, system="Darwin", machine="x86_64", read_sysctl=read)
    assert result.gpus == ()
    assert "Rosetta 2" in result.problems[0]


def test_unified_gpu_with_metal_working_set() -> None:
    result = mac()
    (gpu,) = result.gpus
    assert (gpu.vendor, gpu.name, gpu.index, gpu.unified) == ("apple", "Apple M2 Max", 0, True)
    assert gpu.memory_total == 48 * GIB  # 3/4 of 64 GiB
    assert gpu.memory_free == 40 * GIB  # capped by RAM available now
    assert gpu.bandwidth == 400 * GB
    assert result.problems == ()


@pytest.mark.parametrize(
    ("ram_gib", "working_set_mb"),
    [(8, 5726), (16, 11453), (32, 22906), (64, 51539), (128, 103079), (192, 154618)],
)
def test_default_working_set_rule(ram_gib: int, working_set_mb: int) -> None:
    assert apple.metal_working_set(ram_gib * GIB) // 10**6 == working_set_mb


def test_wired_limit_sysctl_overrides_the_default() -> None:
    (gpu,) = mac(ram=(64 * GIB, 60 * GIB), iogpu__wired_limit_mb="57344").gpus
    assert gpu.memory_total == 56 * GIB


def test_wired_limit_zero_means_default() -> None:
    (gpu,) = mac(iogpu__wired_limit_mb="0").gpus
    assert gpu.memory_total == 48 * GIB


@pytest.mark.parametrize(
    ("chip", "cores", "gb_per_s"),
    [
        ("Apple M1", 8, 68.25),
        ("Apple M1 Ultra", 20, 800),
        ("Apple M3 Max", 16, 400),
        ("Apple M3 Max", 14, 300),
        ("Apple M4 Pro", 14, 273),
        ("Apple M4 Max", 16, 546),
        ("Apple M4 Max", 14, 410),
    ],
)
def test_chip_bandwidth_table(chip: str, cores: int, gb_per_s: float) -> None:
    assert apple.chip_bandwidth(chip, cores) == gb_per_s * GB


def test_unknown_chip_has_no_bandwidth_and_says_so() -> None:
    result = mac(brand="Apple M9 Hyper")
    assert result.gpus[0].bandwidth is None
    assert result.problems == ("Apple M9 Hyper: memory bandwidth unknown (not in the chip table)",)


def test_ram_unreadable_is_a_problem() -> None:
    result = mac(ram=(0, 0))
    assert result.gpus == ()
    assert result.problems == ("Apple GPU memory unknown: RAM size unreadable",)


def test_sysctl_helper_never_raises() -> None:
    value = apple.sysctl("no.such.sysctl.name")
    assert value is None or isinstance(value, str)
