"""Hardware: the frozen value objects a host is described by, the probes that detect one,
and the catalog and spec strings that simulate one. No pytest, no engine.
"""

from __future__ import annotations

from .types import Cpu, Gpu, Host, ProbeResult, Ram

__all__ = ["Cpu", "Gpu", "Host", "ProbeResult", "Ram"]
