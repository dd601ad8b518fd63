"""The session's state in ``config.stash``: settings, the host (probed once), decisions,
records and the speed calibration; and the stash keys every glue module reads it by."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..hardware.types import Host
from .settings import SessionSettings

if TYPE_CHECKING:  # the engine loads when the first marked test is collected
    from ..hardware.catalog import Catalog
    from ..sources import SourceSettings
    from .decide import Decision, ModelCache


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
            from ..engine.speed import SpeedModel
            from .decide import ModelCache

            model = SpeedModel()
            entry = self.calibration.get(self.fingerprint()) if self.calibration else None
            if entry and not self.settings.hardware:
                model = model.with_scale(float(entry["cpu_rate_scale"]), runs=entry["runs"])
            self._cache = ModelCache(model, sources=self.source_settings())
        return self._cache

    def source_settings(self) -> SourceSettings:
        """How remote models (hf://, https://) are reached: the HTTP timeout, offline, and
        where a URL model is downloaded to load it (--llmfit-models-dir when given)."""
        from ..sources import SourceSettings

        s = self.settings
        download = None
        if s.models_dir:
            root = str(self.config.rootpath) if self.config is not None else os.getcwd()
            download = os.path.join(root, os.path.expanduser(s.models_dir))
        return SourceSettings(
            timeout=s.http_timeout,
            offline=s.offline,
            download_dir=download,
            timeout_source=s.source_of("http_timeout"),
            offline_source=s.source_of("offline"),
        )

    def fingerprint(self) -> str:
        from ..engine.speed import host_fingerprint

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


def load_user_catalog(settings: SessionSettings) -> Catalog | None:
    """The hardware catalog extended by --llmfit-catalog's file, or None (the built-in one).

    Read again by each caller: a small TOML file, read at most a few times per session."""
    if not settings.catalog:
        return None
    from ..hardware.catalog import load_catalog

    return load_catalog([settings.catalog], source=settings.source_of("catalog"))


def load_host(
    settings: SessionSettings, pluginmanager: pytest.PytestPluginManager | None = None
) -> Host:
    """The session's host: simulated from --llmfit-hardware, else probed (once).

    The built-in probes are registered into pytest's plugin manager like any third-party
    plugin, so ``pytest_llmfit_probe`` implementations in conftest.py files and installed
    plugins take part in the same call."""
    if settings.hardware:
        from ..hardware.specs import resolve_hardware

        return resolve_hardware(
            settings.hardware,
            source=settings.source_of("hardware"),
            catalog=load_user_catalog(settings),
        )
    from ..hardware.probes import builtin_probes, call_probes, detect_host, merge_results

    if pluginmanager is None:
        return detect_host()
    for name, probe in builtin_probes():
        if not pluginmanager.has_plugin(f"llmfit-probe-{name}"):
            pluginmanager.register(probe, f"llmfit-probe-{name}")
    return merge_results(call_probes(pluginmanager, os.environ))
