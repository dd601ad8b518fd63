"""The per-session hooks: a decision for each marked test at collection, enforcement at
setup (skip, xfail, the VRAM ledger), records at report time and the terminal/JSON/Markdown
report at the end; plus the optional pytest-benchmark and ledger-release hooks."""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from ..errors import GGUFError, LlmfitError
from .markers import MARKERS
from .state import (
    CALIBRATION_KEY,
    REPORT_KEY,
    LlmfitState,
    decision_key,
    reservation_key,
    state_key,
)

if TYPE_CHECKING:  # the engine loads when the first marked test is collected
    from .decide import Decision


def _mark_key(mark: pytest.Mark) -> tuple[Any, ...] | None:
    """A hashable identity for a marker's arguments, or None when they are not hashable."""
    try:
        key = (mark.name, mark.args, tuple(sorted(mark.kwargs.items())))
        hash(key)
    except TypeError:
        return None
    return key


def _marks(item: pytest.Item) -> list[pytest.Mark]:
    return [m for m in item.iter_markers() if m.name in MARKERS]


def decide_item(item: pytest.Item, state: LlmfitState) -> Decision | None:
    """The decision for one test from all its llmfit markers, or None if it has none."""
    from .decide import Decision, combine, decide
    from .requirements import parse_requirement

    marks = _marks(item)
    if not marks:
        return None
    decisions = []
    root = str(item.config.rootpath)
    for mark in marks:
        key = _mark_key(mark)
        cached = state.decisions.get(key) if key is not None else None
        if cached is not None:
            decisions.append(cached)
            continue
        source = f"marker {mark.name} on {item.nodeid}"
        try:
            req = parse_requirement(
                mark.name,
                mark.args,
                mark.kwargs,
                source=source,
                models_dir=state.settings.models_dir,
                root=root,
            )
            decision = decide(req, state.get_host(), state.settings, state.cache)
            decisions.append(decision)
            if key is not None:  # identical markers decide identically: decide once
                state.decisions[key] = decision
        except LlmfitError as error:
            # A file's own error names the file; add which marker (and test) named it.
            reason = f"{error} ({source})" if isinstance(error, GGUFError) else str(error)
            marker = {"name": mark.name, "args": list(mark.args), "kwargs": dict(mark.kwargs)}
            decisions.append(
                Decision(
                    action="error",
                    fits=False,
                    reason=reason,
                    requirement=mark.name,
                    markers=(marker,),
                )
            )
    return combine(decisions, strict=state.settings.strict)


def new_record(nodeid: str, decision: Decision) -> dict[str, Any]:
    record: dict[str, Any] = {"nodeid": nodeid, **decision.to_dict()}
    record.update(
        outcome=None,
        duration_s=None,
        measured_tokens_per_second=None,
        measured_prompt_tokens_per_second=None,
        worker=os.environ.get("PYTEST_XDIST_WORKER"),
    )
    return record


def outcome_of(report: pytest.TestReport) -> str | None:
    """The test's outcome as this phase's report tells it, or None if it says nothing new."""
    if report.when == "setup":
        if report.skipped:
            return "xfailed" if hasattr(report, "wasxfail") else "skipped"
        return "error" if report.failed else None
    if report.when == "call":
        if hasattr(report, "wasxfail"):
            return "xpassed" if report.passed else "xfailed"
        return report.outcome
    if report.when == "teardown":
        return "error" if report.failed else None
    # xdist's report for a test whose worker crashed (when "???"): pytest counts it failed.
    return "failed" if report.failed else None


class LlmfitSession:
    """The hooks that need the session's config; registered by pytest_configure."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.on_worker = getattr(config, "workerinput", None) is not None
        self.state: LlmfitState = config.stash[state_key]
        # Per-test records exist for the report; without one they are not kept at all,
        # which keeps a large suite's overhead down (the option reaches xdist workers too).
        self.keep_records = self.wants_report()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        state = self.state
        for item in items:
            decision = decide_item(item, state)
            if decision is None:
                continue
            item.stash[decision_key] = decision
            if self.keep_records:
                state.records[item.nodeid] = new_record(item.nodeid, decision)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        decision = item.stash.get(decision_key, None)
        if decision is None:
            return
        item.user_properties.extend(
            [
                ("llmfit_decision", decision.action),
                ("llmfit_requirement", decision.requirement),
                ("llmfit_reason", decision.reason),
            ]
        )
        if decision.plan:
            plan_text = (
                f"{decision.plan.get('mode')} {decision.plan.get('n_gpu_layers')}/"
                f"{decision.plan.get('n_layers_total')}"
            )
            item.user_properties.append(("llmfit_plan", plan_text))
        if decision.action == "error":
            pytest.fail(f"pytest-llmfit: {decision.reason}", pytrace=False)
        if decision.action == "skip":
            # Reported at the test's own location, like a skip marker, so -rs groups by reason.
            raise pytest.skip.Exception(decision.reason, _use_item_location=True)
        if decision.action == "xfail":
            pytest.xfail(decision.reason)
        if decision.action in ("run", "benchmark") and self.state.ledger_dir:
            self.reserve(item, decision)

    def reserve(self, item: pytest.Item, decision: Decision) -> None:
        """Hold this test's VRAM in the session's ledger so parallel workers never
        oversubscribe a GPU; waits (bounded) while others hold it, then skips."""
        from .ledger import Ledger, LedgerError

        state = self.state
        host = state.get_host()
        per_device = any(m.get("kwargs", {}).get("per_device") for m in decision.markers)
        from .decide import gpu_needs

        needs = gpu_needs(decision, host, per_device=per_device)
        if not needs:
            return
        budgets = {
            (g.uuid or f"GPU-{g.index}"): (
                g.memory_total if state.settings.basis == "total" else g.memory_free
            )
            for g in host.gpus
        }
        try:
            reservation = Ledger(str(state.ledger_dir)).reserve(
                needs, budgets, owner=item.nodeid, timeout=state.ledger_timeout
            )
        except LedgerError as error:
            if state.settings.strict:
                pytest.fail(f"pytest-llmfit: {error}", pytrace=False)
            raise pytest.skip.Exception(
                f"pytest-llmfit: {error}", _use_item_location=True
            ) from None
        item.stash[reservation_key] = reservation

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        # "fail" is a test failure, not a setup error: it fails in the call phase, and the
        # test body (which would not fit) never runs.
        decision = item.stash.get(decision_key, None)
        if decision is not None and decision.action == "fail":
            pytest.fail(decision.reason, pytrace=False)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.keep_records:
            return
        records = self.state.records
        if self.on_worker:
            # Before xdist sends the report to the controller, which never saw the
            # collection: the setup report carries the whole record, later ones only
            # what the test measured (a plain attribute: xdist serialises it).
            record = records.get(report.nodeid)
            if record is not None:
                measured = self.state.measured.get(report.nodeid)
                if report.when == "setup":
                    setattr(report, REPORT_KEY, {**record, **(measured or {})})
                elif measured:
                    setattr(report, REPORT_KEY, dict(measured))
        payload = getattr(report, REPORT_KEY, None)
        current = records.get(report.nodeid)
        if current is None:
            if not isinstance(payload, dict) or "decision" not in payload:
                return  # not an llmfit test
            current = records[report.nodeid] = dict(payload)
        elif isinstance(payload, dict):
            current.update({k: v for k, v in payload.items() if v is not None})
        measured = self.state.measured.get(report.nodeid)
        if measured:
            current.update(measured)
        outcome = outcome_of(report)
        if outcome is not None and current.get("outcome") not in ("failed", "error"):
            current["outcome"] = outcome
        if report.when == "call" or (report.when == "setup" and report.skipped):
            current["duration_s"] = round(report.duration, 4)

    def pytest_report_header(self) -> str | None:
        state = self.state
        # Nothing is probed unless a test asks; a simulated host or an explicit report
        # request is reason enough to show the host up front.
        if state.settings.hardware or state.host is not None or self.wants_report():
            try:
                return f"llmfit: {state.get_host().describe()}"
            except LlmfitError as error:
                raise pytest.UsageError(f"pytest-llmfit: {error}") from None
        return None

    def pytest_sessionfinish(self) -> None:
        """Measured decode speeds of CPU-only runs refine this host's speed model (in each
        process that measured: xdist workers write pytest's cache too)."""
        if self.state.settings.hardware:
            return
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return
        from ..engine.speed import refine_scale

        ratios = [
            float(m["calibration_ratio"])
            for m in self.state.measured.values()
            if m.get("calibration_ratio")
        ]
        if not ratios:
            return
        self.state.calibration = dict(cache.get(CALIBRATION_KEY, {}))  # another worker's
        key = self.state.fingerprint()
        entry = self.state.calibration.get(key, {"cpu_rate_scale": 1.0, "runs": 0})
        entry = {
            "cpu_rate_scale": round(refine_scale(float(entry["cpu_rate_scale"]), ratios), 4),
            "runs": int(entry["runs"]) + len(ratios),
        }
        self.state.calibration[key] = entry
        cache.set(CALIBRATION_KEY, self.state.calibration)

    def wants_report(self) -> bool:
        option = self.config.getoption
        return bool(
            option("llmfit_report") or option("llmfit_report_json") or option("llmfit_report_md")
        )

    def build_report(self) -> dict[str, Any]:
        from ..report import build_report, ci_metadata

        state = self.state
        records = list(state.records.values())
        report = build_report(records, state.get_host(), ci=ci_metadata(os.environ))
        self.config.hook.pytest_llmfit_update_report(report=report)
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if getattr(self.config, "workerinput", None) is not None or not self.wants_report():
            return
        from ..report import append_step_summary, render_markdown, render_terminal, write_json

        report = self.build_report()
        option = self.config.getoption
        if option("llmfit_report"):
            terminalreporter.write_sep("=", "llmfit report")
            for line in render_terminal(report, width=terminalreporter._tw.fullwidth):
                terminalreporter.write_line(line)
        if option("llmfit_report_json"):
            write_json(report, option("llmfit_report_json"))
            terminalreporter.write_line(
                f"llmfit: JSON report written to {option('llmfit_report_json')}"
            )
        markdown = render_markdown(report)
        if option("llmfit_report_md"):
            with open(option("llmfit_report_md"), "w", encoding="utf-8") as handle:
                handle.write(markdown)
            terminalreporter.write_line(
                f"llmfit: Markdown report written to {option('llmfit_report_md')}"
            )
        try:
            append_step_summary(markdown, os.environ)
        except LlmfitError as error:  # a read-only summary file must not fail the session
            warnings.warn(f"pytest-llmfit: {error}", stacklevel=1)


class BenchmarkHooks:
    """pytest-benchmark integration, registered only when it is installed: its saved runs
    carry the host (GPUs, RAM) the numbers were measured on."""

    def __init__(self, state: LlmfitState) -> None:
        self.state = state

    @pytest.hookimpl(optionalhook=True)
    def pytest_benchmark_update_machine_info(
        self, config: pytest.Config, machine_info: dict[str, Any]
    ) -> None:
        host = self.state.get_host()
        machine_info["llmfit"] = {"host": host.to_dict(), "description": host.describe()}


class LedgerRelease:
    """Releases a test's VRAM reservation after its teardown; registered only on xdist
    workers that share a ledger, so other sessions pay nothing for it."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            reservation = item.stash.get(reservation_key, None)
            if reservation is not None:
                reservation.release()
