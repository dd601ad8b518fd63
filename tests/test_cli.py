"""The command line as users run it: real processes, exit codes and exact error lines."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from pytest_llmfit.cli import main
from pytest_llmfit.engine.gguf import GGUFFile

TwinHeader = Callable[..., GGUFFile]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmfit", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plan_json_for_the_seed_case(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-405b", "q3_k_m")
    done = _run("plan", model.path, "--ctx", "8192", "--hardware", "rtx-4090, ram=64GB", "--json")
    assert done.returncode == 1, done.stderr  # does not fit: 1, so a script can branch on it
    data = json.loads(done.stdout)
    assert data["fits"] is False
    assert data["plan"]["mode"] == "none"
    assert 13 <= data["plan"]["n_gpu_layers"] <= 15
    assert data["plan"]["shortfall_bytes"] > 100e9
    assert data["memory"]["total_bytes"] == sum(
        data["memory"][k]
        for k in ("weights_bytes", "kv_cache_bytes", "compute_bytes", "output_bytes")
    )
    assert data["plan"]["tokens_per_second"] > 0


def test_plan_human_output_names_the_verdict_and_numbers(
    twin_header: TwinHeader, capsys: pytest.CaptureFixture[str]
) -> None:
    model = twin_header("llama-3.1-405b", "q3_k_m")
    assert main(["plan", model.path, "--ctx", "8192", "--hardware", "3x h200"]) == 0
    out = capsys.readouterr().out
    assert "fits on GPU: n_gpu_layers 127/127" in out
    assert "GPU 2 NVIDIA H200" in out
    assert "tokens/s" in out


def test_inspect_and_stub_round_trip(
    twin_header: TwinHeader, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    out_path = str(tmp_path / "stub.gguf")
    assert main(["stub", model.path, out_path]) == 0
    assert main(["inspect", out_path, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    data = json.loads("\n".join(lines[1:]))
    assert data["model"]["header_only"] is True
    assert data["model"]["weights_bytes"] == model.weights_bytes


def test_probe_runs_on_this_machine() -> None:
    done = _run("probe", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ram"]["total"] > 0
    assert data["cpu"]["cores_logical"] >= 1


def test_profiles_lists_the_catalog() -> None:
    done = _run("profiles")
    assert done.returncode == 0
    for name in ("rtx-4090", "h100-sxm", "h200", "mi300x", "t4"):
        assert name in done.stdout


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_missing_model_file_is_one_line(tmp_path: pathlib.Path) -> None:
    line = _one_line_error(_run("plan", str(tmp_path / "nope.gguf")))
    assert line.startswith("pytest-llmfit: error: ")
    assert "nope.gguf" in line


def test_not_a_gguf_file_is_one_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip file" + bytes(100))
    line = _one_line_error(_run("plan", str(path)))
    assert str(path) in line


def test_corrupt_header_is_one_line_with_the_offset(
    twin_header: TwinHeader, tmp_path: pathlib.Path
) -> None:
    good = pathlib.Path(twin_header("qwen2.5-0.5b", "q4_k_m").path).read_bytes()
    path = tmp_path / "corrupt.gguf"
    path.write_bytes(good[:5000])
    line = _one_line_error(_run("inspect", str(path)))
    assert "offset" in line


def test_unknown_profile_suggests_close_matches(twin_header: TwinHeader) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    line = _one_line_error(_run("plan", model.path, "--hardware", "rtx-4900"))
    assert "'rtx-4090'" in line
    assert "--hardware" in line


def test_bad_size_names_the_value_and_option(twin_header: TwinHeader) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    line = _one_line_error(_run("plan", model.path, "--headroom", "16 gigs"))
    assert "'16 gigs'" in line and "--headroom" in line


def test_bad_cache_type_and_flash_attn_combination(twin_header: TwinHeader) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    line = _one_line_error(_run("plan", model.path, "--cache-type", "q8_0", "--flash-attn", "off"))
    assert "flash attention" in line
    line = _one_line_error(_run("plan", model.path, "--cache-type", "q7"))
    assert "'q7'" in line


def test_bad_ctx_is_an_argparse_error_on_one_line(twin_header: TwinHeader) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    line = _one_line_error(_run("plan", model.path, "--ctx", "lots"))
    assert "'lots'" in line


def test_plan_json_lists_the_ways_out(
    twin_header: TwinHeader, capsys: pytest.CaptureFixture[str]
) -> None:
    model = twin_header("llama-3.1-405b", "q3_k_m")
    args = ["plan", model.path, "--ctx", "8192", "--hardware", "rtx-4090, ram=64GB", "--json"]
    assert main(args) == 1
    data = json.loads(capsys.readouterr().out)
    kinds = {a["kind"] for a in data["alternatives"] if a["fits"]}
    assert {"quant", "gpus", "model"} <= kinds
    for a in data["alternatives"]:
        assert {"kind", "fits", "mode", "n_gpu_layers", "total_bytes", "tokens_per_second"} <= set(
            a
        )
    gpus = next(a for a in data["alternatives"] if a["kind"] == "gpus")
    assert gpus["hardware"].startswith(f"{gpus['count']}x {gpus['gpu']}, ram=64GB")
    assert data["suggestions"] and data["suggestions"][0].startswith("fits ")


def test_plan_as_another_file_type_and_advise(
    twin_header: TwinHeader, capsys: pytest.CaptureFixture[str]
) -> None:
    model = twin_header("llama-3.1-405b", "q3_k_m")
    assert main(["plan", model.path, "--quant", "IQ1_S", "--ctx", "2048", "--cache-type", "q8_0",
                 "--hardware", "rtx-4090, ram=64GB", "--json"]) == 0  # fmt: skip
    planned = json.loads(capsys.readouterr().out)
    assert planned["plan"]["mode"] == "partial" and planned["model"]["weights_bytes"] < 90e9
    assert main(["advise", model.path, "--ctx", "8192", "--hardware", "rtx-4090, ram=64GB",
                 "--gpu", "h100-sxm", "--gpu", "rtx-4090"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "does NOT fit" in out.splitlines()[0]
    assert re.search(r"^ *\d+  gpus +3x h100-sxm +yes +gpu +127/127", out, re.MULTILINE), out
    assert "--hardware '3x h100-sxm, ram=64GB, ram_bw=60GB/s, cpu=8'" in out
    assert "plan with --quant IQ1_S --ctx 2048 --cache-type q8_0 --flash-attn on" in out
    line = _one_line_error(_run("advise", model.path, "--quant", "Q9_K"))
    assert "'Q9_K' is not a llama-quantize type" in line and "--quant" in line
