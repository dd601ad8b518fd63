"""Apple Silicon: the unified-memory GPU that llama.cpp's Metal backend uses.

Only on macOS running arm64 (a Python under Rosetta 2 gets a problem line instead: an
x86_64 llama.cpp has no Metal). One ``Gpu(vendor="apple", unified=True)`` is reported:

- memory_total: what Metal lets one process keep resident, the value llama.cpp logs as
  ``recommendedMaxWorkingSetSize`` and uses as the device's memory. macOS's default is
  2/3 of RAM up to 32 GiB and 3/4 above (seen in llama.cpp logs: 16 GB -> 11453 MB,
  32 GB -> 22906 MB, 64 GB -> 51540 MB, 128 GB -> 103079 MB); a non-zero
  ``sysctl iogpu.wired_limit_mb`` (``debug.iogpu.wired_limit`` before macOS 14, in bytes)
  replaces it, as it does for Metal. Rule of this module, not a Metal call: no PyObjC.
- memory_free: that limit, capped by the RAM available now (the memory is shared).
- name: ``sysctl -n machdep.cpu.brand_string`` ("Apple M2 Max").
- bandwidth: Apple's published peak for the chip, from :data:`CHIP_BANDWIDTH` (binned
  M3 Max and M4 Max, with 14 CPU cores, have a narrower bus); unknown chips get ``None``.
"""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Callable, Mapping

from ...hookspecs import hookimpl
from ..types import Gpu, ProbeResult

__all__ = ["CHIP_BANDWIDTH", "chip_bandwidth", "metal_working_set", "probe", "sysctl"]

_GB = 10**9
_GIB = 2**30

CHIP_BANDWIDTH: dict[str, float] = {
    "Apple M1": 68.25 * _GB,
    "Apple M1 Pro": 200 * _GB,
    "Apple M1 Max": 400 * _GB,
    "Apple M1 Ultra": 800 * _GB,
    "Apple M2": 100 * _GB,
    "Apple M2 Pro": 200 * _GB,
    "Apple M2 Max": 400 * _GB,
    "Apple M2 Ultra": 800 * _GB,
    "Apple M3": 100 * _GB,
    "Apple M3 Pro": 150 * _GB,
    "Apple M3 Max": 400 * _GB,
    "Apple M3 Ultra": 819 * _GB,
    "Apple M4": 120 * _GB,
    "Apple M4 Pro": 273 * _GB,
    "Apple M4 Max": 546 * _GB,
    "Apple M5": 153 * _GB,
}
"""Peak unified-memory bandwidth in bytes/s by ``machdep.cpu.brand_string``."""

_BINNED: dict[tuple[str, int], float] = {
    ("Apple M3 Max", 14): 300 * _GB,
    ("Apple M4 Max", 14): 410 * _GB,
}

Sysctl = Callable[[str], "str | None"]


def sysctl(name: str) -> str | None:
    """``sysctl -n name`` as text, or None when it fails (not macOS, unknown name)."""
    try:
        done = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


@hookimpl
def pytest_llmfit_probe(env: Mapping[str, str]) -> ProbeResult:
    return probe(env)


def probe(
    env: Mapping[str, str],
    *,
    system: str | None = None,
    machine: str | None = None,
    read_sysctl: Sysctl = sysctl,
    ram: tuple[int, int] | None = None,
) -> ProbeResult:
    """Report the Metal GPU on Apple Silicon; empty elsewhere. Never raises.

    ``ram`` is ``(total, available)`` in bytes (default: psutil, then ``hw.memsize``).
    """
    del env  # Metal has no visibility variable
    system = system if system is not None else platform.system()
    machine = machine if machine is not None else platform.machine()
    if system != "Darwin":
        return ProbeResult()
    if machine != "arm64":
        if read_sysctl("sysctl.proc_translated") == "1":
            return ProbeResult(
                problems=(
                    "Python runs under Rosetta 2 (x86_64) on Apple Silicon: llama.cpp built "
                    "for x86_64 cannot use Metal; install an arm64 Python",
                )
            )
        return ProbeResult()  # an Intel Mac: no unified-memory GPU llama.cpp offloads to
    problems: list[str] = []
    total, available = ram if ram is not None else _ram(read_sysctl)
    if not total:
        return ProbeResult(problems=("Apple GPU memory unknown: RAM size unreadable",))
    chip = read_sysctl("machdep.cpu.brand_string") or "Apple Silicon"
    cores = _int(read_sysctl("hw.physicalcpu"))
    limit = metal_working_set(total, wired_limit=_wired_limit(read_sysctl))
    bandwidth = chip_bandwidth(chip, cores)
    if bandwidth is None:
        problems.append(f"{chip}: memory bandwidth unknown (not in the chip table)")
    gpu = Gpu(
        vendor="apple",
        name=chip,
        index=0,
        memory_total=limit,
        memory_free=min(limit, available) if available else limit,
        bandwidth=bandwidth,
        unified=True,
    )
    return ProbeResult(gpus=(gpu,), problems=tuple(problems))


def metal_working_set(ram_total: int, *, wired_limit: int | None = None) -> int:
    """Metal's default ``recommendedMaxWorkingSetSize`` for ``ram_total`` bytes of RAM.

    >>> metal_working_set(16 * 2**30) // 10**6  # 2/3 of RAM up to 32 GiB, in MB
    11453
    >>> metal_working_set(64 * 2**30) // 10**6  # 3/4 above
    51539
    """
    if wired_limit:
        return min(wired_limit, ram_total)
    if ram_total > 32 * _GIB:
        return ram_total * 3 // 4
    return ram_total * 2 // 3


def chip_bandwidth(chip: str, cpu_cores: int | None = None) -> float | None:
    """Peak bandwidth of an Apple chip by name: ``chip_bandwidth("Apple M2 Max") == 400e9``."""
    name = " ".join(chip.split())
    if cpu_cores is not None and (name, cpu_cores) in _BINNED:
        return _BINNED[(name, cpu_cores)]
    return CHIP_BANDWIDTH.get(name)


def _wired_limit(read_sysctl: Sysctl) -> int | None:
    mib = _int(read_sysctl("iogpu.wired_limit_mb"))
    if mib:
        return mib * 2**20
    return _int(read_sysctl("debug.iogpu.wired_limit")) or None


def _ram(read_sysctl: Sysctl) -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except Exception:
        total = _int(read_sysctl("hw.memsize")) or 0
        return total, 0


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
