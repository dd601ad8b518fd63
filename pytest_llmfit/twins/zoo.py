"""The recorded zoo: what llama.cpp allocated for each shape twin, and how to compare.

``scripts/record_llamacpp.py`` writes one JSON file per model under tests/data/llamacpp/;
this module reads them back for the accuracy tests and benchmarks/bench_estimate.py.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.context import Settings


@dataclass(frozen=True)
class ZooCase:
    model: str
    arch: str
    quant: str
    settings: Settings
    measured: dict[str, int]  # weights (mapped), repack, kv (+ recurrent), compute, output
    label: str

    @property
    def measured_total(self) -> int:
        return sum(self.measured.values())


def case_settings(case: dict[str, Any], *, repack: bool = False) -> Settings:
    s = case["settings"]
    return Settings(
        n_ctx=s["n_ctx"],
        n_batch=s["n_batch"],
        n_ubatch=s["n_ubatch"],
        n_seq=s.get("n_seq_max", 1),
        cache_type_k=s["cache_type"],
        cache_type_v=s["cache_type"],
        flash_attn="on" if s["flash_attn"] else "off",
        swa_full=s.get("swa_full", True),
        # Most records load twins with use_extra_bufts=False (a repack reads the whole
        # sparse file); the *-repack.json records have it on, as llama-cpp-python does.
        repack=repack,
    )


def _measured(record: dict[str, Any], case: dict[str, Any]) -> dict[str, int]:
    buffers = case["buffers"]
    model = record["load"]["buffers"] if "load" in record else buffers["model"]
    return {
        "weights": sum(v for k, v in model.items() if k != "CPU_REPACK"),
        "repack": model.get("CPU_REPACK", 0),
        "kv": sum(buffers.get("kv", {}).values()) + sum(buffers.get("rs", {}).values()),
        "compute": sum(buffers.get("compute", {}).values()),
        "output": sum(buffers.get("output", {}).values()),
    }


def iter_cases(directory: str | pathlib.Path) -> Iterator[ZooCase]:
    """Every case llama.cpp accepted, in file order."""
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        record = json.loads(path.read_text())
        repack = bool(record["model_params"]["set"].get("use_extra_bufts", False))
        for case in record["cases"]:
            if case["status"] != "ok":
                continue
            s = case["settings"]
            label = (
                f"{record['model']}"
                + (f"-{record['quant']}-repack" if repack else "")
                + f"-ctx{s['n_ctx']}-{s['cache_type']}-fa{int(s['flash_attn'])}"
                f"-ub{s['n_ubatch']}" + ("" if s.get("swa_full", True) else "-swa")
            )
            yield ZooCase(
                model=record["model"],
                arch=record["arch"],
                quant=record["quant"],
                settings=case_settings(case, repack=repack),
                measured=_measured(record, case),
                label=label,
            )
