"""The llm and llm_benchmark fixtures, loading generated models for real through pytester."""

from __future__ import annotations

import json
import pathlib

import pytest

pytest.importorskip("llama_cpp", reason="needs the llama extra: pip install -e .[llama]")

from pytest_llmfit.twins.tiny import tiny_model_cached


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    cache = tmp_path_factory.mktemp("tiny")
    return {
        "f16": tiny_model_cached(cache, dtype="f16", n_layer=2, n_embd=128),
        "q4_0": tiny_model_cached(cache, dtype="q4_0", n_layer=2, n_embd=256, arch="qwen2"),
    }


@pytest.fixture
def suite(pytester: pytest.Pytester, tiny_models: dict[str, pathlib.Path]) -> pytest.Pytester:
    for name, path in tiny_models.items():
        (pytester.path / f"tiny-{name}.gguf").write_bytes(path.read_bytes())
    return pytester


def test_llm_loads_the_marked_model_generates_and_reports_allocations(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("tiny-f16.gguf", n_ctx=256)
        def test_generate(llm):
            out = llm("hello", max_tokens=4)
            assert out["choices"][0]["text"] is not None
            assert llm.n_ctx() == 256
        @requires_model("tiny-f16.gguf", n_ctx=256)
        def test_same_model_is_reused(llm, llmfit_models):
            assert llmfit_models.loaded.llm is llm
        """
    )
    result = suite.runpytest(
        "-p",
        "no:cacheprovider",
        "--llmfit-report-json=r.json",
        "-W",
        "error::pytest_llmfit.plugin.fixtures.LlmfitEstimateWarning",
    )
    result.assert_outcomes(passed=2)
    report = json.loads((suite.path / "r.json").read_text())
    record = report["tests"][0]
    llama = record["llama_cpp"]
    assert llama["allocations"]["model"] and llama["allocations"]["kv"]
    # weights, KV cache and output buffer agree with llama.cpp to its print precision
    for component in ("weights", "kv", "output"):
        assert abs(llama["miss_bytes"][component]) <= 0.0051 * 2**20, llama
    assert llama["flagged"] == []
    assert llama["n_gpu_layers_used"] == llama["n_gpu_layers_planned"] == 0


def test_llm_via_indirect_parametrize_evicts_and_releases(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest
        @pytest.mark.parametrize(
            "llm",
            ["tiny-f16.gguf", {"path": "tiny-q4_0.gguf", "n_ctx": 512}, "tiny-f16.gguf"],
            indirect=True,
        )
        def test_models(llm, llmfit_models):
            assert llm("abc", max_tokens=2) is not None
        def test_released(llmfit_models):
            assert len(llmfit_models.releases) == 2
            assert all(r["released"] for r in llmfit_models.releases), llmfit_models.releases
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=4)


def test_llm_benchmark_records_measured_speed_beside_the_prediction(
    suite: pytest.Pytester,
) -> None:
    suite.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("tiny-q4_0.gguf", n_ctx=256, on_offload="benchmark")
        def test_speed(llm_benchmark):
            result = llm_benchmark(prompt_tokens=16, gen_tokens=8, repeats=2)
            assert result.decode_tps > 0 and result.prompt_tps > 0
        """
    )
    result = suite.runpytest("-p", "no:cacheprovider", "--llmfit-report-json=r.json")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((suite.path / "r.json").read_text())["tests"]
    assert record["decision"] == "benchmark"  # CPU only: fits by offloading to RAM
    assert record["measured_tokens_per_second"] > 0
    assert record["predicted_tokens_per_second"] > 0
    assert record["speed"]["gen_tokens"] == 8
    assert record["llama_cpp"]["allocations"]["model"]
    # prompt processing, predicted at the measured prompt's length, beside the measurement
    assert record["measured_prompt_tokens_per_second"] > 0
    assert record["predicted_prompt_tokens_per_second"] > 0
    assert record["predicted_ttft_s"] > 0


def test_llm_without_a_model_is_a_clear_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile("def test_x(llm):\n    pass\n")
    result = suite.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*the llm fixture needs a model: mark *test_x with*"])


def test_pytest_benchmark_machine_info_names_the_host(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest-benchmark switches itself off inside an xdist worker: run as a plain session.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile("def test_b(benchmark):\n    benchmark(sum, [1, 2, 3])\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--llmfit-hardware=rtx-4090, ram=64GB",
        "--benchmark-json=b.json",
    )
    result.assert_outcomes(passed=1)
    info = json.loads((pytester.path / "b.json").read_text())["machine_info"]["llmfit"]
    assert info["host"]["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"


def test_measured_cpu_runs_calibrate_the_speed_model(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("tiny-f16.gguf", n_ctx=256)
        def test_speed(llm_benchmark):
            llm_benchmark(prompt_tokens=8, gen_tokens=8, repeats=2)
        """
    )
    suite.runpytest("--llmfit-report-json=first.json").assert_outcomes(passed=1)
    cache = json.loads((suite.path / ".pytest_cache/v/llmfit/speed-calibration").read_text())
    ((_fingerprint, entry),) = cache.items()
    assert entry["runs"] == 1 and entry["cpu_rate_scale"] != 1.0
    first = json.loads((suite.path / "first.json").read_text())["tests"][0]
    ratio = first["measured_tokens_per_second"] / first["predicted_tokens_per_second"]
    # the stored scale moved halfway (geometrically) towards what was measured
    assert entry["cpu_rate_scale"] == pytest.approx(min(max(ratio**0.5, 0.2), 5.0), rel=1e-3)
    suite.runpytest("--llmfit-report-json=second.json").assert_outcomes(passed=1)
    second = json.loads((suite.path / "second.json").read_text())["tests"][0]
    assert second["predicted_tokens_per_second"] != first["predicted_tokens_per_second"]
