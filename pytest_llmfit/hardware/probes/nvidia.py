"""NVIDIA GPUs through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

Only NVML is used: no CUDA context is created and neither torch nor cupy is imported, so
probing costs a few milliseconds and no GPU memory. What is read, per device:

- name, UUID, compute capability, MIG mode and MIG instances;
- memory through ``nvmlDeviceGetMemoryInfo_v2`` (its ``free`` leaves out the memory the
  driver reserves), falling back to the v1 call on drivers without it;
- peak bandwidth = bus width / 8 x max memory clock x 2 (double data rate):
  RTX 4090: 384 bit / 8 x 10501 MHz x 2 = 1008 GB/s; A100 40GB 1555 GB/s; T4 320 GB/s.
  A MIG instance gets its parent's bandwidth scaled by its share of the parent's memory
  (MIG partitions memory controllers with memory slices), an approximation.

CUDA numbering. NVML enumerates in PCI bus order; CUDA numbers devices per
``CUDA_DEVICE_ORDER``: ``PCI_BUS_ID`` is NVML's order (exact). The default,
``FASTEST_FIRST``, is documented only as "fastest to slowest by a simple heuristic"; it is
approximated here as compute capability, highest first, ties in PCI bus order (as
onnxruntime describes CUDA's ordering). That is exact for identical GPUs; with mixed GPUs
and no ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` a note says the order is approximate.
``CUDA_VISIBLE_DEVICES`` then selects, in its own order: indices (into that CUDA order),
``GPU-<uuid>`` (unique prefixes accepted), ``MIG-<uuid>`` and the older
``MIG-GPU-<uuid>/<gpu instance>/<compute instance>``. The first entry that matches nothing
ends the list, as CUDA does; a repeated device empties it; mixing indices and UUIDs ends it
at the switch; the empty string means no GPUs. A CUDA process enumerates at most one MIG
device (NVIDIA's MIG user guide): the first MIG device selected, or else the first MIG
instance of the first MIG-enabled GPU, hides the rest (nvitop reads it the same way).

Failures never raise: a missing library or driver, an ``nvmlInit`` error (for example a
driver/library version mismatch), a device that fell off the bus (skipped, the others
kept) or a query the device does not support (partial data) each become a one-line problem.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...hookspecs import hookimpl
from ..types import Gpu, ProbeResult

__all__ = ["DRIVER_HINT_PATHS", "NvidiaDevice", "NvidiaMig", "cuda_visible", "probe"]

# Paths that exist when an NVIDIA kernel driver is loaded (Linux). They tell a machine
# with an NVIDIA GPU whose libnvidia-ml.so.1 is not reachable (a container started without
# the NVIDIA runtime: worth a warning) from a machine with no NVIDIA GPU at all (a note).
DRIVER_HINT_PATHS: tuple[str, ...] = ("/proc/driver/nvidia/version", "/dev/nvidiactl")

# NVML return codes, as in nvml.h (read from pynvml when it has them).
_NOT_SUPPORTED = 3
_DRIVER_NOT_LOADED = 9
_LIBRARY_NOT_FOUND = 12
_FUNCTION_NOT_FOUND = 13
_ARGUMENT_VERSION_MISMATCH = 25
_CLOCK_MEM = 2
_MIG_ENABLE = 1


@dataclass
class NvidiaMig:
    """One MIG instance as NVML reports it."""

    mig_index: int
    uuid: str
    name: str
    memory_total: int | None
    memory_free: int | None
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None


@dataclass
class NvidiaDevice:
    """One physical GPU as NVML reports it (NVML index = PCI bus order)."""

    nvml_index: int
    name: str
    uuid: str
    memory_total: int | None = None
    memory_free: int | None = None
    bandwidth: float | None = None
    compute_capability: tuple[int, int] | None = None
    mig_enabled: bool = False
    migs: list[NvidiaMig] = field(default_factory=list)


@hookimpl
def pytest_llmfit_probe(env: Mapping[str, str]) -> ProbeResult:
    return probe(env)


def probe(
    env: Mapping[str, str], *, driver_hint_paths: Sequence[str] = DRIVER_HINT_PATHS
) -> ProbeResult:
    """Read NVIDIA GPUs through NVML; never raises."""
    try:
        import pynvml
    except ImportError as exc:
        return ProbeResult(
            problems=(f"NVML not available: the nvidia-ml-py package is not importable ({exc})",)
        )
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        return _init_failure(pynvml, exc, driver_hint_paths)
    try:
        devices, problems = _read_devices(pynvml)
    except Exception as exc:  # a pynvml or driver surprise: report, never raise
        devices, problems = [], [f"NVML query failed: {_describe(exc)}"]
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    gpus, visibility_problems, notes = cuda_visible(devices, env)
    return ProbeResult(
        gpus=tuple(gpus), problems=(*problems, *visibility_problems), notes=tuple(notes)
    )


def _init_failure(pynvml: Any, exc: BaseException, driver_hint_paths: Sequence[str]) -> ProbeResult:
    code = getattr(exc, "value", None)
    if code == _const(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", _LIBRARY_NOT_FOUND):
        library = "nvml.dll" if sys.platform.startswith("win") else "libnvidia-ml.so.1"
        driver_present = [p for p in driver_hint_paths if Path(p).exists()]
        if driver_present:
            return ProbeResult(
                problems=(
                    f"NVML not available: {library} not found, although an NVIDIA driver is "
                    f"loaded ({driver_present[0]} exists); in a container, start it with the "
                    "NVIDIA runtime (docker --gpus all)",
                )
            )
        return ProbeResult(notes=(f"no NVIDIA driver: {library} not found",))
    if code == _const(pynvml, "NVML_ERROR_DRIVER_NOT_LOADED", _DRIVER_NOT_LOADED):
        return ProbeResult(problems=("NVML not available: the NVIDIA kernel driver is not loaded",))
    return ProbeResult(problems=(f"NVML initialisation failed: {_describe(exc)}",))


def _read_devices(pynvml: Any) -> tuple[list[NvidiaDevice], list[str]]:
    problems: list[str] = []
    count = int(pynvml.nvmlDeviceGetCount())
    devices: list[NvidiaDevice] = []
    for index in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(pynvml.nvmlDeviceGetName(handle))
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        except Exception as exc:
            problems.append(f"NVIDIA GPU {index} skipped: {_describe(exc)}")
            continue
        device = NvidiaDevice(nvml_index=index, name=name, uuid=uuid)
        label = f"NVIDIA GPU {index} ({name})"
        memory, error = _memory(pynvml, handle)
        if memory is None:
            problems.append(f"{label}: memory size unknown ({error}); counted as 0 bytes")
        else:
            device.memory_total, device.memory_free = memory
        try:
            bus_bits = int(pynvml.nvmlDeviceGetMemoryBusWidth(handle))
            clock_mhz = int(
                pynvml.nvmlDeviceGetMaxClockInfo(
                    handle, _const(pynvml, "NVML_CLOCK_MEM", _CLOCK_MEM)
                )
            )
            device.bandwidth = bandwidth_from_bus(bus_bits, clock_mhz)
        except Exception as exc:
            problems.append(f"{label}: memory bandwidth unknown ({_describe(exc)})")
        try:
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            device.compute_capability = (int(major), int(minor))
        except Exception as exc:
            problems.append(f"{label}: compute capability unknown ({_describe(exc)})")
        device.mig_enabled = _mig_enabled(pynvml, handle)
        if device.mig_enabled:
            device.migs = _read_migs(pynvml, handle, device, problems)
        devices.append(device)
    return devices, problems


def bandwidth_from_bus(bus_width_bits: int, max_memory_clock_mhz: int) -> float | None:
    """Peak bytes/s: ``bandwidth_from_bus(384, 10501) == 1_008_096_000_000.0`` (RTX 4090)."""
    if bus_width_bits <= 0 or max_memory_clock_mhz <= 0:
        return None
    return bus_width_bits / 8 * max_memory_clock_mhz * 1e6 * 2


def _memory(pynvml: Any, handle: Any) -> tuple[tuple[int, int] | None, str]:
    """(total, free) from the v2 call, else v1; or None and the reason."""
    version = getattr(pynvml, "nvmlMemory_v2", None)
    if version is not None:
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(handle, version=version)
            return (int(info.total), int(info.free)), ""
        except Exception:
            pass  # v2 not supported by this driver or binding: try v1
    try:
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return (int(info.total), int(info.free)), ""
    except Exception as exc:
        return None, _describe(exc)


def _mig_enabled(pynvml: Any, handle: Any) -> bool:
    try:
        current, _pending = pynvml.nvmlDeviceGetMigMode(handle)
    except Exception:
        return False  # not MIG-capable (most GPUs answer "Not Supported")
    return bool(current == _const(pynvml, "NVML_DEVICE_MIG_ENABLE", _MIG_ENABLE))


def _read_migs(
    pynvml: Any, handle: Any, parent: NvidiaDevice, problems: list[str]
) -> list[NvidiaMig]:
    migs: list[NvidiaMig] = []
    try:
        slots = int(pynvml.nvmlDeviceGetMaxMigDeviceCount(handle))
    except Exception as exc:
        problems.append(
            f"NVIDIA GPU {parent.nvml_index}: MIG devices unreadable ({_describe(exc)})"
        )
        return migs
    for slot in range(slots):
        try:
            mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except Exception:
            continue  # an empty slot answers "Not Found"
        try:
            uuid = _text(pynvml.nvmlDeviceGetUUID(mig))
        except Exception as exc:
            problems.append(
                f"NVIDIA GPU {parent.nvml_index} MIG device {slot} skipped: {_describe(exc)}"
            )
            continue
        try:
            name = _text(pynvml.nvmlDeviceGetName(mig))
        except Exception:
            name = f"{parent.name} MIG"
        memory, error = _memory(pynvml, mig)
        if memory is None:
            problems.append(
                f"NVIDIA GPU {parent.nvml_index} MIG device {slot} ({uuid}): memory size "
                f"unknown ({error}); counted as 0 bytes"
            )
        gi = _optional_int(pynvml, "nvmlDeviceGetGpuInstanceId", mig)
        ci = _optional_int(pynvml, "nvmlDeviceGetComputeInstanceId", mig)
        migs.append(
            NvidiaMig(
                mig_index=slot,
                uuid=uuid,
                name=name,
                memory_total=memory[0] if memory else None,
                memory_free=memory[1] if memory else None,
                gpu_instance_id=gi,
                compute_instance_id=ci,
            )
        )
    return migs


# -- CUDA numbering -------------------------------------------------------------------------

_Entry = tuple[NvidiaDevice, NvidiaMig | None]


def cuda_visible(
    devices: Sequence[NvidiaDevice], env: Mapping[str, str]
) -> tuple[list[Gpu], list[str], list[str]]:
    """The GPUs a CUDA program started with ``env`` sees, in CUDA order.

    Returns ``(gpus, problems, notes)``; ``Gpu.cuda_index`` is the CUDA ordinal and
    ``Gpu.index`` the NVML index (of the parent, for a MIG device).
    """
    problems: list[str] = []
    notes: list[str] = []
    order_name = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST").strip().upper()
    ordered = list(devices)
    if order_name != "PCI_BUS_ID":
        # Stable sort: ties stay in PCI bus (NVML) order.
        ordered.sort(key=lambda d: _cc_key(d.compute_capability), reverse=True)
        if len({(d.name, d.compute_capability) for d in devices}) > 1:
            notes.append(
                "CUDA_DEVICE_ORDER is FASTEST_FIRST and the GPUs differ: CUDA numbering "
                "approximated (compute capability first); set CUDA_DEVICE_ORDER=PCI_BUS_ID "
                "for an exact mapping"
            )

    raw = env.get("CUDA_VISIBLE_DEVICES")
    selected: list[_Entry]
    if raw is None:
        selected = [(d, None) for d in ordered]
    else:
        selected = _parse_visible(raw, ordered, problems)

    chosen_migs = [entry for entry in selected if entry[1] is not None]
    visible: list[_Entry]
    if chosen_migs:
        visible = chosen_migs[:1]
        hidden = len(selected) - 1
        first_mig = chosen_migs[0][1]
        if hidden and first_mig is not None:
            problems.append(
                f"CUDA_VISIBLE_DEVICES={raw!r} names a MIG device: a CUDA process sees only "
                f"one MIG device ({first_mig.uuid}), {hidden} other device(s) hidden"
            )
    else:
        visible = []
        for device, _ in selected:
            if not device.mig_enabled:
                visible.append((device, None))
                continue
            if not device.migs:
                notes.append(
                    f"NVIDIA GPU {device.nvml_index} ({device.name}) has MIG enabled but no "
                    "MIG instances: CUDA cannot use it"
                )
                continue
            visible = [(device, device.migs[0])]
            hidden = len(selected) - 1 + len(device.migs) - 1
            if hidden:
                notes.append(
                    f"NVIDIA GPU {device.nvml_index} ({device.name}) is in MIG mode: a CUDA "
                    f"process sees only one MIG device ({device.migs[0].uuid}), {hidden} "
                    "other device(s) hidden; pick one with CUDA_VISIBLE_DEVICES=MIG-<uuid>"
                )
            break
    return [_to_gpu(entry, cuda_index) for cuda_index, entry in enumerate(visible)], problems, notes


def _parse_visible(raw: str, ordered: Sequence[NvidiaDevice], problems: list[str]) -> list[_Entry]:
    if not raw.strip():
        return []
    selected: list[_Entry] = []
    seen: set[str] = set()
    kind: str | None = None
    for token in (part.strip() for part in raw.split(",")):
        entry, token_kind = _resolve(token, ordered)
        if entry is not None and kind is not None and token_kind != kind:
            entry = None
            reason = "mixes indices and UUIDs"
        else:
            reason = "matches no NVIDIA device"
        if entry is None:
            problems.append(
                f"CUDA_VISIBLE_DEVICES={raw!r}: entry {token!r} {reason}; CUDA stops the "
                f"list there ({len(selected)} device(s) visible)"
            )
            break
        key = entry[1].uuid if entry[1] is not None else entry[0].uuid
        if key in seen:
            problems.append(
                f"CUDA_VISIBLE_DEVICES={raw!r} names {token!r} twice: CUDA sees no device"
            )
            return []
        seen.add(key)
        kind = token_kind
        selected.append(entry)
    return selected


def _resolve(token: str, ordered: Sequence[NvidiaDevice]) -> tuple[_Entry | None, str]:
    """One CUDA_VISIBLE_DEVICES entry -> (device, MIG or None), and "index" or "uuid"."""
    digits = _leading_int(token)
    if digits is not None:
        if 0 <= digits < len(ordered):
            return (ordered[digits], None), "index"
        return None, "index"
    lowered = token.lower()
    if lowered.startswith("mig-gpu-"):  # MIG-GPU-<uuid>/<gi>/<ci> (drivers before R470)
        parts = token[len("MIG-") :].split("/")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return None, "uuid"
        parents = _prefix_matches(parts[0], ((d, d.uuid) for d in ordered))
        if len(parents) != 1:
            return None, "uuid"
        for mig in parents[0].migs:
            if (mig.gpu_instance_id, mig.compute_instance_id) == (int(parts[1]), int(parts[2])):
                return (parents[0], mig), "uuid"
        return None, "uuid"
    if lowered.startswith("mig-"):
        candidates = [((d, m), m.uuid) for d in ordered for m in d.migs]
        found = _prefix_matches(token, candidates)
        return (found[0] if len(found) == 1 else None), "uuid"
    if lowered.startswith("gpu-"):
        found_devices = _prefix_matches(token, ((d, d.uuid) for d in ordered))
        if len(found_devices) == 1:
            return (found_devices[0], None), "uuid"
    return None, "uuid"


def _prefix_matches(prefix: str, candidates: Iterable[tuple[Any, str]]) -> list[Any]:
    wanted = prefix.lower()
    return [item for item, uuid in candidates if uuid.lower().startswith(wanted)]


def _leading_int(token: str) -> int | None:
    """CUDA reads an index like strtol: leading digits (a sign allowed), the rest ignored."""
    sign = 1
    text = token
    if text[:1] in {"+", "-"}:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    digits = ""
    for char in text:
        if not char.isdigit():
            break
        digits += char
    if not digits:
        return None
    return sign * int(digits)


def _to_gpu(entry: _Entry, cuda_index: int) -> Gpu:
    device, mig = entry
    if mig is None:
        return Gpu(
            vendor="nvidia",
            name=device.name,
            index=device.nvml_index,
            memory_total=device.memory_total or 0,
            memory_free=device.memory_free or 0,
            bandwidth=device.bandwidth,
            cuda_index=cuda_index,
            uuid=device.uuid,
            compute_capability=device.compute_capability,
        )
    bandwidth = None
    if device.bandwidth and device.memory_total and mig.memory_total:
        bandwidth = device.bandwidth * min(1.0, mig.memory_total / device.memory_total)
    return Gpu(
        vendor="nvidia",
        name=mig.name,
        index=device.nvml_index,
        memory_total=mig.memory_total or 0,
        memory_free=mig.memory_free or 0,
        bandwidth=bandwidth,
        cuda_index=cuda_index,
        uuid=mig.uuid,
        compute_capability=device.compute_capability,
        mig=True,
    )


# -- small helpers --------------------------------------------------------------------------


def _cc_key(cc: tuple[int, int] | None) -> tuple[int, int]:
    return cc if cc is not None else (-1, -1)


def _const(pynvml: Any, name: str, default: int) -> int:
    value = getattr(pynvml, name, default)
    return value if isinstance(value, int) else default


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _optional_int(pynvml: Any, function: str, handle: Any) -> int | None:
    try:
        return int(getattr(pynvml, function)(handle))
    except Exception:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__
