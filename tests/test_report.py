"""Reports: the record's JSON form, golden files, Markdown and terminal lines, CI metadata,
merging a runner matrix and the ``merge`` command's exit codes and one-line errors.

Golden files live in tests/data/golden/; after an intended change, regenerate them with
``LLMFIT_UPDATE_GOLDEN=1 pytest tests/test_report.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from pytest_llmfit import __version__
from pytest_llmfit.errors import LlmfitError
from pytest_llmfit.hardware.specs import host_from_spec
from pytest_llmfit.hardware.types import Host
from pytest_llmfit.report import (
    DECISIONS,
    MERGE_KIND,
    OUTCOMES,
    SCHEMA_VERSION,
    ReportError,
    TestRecord,
    append_step_summary,
    build_report,
    ci_metadata,
    dumps,
    load_report,
    merge_main,
    merge_reports,
    plan_text,
    render_markdown,
    render_merge_markdown,
    render_merge_terminal,
    render_terminal,
    runner_label,
    speed_text,
    write_json,
)

GOLDEN = pathlib.Path(__file__).parent / "data" / "golden"
FROZEN = "2025-01-02T03:04:05Z"
VERSION = "0.1.0"
HOST_4090 = "rtx-4090, ram=64GB"


def check_golden(name: str, text: str) -> None:
    """``text`` equals tests/data/golden/NAME byte for byte (LLMFIT_UPDATE_GOLDEN=1 rewrites)."""
    path = GOLDEN / name
    if os.environ.get("LLMFIT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with LLMFIT_UPDATE_GOLDEN=1"
    assert path.read_bytes() == text.encode("utf-8"), (
        f"{name} differs from the golden file; if intended, rerun with LLMFIT_UPDATE_GOLDEN=1"
    )


GPU_8B = {"mode": "gpu", "n_gpu_layers": 33, "n_layers_total": 33, "tokens_per_second": 112.4}
CPU_8B = {"mode": "cpu", "n_gpu_layers": 0, "n_layers_total": 33, "tokens_per_second": 8.3}
NONE_405B = {"mode": "none", "n_gpu_layers": 14, "n_layers_total": 127, "tokens_per_second": 0.42}

CHAT = TestRecord(
    nodeid="tests/test_chat.py::test_8b_chat",
    markers=(
        {
            "name": "requires_model",
            "args": ["llama-3.1-8b-q4_k_m.gguf"],
            "kwargs": {"n_ctx": 8192},
        },
    ),
    requirement="requires_model llama-3.1-8b-q4_k_m.gguf @8192",
    need_bytes=6_100_000_000,
    have_bytes=25_200_000_000,
    decision="run",
    fits=True,
    reason="needs 6.1 GB on GPU, 25.2 GB free: all 33 layers on NVIDIA GeForce RTX 4090",
    plan=GPU_8B,
    outcome="passed",
    duration_s=3.25,
    predicted_tokens_per_second=112.4,
    measured_tokens_per_second=98.1,
    worker="gw0",
)
BIG = TestRecord(
    nodeid="tests/test_big.py::test_405b[q3_k_m]",
    markers=(
        {
            "name": "requires_model",
            "args": ["llama-3.1-405b-q3_k_m.gguf"],
            "kwargs": {"n_ctx": 8192},
        },
    ),
    requirement="requires_model llama-3.1-405b-q3_k_m.gguf @8192",
    need_bytes=197_300_000_000,
    have_bytes=89_800_000_000,
    decision="skip",
    fits=False,
    reason="needs 197.3 GB, have 25.8 GB VRAM + 64.0 GB RAM: short by 107.5 GB",
    plan=NONE_405B,
    outcome="skipped",
    duration_s=0.0,
    predicted_tokens_per_second=0.42,
)
VRAM = TestRecord(
    nodeid="tests/test_vram.py::test_needs_80gb",
    markers=({"name": "requires_vram", "args": ["80GB"], "kwargs": {}},),
    requirement="requires_vram 80GB",
    need_bytes=80_000_000_000,
    have_bytes=25_757_220_864,
    decision="xfail",
    fits=False,
    reason="VRAM 25.8 GB < 80.0 GB | try a100",
    outcome="xfailed",
)
CUDA = TestRecord(
    nodeid="tests/test_cuda.py::test_flash_attn",
    markers=({"name": "requires_gpu", "args": [], "kwargs": {"compute": "8.0"}},),
    requirement="requires_gpu compute>=8.0",
    decision="run",
    fits=True,
    reason="compute capability 8.0 >= 8.0",
    outcome="passed",
)


def small_report(**changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"ci": {}, "generated_at": FROZEN, "version": VERSION}
    options.update(changes)
    return build_report([CHAT, BIG, VRAM], host_from_spec(HOST_4090), **options)


# --------------------------------------------------------------------------- records


def test_record_round_trips_through_its_dict() -> None:
    data = CHAT.to_dict()
    assert list(data) == [
        "nodeid",
        "markers",
        "requirement",
        "need_bytes",
        "have_bytes",
        "decision",
        "fits",
        "reason",
        "plan",
        "outcome",
        "duration_s",
        "predicted_tokens_per_second",
        "measured_tokens_per_second",
        "predicted_prompt_tokens_per_second",
        "measured_prompt_tokens_per_second",
        "worker",
    ]
    assert json.loads(json.dumps(data)) == data
    assert TestRecord.from_dict(data) == CHAT


def test_record_keeps_keys_a_newer_plugin_added() -> None:
    data = {**VRAM.to_dict(), "group": "gpu0"}
    record = TestRecord.from_dict(data)
    assert record.extra == {"group": "gpu0"}
    assert record.to_dict() == data


@pytest.mark.parametrize(
    ("decision", "outcome", "ran"),
    [
        ("run", "passed", True),
        ("run", "failed", True),
        ("run", "xfailed", True),  # the test's own xfail marker, executed
        ("benchmark", "passed", True),
        ("xfail", "xpassed", True),
        ("run", "error", False),
        ("run", None, False),
        ("skip", "skipped", False),
        ("xfail", "xfailed", False),  # llmfit's verdict: the body did not run
        ("fail", "failed", False),  # llmfit failed it for not fitting
    ],
)
def test_ran_means_the_body_executed(decision: str, outcome: str | None, ran: bool) -> None:
    record = replace(CHAT, decision=decision, outcome=outcome)
    assert record.ran is ran
    assert record.cell == (outcome or decision)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"decision": "maybe"}, "decision 'maybe' is not one of run, skip, xfail, fail, benchmark"),
        ({"outcome": "exploded"}, "outcome 'exploded' is not one of passed, failed, skipped"),
        ({"fits": 1}, "fits is an integer, expected true/false"),
        ({"need_bytes": "6GB"}, "need_bytes is a string, expected an integer or null"),
        ({"need_bytes": True}, "need_bytes is true/false, expected an integer or null"),
        ({"measured_tokens_per_second": "fast"}, "measured_tokens_per_second is a string"),
        ({"plan": {"mode": "gpu"}}, "plan.n_gpu_layers is missing, expected an integer"),
        (
            {"plan": {**GPU_8B, "n_layers_total": 33.0}},
            "plan.n_layers_total is a number, expected an integer",
        ),
        ({"plan": {"mode": "moon"}}, "plan.mode 'moon' is not one of gpu, partial, cpu, none"),
        ({"markers": [{"args": []}]}, "markers[0] is not an object with a name"),
        ({"markers": "requires_model"}, "markers is a string, expected a list"),
    ],
)
def test_bad_record_fields_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ReportError) as caught:
        TestRecord.from_dict({**CHAT.to_dict(), **change}, source="r.json: tests[0]")
    text = str(caught.value)
    assert text.startswith("r.json: tests[0] (tests/test_chat.py::test_8b_chat): ")
    assert message in text
    assert "\n" not in text


def test_missing_record_key_is_named() -> None:
    data = CHAT.to_dict()
    del data["reason"]
    with pytest.raises(ReportError, match=r"\(tests/test_chat.py::test_8b_chat\): missing key"):
        TestRecord.from_dict(data)


# --------------------------------------------------------------------------- the report


def test_report_json_matches_golden() -> None:
    report = build_report(
        [VRAM, CHAT.to_dict(), BIG],  # out of order, and one as a worker's dict
        host_from_spec(HOST_4090),
        ci={},
        generated_at=FROZEN,
        version=VERSION,
    )
    check_golden("report.json", dumps(report))


def test_report_shape_and_summary() -> None:
    report = small_report()
    assert list(report) == [
        "schema_version",
        "generated_at",
        "pytest_llmfit_version",
        "runner",
        "host",
        "ci",
        "tests",
        "summary",
    ]
    assert report["schema_version"] == SCHEMA_VERSION == 1
    assert report["runner"] == "local"
    assert report["host"]["description"] == (
        "1x NVIDIA GeForce RTX 4090 25.8 GB 1008 GB/s | RAM 64.0 GB 60 GB/s | simulated"
    )
    assert [t["nodeid"] for t in report["tests"]] == [BIG.nodeid, CHAT.nodeid, VRAM.nodeid]
    summary = report["summary"]
    assert summary["total"] == 3
    assert summary["fits"] == 1
    assert summary["ran"] == 1
    assert list(summary["decisions"]) == list(DECISIONS)
    assert summary["decisions"] == {
        "run": 1,
        "skip": 1,
        "xfail": 1,
        "fail": 0,
        "benchmark": 0,
        "error": 0,
    }
    assert list(summary["outcomes"]) == [*OUTCOMES, "none"]
    assert summary["outcomes"]["passed"] == summary["outcomes"]["xfailed"] == 1
    assert summary["outcomes"]["none"] == 0


def test_report_accepts_a_host_dict_as_sent_to_workers() -> None:
    host = host_from_spec(HOST_4090)
    from_dict = build_report([CHAT], host.to_dict(), ci={}, generated_at=FROZEN, version="x")
    from_obj = build_report([CHAT], host, ci={}, generated_at=FROZEN, version="x")
    assert from_dict == from_obj
    assert Host.from_dict(from_dict["host"]) == host  # "description" is ignored on the way back


def test_report_defaults_come_from_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_JOB", "gpu-tests")
    monkeypatch.setenv("LLMFIT_RUNNER_LABEL", "rtx-4090")
    report = build_report([], host_from_spec(HOST_4090))
    assert report["pytest_llmfit_version"] == __version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["generated_at"])
    assert report["runner"] == "rtx-4090"
    assert report["ci"]["job"] == "gpu-tests"
    assert report["summary"]["total"] == 0


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2025, 1, 2, 3, 4, 5, 999), "2025-01-02T03:04:05Z"),  # naive: taken as UTC
        (
            datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2025-01-02T03:04:05Z",
        ),
        ("2025-01-02T03:04:05Z", "2025-01-02T03:04:05Z"),
    ],
)
def test_generated_at_is_utc_iso8601(moment: datetime | str, text: str) -> None:
    assert small_report(generated_at=moment)["generated_at"] == text


def test_write_json_is_atomic_sorted_and_loads_back(tmp_path: pathlib.Path) -> None:
    report = small_report()
    path = tmp_path / "reports" / "llmfit.json"
    path.parent.mkdir()
    path.write_text("old, half-written junk")
    write_json(report, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == json.dumps(report, sort_keys=True, indent=2) + "\n"
    assert os.listdir(path.parent) == ["llmfit.json"]  # no temporary file left behind
    plain = path.parent / "plain.txt"
    plain.write_text("")
    assert path.stat().st_mode == plain.stat().st_mode  # umask applied, not mkstemp's 0600
    assert load_report(path) == report
    write_json(report, tmp_path / "new" / "dir" / "r.json")  # parents are created
    assert load_report(tmp_path / "new" / "dir" / "r.json") == report


def test_write_json_failure_is_one_line(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReportError, match=r"^.*file/r\.json: cannot write: .+$"):
        write_json(small_report(), blocker / "r.json")


def _write(tmp_path: pathlib.Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def _report_text(**changes: Any) -> str:
    report = small_report()
    for key, value in changes.items():
        if value is None:
            del report[key]
        else:
            report[key] = value
    return json.dumps(report)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "not JSON (Expecting value at line 1 column 1)"),
        ("<html>", "not JSON (Expecting value at line 1 column 1)"),
        ("[1, 2]", "is a list, expected a pytest-llmfit report object"),
        ('{"tests": []}', "missing key 'schema_version': not a pytest-llmfit report"),
        (_report_text(schema_version=0), "schema_version 0 is not supported, expected 1"),
        (
            _report_text(schema_version=2),
            "schema_version 2 is not supported, expected 1 "
            "(written by a newer pytest-llmfit; upgrade to read it)",
        ),
        (_report_text(schema_version="1"), "schema_version '1' is not supported, expected 1"),
        (_report_text(host=None, tests=None), "missing keys host, tests"),
        (_report_text(tests={}), "tests is an object, expected a list"),
        (
            _report_text(tests=[{**BIG.to_dict(), "decision": "maybe"}]),
            "tests[0] (tests/test_big.py::test_405b[q3_k_m]): decision 'maybe' is not one of",
        ),
        (
            json.dumps({"kind": MERGE_KIND, "schema_version": 1}),
            "is a merged report; merge the per-runner reports instead",
        ),
    ],
)
def test_load_report_errors_name_the_file(
    tmp_path: pathlib.Path, content: str, reason: str
) -> None:
    path = _write(tmp_path, "r.json", content)
    with pytest.raises(ReportError) as caught:
        load_report(path)
    assert isinstance(caught.value, LlmfitError)
    assert str(caught.value).startswith(f"{path}: {reason}")
    assert "\n" not in str(caught.value)


def test_load_report_missing_file_and_directory(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ReportError, match=r"nope\.json: no such file$"):
        load_report(tmp_path / "nope.json")
    with pytest.raises(ReportError, match=r": is a directory, not a report file$"):
        load_report(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ReportError, match=r"b\.json: not JSON \(not UTF-8 text\)$"):
        load_report(binary)


# --------------------------------------------------------------------------- rendering


def test_plan_and_speed_text() -> None:
    assert plan_text(None) == "-"
    assert plan_text(GPU_8B) == "gpu 33/33"
    assert plan_text({"mode": "partial", "n_gpu_layers": 14, "n_layers_total": 127}) == (
        "partial 14/127"
    )
    assert plan_text({"mode": "cpu"}) == "cpu"
    assert [speed_text(v) for v in (None, 0.0421, 0.42, 7.94, 112.36)] == [
        "-",
        "0.04",
        "0.42",
        "7.9",
        "112.4",
    ]


def test_render_markdown_exact() -> None:
    assert render_markdown(small_report()).splitlines() == [
        "## pytest-llmfit: local",
        "",
        "**Host:** 1x NVIDIA GeForce RTX 4090 25.8 GB 1008 GB/s \\| RAM 64.0 GB 60 GB/s"
        " \\| simulated  ",
        "**Generated:** 2025-01-02T03:04:05Z by pytest-llmfit 0.1.0",
        "",
        "| test | requirement | decision | plan | predicted tok/s | measured tok/s"
        " | prompt predicted tok/s | prompt measured tok/s | outcome | reason |",
        "|---|---|---|---|---:|---:|---:|---:|---|---|",
        "| `tests/test_big.py::test_405b[q3_k_m]` | requires_model llama-3.1-405b-q3_k_m.gguf"
        " @8192 | skip | none 14/127 | 0.42 | - | - | - | skipped | needs 197.3 GB, have"
        " 25.8 GB VRAM + 64.0 GB RAM: short by 107.5 GB |",
        "| `tests/test_chat.py::test_8b_chat` | requires_model llama-3.1-8b-q4_k_m.gguf @8192"
        " | run | gpu 33/33 | 112.4 | 98.1 | - | - | passed | needs 6.1 GB on GPU, 25.2 GB"
        " free: all 33 layers on NVIDIA GeForce RTX 4090 |",
        "| `tests/test_vram.py::test_needs_80gb` | requires_vram 80GB | xfail | - | - | - |"
        " - | - | xfailed | VRAM 25.8 GB &lt; 80.0 GB \\| try a100 |",
        "",
        "3 tests: 1 run, 1 skip, 1 xfail \\| 1 passed, 1 skipped, 1 xfailed",
    ]


def test_markdown_escapes_pipes_newlines_and_html() -> None:
    odd = replace(
        CHAT,
        nodeid="tests/test_p.py::test_x[a|b]",
        requirement="requires_model <m>.gguf",
        reason="line one\nline | two",
    )
    text = render_markdown(build_report([odd], Host.from_dict({}), ci={}, generated_at=FROZEN))
    row = next(line for line in text.splitlines() if "test_x" in line)
    assert row.startswith("| `tests/test_p.py::test_x[a\\|b]` | requires_model &lt;m>.gguf | ")
    assert row.endswith(" | line one line \\| two |")
    assert row.count(" | ") == 9  # ten cells, none split by the pipes inside


def test_markdown_links_the_ci_run_and_handles_no_tests() -> None:
    ci = {
        "provider": "github-actions",
        "job": "gpu",
        "url": "https://github.com/o/r/actions/runs/9",
    }
    lines = render_markdown(
        build_report([], host_from_spec(HOST_4090), ci=ci, generated_at=FROZEN, version="1")
    ).splitlines()
    assert lines[3] == (
        "**Generated:** 2025-01-02T03:04:05Z by pytest-llmfit 1 in "
        "[gpu](https://github.com/o/r/actions/runs/9)"
    )
    assert lines[-1] == "No test used an llmfit marker."


def test_append_step_summary(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "summary.md"
    target.write_text("# earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(target)}
    assert append_step_summary("## one", env) is True
    assert append_step_summary("## two\n", env) is True
    assert target.read_text() == "# earlier step\n## one\n\n## two\n\n"
    assert append_step_summary("## three", {}) is False
    assert append_step_summary("## three", {"GITHUB_STEP_SUMMARY": ""}) is False
    with pytest.raises(ReportError, match=r"cannot append the step summary"):
        append_step_summary("x", {"GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "dir.md")})


def test_render_terminal_exact() -> None:
    assert render_terminal(small_report()) == [
        "host: 1x NVIDIA GeForce RTX 4090 25.8 GB 1008 GB/s | RAM 64.0 GB 60 GB/s | simulated"
        " | runner local",
        "decision  plan         predicted  measured  outcome  test  requirement",
        "skip      none 14/127       0.42         -  skipped  tests/test_big.py::test_405b[q3_k_m]",
        "run       gpu 33/33        112.4      98.1  passed   tests/test_chat.py::test_8b_chat"
        "  requires_m...",
        # too little room left for a useful piece of the requirement: none is shown
        "xfail     -                    -         -  xfailed  tests/test_vram.py::test_needs_80gb",
        "3 tests: 1 run, 1 skip, 1 xfail | 1 passed, 1 skipped, 1 xfailed",
    ]


def test_render_terminal_wide_shows_requirements_whole() -> None:
    lines = render_terminal(small_report(), width=160)
    assert lines[2].endswith(
        "skipped  tests/test_big.py::test_405b[q3_k_m]  requires_model llama-3.1-405b-q3_k_m.gguf"
        " @8192"
    )


def test_render_terminal_80_columns_keeps_test_names() -> None:
    lines = render_terminal(small_report(), width=80)
    assert all(len(line) <= 80 for line in lines)
    assert lines[:2] == [
        "host: 1x NVIDIA GeForce RTX 4090 25.8 GB 1008 GB/s | RAM 64.0 GB 60 GB/s",
        "      simulated | runner local",
    ]
    assert lines[3:6] == [
        "skip      none 14/127       0.42         -  skipped  ...ig.py::test_405b[q3_k_m]",
        "run       gpu 33/33        112.4      98.1  passed   ...st_chat.py::test_8b_chat",
        "xfail     -                    -         -  xfailed  ...vram.py::test_needs_80gb",
    ]
    assert render_terminal(small_report(), width=80) == lines  # deterministic


def test_render_terminal_narrow_drops_columns_before_test_names() -> None:
    assert render_terminal(small_report(), width=70)[2:6] == [
        "decision  outcome  test  requirement",
        "skip      skipped  tests/test_big.py::test_405b[q3_k_m]  requires_m...",
        "run       passed   tests/test_chat.py::test_8b_chat  requires_model...",
        "xfail     xfailed  tests/test_vram.py::test_needs_80gb  requires_vr...",
    ]
    narrow = render_terminal(small_report(), width=50)
    assert narrow[4] == "skip      skipped  ...st_big.py::test_405b[q3_k_m]"
    assert narrow[-2:] == ["3 tests: 1 run, 1 skip, 1 xfail", "  1 passed, 1 skipped, 1 xfailed"]
    assert render_terminal(small_report(), width=10) == render_terminal(small_report(), width=40)


def test_render_terminal_without_tests() -> None:
    report = build_report([], Host.from_dict({}), ci={}, generated_at=FROZEN, version="1")
    assert render_terminal(report) == [
        "host: no GPU (1 CPU cores) | RAM 0 B | detected | runner local",
        "no test used an llmfit marker",
    ]


# --------------------------------------------------------------------------- CI metadata


def test_ci_metadata_github_actions() -> None:
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_JOB": "gpu-tests",
        "GITHUB_WORKFLOW": "CI",
        "RUNNER_NAME": "gpu-box-3",
        "RUNNER_OS": "Linux",
        "GITHUB_RUN_ID": "123",
        "GITHUB_RUN_ATTEMPT": "2",
        "GITHUB_REPOSITORY": "acme/llm",
        "GITHUB_SHA": "abc123",
        "HOSTNAME": "secret-host",
    }
    assert ci_metadata(env) == {
        "provider": "github-actions",
        "job": "gpu-tests",
        "workflow": "CI",
        "runner_name": "gpu-box-3",
        "runner_os": "Linux",
        "run_id": "123",
        "run_attempt": "2",
        "repository": "acme/llm",
        "sha": "abc123",
        "url": "https://github.com/acme/llm/actions/runs/123",
        "runner": "gpu-tests @ gpu-box-3",
    }
    labelled = ci_metadata({**env, "LLMFIT_RUNNER_LABEL": "rtx-4090"})
    assert labelled["runner"] == labelled["label"] == "rtx-4090"


def test_ci_metadata_gitlab() -> None:
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_JOB_NAME": "test: [a100]",
        "CI_RUNNER_DESCRIPTION": "gpu runner",
        "CI_JOB_ID": "77",
    }
    assert ci_metadata(env) == {
        "provider": "gitlab-ci",
        "job": "test: [a100]",
        "runner_name": "gpu runner",
        "job_id": "77",
        "runner": "test: [a100] @ gpu runner",
    }


def test_ci_metadata_generic_and_none() -> None:
    assert ci_metadata({"CI": "1"}) == {"provider": "ci", "runner": "ci"}
    assert ci_metadata({"CI": "false", "HOME": "/root"}) == {}
    assert ci_metadata({}) == {}
    assert ci_metadata({"LLMFIT_RUNNER_LABEL": "laptop"}) == {
        "label": "laptop",
        "runner": "laptop",
    }
    assert runner_label({}) == "local"
    assert runner_label({"runner": "a100"}) == "a100"


# --------------------------------------------------------------------------- merge


def _runner_report(
    spec: str, label: str, results: dict[str, tuple[str, str | None, float | None]]
) -> dict[str, Any]:
    cpu = spec.startswith("cpu")
    found = []
    for record in (CHAT, BIG, VRAM, CUDA):
        if record.nodeid in results:
            decision, outcome, measured = results[record.nodeid]
            plan = CPU_8B if cpu and record is CHAT else record.plan
            found.append(
                replace(
                    record,
                    decision=decision,
                    outcome=outcome,
                    plan=plan,
                    measured_tokens_per_second=measured,
                )
            )
    ci = {"provider": "github-actions", "job": "test", "label": label, "runner": label}
    return build_report(found, host_from_spec(spec), ci=ci, generated_at=FROZEN, version=VERSION)


def matrix() -> list[dict[str, Any]]:
    """Three runners; the 405B test is skipped everywhere, the CUDA test only on the A100."""
    return [
        _runner_report(
            HOST_4090,
            "rtx-4090",
            {
                CHAT.nodeid: ("run", "passed", 98.1),
                BIG.nodeid: ("skip", "skipped", None),
                VRAM.nodeid: ("xfail", "xfailed", None),
            },
        ),
        _runner_report(
            "a100, ram=128GB",
            "a100",
            {
                CHAT.nodeid: ("run", "passed", 141.7),
                BIG.nodeid: ("skip", "skipped", None),
                VRAM.nodeid: ("run", "failed", None),
                CUDA.nodeid: ("run", "passed", None),
            },
        ),
        _runner_report(
            "cpu, ram=32GB",
            "cpu-only",
            {
                CHAT.nodeid: ("run", "passed", 7.9),
                BIG.nodeid: ("skip", "skipped", None),
                VRAM.nodeid: ("xfail", None, None),
            },
        ),
    ]


def test_merge_cells_and_ran_nowhere() -> None:
    merged = merge_reports(matrix())
    assert [r["runner"] for r in merged["runners"]] == ["rtx-4090", "a100", "cpu-only"]
    cells = {t["nodeid"]: t["cells"] for t in merged["tests"]}
    assert cells == {
        BIG.nodeid: {"rtx-4090": "skipped", "a100": "skipped", "cpu-only": "skipped"},
        CHAT.nodeid: {"rtx-4090": "passed", "a100": "passed", "cpu-only": "passed"},
        CUDA.nodeid: {"rtx-4090": None, "a100": "passed", "cpu-only": None},
        VRAM.nodeid: {"rtx-4090": "xfailed", "a100": "failed", "cpu-only": "xfail"},
    }
    assert merged["ran_nowhere"] == [BIG.nodeid]
    ran_on = {t["nodeid"]: t["ran_on"] for t in merged["tests"]}
    assert ran_on[VRAM.nodeid] == ["a100"]
    assert merged["summary"] == {"runners": 3, "tests": 4, "ran_nowhere": 1}


def test_merge_matches_golden() -> None:
    merged = merge_reports(matrix(), sources=["4090.json", "a100.json", "cpu.json"])
    check_golden("merge.json", dumps(merged))
    check_golden("merge.md", render_merge_markdown(merged))


def test_merge_terminal_exact() -> None:
    assert render_merge_terminal(merge_reports(matrix())).splitlines() == [
        "rtx-4090: 1x NVIDIA GeForce RTX 4090 25.8 GB 1008 GB/s | RAM 64.0 GB 60 GB/s | simulated",
        "a100: 1x NVIDIA A100-SXM4-80GB 85.9 GB 2039 GB/s | RAM 128.0 GB 200 GB/s | simulated",
        "cpu-only: no GPU (8 CPU cores) | RAM 32.0 GB 60 GB/s | simulated",
        "",
        "  test                                  rtx-4090           a100                cpu-only",
        "! tests/test_big.py::test_405b[q3_k_m]  skipped            skipped             skipped",
        "  tests/test_chat.py::test_8b_chat      passed 98.1 tok/s  passed 141.7 tok/s  passed"
        " 7.9 tok/s",
        "  tests/test_cuda.py::test_flash_attn   -                  passed              -",
        "  tests/test_vram.py::test_needs_80gb   xfailed            failed              xfail",
        "",
        "1 test ran on no runner:",
        "  tests/test_big.py::test_405b[q3_k_m]",
    ]


def test_merge_names_repeated_runners_apart_and_says_when_all_ran() -> None:
    one = _runner_report(HOST_4090, "gpu", {CHAT.nodeid: ("run", "passed", None)})
    merged = merge_reports([one, one, small_report()])
    assert [r["runner"] for r in merged["runners"]] == ["gpu", "gpu #2", "local"]
    assert merged["ran_nowhere"] == [BIG.nodeid, VRAM.nodeid]
    everywhere = merge_reports([one])
    assert everywhere["ran_nowhere"] == []
    assert render_merge_terminal(everywhere).endswith("\nevery test ran on at least one runner\n")
    assert "**Every test ran on at least one runner**" in render_merge_markdown(everywhere)


# --------------------------------------------------------------------------- merge_main


@pytest.fixture
def report_files(tmp_path: pathlib.Path) -> list[str]:
    paths = []
    for name, report in zip(("4090", "a100", "cpu"), matrix(), strict=True):
        path = tmp_path / f"{name}.json"
        write_json(report, path)
        paths.append(str(path))
    return paths


def test_merge_main_writes_outputs_and_prints_the_table(
    report_files: list[str],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    md, out = tmp_path / "m.md", tmp_path / "out" / "m.json"
    argv = [*report_files, "--md", str(md), "--json", str(out), "--step-summary"]
    assert merge_main(argv) == 0
    captured = capsys.readouterr()
    merged = merge_reports(matrix(), sources=report_files)
    assert captured.out == render_merge_terminal(merged)
    assert captured.err == ""
    assert md.read_text() == render_merge_markdown(merged)
    assert summary.read_text() == render_merge_markdown(merged) + "\n"
    assert json.loads(out.read_text()) == merged


def test_merge_main_fail_on_ran_nowhere(
    report_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert merge_main([*report_files, "--fail-on-ran-nowhere"]) == 1
    assert capsys.readouterr().err == (
        "pytest-llmfit merge: 1 test ran on no runner (--fail-on-ran-nowhere)\n"
    )
    assert merge_main([report_files[1], "--fail-on-ran-nowhere"]) == 1  # the 405B skips there too


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no such file"),
        ("not json", "not JSON (Expecting value at line 1 column 1)"),
        (json.dumps({"schema_version": 7}), "schema_version 7 is not supported, expected 1"),
    ],
)
def test_merge_main_bad_file_exits_2_with_one_line(
    report_files: list[str],
    tmp_path: pathlib.Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    reason: str,
) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert merge_main([report_files[0], str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"pytest-llmfit merge: error: {bad}: {reason}")
    assert "Traceback" not in captured.err


def test_merge_main_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert merge_main([]) == 2
    err = capsys.readouterr().err
    assert err == "pytest-llmfit merge: error: the following arguments are required: REPORT.json\n"
    assert merge_main(["--help"]) == 0
    assert "--fail-on-ran-nowhere" in capsys.readouterr().out
