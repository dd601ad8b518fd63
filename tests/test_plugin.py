"""The pytest plugin, run as users run it: real pytest sessions through pytester.

Hosts are simulated (--llmfit-hardware) so every decision and line is deterministic.
"""

from __future__ import annotations

import itertools
import json
import pathlib
import shutil

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

RTX4090 = "--llmfit-hardware=rtx-4090, ram=64GB"


@pytest.fixture
def models(pytester: pytest.Pytester, stub_405b: pathlib.Path, stub_8b: pathlib.Path) -> None:
    shutil.copy(stub_405b, pytester.path / "llama-405b-q3_k_m.gguf")
    shutil.copy(stub_8b, pytester.path / "llama-8b-q4_k_m.gguf")


def test_markers_are_registered_and_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for name in ("requires_vram", "requires_ram", "requires_gpu", "requires_model"):
        result.stdout.fnmatch_lines([f"@pytest.mark.{name}(*"])


def test_strict_markers_accepts_every_marker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_gpu, requires_ram, requires_vram
        @requires_vram("1GB")
        @requires_ram("1GB")
        @requires_gpu(1)
        def test_x():
            pass
        """
    )
    result = pytester.runpytest("--strict-markers", RTX4090)
    result.assert_outcomes(passed=1)


def test_decorators_are_pytest_marks() -> None:
    import pytest_llmfit

    mark = pytest_llmfit.requires_vram("24GB")
    assert isinstance(mark, pytest.MarkDecorator)
    assert mark.name == "requires_vram" and mark.args == ("24GB",)


def test_requires_vram_decimal_gb_passes_on_a_24gb_card(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_vram("24GB")
        def test_fits(): pass
        @pytest.mark.requires_vram("24GiB")
        def test_24gib(): pass
        @pytest.mark.requires_vram("40GB")
        def test_too_big(): pass
        """
    )
    result = pytester.runpytest("-rs", RTX4090)
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [1] test_requires_vram_decimal_gb_passes_on_a_24gb_card.py:4: "
            "requires_vram 24GiB: needs 25.8 GB VRAM; have 25.8 GB VRAM "
            "(1x NVIDIA GeForce RTX 4090); short by 12.6 MB",
            "SKIPPED [[]1[]] *:6: requires_vram 40GB: needs 40.0 GB VRAM; have 25.8 GB VRAM "
            "(1x NVIDIA GeForce RTX 4090); short by 14.2 GB",
        ]
    )


def test_requires_vram_sums_gpus_unless_per_device(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_vram("40GB")
        def test_sum(): pass
        @pytest.mark.requires_vram("40GB", per_device=True)
        def test_one(): pass
        """
    )
    result = pytester.runpytest("-rs", "--llmfit-hardware=2x rtx-4090")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*requires_vram 40GB per GPU: needs 40.0 GB on one GPU*"])


def test_requires_ram_and_gpu(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_ram("100GB")
        def test_ram(): pass
        @pytest.mark.requires_gpu(2)
        def test_two(): pass
        @pytest.mark.requires_gpu(vendor="amd")
        def test_amd(): pass
        @pytest.mark.requires_gpu(name="4090", min_compute_capability="8.9")
        def test_ada(): pass
        @pytest.mark.requires_gpu(min_compute_capability=(9, 0))
        def test_hopper(): pass
        """
    )
    result = pytester.runpytest("-rs", RTX4090)
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines_random(
        [
            "*requires_ram 100GB: needs 100.0 GB RAM; have 64.0 GB; short by 36.0 GB",
            "*requires_gpu 2x: found 1 matching of 1 (NVIDIA GeForce RTX 4090)",
            "*requires_gpu 1x amd: found 0 matching of 1 (NVIDIA GeForce RTX 4090)",
            "*requires_gpu 1x cc>=9.0: found 0 matching of 1 (NVIDIA GeForce RTX 4090)",
        ]
    )


def test_requires_model_seed_case_reason(pytester: pytest.Pytester, models: None) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192)
        def test_405b(): pass
        @requires_model("llama-8b-q4_k_m.gguf", n_ctx=8192)
        def test_8b(): pass
        """
    )
    result = pytester.runpytest("-rs", RTX4090)
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *:2: requires_model llama-405b-q3_k_m.gguf @8192: needs 200.1 GB; "
            "have 25.8 GB VRAM (1x NVIDIA GeForce RTX 4090) + 64.0 GB RAM; short by 114.7 GB; "
            "fits as IQ1_S with a q8_0 KV cache at n_ctx 2048 or on 1x b300"
        ]
    )


@pytest.mark.parametrize(
    ("action", "outcome"),
    [("run", "passed"), ("benchmark", "passed"), ("skip", "skipped"), ("xfail", "xfailed")],
)
def test_on_offload_actions_for_a_partial_offload(
    pytester: pytest.Pytester, models: None, action: str, outcome: str
) -> None:
    pytester.makepyfile(
        f"""
        from pytest_llmfit import requires_model
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192, on_offload="{action}")
        def test_405b(): pass
        """
    )
    result = pytester.runpytest(
        "--llmfit-hardware=rtx-4090, ram=256GB", "--llmfit-report-json=r.json"
    )
    result.assert_outcomes(**{outcome: 1})
    record = json.loads((pytester.path / "r.json").read_text())["tests"][0]
    assert record["decision"] == action
    assert record["plan"]["mode"] == "partial"
    assert 13 <= record["plan"]["n_gpu_layers"] <= 15
    assert "partial offload" in record["reason"]


@pytest.mark.parametrize(
    ("args", "outcome"),
    [
        (["--llmfit-on-nofit=xfail"], "xfailed"),
        (["--llmfit-on-nofit=fail"], "failed"),
        (["--llmfit-strict"], "failed"),
        ([], "skipped"),
    ],
)
def test_on_nofit_from_the_command_line(
    pytester: pytest.Pytester, args: list[str], outcome: str
) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_vram("100GB")
        def test_big(): pass
        """
    )
    result = pytester.runpytest(RTX4090, *args)
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*requires_vram 100GB: needs 100.0 GB VRAM*short by*"])
        result.stdout.no_fnmatch_line("*Traceback*")


def test_precedence_marker_over_cli_over_env_over_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nllmfit_on_nofit = fail\n")
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_vram("100GB")
        def test_default(): pass
        @pytest.mark.requires_vram("100GB", on_nofit="skip")
        def test_marker(): pass
        """
    )
    # ini alone: fail
    pytester.runpytest(RTX4090).assert_outcomes(failed=1, skipped=1)
    # environment beats ini
    monkeypatch.setenv("LLMFIT_ON_NOFIT", "xfail")
    pytester.runpytest(RTX4090).assert_outcomes(xfailed=1, skipped=1)
    # command line beats environment; the marker beats everything
    pytester.runpytest(RTX4090, "--llmfit-on-nofit=fail").assert_outcomes(failed=1, skipped=1)


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (
            ["--llmfit-headroom=16 gigs"],
            "*pytest-llmfit: '16 gigs' is not a size like '24GB'*(command line --llmfit-headroom)",
        ),
        (
            ["--llmfit-on-nofit=sometimes"],
            "*pytest-llmfit: 'sometimes' is not one of skip, xfail, fail "
            "(command line --llmfit-on-nofit)",
        ),
        (
            ["--llmfit-hardware=rtx-4900"],
            "*pytest-llmfit: 'rtx-4900' is not*did you mean*'rtx-4090'*",
        ),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(
    pytester: pytest.Pytester, setup: list[str], expected: str
) -> None:
    pytester.makepyfile("import pytest\n@pytest.mark.requires_ram('1GB')\ndef test_x(): pass\n")
    result = pytester.runpytest(*setup)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    result.stderr.no_fnmatch_line("*Traceback*")


def test_bad_environment_and_ini_values_name_their_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMFIT_BASIS", "maybe")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'maybe' is not one of free, total (environment LLMFIT_BASIS)"])
    monkeypatch.delenv("LLMFIT_BASIS")
    pytester.makeini("[pytest]\nllmfit_strict = perhaps\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*'perhaps' is not a yes/no value*(ini llmfit_strict)"])


def test_bad_marker_arguments_error_that_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_vram("16 gigs")
        def test_size(): pass
        @pytest.mark.requires_vram("16GB", per_gpu=True)
        def test_kwarg(): pass
        @pytest.mark.requires_model("missing.gguf")
        def test_missing(): pass
        @pytest.mark.requires_model("notgguf.gguf")
        def test_not_gguf(): pass
        def test_unrelated(): pass
        """
    )
    (pytester.path / "notgguf.gguf").write_bytes(b"not a model at all" * 10)
    result = pytester.runpytest(RTX4090)
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines_random(
        [
            "pytest-llmfit: '16 gigs' is not a size like*(marker requires_vram on "
            "test_bad_marker_arguments_error_that_test_only.py::test_size)",
            "pytest-llmfit: 'per_gpu' is not an argument of requires_vram (on_nofit, "
            "per_device, size)*",
            "pytest-llmfit: *missing.gguf: no such file*",
            "pytest-llmfit: *notgguf.gguf: *",
        ]
    )


def test_expect_fails_the_session_when_the_host_differs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass\n")
    result = pytester.runpytest(RTX4090, "--llmfit-expect=2x h100")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*this host is not '2x h100' (command line --llmfit-expect): expected 2 GPU(s)*"]
    )
    ok = pytester.runpytest("--llmfit-hardware=2x h100", "--llmfit-expect=2x h100-sxm")
    ok.assert_outcomes(passed=1)


def test_report_lists_decisions_at_collection(pytester: pytest.Pytester, models: None) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model, requires_vram
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192)
        def test_405b(): pass
        @requires_vram("8GB")
        def test_small(): pass
        def test_plain(): pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", RTX4090, "--llmfit-report")
    result.stdout.fnmatch_lines(
        [
            "*llmfit report*",
            "*1x NVIDIA GeForce RTX 4090*",
            "skip *none 14/127*test_405b",
            "run *test_small",
            "2 tests: 1 run, 1 skip*",
        ]
    )


def test_json_report_and_junit_properties(pytester: pytest.Pytester, models: None) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-8b-q4_k_m.gguf")
        def test_8b(): pass
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192)
        def test_405b(): pass
        """
    )
    result = pytester.runpytest(
        RTX4090,
        "--llmfit-report",
        "--llmfit-report-json=r.json",
        "--junitxml=j.xml",
        "--llmfit-report-md=r.md",
    )
    result.assert_outcomes(passed=1, skipped=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert report["schema_version"] == 1
    assert report["host"]["simulated"] is True
    by_id = {t["nodeid"].split("::")[1]: t for t in report["tests"]}
    assert by_id["test_8b"]["decision"] == "run" and by_id["test_8b"]["outcome"] == "passed"
    assert by_id["test_8b"]["plan"]["mode"] == "gpu"
    assert by_id["test_405b"]["decision"] == "skip"
    assert by_id["test_405b"]["outcome"] == "skipped"
    junit = (pytester.path / "j.xml").read_text()
    assert '<property name="llmfit_decision" value="run"' in junit
    assert 'name="llmfit_plan" value="gpu 33/33"' in junit
    markdown = (pytester.path / "r.md").read_text()
    assert "| `test_json_report_and_junit_properties.py::test_8b` |" in markdown
    assert "| run | gpu 33/33 |" in markdown


def test_github_step_summary_gets_the_markdown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    pytester.makepyfile("import pytest\n@pytest.mark.requires_ram('1GB')\ndef test_x(): pass\n")
    pytester.runpytest(RTX4090, "--llmfit-report").assert_outcomes(passed=1)
    assert "requires_ram 1GB" in summary.read_text()


def test_fixtures_expose_the_session_host_and_engine(
    pytester: pytest.Pytester, models: None
) -> None:
    pytester.makepyfile(
        """
        def test_engine(llmfit_host, llmfit):
            assert llmfit_host.simulated and llmfit_host.gpus[0].name.endswith("RTX 4090")
            assert llmfit.fits("24GB") and not llmfit.fits("30GB")
            p = llmfit.plan("llama-405b-q3_k_m.gguf", n_ctx=8192)
            assert p.mode == "none" and 13 <= p.n_gpu_layers <= 15
        """
    )
    pytester.runpytest(RTX4090).assert_outcomes(passed=1)


def test_nothing_is_probed_when_no_test_uses_a_marker(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = ("pytest_llmfit.hardware.probes", "pynvml", "llama_cpp")
            loaded = [m for m in heavy if m in sys.modules]
            print("LOADED", loaded)
        """
    )
    pytester.makepyfile("def test_a(): pass\ndef test_b(): pass\n")
    result = pytester.runpytest_subprocess("-s")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*LOADED []"])


def test_xdist_workers_share_one_host_and_one_report(
    pytester: pytest.Pytester, models: None
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    pytester.makepyfile(
        """
        import pytest
        from pytest_llmfit import requires_model, requires_vram
        @pytest.mark.parametrize("i", range(6))
        @requires_vram("8GB")
        def test_small(i): pass
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192)
        def test_405b(): pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", RTX4090, "--llmfit-report-json=r.json", "-p", "xdist"
    )
    result.assert_outcomes(passed=6, skipped=1)
    report = json.loads((pytester.path / "r.json").read_text())
    assert len(report["tests"]) == 7
    assert {t["worker"] for t in report["tests"]} == {"gw0", "gw1"}
    assert all(t["outcome"] for t in report["tests"])


def test_xdist_ledger_never_oversubscribes_one_gpu(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    pytester.makepyfile(
        """
        import json, os, time
        import pytest
        @pytest.mark.parametrize("i", range(6))
        @pytest.mark.requires_vram("16GB")
        def test_big(i):
            start = time.time()
            time.sleep(0.3)
            with open(f"span-{i}.json", "w") as f:
                json.dump([start, time.time(), os.environ["PYTEST_XDIST_WORKER"]], f)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", RTX4090)
    result.assert_outcomes(passed=6)
    spans = sorted(json.loads(p.read_text()) for p in pytester.path.glob("span-*.json"))
    assert len({worker for _, _, worker in spans}) == 2  # both workers took tests
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert start >= end - 0.01, "two 16 GB tests held a 25.8 GB GPU at once"


def test_xdist_worker_killed_mid_test_does_not_leak_its_reservation(
    pytester: pytest.Pytester,
) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    pytester.makepyfile(
        """
        import os, signal
        import pytest
        @pytest.mark.requires_vram("16GB")
        def test_a_crashes():
            os.kill(os.getpid(), signal.SIGKILL)
        @pytest.mark.parametrize("i", range(3))
        @pytest.mark.requires_vram("16GB")
        def test_b_after(i):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", RTX4090, timeout=120)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*worker 'gw*' crashed while running*test_a_crashes*"])


FAKE_GPU_PROBE = """
from pytest_llmfit.hardware.types import Gpu
from pytest_llmfit.hookspecs import hookimpl
from pytest_llmfit.hardware.probes import ProbeResult

@hookimpl
def pytest_llmfit_probe(env):
    return ProbeResult(gpus=tuple(
        Gpu(vendor="nvidia", name="NVIDIA Fake 16GB", index=i, cuda_index=i,
            uuid=f"GPU-fake-{i}", memory_total=16 * 2**30, memory_free=16 * 2**30,
            bandwidth=500e9, compute_capability=(8, 6))
        for i in range(2)
    ))
"""


def test_a_conftest_probe_takes_part_in_detection(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_GPU_PROBE)
    pytester.makepyfile(
        """
        import pytest
        @pytest.mark.requires_gpu(2, name="Fake", min_compute_capability="8.6")
        def test_two(llmfit_host):
            assert not llmfit_host.simulated
        @pytest.mark.requires_vram("30GB")
        def test_sum(): pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_pin_gpus_gives_each_worker_its_own_gpu(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is a dev dependency")
    pytester.makeconftest(FAKE_GPU_PROBE)
    pytester.makepyfile(
        """
        import os
        import pytest
        @pytest.mark.parametrize("i", range(4))
        def test_env(i):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-fake-" + worker[2:]
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-p", "xdist", "--llmfit-pin-gpus")
    result.assert_outcomes(passed=4)


def test_gpu_shares_round_robin_and_sharing() -> None:
    from pytest_llmfit.plugin.xdist import gpu_shares

    assert gpu_shares(["a", "b", "c", "d"], 2) == {"gw0": ["a", "c"], "gw1": ["b", "d"]}
    assert gpu_shares(["a", "b"], 3) == {"gw0": ["a"], "gw1": ["b"], "gw2": ["a"]}
    assert gpu_shares([], 2) == {"gw0": [], "gw1": []}


def test_measured_speed_reaches_the_report(pytester: pytest.Pytester, models: None) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192, on_offload="benchmark")
        def test_bench(llmfit_record):
            llmfit_record(tokens_per_second=0.31, note="measured by hand")
        """
    )
    result = pytester.runpytest(
        "--llmfit-hardware=rtx-4090, ram=256GB", "--llmfit-report-json=r.json"
    )
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "r.json").read_text())["tests"]
    assert record["decision"] == "benchmark"
    assert record["measured_tokens_per_second"] == 0.31
    assert record["reason"].endswith("(on_offload=benchmark, marker)")


def test_importing_the_package_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_llmfit, pytest_llmfit.twins;"
        "print(sorted(m for m in ('pytest', 'llama_cpp', 'pynvml', 'numpy', 'gguf', "
        "'pytest_llmfit.hardware.probes', 'pytest_llmfit.engine.estimate') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
