"""The plugin's entry point (``pytest11: llmfit``): options, ini keys, markers and
configuration. The hooks that run during the session live in :mod:`.session`, the state in
:mod:`.state`, the fixtures in :mod:`.fixtures`; everything they decide comes from the plain
library below (settings, decide, engine, report): the glue only moves values between pytest
and it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from .. import hookspecs
from ..errors import LlmfitError
from ..hardware.types import Host
from .fixtures import llm, llm_benchmark, llmfit, llmfit_host, llmfit_models, llmfit_record
from .markers import MARKERS
from .session import BenchmarkHooks, LedgerRelease, LlmfitSession
from .settings import OPTIONS, resolve
from .state import CALIBRATION_KEY, LlmfitState, load_user_catalog, state_key

__all__ = ["llm", "llm_benchmark", "llmfit", "llmfit_host", "llmfit_models", "llmfit_record"]


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    # Before any conftest can import torch or llama_cpp: an xdist worker started with
    # --llmfit-pin-gpus sees only its own GPUs (the controller chose the shares).
    from .xdist import pin_worker_gpus

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
            if option.kind == "path" and config.inipath is not None:
                # As pytest's own ini paths: relative to the ini file, wherever pytest runs.
                raw = os.path.join(os.path.dirname(config.inipath), str(raw).strip())
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
        from .xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(config), "llmfit-xdist")
    if settings.catalog and not settings.expect and not settings.hardware:
        # A bad catalog file is a usage error now, not when a test first names a card.
        try:
            load_user_catalog(settings)
        except LlmfitError as error:
            raise pytest.UsageError(f"pytest-llmfit: {error}") from None
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
    from ..hardware.specs import resolve_hardware

    source = state.settings.source_of("expect")
    try:
        expected = resolve_hardware(
            str(state.settings.expect), source=source, catalog=load_user_catalog(state.settings)
        )
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
