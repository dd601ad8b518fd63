"""The estimator against what llama.cpp itself allocated for shape twins of real models.

tests/data/llamacpp/<model>.json is written by scripts/record_llamacpp.py, which loads each
twin with llama.cpp (through llama-cpp-python, CPU backend) and parses its buffer log lines.
Figures there are llama.cpp's MiB with two decimals, so components agree to 0.01 MiB.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmfit.estimate import Settings, estimate
from pytest_llmfit.gguf import GGUFFile

TwinHeader = Callable[..., GGUFFile]

ZOO = pathlib.Path(__file__).parent / "data" / "llamacpp"
MIB_ROUNDING = int(0.0051 * 2**20)  # llama.cpp prints MiB with two decimals
TOTAL_TOLERANCE = 0.02
# swa_full=False (not llama-cpp-python's default) shrinks the SWA cache so much that the
# compute buffer becomes a large share of the total, and its packing by ggml-alloc is what
# the estimator approximates; those cases are held to 3% and reported as such in the README.
TOTAL_TOLERANCE_SMALL_SWA = 0.03


def _cases() -> list[Any]:
    params = []
    for path in sorted(ZOO.glob("*.json")):
        record = json.loads(path.read_text())
        for index, case in enumerate(record["cases"]):
            if case["status"] != "ok":
                continue
            s = case["settings"]
            case_id = (
                f"{record['model']}-ctx{s['n_ctx']}-{s['cache_type']}-fa{int(s['flash_attn'])}"
                f"-ub{s['n_ubatch']}" + ("" if s.get("swa_full", True) else "-swa")
            )
            params.append(pytest.param(record, index, id=case_id))
    return params


CASES = _cases()


def test_the_zoo_covers_the_architectures_the_estimator_claims() -> None:
    archs = {json.loads(p.read_text())["arch"] for p in ZOO.glob("*.json")}
    assert len(CASES) >= 100
    assert {"llama", "qwen2", "qwen3", "gemma3"} <= archs


def _settings(case: dict[str, Any]) -> Settings:
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
    )


def _measured(record: dict[str, Any], case: dict[str, Any]) -> dict[str, int]:
    buffers = case["buffers"]
    model = record["load"]["buffers"] if "load" in record else buffers["model"]
    return {
        "weights": sum(model.values()),
        "kv": sum(buffers.get("kv", {}).values()) + sum(buffers.get("rs", {}).values()),
        "compute": sum(buffers.get("compute", {}).values()),
        "output": sum(buffers.get("output", {}).values()),
    }


@pytest.mark.parametrize(("record", "index"), CASES)
def test_estimate_matches_llamacpp(
    record: dict[str, Any], index: int, twin_header: TwinHeader
) -> None:
    case = record["cases"][index]
    model = twin_header(record["model"], record["quant"])
    fp = estimate(model, _settings(case))
    real = _measured(record, case)
    # Exact components: weights as mapped, KV/recurrent cache, logits buffer.
    n_buffers = max(len(case["buffers"].get("kv", {})) + len(case["buffers"].get("rs", {})), 1)
    assert abs(fp.weights_bytes - real["weights"]) <= MIB_ROUNDING
    assert abs(fp.kv_cache_bytes + fp.recurrent_bytes - real["kv"]) <= MIB_ROUNDING * n_buffers
    assert abs(fp.output_bytes - real["output"]) <= MIB_ROUNDING
    # The compute buffer depends on ggml-alloc's packing; the total is held to 2%.
    real_total = sum(real.values())
    error = (fp.total_bytes - real_total) / real_total
    tolerance = (
        TOTAL_TOLERANCE if case["settings"].get("swa_full", True) else (TOTAL_TOLERANCE_SMALL_SWA)
    )
    assert abs(error) <= tolerance, (
        f"total {fp.total_bytes} vs llama.cpp {real_total} ({error:+.2%}); "
        f"compute {fp.compute_bytes} vs {real['compute']}"
    )
