"""The text every renderer shares: a plan, a speed, the summary line, the host line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..hardware.types import Host

DASH = "-"


def plan_text(plan: Mapping[str, Any] | None) -> str:
    """``gpu 33/33``, ``partial 14/127``, ``cpu 0/33``, ``none 14/127``, or ``-``."""
    if not plan:
        return DASH
    mode = str(plan.get("mode", "?"))
    n_gpu, n_total = plan.get("n_gpu_layers"), plan.get("n_layers_total")
    if n_gpu is None or n_total is None:
        return mode
    return f"{mode} {n_gpu}/{n_total}"


def speed_text(value: float | None) -> str:
    """Tokens/s to one decimal (two below 1), ``-`` when unknown."""
    if value is None:
        return DASH
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(text.split())


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {key}" for key, n in counts.items() if n)


def summary_line(report: Mapping[str, Any]) -> str:
    """``3 tests: 1 run, 1 skip, 1 xfail | 1 passed, 1 skipped, 1 xfailed``."""
    summary = report["summary"]
    total = summary.get("total", len(report["tests"]))
    line = f"{total} test{'s' if total != 1 else ''}"
    decisions = _counts(summary.get("decisions", {}))
    outcomes = _counts(summary.get("outcomes", {}))
    if decisions:
        line += f": {decisions}"
    if outcomes:
        line += f" | {outcomes}"
    return line


def host_line(report: Mapping[str, Any]) -> str:
    """The report's host in one line: its ``description``, else one made from its fields."""
    host = report["host"]
    description = host.get("description")
    if not isinstance(description, str):
        description = Host.from_dict(host).describe()
    return description
