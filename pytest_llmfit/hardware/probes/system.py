"""Host RAM and CPU through psutil, with a container's cgroup memory limit applied.

RAM. ``total`` is the host's RAM, or the cgroup limit when that is lower; ``available`` is
``min(psutil available, limit - working set)``, where the working set is the cgroup's usage
less its inactive file cache (``memory.stat``: ``inactive_file`` in v2,
``total_inactive_file`` in v1), the kubelet's rule, since the kernel reclaims that cache
before the OOM killer acts. Limits are read along the process's own cgroup path (from
``/proc/self/cgroup``) up to the root, the lowest one wins: cgroup v2 ``memory.max``
(``"max"`` = none) with ``memory.current``; cgroup v1 ``memory/memory.limit_in_bytes`` with
``memory.usage_in_bytes`` (a limit at or above the host's RAM is not a limit).

CPU. The model from ``/proc/cpuinfo`` ("model name", or "Hardware"/"Processor" on Arm),
``sysctl machdep.cpu.brand_string`` on macOS, else :func:`platform.processor`; physical
and logical core counts from psutil.

RAM bandwidth (optional, about 0.5 s). One thread copies a 128 MiB buffer into another
(``memoryview`` slice assignment, a memcpy) for about 0.2 s after a warm-up copy, and the
best copy counts 2 x 128 MiB per copy: the bytes read plus the bytes written, as STREAM's
"Copy" counts them (the write-allocate reads a CPU may add are not counted). One thread
cannot saturate a many-channel server, so this is a lower bound there; on desktops and
laptops it comes close to what llama.cpp's decode reaches. The result is cached in
``ram-bandwidth.json`` under the cache directory, keyed by CPU model and host RAM size.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...cachedir import default_cache_dir
from ...hookspecs import hookimpl
from ..types import Cpu, ProbeResult, Ram, RamBandwidthMode

__all__ = [
    "CACHE_FILE",
    "CgroupMemory",
    "SystemProbe",
    "cgroup_memory",
    "measure_ram_bandwidth",
    "probe",
]

CACHE_FILE = "ram-bandwidth.json"
_CACHE_SCHEMA = 1
_MIB = 2**20
_V1_UNLIMITED = 2**62  # v1 reports PAGE_COUNTER_MAX (9223372036854771712) for "no limit"


@dataclass(frozen=True)
class CgroupMemory:
    """The binding cgroup memory limit and that cgroup's usage, in bytes."""

    version: int
    limit: int
    usage: int
    inactive_file: int = 0

    @property
    def available(self) -> int:
        return max(0, self.limit - max(0, self.usage - self.inactive_file))


class SystemProbe:
    """The built-in ``system`` probe as a configured plugin object."""

    def __init__(
        self,
        *,
        ram_bandwidth: RamBandwidthMode = "cached",
        cache_dir: str | os.PathLike[str] | None = None,
        cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
        proc_root: str | os.PathLike[str] = "/proc",
    ) -> None:
        self.ram_bandwidth: RamBandwidthMode = ram_bandwidth
        self.cache_dir = cache_dir
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root

    @hookimpl
    def pytest_llmfit_probe(self, env: Mapping[str, str]) -> ProbeResult:
        return probe(
            env,
            ram_bandwidth=self.ram_bandwidth,
            cache_dir=self.cache_dir,
            cgroup_root=self.cgroup_root,
            proc_root=self.proc_root,
        )


def probe(
    env: Mapping[str, str],
    *,
    ram_bandwidth: RamBandwidthMode = "cached",
    cache_dir: str | os.PathLike[str] | None = None,
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc_root: str | os.PathLike[str] = "/proc",
    system: str | None = None,
    measure: Callable[[], float] | None = None,
) -> ProbeResult:
    """Read RAM and CPU; never raises. ``system`` defaults to :func:`platform.system`."""
    problems: list[str] = []
    psutil: Any = None
    try:
        import psutil as psutil_module

        psutil = psutil_module
    except ImportError as exc:
        problems.append(f"psutil not importable ({exc}): RAM and CPU read from os.sysconf")
    host_total, host_available = _host_memory(psutil, problems)
    cgroup = None
    try:
        cgroup = cgroup_memory(cgroup_root, proc_root, host_total=host_total)
    except Exception as exc:
        problems.append(f"cgroup memory limit unreadable: {exc}")
    total, available, limit = host_total, host_available, None
    if cgroup is not None:
        limit = cgroup.limit
        total = min(host_total, cgroup.limit) if host_total else cgroup.limit
        available = min(host_available, cgroup.available) if host_total else cgroup.available

    notes: list[str] = []
    cpu = _cpu(psutil, Path(proc_root), system or platform.system(), notes)

    bandwidth = None
    if ram_bandwidth != "off" and host_total:
        bandwidth = _ram_bandwidth(
            mode=ram_bandwidth,
            cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(env),
            key=f"{cpu.model}|{host_total}",
            size=min(128 * _MIB, max(16 * _MIB, available // 8)),
            measure=measure,
            problems=problems,
        )
    ram = Ram(total=total, available=available, bandwidth=bandwidth, cgroup_limit=limit)
    return ProbeResult(ram=ram, cpu=cpu, problems=tuple(problems), notes=tuple(notes))


def _host_memory(psutil: Any, problems: list[str]) -> tuple[int, int]:
    if psutil is not None:
        try:
            vm = psutil.virtual_memory()
            return int(vm.total), int(vm.available)
        except Exception as exc:
            problems.append(f"psutil.virtual_memory failed: {exc}")
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError) as exc:
        problems.append(f"RAM size unknown: {exc}")
        return 0, 0


# -- cgroups --------------------------------------------------------------------------------


def cgroup_memory(
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
    proc_root: str | os.PathLike[str] = "/proc",
    *,
    host_total: int = 0,
) -> CgroupMemory | None:
    """The lowest cgroup memory limit on this process's cgroup path, or None if unlimited."""
    root = Path(cgroup_root)
    own = _own_cgroup_paths(Path(proc_root) / "self" / "cgroup")
    if (root / "cgroup.controllers").exists() or (root / "memory.max").exists():
        return _lowest(root, own.get("", "/"), 2, host_total)
    v1_root = root / "memory"
    if v1_root.is_dir():
        return _lowest(v1_root, own.get("memory", "/"), 1, host_total)
    return None


def _own_cgroup_paths(path: Path) -> dict[str, str]:
    """``/proc/self/cgroup`` as {controller: path}; the v2 entry under ""."""
    paths: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(","):
            paths.setdefault(controller, parts[2])
    return paths


def _lowest(root: Path, own: str, version: int, host_total: int) -> CgroupMemory | None:
    start = root / own.strip("/") if own.strip("/") else root
    if not start.is_dir():
        start = root  # in a cgroup namespace the container's own cgroup is the mount root
    names = (
        ("memory.max", "memory.current", "inactive_file")
        if version == 2
        else ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
    )
    best: CgroupMemory | None = None
    directory = start
    while True:
        limit = _read_limit(directory / names[0])
        if limit is not None and limit < _V1_UNLIMITED and not (host_total and limit >= host_total):
            usage = _read_int(directory / names[1]) or 0
            inactive = _read_stat(directory / "memory.stat", names[2])
            found = CgroupMemory(version=version, limit=limit, usage=usage, inactive_file=inactive)
            if best is None or found.available < best.available:
                best = found
        if directory == root or root not in directory.parents:
            break
        directory = directory.parent
    return best


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max" or not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _read_stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value.strip())
    except (OSError, ValueError):
        pass
    return 0


# -- CPU ------------------------------------------------------------------------------------


def _cpu(psutil: Any, proc_root: Path, system: str, notes: list[str]) -> Cpu:
    model = _cpu_model(proc_root, system)
    logical = physical = None
    if psutil is not None:
        with contextlib.suppress(Exception):
            logical = psutil.cpu_count(logical=True)
            physical = psutil.cpu_count(logical=False)
    logical = logical or os.cpu_count() or 1
    if not physical:
        physical = logical
        notes.append(f"CPU physical core count unknown: using the logical count ({logical})")
    return Cpu(model=model, cores_physical=int(physical), cores_logical=int(logical))


def _cpu_model(proc_root: Path, system: str) -> str:
    try:
        fields: dict[str, str] = {}
        for line in (proc_root / "cpuinfo").read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() not in fields and value.strip():
                fields[key.strip()] = value.strip()
        for key in ("model name", "Hardware", "Processor", "cpu model", "cpu"):
            if key in fields:
                return " ".join(fields[key].split())
    except OSError:
        pass
    if system == "Darwin":
        from .apple import sysctl

        brand = sysctl("machdep.cpu.brand_string")
        if brand:
            return brand
    return platform.processor() or platform.machine() or "unknown"


# -- RAM bandwidth --------------------------------------------------------------------------


def measure_ram_bandwidth(
    size: int = 128 * _MIB, *, budget_s: float = 0.2, max_copies: int = 12
) -> float:
    """Best single-thread copy rate in bytes/s, counting bytes read plus bytes written."""
    source = bytearray(b"\xa5") * size  # written, so every page is real (not the zero page)
    target = bytearray(source)  # allocating by copying faults its pages in: the warm-up
    src, dst = memoryview(source), memoryview(target)
    best = float("inf")
    started = time.perf_counter()
    for _ in range(max_copies):
        t0 = time.perf_counter()
        dst[:] = src
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - started >= budget_s:
            break
    return 2 * size / best


def _ram_bandwidth(
    *,
    mode: RamBandwidthMode,
    cache_dir: Path,
    key: str,
    size: int,
    measure: Callable[[], float] | None,
    problems: list[str],
) -> float | None:
    path = cache_dir / CACHE_FILE
    entries = _load_cache(path)
    cached = entries.get(key)
    if isinstance(cached, dict) and isinstance(cached.get("bytes_per_second"), (int, float)):
        return float(cached["bytes_per_second"])
    if mode != "measure":
        return None
    try:
        value = measure() if measure is not None else measure_ram_bandwidth(size)
    except (MemoryError, OSError) as exc:
        problems.append(f"RAM bandwidth not measured: {exc or type(exc).__name__}")
        return None
    entries[key] = {
        "bytes_per_second": value,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": f"single-thread memcpy of {size // _MIB} MiB, bytes read + written",
    }
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        scratch.write_text(
            json.dumps({"schema_version": _CACHE_SCHEMA, "entries": entries}, indent=1)
        )
        os.replace(scratch, path)
    except OSError as exc:
        problems.append(f"RAM bandwidth cache not writable ({path}): {exc}")
    return value


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema_version") != _CACHE_SCHEMA:
        return {}
    entries = data.get("entries")
    return dict(entries) if isinstance(entries, dict) else {}
