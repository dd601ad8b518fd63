"""The planner's per-device model buffers against public llama.cpp logs no one here wrote.

tests/data/logs/*.log hold verbatim lines from public logs (source URL, file, build and
settings in each header); cases.toml names the shape twin and configuration that reproduce
each one. A log's "<device> model buffer size = X MiB" lines are compared with the plan's
``model_buffer_bytes`` per device (and ``repack_bytes`` on the host) to llama.cpp's print
precision, or to a case's stated tolerance where the log leaves the file uncertain.
"""

from __future__ import annotations

import pathlib
import re
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.gguf import GGUFFile
from pytest_llmfit.engine.plan import plan
from pytest_llmfit.hardware.hostfile import host_from_toml
from pytest_llmfit.hardware.specs import host_from_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TwinHeader = Callable[..., GGUFFile]
LOGS = pathlib.Path(__file__).parent / "data" / "logs"
CASES: list[dict[str, Any]] = tomllib.loads((LOGS / "cases.toml").read_text())["case"]
MiB = 2**20
PRINT_PRECISION = 0.0051 * MiB  # llama.cpp prints MiB with two decimals

# "llm_load_tensors:        CPU buffer size =  1640.62 MiB" (2024) and
# "load_tensors:   CPU_Mapped model buffer size =  1623.67 MiB" (2025 on).
_MODEL_BUFFER = re.compile(
    r"(?:llm_)?load_tensors:\s+(?P<name>\S+)\s+(?:model )?buffer size\s*=\s*(?P<mib>[0-9.]+) MiB"
)


def logged_model_buffers(text: str) -> dict[str, int]:
    """The first load's model buffers of a log, by buffer name, in bytes."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = _MODEL_BUFFER.search(line)
        if match and match["name"] not in found:
            found[match["name"]] = round(float(match["mib"]) * MiB)
    return found


def test_every_log_has_a_case_and_its_source() -> None:
    logged = {case["log"] for case in CASES}
    for name in logged:
        text = (LOGS / name).read_text()
        assert text.startswith("# source: "), name
        assert logged_model_buffers(text), f"{name}: no model buffer line"


def test_the_cases_cover_tied_partial_multi_gpu_and_cpu() -> None:
    kinds = {
        "tied full offload": any(
            c["twin"].startswith(("llama-3.2", "gemma")) and c.get("n_gpu_layers") for c in CASES
        ),
        "partial": any(c.get("n_gpu_layers") == 30 for c in CASES),
        "multi-GPU": any("tensor_split" in c for c in CASES),
        "CPU with repack": any("CPU_REPACK" in c["devices"] for c in CASES),
    }
    assert all(kinds.values()), kinds


@pytest.mark.parametrize("case", CASES, ids=[c["log"].split("-")[0] for c in CASES])
def test_plan_matches_the_logged_model_buffers(
    case: dict[str, Any], twin_header: TwinHeader, tmp_path: pathlib.Path
) -> None:
    logged = logged_model_buffers((LOGS / case["log"]).read_text())
    model = twin_header(case["twin"], case["quant"])
    settings = Settings(n_ctx=4096, repack=case.get("repack", True))
    if "hardware_toml" in case:
        profile = tmp_path / "host.toml"
        profile.write_text(case["hardware_toml"])
        host = host_from_toml(profile)
    else:
        host = host_from_spec(case["hardware"])
    result = plan(
        model,
        host,
        settings,
        n_gpu_layers=case.get("n_gpu_layers", 0),
        tensor_split=case.get("tensor_split"),
        offload_rule=case.get("offload_rule", "current"),
        n_cpu_moe=case.get("n_cpu_moe", 0),
    )
    tolerance = case.get("tolerance")
    for name, device in case["devices"].items():
        if device == "host":
            ours = (
                result.host.weights_bytes
                if case.get("weights") == "total"
                else result.host.model_buffer_bytes
            )
        elif device == "host-repack":
            ours = result.host.repack_bytes
        else:
            ours = result.devices[device].model_buffer_bytes
        theirs = logged[name]
        allowed = tolerance * theirs if tolerance else PRINT_PRECISION
        assert abs(ours - theirs) <= allowed, (
            f"{case['log']}: {name} model buffer {ours / MiB:.2f} MiB planned, "
            f"{theirs / MiB:.2f} MiB logged"
        )
    if "gpu_sum" in case:
        theirs = sum(logged[name] for name in case["gpu_sum"])
        ours = sum(d.model_buffer_bytes for d in result.devices)
        assert abs(ours - theirs) <= PRINT_PRECISION * len(case["gpu_sum"]), (ours, theirs)
