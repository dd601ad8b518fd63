"""What a test session decided and measured: records, JSON, Markdown, terminal rows, merge.

The pytest glue turns each test into a :class:`TestRecord` (a plain, JSON-ready dict crosses
to and from pytest-xdist workers) and calls :func:`build_report` once at the end. Everything
here is plain data in, plain data or text out, so a CI job can merge the reports of a runner
matrix without pytest::

    pytest-llmfit merge reports/*.json --md matrix.md --fail-on-ran-nowhere

A report file (``schema_version`` 1)::

    {"schema_version": 1, "generated_at": "2025-01-01T00:00:00Z",
     "pytest_llmfit_version": "0.1.0", "runner": "rtx-4090",
     "host": {...Host.to_dict(), "description": "1x NVIDIA GeForce RTX 4090 ..."},
     "ci": {"provider": "github-actions", "job": ..., "runner": "rtx-4090", ...},
     "tests": [TestRecord.to_dict(), ...],            # sorted by nodeid
     "summary": {"total": 3, "fits": 1, "ran": 1,
                 "decisions": {"run": 1, "skip": 1, ...},   # every decision, zeros included
                 "outcomes": {"passed": 1, ..., "none": 0}}}  # "none": no outcome recorded

A test *ran* on a runner when its body executed with the model in reach: llmfit decided
``run`` or ``benchmark`` (or ``xfail`` and it xpassed) and pytest reports passed, failed,
xpassed, or xfailed (a test's own xfail marker, executed). Skips, llmfit's own ``fail`` and
``xfail`` verdicts and setup errors are not runs. :func:`merge_reports` lists the tests that
ran on no runner: the coverage a matrix silently lost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

from ..errors import LlmfitError
from ..hardware.types import Host

SCHEMA_VERSION = 1
MERGE_KIND = "pytest-llmfit merge"

# "error": a marker with bad arguments (the test errors at setup with the one-line reason).
DECISIONS = ("run", "skip", "xfail", "fail", "benchmark", "error")
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
PLAN_MODES = ("gpu", "partial", "cpu", "none")
NO_OUTCOME = "none"  # the summary's key for records without an outcome
LOCAL_RUNNER = "local"

REPORT_KEYS = (
    "schema_version",
    "generated_at",
    "pytest_llmfit_version",
    "runner",
    "host",
    "ci",
    "tests",
    "summary",
)
_RAN_OUTCOMES = frozenset({"passed", "failed", "xpassed"})
_RUN_DECISIONS = frozenset({"run", "benchmark"})
_DASH = "-"


class ReportError(LlmfitError):
    """A report file is missing, unreadable, not JSON, or not a pytest-llmfit report.

    >>> str(ReportError("reports/a.json", "schema_version 2 is not supported"))
    'reports/a.json: schema_version 2 is not supported'
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def _fail(source: str, reason: str) -> NoReturn:
    raise ReportError(source, reason)


# --------------------------------------------------------------------------- records


def _expect(data: Mapping[str, Any], key: str, kinds: tuple[type, ...], source: str) -> Any:
    if key not in data:
        _fail(source, f"missing key {key!r}")
    value = data[key]
    allow_none = type(None) in kinds
    if value is None and allow_none:
        return None
    # bool is an int to Python, never to a report
    if isinstance(value, bool) and bool not in kinds:
        value_ok = False
    else:
        value_ok = isinstance(value, tuple(k for k in kinds if k is not type(None)))
    if not value_ok:
        names = " or ".join(
            dict.fromkeys("null" if k is type(None) else _JSON_NAMES[k] for k in kinds)
        )
        _fail(source, f"{key} is {_json_type(value)}, expected {names}")
    return value


_JSON_NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "a list",
    tuple: "a list",
    dict: "an object",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    for kind, name in _JSON_NAMES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _choice(value: Any, choices: Sequence[str], key: str, source: str) -> str:
    if value not in choices:
        _fail(source, f"{key} {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _number(data: Mapping[str, Any], key: str, source: str) -> float | None:
    value = _expect(data, key, (int, float, type(None)), source)
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        _fail(source, f"{key} is {value!r}, expected a finite number")
    return number


@dataclass(frozen=True)
class TestRecord:
    """One test as llmfit saw it: what it needs, what was decided, what happened.

    ``to_dict()`` is the JSON form (it crosses to xdist workers and into the report);
    ``from_dict()`` checks it and names the offending field.
    """

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    requirement: str  # one line: "requires_model llama-405b-q3_k_m.gguf @8192"
    decision: str  # one of DECISIONS
    fits: bool
    reason: str  # one line with numbers
    markers: tuple[Mapping[str, Any], ...] = ()  # {"name", "args", "kwargs"}, JSON-ready
    need_bytes: int | None = None
    have_bytes: int | None = None
    plan: Mapping[str, Any] | None = None  # mode, n_gpu_layers, n_layers_total, ...
    outcome: str | None = None  # one of OUTCOMES, None until pytest reports it
    duration_s: float | None = None
    predicted_tokens_per_second: float | None = None
    measured_tokens_per_second: float | None = None
    worker: str | None = None  # the xdist worker id ("gw0"), None without xdist
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer plugin added

    @property
    def ran(self) -> bool:
        """Whether the test body executed with its model (see the module docstring)."""
        if self.outcome in _RAN_OUTCOMES:
            return self.decision != "fail"
        return self.outcome == "xfailed" and self.decision in _RUN_DECISIONS

    @property
    def cell(self) -> str:
        """The outcome, or the decision while there is none: a merge table's cell."""
        return self.outcome if self.outcome is not None else self.decision

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.extra)
        data.update(
            {
                "nodeid": self.nodeid,
                "markers": [_plain(m) for m in self.markers],
                "requirement": self.requirement,
                "need_bytes": self.need_bytes,
                "have_bytes": self.have_bytes,
                "decision": self.decision,
                "fits": self.fits,
                "reason": self.reason,
                "plan": _plain(self.plan) if self.plan is not None else None,
                "outcome": self.outcome,
                "duration_s": self.duration_s,
                "predicted_tokens_per_second": self.predicted_tokens_per_second,
                "measured_tokens_per_second": self.measured_tokens_per_second,
                "worker": self.worker,
            }
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "test record") -> TestRecord:
        if not isinstance(data, Mapping):
            _fail(source, f"is {_json_type(data)}, expected an object")
        nodeid = _expect(data, "nodeid", (str,), source)
        source = f"{source} ({nodeid})"
        markers = _expect(data, "markers", (list, tuple), source)
        for i, marker in enumerate(markers):
            if not isinstance(marker, Mapping) or not isinstance(marker.get("name"), str):
                _fail(source, f"markers[{i}] is not an object with a name")
        plan = _expect(data, "plan", (dict, type(None)), source)
        if plan is not None:
            _choice(plan.get("mode"), PLAN_MODES, "plan.mode", source)
            for key in ("n_gpu_layers", "n_layers_total"):
                value = plan.get(key)
                if not isinstance(value, int) or isinstance(value, bool):
                    found = "missing" if key not in plan else _json_type(value)
                    _fail(source, f"plan.{key} is {found}, expected an integer")
        outcome = _expect(data, "outcome", (str, type(None)), source)
        if outcome is not None:
            _choice(outcome, OUTCOMES, "outcome", source)
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            nodeid=nodeid,
            requirement=_expect(data, "requirement", (str,), source),
            decision=_choice(
                _expect(data, "decision", (str,), source), DECISIONS, "decision", source
            ),
            fits=_expect(data, "fits", (bool,), source),
            reason=_expect(data, "reason", (str,), source),
            markers=tuple(dict(m) for m in markers),
            need_bytes=_expect(data, "need_bytes", (int, type(None)), source),
            have_bytes=_expect(data, "have_bytes", (int, type(None)), source),
            plan=dict(plan) if plan is not None else None,
            outcome=outcome,
            duration_s=_number(data, "duration_s", source),
            predicted_tokens_per_second=_number(data, "predicted_tokens_per_second", source),
            measured_tokens_per_second=_number(data, "measured_tokens_per_second", source),
            worker=_expect(data, "worker", (str, type(None)), source),
            extra={k: v for k, v in data.items() if k not in known},
        )


def _plain(value: Any) -> Any:
    """A JSON-ready deep copy: mappings to dicts, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _record(item: TestRecord | Mapping[str, Any]) -> TestRecord:
    return item if isinstance(item, TestRecord) else TestRecord.from_dict(item)


# --------------------------------------------------------------------------- CI metadata


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _pick(env: Mapping[str, str], keys: Mapping[str, str]) -> dict[str, str]:
    return {ours: env[theirs] for ours, theirs in keys.items() if env.get(theirs)}


_GITHUB = {
    "job": "GITHUB_JOB",
    "workflow": "GITHUB_WORKFLOW",
    "runner_name": "RUNNER_NAME",
    "runner_os": "RUNNER_OS",
    "run_id": "GITHUB_RUN_ID",
    "run_attempt": "GITHUB_RUN_ATTEMPT",
    "repository": "GITHUB_REPOSITORY",
    "sha": "GITHUB_SHA",
}
_GITLAB = {
    "job": "CI_JOB_NAME",
    "runner_name": "CI_RUNNER_DESCRIPTION",
    "job_id": "CI_JOB_ID",
    "pipeline_id": "CI_PIPELINE_ID",
    "repository": "CI_PROJECT_PATH",
    "sha": "CI_COMMIT_SHA",
    "url": "CI_JOB_URL",
}


def ci_metadata(env: Mapping[str, str]) -> dict[str, str]:
    """Which CI job and runner produced a report, from the environment; ``{}`` outside CI.

    Knows GitHub Actions and GitLab CI by name, any other CI by ``CI=true``. ``runner`` is
    the column a merge puts this report in: ``LLMFIT_RUNNER_LABEL`` (set it to the matrix
    entry, e.g. ``LLMFIT_RUNNER_LABEL: ${{ matrix.gpu }}``), else the job and runner names.
    Only variables that are set appear; the host name never does.
    """
    label = env.get("LLMFIT_RUNNER_LABEL", "").strip()
    data: dict[str, str]
    if _truthy(env.get("GITHUB_ACTIONS")):
        data = {"provider": "github-actions", **_pick(env, _GITHUB)}
        if "repository" in data and "run_id" in data:
            server = env.get("GITHUB_SERVER_URL") or "https://github.com"
            data["url"] = f"{server}/{data['repository']}/actions/runs/{data['run_id']}"
    elif _truthy(env.get("GITLAB_CI")):
        data = {"provider": "gitlab-ci", **_pick(env, _GITLAB)}
    elif _truthy(env.get("CI")):
        data = {"provider": "ci"}
    elif label:
        data = {}
    else:
        return {}
    if label:
        data["label"] = label
    job, name = data.get("job"), data.get("runner_name")
    data["runner"] = label or (f"{job} @ {name}" if job and name else job or name or "ci")
    return data


def runner_label(ci: Mapping[str, Any]) -> str:
    """The merge column of a report with this ``ci`` block: its runner, else ``local``."""
    value = ci.get("runner")
    return value if isinstance(value, str) and value else LOCAL_RUNNER


# --------------------------------------------------------------------------- the report


def _timestamp(value: datetime | str | None) -> str:
    if isinstance(value, str):
        return value
    moment = value or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment = moment.astimezone(timezone.utc).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def summarize(records: Iterable[TestRecord]) -> dict[str, Any]:
    """Counts per decision and per outcome (every key present, zeros included)."""
    decisions = dict.fromkeys(DECISIONS, 0)
    outcomes = dict.fromkeys((*OUTCOMES, NO_OUTCOME), 0)
    total = fits = ran = 0
    for record in records:
        total += 1
        fits += record.fits
        ran += record.ran
        decisions[record.decision] = decisions.get(record.decision, 0) + 1
        key = record.outcome or NO_OUTCOME
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"total": total, "fits": fits, "ran": ran, "decisions": decisions, "outcomes": outcomes}


def build_report(
    records: Iterable[TestRecord | Mapping[str, Any]],
    host: Host | Mapping[str, Any],
    *,
    ci: Mapping[str, Any] | None = None,
    generated_at: datetime | str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """The session's report as a JSON-ready dict (see the module docstring for the schema).

    ``None`` takes the value from this process: ``ci`` from ``os.environ``, ``generated_at``
    from the clock, ``version`` from the installed pytest-llmfit. Tests pass all three.
    """
    if version is None:
        from .. import __version__ as version
    if ci is None:
        ci = ci_metadata(os.environ)
    host_obj = host if isinstance(host, Host) else Host.from_dict(host)
    host_dict = host_obj.to_dict()
    host_dict["description"] = host_obj.describe()
    tests = sorted((_record(r) for r in records), key=lambda r: r.nodeid)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _timestamp(generated_at),
        "pytest_llmfit_version": version,
        "runner": runner_label(ci),
        "host": host_dict,
        "ci": _plain(ci),
        "tests": [r.to_dict() for r in tests],
        "summary": summarize(tests),
    }


def dumps(report: Mapping[str, Any]) -> str:
    """The file form: sorted keys, indent 2, trailing newline (stable for diffs and goldens)."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(report: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``report`` to ``path`` atomically: a temporary file beside it, renamed over it.

    Readers never see half a report; the file gets the usual permissions (umask applied).
    """
    target = Path(path)
    text = dumps(report)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            _fail(str(path), f"cannot write: {error.strerror or error}")
        raise


def _read_json(path: str | os.PathLike[str]) -> tuple[str, Any]:
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(name, "no such file")
    except IsADirectoryError:
        _fail(name, "is a directory, not a report file")
    except UnicodeDecodeError:
        _fail(name, "not JSON (not UTF-8 text)")
    except OSError as error:
        _fail(name, f"cannot read: {error.strerror or error}")
    try:
        return name, json.loads(text)
    except json.JSONDecodeError as error:
        _fail(name, f"not JSON ({error.msg} at line {error.lineno} column {error.colno})")


def check_report(data: Any, *, source: str = "report") -> dict[str, Any]:
    """``data`` if it is a pytest-llmfit report this version reads, else a ReportError."""
    if not isinstance(data, dict):
        _fail(source, f"is {_json_type(data)}, expected a pytest-llmfit report object")
    if data.get("kind") == MERGE_KIND:
        _fail(source, "is a merged report; merge the per-runner reports instead")
    if "schema_version" not in data:
        _fail(source, "missing key 'schema_version': not a pytest-llmfit report")
    found = data["schema_version"]
    if found != SCHEMA_VERSION or isinstance(found, bool):
        newer = isinstance(found, int) and not isinstance(found, bool) and found > SCHEMA_VERSION
        why = " (written by a newer pytest-llmfit; upgrade to read it)" if newer else ""
        _fail(source, f"schema_version {found!r} is not supported, expected {SCHEMA_VERSION}{why}")
    missing = [key for key in REPORT_KEYS if key not in data]
    if missing:
        _fail(source, f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key, kinds in (
        ("generated_at", (str,)),
        ("pytest_llmfit_version", (str,)),
        ("runner", (str,)),
        ("host", (dict,)),
        ("ci", (dict,)),
        ("tests", (list,)),
        ("summary", (dict,)),
    ):
        _expect(data, key, kinds, source)
    for i, test in enumerate(data["tests"]):
        TestRecord.from_dict(test, source=f"{source}: tests[{i}]")
    return data


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a report file; any problem is one ReportError line naming the file."""
    name, data = _read_json(path)
    return check_report(data, source=name)


def report_records(report: Mapping[str, Any]) -> list[TestRecord]:
    """The report's tests as records."""
    return [TestRecord.from_dict(t) for t in report["tests"]]


# --------------------------------------------------------------------------- text helpers


def plan_text(plan: Mapping[str, Any] | None) -> str:
    """``gpu 33/33``, ``partial 14/127``, ``cpu 0/33``, ``none 14/127``, or ``-``."""
    if not plan:
        return _DASH
    mode = str(plan.get("mode", "?"))
    n_gpu, n_total = plan.get("n_gpu_layers"), plan.get("n_layers_total")
    if n_gpu is None or n_total is None:
        return mode
    return f"{mode} {n_gpu}/{n_total}"


def speed_text(value: float | None) -> str:
    """Tokens/s to one decimal (two below 1), ``-`` when unknown."""
    if value is None:
        return _DASH
    return f"{value:.2f}" if abs(value) < 1 else f"{value:.1f}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _md(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped, no HTML."""
    text = _one_line(text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _md_code(text: str) -> str:
    text = _one_line(text)
    if "`" in text or not text:
        return _md(text)
    escaped = text.replace("|", "\\|")
    return f"`{escaped}`"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {key}" for key, n in counts.items() if n)


def summary_line(report: Mapping[str, Any]) -> str:
    """``3 tests: 1 run, 1 skip, 1 xfail | 1 passed, 1 skipped, 1 xfailed``."""
    summary = report["summary"]
    total = summary.get("total", len(report["tests"]))
    line = f"{total} test{'s' if total != 1 else ''}"
    decisions = _counts(summary.get("decisions", {}))
    outcomes = _counts(summary.get("outcomes", {}))
    if decisions:
        line += f": {decisions}"
    if outcomes:
        line += f" | {outcomes}"
    return line


def _host_line(report: Mapping[str, Any]) -> str:
    host = report["host"]
    description = host.get("description")
    if not isinstance(description, str):
        description = Host.from_dict(host).describe()
    return description


# --------------------------------------------------------------------------- Markdown


MARKDOWN_COLUMNS = (
    "test",
    "requirement",
    "decision",
    "plan",
    "predicted tok/s",
    "measured tok/s",
    "outcome",
    "reason",
)


def _table(header: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as GitHub-flavoured Markdown: heading, host, one table row per test."""
    runner = report.get("runner", LOCAL_RUNNER)
    ci = report.get("ci") or {}
    lines = [f"## pytest-llmfit: {_md(str(runner))}", ""]
    lines.append(f"**Host:** {_md(_host_line(report))}  ")
    where = f"**Generated:** {_md(str(report.get('generated_at', '')))}"
    where += f" by pytest-llmfit {_md(str(report.get('pytest_llmfit_version', '')))}"
    if ci.get("url"):
        where += f" in [{_md(str(ci.get('job') or 'CI job'))}]({ci['url']})"
    elif ci.get("job"):
        where += f" in {_md(str(ci['job']))}"
    lines.append(where)
    lines.append("")
    tests = report_records(report)
    if not tests:
        lines.append("No test used an llmfit marker.")
        return "\n".join(lines) + "\n"
    rows = (
        (
            _md_code(t.nodeid),
            _md(t.requirement),
            t.decision,
            plan_text(t.plan),
            speed_text(t.predicted_tokens_per_second),
            speed_text(t.measured_tokens_per_second),
            t.outcome or _DASH,
            _md(t.reason),
        )
        for t in tests
    )
    align = ("---", "---", "---", "---", "---:", "---:", "---", "---")
    lines.append(_table(MARKDOWN_COLUMNS, align, rows))
    lines.append("")
    lines.append(_md(summary_line(report)))
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str, env: Mapping[str, str]) -> bool:
    """Append ``markdown`` to ``$GITHUB_STEP_SUMMARY``; False when that is not set.

    A write failure is a ReportError: the glue warns with it rather than failing the session.
    """
    path = env.get("GITHUB_STEP_SUMMARY", "").strip()
    if not path:
        return False
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    except OSError as error:
        _fail(path, f"cannot append the step summary: {error.strerror or error}")
    return True


# --------------------------------------------------------------------------- terminal


def _cut(text: str, room: int) -> str:
    """``text`` cut at the end to ``room`` characters, ``...`` marking the cut."""
    if len(text) <= room:
        return text
    if room <= 3:
        return text[:room]
    return text[: room - 3] + "..."


def _cut_left(text: str, room: int) -> str:
    """``text`` cut at the start (keeping a node id's test name), ``...`` marking the cut."""
    if len(text) <= room:
        return text
    if room <= 3:
        return text[-room:] if room > 0 else ""
    return "..." + text[-(room - 3) :]


def _test_and_requirement(nodeid: str, requirement: str, room: int) -> str:
    """The last column: the whole node id, then as much of the requirement as fits."""
    if not requirement:
        return _cut_left(nodeid, room)
    full = f"{nodeid}  {requirement}"
    if len(full) <= room:
        return full
    if len(nodeid) + 2 + 12 <= room:  # room for a useful piece of the requirement
        return f"{nodeid}  {_cut(requirement, room - len(nodeid) - 2)}"
    return _cut_left(nodeid, room)


def _wrap(text: str, width: int, *, lead: str = "", indent: str = "  ") -> list[str]:
    """``lead + text`` on one line, or broken at its `` | `` separators to fit ``width``."""
    lines: list[str] = []
    current = ""
    for part in text.split(" | "):
        if not current:
            current = (indent if lines else lead) + part
        elif len(f"{current} | {part}") <= width:
            current = f"{current} | {part}"
        else:
            lines.append(current)
            current = indent + part
    lines.append(current)
    return [_cut(line, width) for line in lines]


_MIN_TEST_ROOM = 24  # below this, the speed and plan columns give way to the test's name
TERMINAL_HEADER = ("decision", "plan", "predicted", "measured", "outcome", "test  requirement")


def render_terminal(report: Mapping[str, Any], width: int = 100) -> list[str]:
    """Lines for pytest's terminal summary: the host, a header, one row per test, counts.

    Columns are sized from the report's own values and every line is cut to ``width``
    (node ids lose their start, requirements their end), so output is deterministic.
    """
    width = max(width, 40)
    host = f"{_one_line(_host_line(report))} | runner {report['runner']}"
    lines = _wrap(host, width, lead="host: ", indent="      ")
    tests = report_records(report)
    if not tests:
        lines.append("no test used an llmfit marker")
        return lines
    header: tuple[str, ...] = TERMINAL_HEADER
    rows = [
        (
            [
                t.decision,
                plan_text(t.plan),
                speed_text(t.predicted_tokens_per_second),
                speed_text(t.measured_tokens_per_second),
                t.outcome or _DASH,
            ],
            t,
        )
        for t in tests
    ]
    right = [False, False, True, True, False]  # speeds align right
    widths = [max(len(header[i]), *(len(cells[i]) for cells, _ in rows)) for i in range(5)]
    if width - (sum(widths) + 2 * 5) < _MIN_TEST_ROOM:  # narrow: decision, outcome, test
        keep = [0, 4]
        header = (header[0], header[4], header[5])
        rows = [([cells[i] for i in keep], t) for cells, t in rows]
        right = [False, False]
        widths = [widths[i] for i in keep]
    room = width - (sum(widths) + 2 * len(widths))

    def line(cells: Sequence[str], last: str) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join([*parts, last]).rstrip()

    lines.append(line(header[:-1], _cut(header[-1], room)))
    for cells, record in rows:
        lines.append(
            line(cells, _test_and_requirement(record.nodeid, _one_line(record.requirement), room))
        )
    lines.extend(_wrap(summary_line(report), width))
    return lines


# --------------------------------------------------------------------------- merge


def merge_reports(
    reports: Sequence[Mapping[str, Any]], *, sources: Sequence[str] | None = None
) -> dict[str, Any]:
    """Tests x runners across a CI matrix, and the tests that ran on no runner.

    Each report is one column, named by its ``runner`` (repeated names get `` #2``, ...).
    A cell is the outcome there (the decision when there is none), or null when the test
    was not collected on that runner. ``sources`` (file names) are kept for the record.
    """
    runners: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    table: dict[str, dict[str, TestRecord]] = {}
    for index, report in enumerate(reports):
        base = str(report.get("runner") or LOCAL_RUNNER)
        seen[base] = seen.get(base, 0) + 1
        label = base if seen[base] == 1 else f"{base} #{seen[base]}"
        runner: dict[str, Any] = {
            "runner": label,
            "host": _host_line(report),
            "generated_at": report.get("generated_at"),
            "pytest_llmfit_version": report.get("pytest_llmfit_version"),
            "ci": _plain(report.get("ci") or {}),
        }
        if sources is not None:
            runner["source"] = sources[index]
        runners.append(runner)
        for record in report_records(report):
            table.setdefault(record.nodeid, {})[label] = record
    labels = [r["runner"] for r in runners]
    tests: list[dict[str, Any]] = []
    ran_nowhere: list[str] = []
    for nodeid in sorted(table):
        row = table[nodeid]
        ran_on = [label for label in labels if label in row and row[label].ran]
        requirement = next((row[x].requirement for x in labels if x in row), "")
        results = {
            label: {
                "cell": row[label].cell,
                "decision": row[label].decision,
                "outcome": row[label].outcome,
                "ran": row[label].ran,
                "plan": plan_text(row[label].plan),
                "predicted_tokens_per_second": row[label].predicted_tokens_per_second,
                "measured_tokens_per_second": row[label].measured_tokens_per_second,
            }
            for label in labels
            if label in row
        }
        tests.append(
            {
                "nodeid": nodeid,
                "requirement": requirement,
                "cells": {label: row[label].cell if label in row else None for label in labels},
                "results": results,
                "ran_on": ran_on,
            }
        )
        if not ran_on:
            ran_nowhere.append(nodeid)
    return {
        "kind": MERGE_KIND,
        "schema_version": SCHEMA_VERSION,
        "runners": runners,
        "tests": tests,
        "ran_nowhere": ran_nowhere,
        "summary": {
            "runners": len(runners),
            "tests": len(tests),
            "ran_nowhere": len(ran_nowhere),
        },
    }


def _merge_cell(test: Mapping[str, Any], label: str) -> str:
    result = test["results"].get(label)
    if result is None:
        return _DASH
    text = str(result["cell"])
    measured = result.get("measured_tokens_per_second")
    if measured is not None:
        text += f" {speed_text(measured)} tok/s"
    return text


def _ran_nowhere_line(merged: Mapping[str, Any]) -> str:
    count = len(merged["ran_nowhere"])
    if not count:
        return "every test ran on at least one runner"
    return f"{count} test{'s' if count != 1 else ''} ran on no runner"


def render_merge_markdown(merged: Mapping[str, Any]) -> str:
    """The matrix as Markdown: runners with their hosts, tests x runners, what ran nowhere."""
    labels = [r["runner"] for r in merged["runners"]]
    n_tests, n_runners = len(merged["tests"]), len(labels)
    lines = [f"## pytest-llmfit: {n_tests} tests on {n_runners} runners", ""]
    lines.extend(f"- **{_md(r['runner'])}**: {_md(r['host'])}" for r in merged["runners"])
    lines.append("")
    if merged["tests"]:
        header = ["test", "requirement", *(_md(label) for label in labels)]
        align = ["---"] * len(header)
        rows = (
            [
                _md_code(t["nodeid"]) + ("" if t["ran_on"] else " (ran nowhere)"),
                _md(t["requirement"]),
                *(_md(_merge_cell(t, label)) for label in labels),
            ]
            for t in merged["tests"]
        )
        lines.append(_table(header, align, rows))
        lines.append("")
    lines.append(f"**{_ran_nowhere_line(merged).capitalize()}**")
    if merged["ran_nowhere"]:
        lines.append("")
        lines.extend(f"- {_md_code(nodeid)}" for nodeid in merged["ran_nowhere"])
    return "\n".join(lines) + "\n"


def render_merge_terminal(merged: Mapping[str, Any]) -> str:
    """The matrix as a plain-text table; tests that ran nowhere are marked ``!``."""
    labels = [r["runner"] for r in merged["runners"]]
    lines = [f"{r['runner']}: {_one_line(r['host'])}" for r in merged["runners"]]
    header = ["test", *labels]
    rows = [
        [("! " if not t["ran_on"] else "  ") + t["nodeid"], *(_merge_cell(t, x) for x in labels)]
        for t in merged["tests"]
    ]
    header[0] = "  test"
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    if lines:
        lines.append("")
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    lines.append("")
    lines.append(_ran_nowhere_line(merged) + (":" if merged["ran_nowhere"] else ""))
    lines.extend(f"  {nodeid}" for nodeid in merged["ran_nowhere"])
    return "\n".join(lines) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like the rest of the CLI
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``merge`` options, for a subcommand parser (``cli.py``) or :func:`merge_main`."""
    parser.add_argument("reports", nargs="+", metavar="REPORT.json", help="one per runner")
    parser.add_argument("--md", metavar="OUT.md", help="write the matrix as Markdown")
    parser.add_argument("--json", metavar="OUT.json", help="write the merged matrix as JSON")
    parser.add_argument(
        "--step-summary",
        action="store_true",
        help="append the Markdown to $GITHUB_STEP_SUMMARY when set",
    )
    parser.add_argument(
        "--fail-on-ran-nowhere",
        action="store_true",
        help="exit 1 when some test ran on no runner",
    )


def run_merge(args: argparse.Namespace) -> int:
    """Merge ``args.reports``; raises LlmfitError (one line) for a bad file."""
    paths = [str(p) for p in args.reports]
    merged = merge_reports([load_report(p) for p in paths], sources=paths)
    markdown = render_merge_markdown(merged)
    if args.json:
        write_json(merged, args.json)
    if args.md:
        try:
            Path(args.md).write_text(markdown, encoding="utf-8")
        except OSError as error:
            _fail(str(args.md), f"cannot write: {error.strerror or error}")
    if args.step_summary:
        append_step_summary(markdown, os.environ)
    sys.stdout.write(render_merge_terminal(merged))
    if args.fail_on_ran_nowhere and merged["ran_nowhere"]:
        print(
            f"pytest-llmfit merge: {_ran_nowhere_line(merged)} (--fail-on-ran-nowhere)",
            file=sys.stderr,
        )
        return 1
    return 0


def merge_main(argv: Sequence[str]) -> int:
    """``pytest-llmfit merge REPORT.json... [--md OUT.md] [--json OUT.json]
    [--step-summary] [--fail-on-ran-nowhere]``: 0 merged, 1 a test ran nowhere (with
    ``--fail-on-ran-nowhere``), 2 bad arguments or a bad report file (one line on stderr)."""
    parser = _Parser(
        prog="pytest-llmfit merge",
        description="Merge the JSON reports of a CI runner matrix: tests x runners.",
    )
    add_merge_arguments(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return run_merge(args)
    except LlmfitError as error:
        print(f"pytest-llmfit merge: error: {error}", file=sys.stderr)
        return 2
