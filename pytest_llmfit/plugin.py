"""The pytest glue: options, markers, decisions at collection, enforcement at setup,
fixtures and the report. Everything it decides comes from the plain library below it
(settings, decide, plan, report); this module only moves values between pytest and it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from . import hookspecs
from .errors import GGUFError, LlmfitError
from .hardware import Host
from .llm_fixtures import llm, llm_benchmark, llmfit_models
from .markers import MARKERS
from .settings import OPTIONS, SessionSettings, resolve

if TYPE_CHECKING:  # the engine loads when the first marked test is collected
    from .decide import Decision, ModelCache
    from .estimate import Footprint
    from .plan import Plan

__all__ = ["llm", "llm_benchmark", "llmfit", "llmfit_host", "llmfit_models", "llmfit_record"]

REPORT_KEY = "llmfit"  # attribute on TestReport objects; xdist serialises it to the controller
CALIBRATION_KEY = "llmfit/speed-calibration"  # pytest cache: {host fingerprint: scale, runs}


@dataclass
class LlmfitState:
    """Per-session state, kept in ``config.stash``."""

    settings: SessionSettings
    pluginmanager: pytest.PytestPluginManager | None = None
    config: pytest.Config | None = None
    host: Host | None = None
    _cache: ModelCache | None = None
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[tuple[Any, ...], Decision] = field(default_factory=dict)
    measured: dict[str, dict[str, Any]] = field(default_factory=dict)  # by nodeid
    ledger_dir: str | None = None  # set on xdist workers: the session's shared VRAM ledger
    ledger_timeout: float = 600.0

    # Calibration of the CPU speed model for this host, from pytest's cache (see speed.py).
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def cache(self) -> ModelCache:
        if self._cache is None:
            from .decide import ModelCache
            from .speed import SpeedModel

            model = SpeedModel()
            entry = self.calibration.get(self.fingerprint()) if self.calibration else None
            if entry and not self.settings.hardware:
                model = model.with_scale(float(entry["cpu_rate_scale"]), runs=entry["runs"])
            self._cache = ModelCache(model)
        return self._cache

    def fingerprint(self) -> str:
        from .speed import host_fingerprint

        host = self.get_host()
        return host_fingerprint(
            host.cpu.model, host.cpu.cores_logical, host.ram.total, [g.name for g in host.gpus]
        )

    def get_host(self) -> Host:
        if self.host is None:
            # Probe warnings go through pytest's own warning machinery, whenever the probe
            # runs (configure, header, collection): they reach the warnings summary, and a
            # "filterwarnings = error" turns them into one usage error, not an INTERNALERROR.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                host = load_host(self.settings, self.pluginmanager)
            for warning in caught:
                self.issue_warning(warning.message)
            self.host = host
        return self.host

    def issue_warning(self, message: Warning | str) -> None:
        if self.config is None:
            warnings.warn(message, stacklevel=2)
            return
        warning = message if isinstance(message, Warning) else UserWarning(message)
        try:
            self.config.issue_config_time_warning(warning, stacklevel=2)
        except Warning as error:
            raise pytest.UsageError(
                f"pytest-llmfit: {error} ({type(error).__name__} made an error by a "
                "warnings filter)"
            ) from None


state_key = pytest.StashKey[LlmfitState]()
decision_key = pytest.StashKey["Decision"]()
reservation_key = pytest.StashKey[Any]()


def load_host(
    settings: SessionSettings, pluginmanager: pytest.PytestPluginManager | None = None
) -> Host:
    """The session's host: simulated from --llmfit-hardware, else probed (once).

    The built-in probes are registered into pytest's plugin manager like any third-party
    plugin, so ``pytest_llmfit_probe`` implementations in conftest.py files and installed
    plugins take part in the same call."""
    if settings.hardware:
        from .profiles import resolve_hardware

        return resolve_hardware(settings.hardware, source=settings.source_of("hardware"))
    from .probes import builtin_probes, call_probes, detect_host, merge_results

    if pluginmanager is None:
        return detect_host()
    for name, probe in builtin_probes():
        if not pluginmanager.has_plugin(f"llmfit-probe-{name}"):
            pluginmanager.register(probe, f"llmfit-probe-{name}")
    return merge_results(call_probes(pluginmanager, os.environ))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    # Before any conftest can import torch or llama_cpp: an xdist worker started with
    # --llmfit-pin-gpus sees only its own GPUs (the controller chose the shares).
    from ._xdist import pin_worker_gpus

    pin_worker_gpus()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmfit", "hardware-aware LLM tests (pytest-llmfit)")
    for option in OPTIONS:
        dest = f"llmfit_{option.name}"
        if option.kind == "bool":
            group.addoption(
                option.flag,
                action="store_true",
                default=None,
                dest=dest,
                help=f"{option.help} [env {option.env}, ini {option.ini}]",
            )
        else:
            group.addoption(
                option.flag,
                default=None,
                dest=dest,
                metavar=option.name.upper(),
                help=f"{option.help} [env {option.env}, ini {option.ini}]",
            )
        parser.addini(option.ini, help=option.help, default=None)
    group.addoption(
        "--llmfit-report",
        action="store_true",
        default=False,
        help="print what ran where and why after the tests",
    )
    group.addoption(
        "--llmfit-report-json", default=None, metavar="PATH", help="write the llmfit report as JSON"
    )
    group.addoption(
        "--llmfit-report-md",
        default=None,
        metavar="PATH",
        help="write the llmfit report as Markdown",
    )
    group.addoption(
        "--llmfit-pin-gpus",
        action="store_true",
        default=False,
        help="under pytest-xdist, give each worker its own share of the GPUs",
    )


def _ini_values(config: pytest.Config) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = config.getini(option.ini)
        if raw not in (None, "", []):
            values[option.name] = raw
    return values


def pytest_configure(config: pytest.Config) -> None:
    for doc in MARKERS.values():
        config.addinivalue_line("markers", doc)  # "name(args): what it checks"
    cli = {o.name: config.getoption(f"llmfit_{o.name}") for o in OPTIONS}
    try:
        settings = resolve(cli, os.environ, _ini_values(config))
    except LlmfitError as error:
        raise pytest.UsageError(f"pytest-llmfit: {error}") from None
    state = LlmfitState(settings=settings, pluginmanager=config.pluginmanager, config=config)
    if getattr(config, "cache", None) is not None:
        state.calibration = dict(config.cache.get(CALIBRATION_KEY, {}))
    worker_input = getattr(config, "workerinput", None)
    if worker_input and worker_input.get("llmfit_host"):
        state.host = Host.from_dict(worker_input["llmfit_host"])
    if worker_input and worker_input.get("llmfit_ledger"):
        state.ledger_dir = worker_input["llmfit_ledger"]
    state.ledger_timeout = settings.ledger_timeout
    config.stash[state_key] = state
    config.pluginmanager.register(LlmfitSession(config), "llmfit-session")
    if state.ledger_dir:
        config.pluginmanager.register(LedgerRelease(), "llmfit-ledger-release")
    if config.pluginmanager.hasplugin("benchmark"):
        config.pluginmanager.register(BenchmarkHooks(state), "llmfit-benchmark")
    if config.pluginmanager.hasplugin("xdist"):
        from ._xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config), "llmfit-xdist")
    if settings.expect:
        _check_expected_host(state)
    elif settings.hardware:
        # A simulated host costs nothing to build: check the spec now, so a bad one is a
        # usage error even when no header line is printed (-q) or no test is marked.
        try:
            state.get_host()
        except LlmfitError as error:
            raise pytest.UsageError(f"pytest-llmfit: {error}") from None


def _check_expected_host(state: LlmfitState) -> None:
    from .profiles import resolve_hardware

    source = state.settings.source_of("expect")
    try:
        expected = resolve_hardware(str(state.settings.expect), source=source)
        actual = state.get_host()
    except LlmfitError as error:
        raise pytest.UsageError(f"pytest-llmfit: {error}") from None
    problem = host_mismatch(expected, actual)
    if problem:
        raise pytest.UsageError(
            f"pytest-llmfit: this host is not {state.settings.expect!r} ({source}): {problem}"
        )


def host_mismatch(expected: Host, actual: Host) -> str | None:
    """Why ``actual`` is not the host a CI job says it runs on, or None when it is."""
    want = sorted(g.name for g in expected.gpus)
    have = sorted(g.name for g in actual.gpus)
    if len(want) != len(have):
        return (
            f"expected {len(want)} GPU(s) ({', '.join(want) or 'none'}), found {len(have)} "
            f"({', '.join(have) or 'none'})"
        )
    for w, h in zip(want, have, strict=True):
        if w.lower() not in h.lower() and h.lower() not in w.lower():
            return f"expected {w}, found {h}"
    for e, a in zip(
        sorted(expected.gpus, key=lambda g: g.name),
        sorted(actual.gpus, key=lambda g: g.name),
        strict=True,
    ):
        if a.memory_total < 0.95 * e.memory_total:
            return (
                f"{a.name} has {a.memory_total / 1e9:.1f} GB, expected "
                f"{e.memory_total / 1e9:.1f} GB"
            )
    return None


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
    from .decide import Decision, combine, decide, parse_requirement

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
        from .speed import refine_scale

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
        from .report import build_report, ci_metadata

        state = self.state
        records = list(state.records.values())
        report = build_report(records, state.get_host(), ci=ci_metadata(os.environ))
        self.config.hook.pytest_llmfit_update_report(report=report)
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if getattr(self.config, "workerinput", None) is not None or not self.wants_report():
            return
        from .report import append_step_summary, render_markdown, render_terminal, write_json

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


class LlmfitEngine:
    """The engine bound to this session's host and settings (the ``llmfit`` fixture)."""

    def __init__(self, state: LlmfitState, root: str) -> None:
        self._state = state
        self._root = root

    @property
    def host(self) -> Host:
        return self._state.get_host()

    def model_path(self, model: str | os.PathLike[str]) -> str:
        """Where a model name resolves, exactly as requires_model resolves it."""
        from .decide import resolve_model_path

        return resolve_model_path(os.fspath(model), self._state.settings.models_dir, self._root)

    def estimate(self, model: str | os.PathLike[str], **settings: Any) -> Footprint:
        from .estimate import Settings, estimate

        return estimate(self._state.cache.header(self.model_path(model)), Settings(**settings))

    def plan(self, model: str | os.PathLike[str], **settings: Any) -> Plan:
        from .estimate import Settings
        from .plan import plan

        return plan(
            self._state.cache.header(self.model_path(model)),
            self.host,
            Settings(**settings),
            headroom=self._state.settings.headroom,
        )

    def fits(self, size: int | str, *, per_device: bool = False) -> bool:
        from .units import parse_size

        need = parse_size(size, source="llmfit.fits()")
        gpus = [
            g.memory_total if self._state.settings.basis == "total" else g.memory_free
            for g in self.host.gpus
        ]
        have = max(gpus, default=0) if per_device else sum(gpus)
        return bool(gpus) and need <= have


@pytest.fixture(scope="session")
def llmfit_host(pytestconfig: pytest.Config) -> Host:
    """This session's host snapshot: detected once, or simulated by --llmfit-hardware."""
    return pytestconfig.stash[state_key].get_host()


@pytest.fixture(scope="session")
def llmfit(pytestconfig: pytest.Config) -> LlmfitEngine:
    """The fit engine bound to this session: ``llmfit.plan(path, n_ctx=8192)``,
    ``llmfit.fits("24GB")``, ``llmfit.host``."""
    return LlmfitEngine(pytestconfig.stash[state_key], str(pytestconfig.rootpath))


@pytest.fixture
def llmfit_record(request: pytest.FixtureRequest) -> Any:
    """Record what this test measured into its llmfit report row::

    def test_speed(llmfit_record):
        llmfit_record(tokens_per_second=41.7)
    """

    state = request.config.stash[state_key]

    def record(*, tokens_per_second: float | None = None, **extra: Any) -> None:
        values = state.measured.setdefault(request.node.nodeid, {})
        if tokens_per_second is not None:
            values["measured_tokens_per_second"] = float(tokens_per_second)
        values.update(extra)

    return record
