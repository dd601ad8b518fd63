"""``requires_model(..., min_prompt_tokens_per_second=...)``: the predicted prompt speed
(512-token prompt) decides like the decode speed does, and the report carries it."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from pytest_llmfit.plugin.requirements import parse_requirement

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def model(pytester: pytest.Pytester, stub_8b: pathlib.Path) -> None:
    shutil.copy(stub_8b, pytester.path / "llama-8b-q4_k_m.gguf")


def test_a_prompt_speed_below_the_minimum_does_not_fit(
    pytester: pytest.Pytester, model: None
) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-8b-q4_k_m.gguf", n_ctx=8192, min_prompt_tokens_per_second=1000)
        def test_fast_prompts(): pass
        @requires_model("llama-8b-q4_k_m.gguf", n_ctx=8192, min_prompt_tokens_per_second=10)
        def test_slow_prompts_are_fine(): pass
        """
    )
    # a CPU-only host: tens of prompt tokens per second, not a thousand
    result = pytester.runpytest(
        "-rs", "--llmfit-hardware=cpu-only, ram=64GB, cpu=8", "--llmfit-report-json=r.json"
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] *:2: requires_model llama-8b-q4_k_m.gguf @8192: predicted prompt"
            " * tokens/s < required 1000 tokens/s (cpu, 0/33 layers on GPU)"
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    (fast,) = [t for t in report["tests"] if t["nodeid"].endswith("test_fast_prompts")]
    assert 0 < fast["predicted_prompt_tokens_per_second"] < 1000
    assert fast["plan"]["prompt_tokens_per_second"] == fast["predicted_prompt_tokens_per_second"]


def test_a_gpu_host_meets_the_minimum(pytester: pytest.Pytester, model: None) -> None:
    pytester.makepyfile(
        """
        from pytest_llmfit import requires_model
        @requires_model("llama-8b-q4_k_m.gguf", n_ctx=8192, min_prompt_tokens_per_second=1000)
        def test_fast_prompts(): pass
        """
    )
    result = pytester.runpytest("--llmfit-hardware=rtx-4090, ram=64GB")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("bad", [-1, 0, float("nan"), "fast", True])
def test_bad_minimums_are_one_line_errors(bad: object) -> None:
    from pytest_llmfit.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_requirement(
            "requires_model",
            ("m.gguf",),
            {"min_prompt_tokens_per_second": bad},
            source="marker requires_model on t.py::test_x",
            models_dir=None,
            root=".",
        )
    message = str(info.value)
    assert "a positive number of tokens per second" in message and "\n" not in message
