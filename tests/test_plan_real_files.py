"""Issue 8's placement and totals: tied embeddings, a given offload, one total in text and
JSON, files that are not models, unknown architectures and misspelt vendors.

The figures a public llama.cpp log shows are checked in test_placement_logs.py; here the
rules themselves are pinned on shape twins."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

import gguf
import numpy as np
import pytest

from pytest_llmfit.cli import main
from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import GGUFFile, read_gguf
from pytest_llmfit.engine.plan import plan
from pytest_llmfit.errors import ConfigError, GGUFError
from pytest_llmfit.hardware.specs import host_from_spec
from pytest_llmfit.units import format_size

TwinHeader = Callable[..., GGUFFile]
MiB = 2**20


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmfit", *args], capture_output=True, text=True, timeout=120
    )


# --- tied embeddings ------------------------------------------------------------------------


def test_tied_model_keeps_token_embd_on_host_and_a_copy_on_the_gpu(
    twin_header: TwinHeader,
) -> None:
    model = twin_header("llama-3.2-3b", "q4_k_m")
    fp = estimate(model)
    assert fp.output_is_tied and fp.tied_output_bytes == fp.token_embd_bytes > 300 * MiB
    p = plan(model, host_from_spec("rtx-4090, ram=64GB"), n_gpu_layers=-1)
    gpu, host = p.devices[0], p.host
    assert p.mode == "gpu" and gpu.holds_output_layer and not host.holds_output_layer
    blocks = sum(layer.cuda_bytes for layer in fp.layers)
    # The GPU holds every block and a duplicate of token_embd as the output matrix; the host
    # keeps token_embd itself for the input lookup.
    assert gpu.weights_bytes == blocks + fp.output_layer_cuda_bytes
    assert fp.output_layer_cuda_bytes >= fp.token_embd_bytes
    assert host.weights_bytes == fp.token_embd_bytes + fp.other_bytes


@pytest.mark.parametrize(
    ("twin", "quant"), [("llama-3.2-1b", "f16"), ("gemma-2-9b", "q4_k_m"), ("qwen3-0.6b", "q4_0")]
)
def test_cpu_total_counts_token_embd_with_repack_on(
    twin: str, quant: str, twin_header: TwinHeader
) -> None:
    model = twin_header(twin, quant)
    on, off = estimate(model, Settings(repack=True)), estimate(model, Settings(repack=False))
    embd = model.tensor("token_embd.weight")
    assert embd is not None and model.tensor("output.weight") is None
    assert on.token_embd_bytes == off.token_embd_bytes == embd.nbytes
    # With repack on a repackable tied output gets a second, repacked copy; the mapped
    # token_embd stays (GET_ROWS reads it), so the resident weights only grow.
    assert on.weights_bytes == off.weights_bytes + on.tied_output_repack_bytes
    assert on.weights_bytes >= sum(t.nbytes for t in model.tensors)


def test_placement_counts_each_weight_once_on_every_device(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    fp = estimate(model)
    host = host_from_spec("2x rtx-4090, ram=64GB")
    for n_gpu in (0, 1, 10, 32, 33):
        p = plan(model, host, n_gpu_layers=n_gpu)
        placed = sum(d.n_layers for d in p.devices) + p.host.n_layers
        assert placed == fp.n_layer + (1 if any(d.holds_output_layer for d in p.devices) else 0)
        plain = p.host.weights_bytes + sum(d.weights_bytes for d in p.devices)
        padded = sum(layer.cuda_bytes - layer.weights_bytes for layer in fp.layers)
        assert fp.weights_bytes <= plain <= fp.weights_bytes + padded + 2 * MiB


# --- a given offload ------------------------------------------------------------------------


def test_current_rule_offloads_the_output_layer_first(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-70b", "q4_k_m")
    host = host_from_spec("h100-sxm, ram=512GB")
    current = plan(model, host, n_gpu_layers=30)
    legacy = plan(model, host, n_gpu_layers=30, offload_rule="legacy")
    assert current.given and current.n_gpu_layers == legacy.n_gpu_layers == 30
    assert current.devices[0].holds_output_layer and current.devices[0].n_layers == 30
    assert not legacy.devices[0].holds_output_layer and legacy.devices[0].n_layers == 30
    assert current.host.n_layers == 80 - 29 and legacy.host.n_layers == 80 - 30
    # Beyond all layers, both rules put everything on the GPU.
    full = plan(model, host, n_gpu_layers=999, offload_rule="legacy")
    assert full.n_gpu_layers == 81 and full.devices[0].holds_output_layer


def test_given_tensor_split_divides_the_layers(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    host = host_from_spec("2x rtx-4090, ram=64GB")
    p = plan(model, host, n_gpu_layers=-1, tensor_split=(1, 3))
    assert [d.n_layers for d in p.devices] == [9, 24]
    assert p.tensor_split == (0.25, 0.75)
    with pytest.raises(ConfigError, match=r"one non-negative share per GPU \(2 on this host\)"):
        plan(model, host, n_gpu_layers=-1, tensor_split=(1, 1, 1))


def test_a_given_offload_that_does_not_fit_says_by_how_much(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-70b", "q4_k_m")
    p = plan(model, host_from_spec("rtx-4090, ram=128GB"), n_gpu_layers=81)
    assert not p.fits and p.mode == "none" and p.n_gpu_layers == 81
    gpu = p.devices[0]
    assert p.shortfall_bytes == gpu.need_bytes - gpu.budget_bytes > 15e9


def test_plan_cli_given_offload_and_host_breakdown(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    done = _run(
        "plan", model.path, "--hardware", "2x rtx-4090, ram=64GB", "-ngl", "20",
        "--tensor-split", "1,1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)["plan"]
    assert data["n_gpu_layers"] == 20 and data["given"] is True
    assert sum(d["n_layers"] for d in data["devices"]) == 20
    host = data["host"]
    parts = ("weights_bytes", "kv_bytes", "compute_bytes", "output_bytes")
    assert host["need_bytes"] == sum(host[k] for k in parts)
    assert host["free_bytes"] == 64 * 10**9 and data["host_bytes"] == host["need_bytes"]
    for device in data["devices"]:
        assert device["need_bytes"] == sum(device[k] for k in parts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-ngl", "many"), "'many' is not a whole number of layers (-1 for all)"),
        (("--tensor-split", "3,x"), "'3,x' is not a list of non-negative shares"),
        (("--offload-rule", "old"), "invalid choice: 'old'"),
    ],
)
def test_plan_cli_rejects_bad_offload_options(
    args: tuple[str, ...], message: str, twin_header: TwinHeader
) -> None:
    model = twin_header("qwen2.5-0.5b", "q4_k_m")
    done = _run("plan", model.path, "--hardware", "rtx-4090", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- one total ------------------------------------------------------------------------------


def test_json_total_is_the_text_total(twin_header: TwinHeader) -> None:
    model = twin_header("llama-3.1-8b", "q4_k_m")
    args = ("plan", model.path, "--hardware", "cpu-only, ram=64GB, cpu=8")
    text, data = _run(*args), json.loads(_run(*args, "--json").stdout)
    assert text.returncode == 0
    memory = data["memory"]
    assert memory["total_bytes"] == sum(
        memory[k] for k in ("weights_bytes", "kv_cache_bytes", "compute_bytes", "output_bytes")
    )
    assert f"total {format_size(memory['total_bytes'])}" in text.stdout
    assert f"memory  weights {format_size(memory['weights_bytes'])} " in text.stdout
    # The text's two weights figures (memory line and why line) are the same number.
    assert f"weights {format_size(memory['weights_bytes'])}, KV cache" in text.stdout
    # The CPU_REPACK copies have their own field and the allocated total includes them.
    assert memory["cpu_repack_bytes"] > 0
    assert memory["allocated_bytes"] == memory["total_bytes"] - memory["weights_bytes"] + (
        memory["cpu_mapped_bytes"] + memory["cpu_repack_bytes"]
    )
    assert data["plan"]["host"]["need_bytes"] == memory["total_bytes"]


def test_plan_exit_codes(twin_header: TwinHeader, capsys: pytest.CaptureFixture[str]) -> None:
    small, big = twin_header("qwen2.5-0.5b", "q4_k_m"), twin_header("llama-3.1-405b", "q3_k_m")
    assert main(["plan", small.path, "--hardware", "rtx-4090"]) == 0
    assert main(["plan", big.path, "--hardware", "rtx-4090, ram=64GB"]) == 1
    assert main(["plan", big.path + ".missing", "--hardware", "rtx-4090"]) == 2
    capsys.readouterr()


# --- files that are not models --------------------------------------------------------------


def _write(path: pathlib.Path, arch: str, tensors: dict[str, tuple[int, ...]]) -> str:
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_feed_forward_length(128)
    for name, shape in tensors.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_files_without_the_model_tensors_are_refused(tmp_path: pathlib.Path) -> None:
    none = _write(tmp_path / "vocab.gguf", "llama", {})
    with pytest.raises(GGUFError, match=r"vocab\.gguf: has no tensors \(llama metadata only"):
        estimate(read_gguf(none))
    half = _write(
        tmp_path / "half.gguf",
        "llama",
        {"token_embd.weight": (100, 64), "blk.0.attn_q.weight": (64, 64)},
    )
    with pytest.raises(GGUFError, match=r"lacks the tensors a llama model needs: 1 of 2 blocks"):
        plan(read_gguf(half), host_from_spec("rtx-4090"))
    no_embd = _write(
        tmp_path / "noembd.gguf",
        "llama",
        {"blk.0.attn_q.weight": (64, 64), "blk.1.attn_q.weight": (64, 64)},
    )
    with pytest.raises(GGUFError, match=r"needs: token_embd\.weight"):
        estimate(read_gguf(no_embd))


def test_cli_refuses_a_tensorless_file_with_exit_2(tmp_path: pathlib.Path) -> None:
    path = _write(tmp_path / "vocab.gguf", "gemma4", {})
    done = _run("plan", path, "--hardware", "rtx-4090")
    assert done.returncode == 2 and done.stdout == ""
    assert re.fullmatch(
        r"pytest-llmfit: error: .*vocab\.gguf: has no tensors \(gemma4 metadata only, "
        r"e\.g\. a vocabulary-only file\): not a model llama\.cpp can load\n",
        done.stderr,
    )


# --- unknown architectures and bad markers, as a user sees them -----------------------------


def _unknown_arch_model(twin_header: TwinHeader, path: pathlib.Path) -> pathlib.Path:
    """A copy of a real twin whose architecture string llama.cpp's rules do not name."""
    source = pathlib.Path(twin_header("qwen2.5-0.5b", "q4_k_m").path).read_bytes()
    # Same length, so every offset stays valid: the keys "qwen2.*" and the value "qwen2".
    renamed = source.replace(b"qwen2.", b"qwen9.").replace(
        b"\x05" + b"\x00" * 7 + b"qwen2", b"\x05" + b"\x00" * 7 + b"qwen9"
    )
    path.write_bytes(renamed)
    return path


def test_unknown_architecture_is_named_in_plan_text_and_json(
    twin_header: TwinHeader, tmp_path: pathlib.Path
) -> None:
    path = _unknown_arch_model(twin_header, tmp_path / "odd.gguf")
    assert read_gguf(str(path)).architecture == "qwen9"
    text = _run("plan", str(path), "--hardware", "rtx-4090")
    assert "note    unknown architecture 'qwen9'" in text.stdout
    data = json.loads(_run("plan", str(path), "--hardware", "rtx-4090", "--json").stdout)
    assert any(n.startswith("unknown architecture 'qwen9'") for n in data["notes"])


def test_marker_reason_and_report_name_an_unknown_architecture(
    pytester: pytest.Pytester, twin_header: TwinHeader
) -> None:
    _unknown_arch_model(twin_header, pytester.path / "odd.gguf")
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("odd.gguf", on_offload="skip")
        def test_odd(): pass
        @requires_model("odd.gguf", n_ctx=10**7)
        def test_odd_huge(): pass
        """
    )
    result = pytester.runpytest(
        "-rs", "--llmfit-hardware=rtx-4090, ram=64GB", "--llmfit-report-json=r.json"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*short by*; unknown architecture 'qwen9'*"])
    report = json.loads((pytester.path / "r.json").read_text())
    reasons = [t["reason"] for t in report["tests"]]
    assert all("unknown architecture 'qwen9'" in r for r in reasons), reasons
    assert all(
        any(n.startswith("unknown architecture") for n in t["plan"]["notes"])
        for t in report["tests"]
    )


def test_requires_model_takes_a_given_offload(
    pytester: pytest.Pytester, stub_8b: pathlib.Path
) -> None:
    shutil.copy(stub_8b, pytester.path / "llama-8b.gguf")
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-8b.gguf", n_gpu_layers=10, on_offload="skip")
        def test_partial(): pass
        @requires_model("llama-8b.gguf", n_gpu_layers=-1, tensor_split=[1, 1])
        def test_split(): pass
        @requires_model("llama-8b.gguf", n_gpu_layers="all")
        def test_bad(): pass
        """
    )
    result = pytester.runpytest("-rs", "--llmfit-hardware=2x rtx-4090, ram=64GB")
    result.assert_outcomes(passed=1, skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*'all' is not a whole number of layers (-1 for all) (n_gpu_layers, marker "
            "requires_model on test_*::test_bad)*",
            "*requires_model llama-8b.gguf @4096 ngl=10: needs *; partial offload, 10/33 layers"
            " on GPU*(on_offload=skip, marker)",
        ]
    )


def test_misspelt_gpu_vendor_is_an_error_not_a_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_gpu
        @requires_gpu(vendor="nvida")
        def test_typo(): pass
        @requires_gpu(vendor="NVIDIA")
        def test_case(): pass
        """
    )
    result = pytester.runpytest("-rs", "--llmfit-hardware=rtx-4090")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*'nvida' is not a GPU vendor (amd, apple, intel, nvidia, or one a probe reports)*"]
    )
