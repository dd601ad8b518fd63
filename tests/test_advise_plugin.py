"""A skipped model test says what would make it run: in its reason, and in the JSON and
Markdown reports a CI summary is made of."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

WAYS = "fits as IQ1_S with a q8_0 KV cache at n_ctx 2048 or on 1x b300"


def test_skip_reason_and_reports_carry_the_ways_out(
    pytester: pytest.Pytester, stub_405b: pathlib.Path
) -> None:
    shutil.copy(stub_405b, pytester.path / "llama-405b-q3_k_m.gguf")
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192)
        def test_405b(): pass
        @requires_model("llama-405b-q3_k_m.gguf", n_ctx=8192, on_nofit="xfail")
        def test_405b_again(): pass
        """
    )
    result = pytester.runpytest(
        "-rs",
        "--llmfit-hardware=rtx-4090, ram=64GB",
        "--llmfit-report-json=report.json",
        "--llmfit-report-md=report.md",
    )
    result.assert_outcomes(skipped=1, xfailed=1)
    result.stdout.fnmatch_lines([f"SKIPPED *short by 114.7 GB; {WAYS}"])
    report = json.loads((pytester.path / "report.json").read_text())
    records = {t["nodeid"].split("::")[-1]: t for t in report["tests"]}
    record = records["test_405b"]
    assert record["reason"].endswith(WAYS)
    alternatives = record["plan"]["alternatives"]
    assert 1 <= len(alternatives) <= 5
    assert all(a["fits"] for a in alternatives)
    assert {"kind", "mode", "n_gpu_layers", "total_bytes", "tokens_per_second"} <= set(
        alternatives[0]
    )
    # The same question twice is advised once (the session's cache): the same answer.
    assert records["test_405b_again"]["plan"]["alternatives"] == alternatives
    assert WAYS in (pytester.path / "report.md").read_text()
