"""AMD GPUs through Linux sysfs (the amdgpu driver), without ROCm libraries.

For each ``/sys/class/drm/card<N>/device`` whose ``vendor`` is ``0x1002``: VRAM from
``mem_info_vram_total`` and ``mem_info_vram_used``, the name from ``product_name`` when the
driver provides it, else the PCI ``device`` id (a few common ids are named). Cards are
ordered by PCI address (the order ROCm enumerates in on ordinary machines) and numbered
from 0; ``ROCR_VISIBLE_DEVICES`` then ``HIP_VISIBLE_DEVICES`` (indices into what the
former left) select and reorder them, the first invalid entry ending the list, an empty
value hiding all. ``Gpu.index`` is the HIP ordinal. Bandwidth is not in sysfs: ``None``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ...hookspecs import hookimpl
from ..types import Gpu, ProbeResult

__all__ = ["DEVICE_NAMES", "probe"]

AMD_VENDOR = "0x1002"

DEVICE_NAMES: dict[str, str] = {
    "0x744c": "AMD Radeon RX 7900 XTX/XT",
    "0x7448": "AMD Radeon Pro W7900",
    "0x7480": "AMD Radeon RX 7600",
    "0x73bf": "AMD Radeon RX 6800/6900 XT",
    "0x73df": "AMD Radeon RX 6700 XT",
    "0x740c": "AMD Instinct MI250X/MI250",
    "0x740f": "AMD Instinct MI210",
    "0x74a1": "AMD Instinct MI300X",
}
"""PCI device ids to names, used when ``product_name`` is absent."""

_CARD = re.compile(r"^card(\d+)$")


@hookimpl
def pytest_llmfit_probe(env: Mapping[str, str]) -> ProbeResult:
    return probe(env)


def probe(env: Mapping[str, str], *, sysfs_root: str | os.PathLike[str] = "/sys") -> ProbeResult:
    """Read AMD GPUs from ``<sysfs_root>/class/drm``; never raises."""
    drm = Path(sysfs_root) / "class" / "drm"
    problems: list[str] = []
    found: list[tuple[str, Gpu]] = []
    try:
        cards = sorted(
            (p for p in drm.iterdir() if _CARD.match(p.name)),
            key=lambda p: int(p.name[4:]),
        )
    except OSError:
        return ProbeResult()  # no DRM (not Linux, or no GPU driver)
    for card in cards:
        device = card / "device"
        if _read(device / "vendor") != AMD_VENDOR:
            continue
        pci = _pci_address(device) or card.name
        device_id = _read(device / "device") or "?"
        name = _read(device / "product_name") or DEVICE_NAMES.get(device_id, f"AMD GPU {device_id}")
        total = _read_int(device / "mem_info_vram_total")
        used = _read_int(device / "mem_info_vram_used")
        if total is None:
            problems.append(f"AMD GPU {card.name} ({name}): VRAM size unreadable; skipped")
            continue
        free = total - used if used is not None else total
        if used is None:
            problems.append(f"AMD GPU {card.name} ({name}): VRAM use unreadable; assumed free")
        found.append(
            (
                pci,
                Gpu(
                    vendor="amd",
                    name=name,
                    index=0,
                    memory_total=total,
                    memory_free=max(0, free),
                    uuid=_uuid(device),
                ),
            )
        )
    found.sort(key=lambda item: item[0])
    gpus = [gpu for _, gpu in found]
    for variable in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        if variable in env:
            gpus = _select(gpus, env[variable], variable, problems)
    numbered = tuple(replace(gpu, index=ordinal) for ordinal, gpu in enumerate(gpus))
    return ProbeResult(gpus=numbered, problems=tuple(problems))


def _select(gpus: Sequence[Gpu], raw: str, variable: str, problems: list[str]) -> list[Gpu]:
    if not raw.strip():
        return []
    chosen: list[Gpu] = []
    for token in (part.strip() for part in raw.split(",")):
        gpu = _match(gpus, token)
        reason = "matches no AMD GPU" if gpu is None else "repeats a device"
        if gpu is None or any(g is gpu for g in chosen):
            problems.append(
                f"{variable}={raw!r}: entry {token!r} {reason}; the list stops there "
                f"({len(chosen)} device(s) visible)"
            )
            break
        chosen.append(gpu)
    return chosen


def _match(gpus: Sequence[Gpu], token: str) -> Gpu | None:
    if token.isdigit():
        index = int(token)
        return gpus[index] if index < len(gpus) else None
    if token.upper().startswith("GPU-"):
        wanted = token[4:].lower()
        matches = [g for g in gpus if g.uuid and g.uuid[4:].lower().startswith(wanted)]
        return matches[0] if len(matches) == 1 else None
    return None


def _pci_address(device: Path) -> str | None:
    try:
        return device.resolve().name if device.is_symlink() else None
    except OSError:
        return None


def _uuid(device: Path) -> str | None:
    """ROCm's ``GPU-<unique_id>`` form, from the ``unique_id`` file when present."""
    unique = _read(device / "unique_id")
    return f"GPU-{unique}" if unique else None


def _read(path: Path) -> str | None:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
