"""Hardware detection: probes are pluggy plugins, merged into one :class:`~.hardware.Host`.

The built-in probes (``nvidia`` through NVML, ``amd`` through sysfs, ``apple`` for Metal on
Apple Silicon, ``system`` for RAM and CPU through psutil) implement the
``pytest_llmfit_probe`` hook and are registered exactly like third-party plugins, under the
names in :data:`BUILTIN_PROBES`. A probe never raises: what it cannot read becomes a one-line
``problems`` entry, warned once as :class:`LlmfitProbeWarning` and kept in ``Host.notes``.
``notes`` entries (e.g. "no NVIDIA driver on this machine") are kept but not warned.

Importing this package loads no GPU library: each probe imports its library when called.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence

import pluggy

from ... import hookspecs
from ...cachedir import default_cache_dir
from ..types import Cpu, Gpu, Host, ProbeResult, Ram, RamBandwidthMode

__all__ = [
    "BUILTIN_PROBES",
    "LlmfitProbeWarning",
    "ProbeResult",
    "RamBandwidthMode",
    "builtin_probes",
    "call_probes",
    "default_cache_dir",
    "detect_host",
    "merge_results",
]

BUILTIN_PROBES: tuple[str, ...] = ("nvidia", "amd", "apple", "system")
"""Names the built-in probes are registered under (pass them to ``detect_host(disable=...)``)."""


class LlmfitProbeWarning(UserWarning):
    """A hardware probe could not read something; the decision uses what is known.

    Silence with ``-W ignore::pytest_llmfit.hardware.probes.LlmfitProbeWarning``.
    """


def builtin_probes(
    *,
    ram_bandwidth: RamBandwidthMode = "cached",
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[tuple[str, object]]:
    """The built-in probe plugins as ``(name, plugin)`` pairs, ready for ``pm.register``.

    The pytest plugin registers these into pytest's plugin manager, so that probes in
    ``conftest.py`` files take part, then runs
    ``merge_results(call_probes(config.pluginmanager, env))``.
    """
    from . import amd, apple, nvidia, system

    return [
        ("nvidia", nvidia),
        ("amd", amd),
        ("apple", apple),
        ("system", system.SystemProbe(ram_bandwidth=ram_bandwidth, cache_dir=cache_dir)),
    ]


def detect_host(
    *,
    env: Mapping[str, str] | None = None,
    plugins: Iterable[object] = (),
    ram_bandwidth: RamBandwidthMode | bool = "cached",
    cache_dir: str | os.PathLike[str] | None = None,
    disable: Iterable[str] = (),
    warn: bool = True,
) -> Host:
    """Probe this machine and return its :class:`Host` (GPUs in CUDA order).

    ``env`` defaults to ``os.environ``. ``plugins`` are extra hook implementations
    (modules or objects with a ``pytest_llmfit_probe`` hookimpl), registered after the
    built-ins. ``disable`` blocks built-in probes by name (see :data:`BUILTIN_PROBES`).
    ``ram_bandwidth`` chooses whether host RAM bandwidth is measured (about 0.5 s, then
    cached under ``cache_dir``; see :mod:`pytest_llmfit.hardware.probes.system`): ``"off"``,
    ``"cached"`` (reuse only) or ``"measure"``; ``True`` means ``"measure"`` and ``False``
    ``"off"``. Each problem is warned once as :class:`LlmfitProbeWarning` unless ``warn``
    is false.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    if isinstance(ram_bandwidth, bool):
        ram_bandwidth = "measure" if ram_bandwidth else "off"
    pm = pluggy.PluginManager("pytest")
    pm.add_hookspecs(hookspecs)
    blocked = set(disable)
    for name, plugin in builtin_probes(ram_bandwidth=ram_bandwidth, cache_dir=cache_dir):
        if name not in blocked:
            pm.register(plugin, name=name)
    for plugin in plugins:
        pm.register(plugin)
    return merge_results(call_probes(pm, environ), warn=warn)


def call_probes(pm: pluggy.PluginManager, env: Mapping[str, str]) -> list[ProbeResult | None]:
    """Call every ``pytest_llmfit_probe`` implementation in pluggy's order, one at a time.

    Unlike a plain hook call, a probe that raises or returns something other than a
    :class:`ProbeResult` costs only its own answer: it becomes a problem line naming the
    plugin. (Hook wrappers, if any, get a plain hook call.)
    """
    caller = pm.hook.pytest_llmfit_probe
    impls = caller.get_hookimpls()
    if any(impl.hookwrapper or impl.wrapper for impl in impls):
        return list(caller(env=env))
    kwargs = {"env": env}
    results: list[ProbeResult | None] = []
    for impl in reversed(impls):  # pluggy calls the last registered first
        name = _plugin_label(impl.plugin)
        try:
            answer = impl.function(*(kwargs[arg] for arg in impl.argnames))
        except Exception as exc:
            answer = ProbeResult(problems=(f"probe {name} failed: {type(exc).__name__}: {exc}",))
        if answer is not None and not isinstance(answer, ProbeResult):
            answer = ProbeResult(
                problems=(
                    f"probe {name} returned {type(answer).__name__}, not a ProbeResult; ignored",
                )
            )
        results.append(answer)
    return results


def _plugin_label(plugin: object) -> str:
    """A module by its name, an object by its class: ``probe my_probe failed: ...``."""
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else type(plugin).__qualname__


def merge_results(results: Sequence[ProbeResult | None], *, warn: bool = True) -> Host:
    """Merge hook results (in pluggy's call order: last registered first) into one Host.

    GPUs: those with a ``cuda_index`` first, by that index; then the others in
    registration order. A GPU whose UUID was already reported by an earlier-called probe
    is dropped. RAM and CPU: the first non-``None`` answer in call order.
    """
    answered = [r for r in results if r is not None]
    ram: Ram | None = next((r.ram for r in answered if r.ram is not None), None)
    cpu: Cpu | None = next((r.cpu for r in answered if r.cpu is not None), None)

    seen_uuids: set[str] = set()
    kept: list[tuple[int, Gpu]] = []
    for position, result in enumerate(answered):
        for gpu in result.gpus:
            if gpu.uuid is not None:
                if gpu.uuid in seen_uuids:
                    continue
                seen_uuids.add(gpu.uuid)
            kept.append((position, gpu))
    # Registration order is the reverse of pluggy's call order.
    kept.sort(key=lambda item: -item[0])
    gpus = sorted(
        (gpu for _, gpu in kept),
        key=lambda g: (g.cuda_index is None, g.cuda_index if g.cuda_index is not None else 0),
    )

    problems: list[str] = []
    notes: list[str] = []
    for result in reversed(answered):
        problems.extend(result.problems)
        notes.extend(result.notes)
    if ram is None:
        problems.append("RAM unknown: no probe reported host memory")
        ram = Ram(total=0, available=0)
    if cpu is None:
        problems.append("CPU unknown: no probe reported the processor")
        cpu = Cpu(model="unknown", cores_physical=1, cores_logical=1)
    problems = _unique(problems)
    if warn:
        for problem in problems:
            warnings.warn(LlmfitProbeWarning(problem), stacklevel=3)
    all_notes = _unique([*problems, *notes])
    return Host(gpus=tuple(gpus), cpu=cpu, ram=ram, notes=tuple(all_notes))


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(line for line in lines if line))
