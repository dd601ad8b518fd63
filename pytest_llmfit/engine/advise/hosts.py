"""Hypothetical hosts as spec strings a user can copy: ``3x h100-sxm, ram=64GB, ...``.

Role: the hardware ways out change the question's host (other cards, more RAM, more VRAM)
and must say so in a form ``--hardware`` / ``--llmfit-hardware`` reads back to the very same
Host. The question's RAM, RAM bandwidth and CPU threads are carried over (they set the
partial-offload speed), so re-planning the spec gives exactly the alternative's plan.
"""

from __future__ import annotations

from ...errors import LlmfitError
from ...hardware.catalog import Catalog
from ...hardware.specs import host_from_spec
from ...hardware.types import Host

GB = 10**9
GIB = 2**30


def size_token(n_bytes: int) -> str:
    """A size the spec grammar reads back exactly: ``64GB``, ``16GiB``, else bytes."""
    for unit, name in ((GB, "GB"), (GIB, "GiB"), (10**6, "MB"), (2**20, "MiB")):
        if n_bytes % unit == 0:
            return f"{n_bytes // unit}{name}"
    return str(n_bytes)


def round_up_gb(n_bytes: int) -> int:
    """``n_bytes`` rounded up to a whole GB (what a spec asks for)."""
    return -(-n_bytes // GB) * GB


def host_options(host: Host, *, ram: int | None = None) -> str:
    """``ram=..., ram_bw=..., cpu=...`` of ``host`` (``ram`` replaces its available RAM)."""
    parts = [f"ram={size_token(ram if ram is not None else host.ram.available)}"]
    if host.ram.bandwidth:
        parts.append(f"ram_bw={size_token(round(host.ram.bandwidth))}/s")
    parts.append(f"cpu={max(host.cpu.cores_logical, 1)}")
    return ", ".join(parts)


def gpu_items(host: Host, catalog: Catalog) -> list[tuple[str, int]] | None:
    """The host's GPUs as (catalog id, count) in CUDA order, or None when one is not in the
    catalog (a detected card the catalog lacks, a MIG slice)."""
    items: list[tuple[str, int]] = []
    for gpu in host.gpus:
        try:
            profile = catalog.find(gpu.name)
        except LlmfitError:
            return None
        if profile.kind != "gpu" or gpu.memory_total != profile.memory or gpu.mig:
            return None
        if items and items[-1][0] == profile.id:
            items[-1] = (profile.id, items[-1][1] + 1)
        else:
            items.append((profile.id, 1))
    return items


def used_option(host: Host) -> str | None:
    """``used=...`` when every GPU has the same memory in use ("" when idle); None when they
    differ, which no spec string says."""
    used = {g.memory_total - g.memory_free for g in host.gpus}
    if len(used) > 1:
        return None
    amount = used.pop() if used else 0
    return f", used={size_token(amount)}" if amount else ""


def cards_spec(items: list[tuple[str, int]]) -> str:
    return ", ".join(f"{n}x {card}" if n != 1 else card for card, n in items) or "cpu-only"


def build(spec: str, catalog: Catalog) -> Host:
    return host_from_spec(spec, catalog=catalog, source="advice")
