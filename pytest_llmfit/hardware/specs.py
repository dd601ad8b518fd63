"""Simulated hardware from a compact spec string, and the one entry point for "what if".

Role: the spec-string grammar (:func:`host_from_spec`) and :func:`resolve_hardware`, which
takes a spec or a path to a TOML host file (:mod:`.hostfile`). "What if I had 2x H100?" is
answered by a :class:`~pytest_llmfit.hardware.types.Host` that the planner treats exactly
like a probed one, with ``simulated=True``::

      "2x a100-80gb, ram=256GB"       two cards and 256 GB of host RAM
      "rtx-4090, rtx-3090"            mixed cards, in CUDA order as written
      "h100"                          a family: resolves to h100-sxm and says so in notes
      "github-ubuntu-latest"          a whole runner (CPU only, 4 vCPU, 16 GiB)
      "cpu-only, ram=32GB, cpu=8"     no GPU at all

Spec grammar (case-insensitive; spaces around tokens are free)::

    spec   := item ("," item)*
    item   := gpu | RUNNER | "cpu-only" | "none" | option
    gpu    := [COUNT ("x" | "*" | "×")] NAME          "2x h100", "2 x h100", "2*h100", "h100"
    option := KEY "=" VALUE
      ram=SIZE           host RAM ("256GB", "512GiB")
      ram_bw=RATE        host RAM bandwidth ("80GB/s", "1.2TB/s"; "/s" optional)
      cpu=N              CPU cores (physical; logical is set equal)
      used=SIZE          memory already used on every GPU (a desktop, another process)
      free=SIZE          memory free on every GPU (instead of used=)
      vram=SIZE          override every GPU's total (a modded card; Apple's wired limit)

NAME is looked up in the catalog (:mod:`.catalog`; the built-in one, or the one a user
catalog file extends, passed as ``catalog=``) by id, alias or the driver's own name with
case, spaces, dashes and underscores ignored: ``RTX 4090``, ``rtx_4090``, ``NVIDIA GeForce
RTX 4090`` all work. A count suffix (``h100*2``) is not accepted: counts go first, so
``4x4090`` is unambiguous.

Decisions, documented once here:

* **Capacities are what the driver reports** (``nvidia-smi``'s MiB total, NVML's
  ``memory.total``, ``rocm-smi``'s VRAM total), never the marketing figure. A "24 GB" RTX
  4090 reports 24564 MiB = 25.76 GB, so it passes ``requires_vram("24GB")`` (but it is
  12 MiB short of 24 GiB, so ``"24GiB"`` fails on it).
* **Bandwidths are datasheet peaks** (bytes/s). Achievable is about 70-90% of that; the
  planner applies its own efficiency factor.
* **Simulated GPUs are idle**: ``memory_free == memory_total`` unless ``used=``/``free=``
  is given. A real idle card shows a few hundred MiB in use (driver reservation, display);
  the planner accounts for the per-process CUDA/HIP context itself, so the simulation does
  not guess it twice.
* **Simulated RAM is all available**: ``Ram.available == Ram.total``.
* **Apple Silicon** is unified memory: the Metal GPU may use macOS's default wired limit,
  ``recommendedMaxWorkingSetSize``, which is 75% of RAM above 36 GiB and 2/3 at or below
  (llama.cpp logs 73728 MiB on a 96 GiB M2 Max). The Gpu's ``memory_total`` is that share
  (``unified=True``) and changes with ``ram=``. Newer macOS releases may report more on
  large machines, and ``sysctl iogpu.wired_limit_mb`` raises it; use ``vram=`` to model that.
* **Host defaults** when a spec names only cards: each card carries a typical host (its
  catalog host class); RAM and cores add up per card, RAM bandwidth is the largest of them.
  The Host's ``notes`` say which defaults were assumed; ``ram=``, ``ram_bw=``, ``cpu=``
  replace them.
* GPUs are numbered 0..n-1 in the order written (``index`` and ``cuda_index``; Apple's
  Metal device has no CUDA index) with uuids ``SIM-GPU-0``, ``SIM-GPU-1``...
"""

from __future__ import annotations

import difflib
import os
import re

from ..errors import ProfileError
from .catalog import Catalog, Profile, builtin_catalog, name_key
from .catalog_schema import MAX_COUNT
from .hostfile import host_from_toml
from .simulate import SPEC_FORMS, Request, build_host, check_combination
from .types import Host
from .values import check_cores, check_size, parse_bandwidth

__all__ = [
    "SPEC_FORMS",
    "host_from_profile",
    "host_from_spec",
    "parse_bandwidth",
    "resolve_hardware",
]

_COUNT_RE = re.compile(r"^(\d+)\s*[x*×]\s*(\S.*)$", re.IGNORECASE)
_OPTION_RE = re.compile(r"^([a-z_-]+)\s*=\s*(.*)$", re.IGNORECASE)
_OPTION_NAMES = {
    "ram": "ram",
    "ram_bw": "ram_bw",
    "ram_bandwidth": "ram_bw",
    "rambw": "ram_bw",
    "cpu": "cpu",
    "cpus": "cpu",
    "cores": "cpu",
    "cpu_cores": "cpu",
    "used": "used",
    "free": "free",
    "vram": "vram",
}


def host_from_spec(spec: str, *, source: str | None = None, catalog: Catalog | None = None) -> Host:
    """Build a simulated Host from a spec string (grammar in the module docstring).

    ``source`` says where the spec came from (``"--llmfit-hardware"``, an ini key) and is
    named in errors; the Host's own ``source`` is the spec itself. Names are looked up in
    ``catalog`` (the built-in catalog by default).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ProfileError(spec, SPEC_FORMS, source=source)
    cat = catalog or builtin_catalog()
    request = Request(cat)
    seen: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        where = f"item {item!r} of {spec!r}" + (f", {source}" if source else "")
        if not item:
            raise ProfileError(spec, SPEC_FORMS, source=source, hint="an item is empty")
        option = _OPTION_RE.match(item)
        if option:
            key = _OPTION_NAMES.get(option.group(1).lower().replace("-", "_"))
            if key is None:
                close = difflib.get_close_matches(option.group(1).lower(), list(_OPTION_NAMES), 1)
                raise ProfileError(
                    option.group(1),
                    "an option (ram=, ram_bw=, cpu=, used=, free=, vram=)",
                    source=where,
                    hint=f"did you mean '{close[0]}='?" if close else None,
                )
            if key in seen:
                raise ProfileError(item, SPEC_FORMS, source=where, hint=f"{key}= is given twice")
            seen.add(key)
            _apply_option(request, key, option.group(2).strip(), where=where)
            continue
        if name_key(item) in ("cpuonly", "none", "cpu", "nogpu"):
            request.cpu_only = True
            continue
        count, name = 1, item
        counted = _COUNT_RE.match(item)
        if counted:
            count, name = int(counted.group(1)), counted.group(2).strip()
            if not 1 <= count <= MAX_COUNT:
                raise ProfileError(item, f"a GPU count between 1 and {MAX_COUNT}", source=where)
        try:
            profile, note = cat.lookup(name)
        except ProfileError:
            raise cat.unknown(name, source=where) from None
        if note:
            request.notes.append(note)
        if profile.kind == "runner":
            if counted or request.runner is not None:
                raise ProfileError(
                    item, SPEC_FORMS, source=where, hint="a runner is one whole machine"
                )
            request.runner = profile
        else:
            request.cards.append((profile, count, None, None))
    check_combination(request, where=source, spec=spec)
    spec_where = f"hardware spec {spec!r}" + (f", {source}" if source else "")
    return build_host(request, source=spec, where=spec_where)


def _apply_option(request: Request, key: str, value: str, *, where: str) -> None:
    if key == "ram":
        request.ram = check_size(value, source=where)
    elif key == "ram_bw":
        request.ram_bandwidth = parse_bandwidth(value, source=where)
    elif key == "cpu":
        request.cpu_cores = check_cores(value, source=where)
    elif key == "used":
        request.used = check_size(value, source=where, positive=False)
    elif key == "free":
        request.free = check_size(value, source=where, positive=False)
    elif key == "vram":
        request.vram = check_size(value, source=where)
    else:  # pragma: no cover - _OPTION_NAMES and this chain are kept in step
        raise AssertionError(key)


def host_from_profile(
    profile: Profile | str, *, count: int = 1, catalog: Catalog | None = None
) -> Host:
    """A simulated Host of ``count`` copies of a card (or one runner / Apple chip)."""
    cat = catalog or builtin_catalog()
    chosen = profile if isinstance(profile, Profile) else cat.find(profile)
    prefix = f"{count}x " if count != 1 else ""
    return host_from_spec(prefix + chosen.id, catalog=catalog)


def resolve_hardware(
    value: str, *, source: str | None = None, catalog: Catalog | None = None
) -> Host:
    """A simulated Host from a path to a .toml host file or else a spec string.

    ``catalog`` is what names are looked up in: :func:`~.catalog.load_catalog` builds one
    with the user's catalog files; the built-in catalog by default.
    """
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(value, SPEC_FORMS, source=source)
    text = value.strip()
    if text.lower().endswith(".toml") or os.path.isfile(text):
        if not os.path.isfile(text):
            raise ProfileError(
                text, "an existing .toml profile file", source=source, hint="no such file"
            )
        return host_from_toml(text, catalog=catalog)
    return host_from_spec(text, source=source, catalog=catalog)
