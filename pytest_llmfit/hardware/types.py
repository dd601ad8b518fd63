"""What a machine has, as frozen value objects: GPUs, CPU, RAM, and the Host that holds them.

These objects are produced by the probes (a real machine) or by the profiles (a simulated
one) and consumed by the planner. Their ``to_dict``/``from_dict`` forms are what crosses
to pytest-xdist workers and into JSON reports, so they hold only plain data.
All sizes are bytes; bandwidths are bytes per second; ``None`` means "not known".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ..units import format_bandwidth, format_size


@dataclass(frozen=True)
class Gpu:
    """One accelerator llama.cpp can place layers on."""

    vendor: str  # "nvidia", "amd", "apple", or a third-party probe's own name
    name: str  # as the driver says it ("NVIDIA GeForce RTX 4090")
    index: int  # position in the probe's own order (NVML index for NVIDIA)
    memory_total: int
    memory_free: int
    bandwidth: float | None = None  # peak memory bandwidth, bytes/s
    cuda_index: int | None = None  # position as CUDA numbers it after CUDA_VISIBLE_DEVICES
    uuid: str | None = None
    compute_capability: tuple[int, int] | None = None
    mig: bool = False  # a MIG slice rather than a whole GPU
    unified: bool = False  # shares memory with the CPU (Apple Silicon, some APUs)
    # Dense datasheet peaks (the catalog's figures; None where unknown): FP16 on the matrix
    # units (tensor cores with FP16 accumulate; Apple's shader rate), FP32 on the shaders,
    # INT8 on the matrix units. The speed model's compute-bound terms use them.
    fp16_tflops: float | None = None
    fp32_tflops: float | None = None
    int8_tops: float | None = None

    def describe(self) -> str:
        return f"{self.name} {format_size(self.memory_total)} {format_bandwidth(self.bandwidth)}"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.compute_capability is not None:
            data["compute_capability"] = list(self.compute_capability)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gpu:
        values = dict(data)
        cc = values.get("compute_capability")
        if cc is not None:
            values["compute_capability"] = (int(cc[0]), int(cc[1]))
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass(frozen=True)
class Cpu:
    model: str
    cores_physical: int
    cores_logical: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cpu:
        return cls(
            model=str(data.get("model", "unknown")),
            cores_physical=int(data.get("cores_physical", 1)),
            cores_logical=int(data.get("cores_logical", data.get("cores_physical", 1))),
        )


@dataclass(frozen=True)
class Ram:
    """Host memory as a process here may use it (a container's cgroup limit applied)."""

    total: int
    available: int
    bandwidth: float | None = None  # measured or datasheet, bytes/s
    cgroup_limit: int | None = None  # the container limit when one applies

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ram:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Host:
    """One machine: its GPUs in CUDA order, CPU and RAM; detected or simulated."""

    gpus: tuple[Gpu, ...]
    cpu: Cpu
    ram: Ram
    simulated: bool = False
    source: str = "detected"  # "detected", a spec string, or a profile file path
    notes: tuple[str, ...] = field(default=())  # what a probe could not read, said once

    @property
    def vram_total(self) -> int:
        return sum(g.memory_total for g in self.gpus if not g.unified)

    @property
    def vram_free(self) -> int:
        return sum(g.memory_free for g in self.gpus if not g.unified)

    def describe(self) -> str:
        """One line: ``1x NVIDIA GeForce RTX 4090 24.6 GB 1008 GB/s | RAM 64.0 GB | simulated``."""
        parts: list[str] = []
        groups: dict[str, int] = {}
        for gpu in self.gpus:
            groups[gpu.describe()] = groups.get(gpu.describe(), 0) + 1
        parts.extend(f"{count}x {text}" for text, count in groups.items())
        if not self.gpus:
            parts.append(f"no GPU ({self.cpu.cores_physical} CPU cores)")
        ram = f"RAM {format_size(self.ram.total)}"
        if self.ram.bandwidth:
            ram += f" {format_bandwidth(self.ram.bandwidth)}"
        parts.append(ram)
        parts.append("simulated" if self.simulated else "detected")
        return " | ".join(parts)

    def with_ram(self, **changes: Any) -> Host:
        return replace(self, ram=replace(self.ram, **changes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": [g.to_dict() for g in self.gpus],
            "cpu": self.cpu.to_dict(),
            "ram": self.ram.to_dict(),
            "simulated": self.simulated,
            "source": self.source,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Host:
        return cls(
            gpus=tuple(Gpu.from_dict(g) for g in data.get("gpus", [])),
            cpu=Cpu.from_dict(data.get("cpu", {})),
            ram=Ram.from_dict(data.get("ram", {"total": 0, "available": 0})),
            simulated=bool(data.get("simulated", False)),
            source=str(data.get("source", "detected")),
            notes=tuple(data.get("notes", ())),
        )


GPU_VENDORS = frozenset({"nvidia", "amd", "apple", "intel"})
"""Vendors the built-in probes and the catalog report (third-party probes may add others)."""

RamBandwidthMode = Literal["off", "cached", "measure"]
"""``off``: never; ``cached``: reuse a stored measurement only; ``measure``: measure if none."""


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found. Every field is optional: a probe reports only what it knows.

    ``problems`` are one-line reasons such as
    ``"NVML not available: libnvidia-ml.so.1 not found"``: they are warned once.
    ``notes`` are informational lines (kept in ``Host.notes``, never warned).
    """

    gpus: tuple[Gpu, ...] = ()
    ram: Ram | None = None
    cpu: Cpu | None = None
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
