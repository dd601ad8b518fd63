"""Records and the session report: :class:`TestRecord` (one test as llmfit saw it) and
:func:`build_report`, which puts a session's records, host and CI job into one JSON-ready dict
(the schema is in the package docstring; its constants in :mod:`.schema`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from ..hardware.types import Host
from .ci import ci_metadata, runner_label
from .schema import (
    DECISIONS,
    NO_OUTCOME,
    OUTCOMES,
    PLAN_MODES,
    SCHEMA_VERSION,
    choice,
    expect,
    fail,
    json_type,
    number,
)

_RAN_OUTCOMES = frozenset({"passed", "failed", "xpassed"})
_RUN_DECISIONS = frozenset({"run", "benchmark"})


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
    # Prompt processing: predicted over the measured prompt's length (512 tokens when none
    # was measured) and measured by llm_benchmark.
    predicted_prompt_tokens_per_second: float | None = None
    measured_prompt_tokens_per_second: float | None = None
    worker: str | None = None  # the xdist worker id ("gw0"), None without xdist
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys a newer plugin added

    @property
    def ran(self) -> bool:
        """Whether the test body executed with its model (see the package docstring)."""
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
                "markers": [plain(m) for m in self.markers],
                "requirement": self.requirement,
                "need_bytes": self.need_bytes,
                "have_bytes": self.have_bytes,
                "decision": self.decision,
                "fits": self.fits,
                "reason": self.reason,
                "plan": plain(self.plan) if self.plan is not None else None,
                "outcome": self.outcome,
                "duration_s": self.duration_s,
                "predicted_tokens_per_second": self.predicted_tokens_per_second,
                "measured_tokens_per_second": self.measured_tokens_per_second,
                "predicted_prompt_tokens_per_second": self.predicted_prompt_tokens_per_second,
                "measured_prompt_tokens_per_second": self.measured_prompt_tokens_per_second,
                "worker": self.worker,
            }
        )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "test record") -> TestRecord:
        if not isinstance(data, Mapping):
            fail(source, f"is {json_type(data)}, expected an object")
        nodeid = expect(data, "nodeid", (str,), source)
        source = f"{source} ({nodeid})"
        markers = expect(data, "markers", (list, tuple), source)
        for i, marker in enumerate(markers):
            if not isinstance(marker, Mapping) or not isinstance(marker.get("name"), str):
                fail(source, f"markers[{i}] is not an object with a name")
        plan = expect(data, "plan", (dict, type(None)), source)
        if plan is not None:
            choice(plan.get("mode"), PLAN_MODES, "plan.mode", source)
            for key in ("n_gpu_layers", "n_layers_total"):
                value = plan.get(key)
                if not isinstance(value, int) or isinstance(value, bool):
                    found = "missing" if key not in plan else json_type(value)
                    fail(source, f"plan.{key} is {found}, expected an integer")
        outcome = expect(data, "outcome", (str, type(None)), source)
        if outcome is not None:
            choice(outcome, OUTCOMES, "outcome", source)
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            nodeid=nodeid,
            requirement=expect(data, "requirement", (str,), source),
            decision=choice(
                expect(data, "decision", (str,), source), DECISIONS, "decision", source
            ),
            fits=expect(data, "fits", (bool,), source),
            reason=expect(data, "reason", (str,), source),
            markers=tuple(dict(m) for m in markers),
            need_bytes=expect(data, "need_bytes", (int, type(None)), source),
            have_bytes=expect(data, "have_bytes", (int, type(None)), source),
            plan=dict(plan) if plan is not None else None,
            outcome=outcome,
            duration_s=number(data, "duration_s", source),
            predicted_tokens_per_second=number(data, "predicted_tokens_per_second", source),
            measured_tokens_per_second=number(data, "measured_tokens_per_second", source),
            predicted_prompt_tokens_per_second=number(
                data, "predicted_prompt_tokens_per_second", source
            ),
            measured_prompt_tokens_per_second=number(
                data, "measured_prompt_tokens_per_second", source
            ),
            worker=expect(data, "worker", (str, type(None)), source),
            extra={k: v for k, v in data.items() if k not in known},
        )


def plain(value: Any) -> Any:
    """A JSON-ready deep copy: mappings to dicts, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _record(item: TestRecord | Mapping[str, Any]) -> TestRecord:
    return item if isinstance(item, TestRecord) else TestRecord.from_dict(item)


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
    """The session's report as a JSON-ready dict (the schema: the package docstring).

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
        "ci": plain(ci),
        "tests": [r.to_dict() for r in tests],
        "summary": summarize(tests),
    }


def report_records(report: Mapping[str, Any]) -> list[TestRecord]:
    """The report's tests as records."""
    return [TestRecord.from_dict(t) for t in report["tests"]]
