"""Hooks that other packages implement to extend pytest-llmfit.

The markers are made with the project name ``"pytest"``, so the same specifications serve
a plain :class:`pluggy.PluginManager` (what
:func:`pytest_llmfit.hardware.probes.detect_host` builds) and pytest's own plugin manager
(where the pytest plugin adds them): an implementation in a ``conftest.py``, in a package
registered under the ``pytest11`` entry point, or passed to ``detect_host(plugins=[...])``
is found the same way.

Hooks are called with keyword arguments only. Arguments may be added in later versions but
are never changed or removed; an implementation names only the arguments it uses.
This module imports pluggy and nothing from pytest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .hardware.types import ProbeResult

hookspec = pluggy.HookspecMarker("pytest")
hookimpl = pluggy.HookimplMarker("pytest")


@hookspec
def pytest_llmfit_probe(env: Mapping[str, str]) -> ProbeResult | None:
    """Report accelerators (and optionally RAM or CPU) found on this machine.

    Every implementation is called (not first-result); each returns a
    :class:`~pytest_llmfit.hardware.ProbeResult` or ``None`` when it has nothing to say.
    ``env`` is the environment to honour (``os.environ`` unless a caller passes another
    mapping): read visibility variables from it, not from ``os.environ``.

    GPUs from all probes are merged (CUDA-numbered ones first, in CUDA order); for RAM and
    CPU the first non-``None`` answer wins, and plugins registered later are called first,
    so a third-party probe can override the built-in ``system`` probe. Each string in
    ``problems`` is warned once as :class:`~pytest_llmfit.hardware.probes.LlmfitProbeWarning` and
    kept in ``Host.notes``; a probe should never raise.

    A working probe for an accelerator pytest-llmfit does not know, in a ``conftest.py``::

        from pytest_llmfit.hardware import Gpu
        from pytest_llmfit.hookspecs import hookimpl
        from pytest_llmfit.hardware import ProbeResult

        @hookimpl
        def pytest_llmfit_probe(env):
            if "MY_NPU_VISIBLE" not in env:
                return None  # not present: say nothing
            return ProbeResult(
                gpus=(
                    Gpu(
                        vendor="my-npu",
                        name="My NPU 16GB",
                        index=0,
                        memory_total=16 * 2**30,
                        memory_free=15 * 2**30,
                        bandwidth=400e9,  # bytes per second
                    ),
                ),
                problems=(),  # e.g. ("my-npu: temperature sensor unreadable",)
            )
    """


@hookspec
def pytest_llmfit_update_report(report: dict[str, object]) -> None:
    """Add to the session report before it is printed and written (JSON and Markdown).

    Called once on the process that writes the report (the xdist controller), with the
    report as a plain dict (see :func:`pytest_llmfit.report.build_report`). Add keys; do
    not remove or change the documented ones. In a ``conftest.py``::

        from pytest_llmfit.hookspecs import hookimpl

        @hookimpl
        def pytest_llmfit_update_report(report):
            report["ci"]["cluster"] = "gpu-pool-a"
    """
