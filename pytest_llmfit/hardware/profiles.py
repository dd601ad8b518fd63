"""Simulated hardware: a catalog of cards and runners, compact spec strings and TOML files.

"What if I had 2x H100?" is answered by building a :class:`~pytest_llmfit.hardware.types.Host`
that the planner treats exactly like a probed one, with ``simulated=True``.

Three ways in, one way out (:func:`resolve_hardware`):

* a **profile id** from the built-in catalog (``pytest-llmfit profiles`` lists it);
* a **spec string** (:func:`host_from_spec`)::

      "2x a100-80gb, ram=256GB"       two cards and 256 GB of host RAM
      "rtx-4090, rtx-3090"            mixed cards, in CUDA order as written
      "h100"                          a family: resolves to h100-sxm and says so in notes
      "github-ubuntu-latest"          a whole runner (CPU only, 4 vCPU, 16 GiB)
      "cpu-only, ram=32GB, cpu=8"     no GPU at all

* a **TOML file** (:func:`host_from_toml`), for machines worth keeping in a repository.

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

NAME matches ids, aliases and the driver's own name with case, spaces, dashes and
underscores ignored: ``RTX 4090``, ``rtx_4090``, ``NVIDIA GeForce RTX 4090`` all work.
A count suffix (``h100*2``) is not accepted: counts go first, so ``4x4090`` is unambiguous.

Decisions, documented once here:

* **Capacities are what the driver reports** (``nvidia-smi``'s MiB total, NVML's
  ``memory.total``, ``rocm-smi``'s VRAM total), never the marketing figure. A "24 GB" RTX
  4090 reports 24564 MiB = 25.76 GB, so it passes ``requires_vram("24GB")`` (but it is
  12 MiB short of 24 GiB, so ``"24GiB"`` fails on it). Each entry's
  ``source`` says whether the figure was measured on a real machine (and where it was
  seen) or derived.
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
* **Host defaults** when a spec names only cards: each card carries a typical host (see
  ``HOST_DEFAULTS``); RAM and cores add up per card, RAM bandwidth is the largest of them.
  The Host's ``notes`` say which defaults were assumed; ``ram=``, ``ram_bw=``, ``cpu=``
  replace them.
* GPUs are numbered 0..n-1 in the order written (``index`` and ``cuda_index``; Apple's
  Metal device has no CUDA index) with uuids ``SIM-GPU-0``, ``SIM-GPU-1``...
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, ProfileError
from ..units import SIZE_FORMS, format_bandwidth, format_size, parse_size
from .types import Cpu, Gpu, Host, Ram

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]

__all__ = [
    "FAMILIES",
    "HOST_DEFAULTS",
    "SPEC_FORMS",
    "HostDefaults",
    "Profile",
    "ProfileKind",
    "apple_gpu_share",
    "catalog",
    "find_profile",
    "host_from_profile",
    "host_from_spec",
    "host_from_toml",
    "lookup",
    "parse_bandwidth",
    "render_catalog",
    "render_profiles",
    "resolve_hardware",
]

GiB = 2**30
MiB = 2**20
GB = 10**9
TB = 10**12

ProfileKind = Literal["gpu", "soc", "runner"]

SPEC_FORMS = (
    "a hardware spec like '2x a100-80gb, ram=256GB', 'rtx-4090, rtx-3090', "
    "'cpu-only, ram=32GB, cpu=8' or a path to a .toml profile file"
)
BANDWIDTH_FORMS = "a bandwidth like '80GB/s', '3.35TB/s' or a number of bytes per second"
_LIST_HINT = (
    "a GPU item is '[N x] NAME' with NAME an id or alias such as '2x h100-sxm'; "
    "`pytest-llmfit profiles` lists them"
)


@dataclass(frozen=True)
class HostDefaults:
    """The host a profile implies when a spec does not say: RAM, its bandwidth, CPU cores."""

    ram: int  # bytes
    ram_bandwidth: float  # bytes/s, datasheet peak of the memory channels
    cpu_cores: int  # physical cores
    cpu_threads: int | None = None  # logical CPUs when they differ (SMT)
    cpu_model: str = "simulated CPU"


#: Typical hosts, by class of card. Rough on purpose: a spec's ram=, ram_bw= and cpu=
#: replace them. Per card; a spec with N cards gets N times the RAM and cores.
HOST_DEFAULTS: dict[str, HostDefaults] = {
    # A desktop: 64 GiB of dual-channel DDR5 (DDR5-4800 x 2 channels = 76.8 GB/s peak;
    # 60 GB/s is a conservative figure for what desktops are sold with), 8 cores.
    "desktop": HostDefaults(64 * GiB, 60 * GB, 8),
    # A small cloud GPU VM (g4dn/g5/g6 2xlarge-class): 32 GiB, 8 vCPU; a slice of a socket.
    "cloud": HostDefaults(32 * GiB, 40 * GB, 8),
    # One GPU's share of an 8-GPU A100/L40S-class server: 128 GiB, 16 cores, one socket
    # of 8-channel DDR4-3200 (204.8 GB/s).
    "server": HostDefaults(128 * GiB, 200 * GB, 16),
    # One GPU's share of an H100/H200/B200/MI300X server (p5.48xlarge: 2 TiB / 8 GPUs,
    # 192 vCPU / 8): 256 GiB, 24 cores, one socket of 8-channel DDR5-4800 (307 GB/s).
    "hpc": HostDefaults(256 * GiB, 300 * GB, 24),
}


@dataclass(frozen=True)
class Profile:
    """One catalog entry: a GPU card, an Apple SoC, or a whole runner machine.

    ``memory`` is bytes as the driver reports it: per card for ``gpu``; the GPU's share of
    the default RAM for ``soc``; for ``runner``, the total over its GPUs, or its RAM when it
    has none. ``bandwidth`` is the datasheet peak of that memory, bytes/s.
    """

    id: str
    kind: ProfileKind
    name: str  # as the driver reports it ("NVIDIA GeForce RTX 4090"); a runner's description
    vendor: str  # "nvidia", "amd", "apple"; "" for a CPU-only runner
    memory: int
    bandwidth: float
    host: HostDefaults
    aliases: tuple[str, ...] = ()
    compute_capability: tuple[int, int] | None = None
    unified: bool = False
    gpus: tuple[tuple[str, int], ...] = ()  # runner: (card id, count)
    source: str = ""  # where the memory figure comes from: "measured: ..." or "derived: ..."

    @property
    def memory_mib(self) -> float:
        return self.memory / MiB

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "vendor": self.vendor,
            "memory": self.memory,
            "bandwidth": self.bandwidth,
            "aliases": list(self.aliases),
            "compute_capability": (
                list(self.compute_capability) if self.compute_capability else None
            ),
            "unified": self.unified,
            "gpus": [[card, count] for card, count in self.gpus],
            "host": {
                "ram": self.host.ram,
                "ram_bandwidth": self.host.ram_bandwidth,
                "cpu_cores": self.host.cpu_cores,
            },
            "source": self.source,
        }


def apple_gpu_share(ram: int) -> int:
    """macOS's default GPU working set for ``ram`` bytes of unified memory.

    75% above 36 GiB, 2/3 at or below: ``apple_gpu_share(96 * 2**30) == 72 * 2**30``
    (llama.cpp logs ``recommendedMaxWorkingSetSize = 73728 MB`` on a 96 GiB M2 Max and
    21845.34 on a 32 GiB machine).
    """
    return ram * 3 // 4 if ram > 36 * GiB else ram * 2 // 3


def _card(
    id: str,
    name: str,
    vendor: str,
    mib: int,
    bandwidth: float,
    cc: tuple[int, int] | None,
    host: str,
    source: str,
    aliases: tuple[str, ...] = (),
) -> Profile:
    return Profile(
        id=id,
        kind="gpu",
        name=name,
        vendor=vendor,
        memory=mib * MiB,
        bandwidth=float(bandwidth),
        host=HOST_DEFAULTS[host],
        aliases=aliases,
        compute_capability=cc,
        source=source,
    )


def _soc(
    id: str, name: str, ram_gib: int, bandwidth: float, cores: int, aliases: tuple[str, ...]
) -> Profile:
    ram = ram_gib * GiB
    return Profile(
        id=id,
        kind="soc",
        name=name,
        vendor="apple",
        memory=apple_gpu_share(ram),
        bandwidth=float(bandwidth),
        host=HostDefaults(ram, float(bandwidth), cores, cpu_model=name),
        aliases=aliases,
        unified=True,
        source=(
            f"derived: {ram_gib} GiB configuration, macOS default GPU working set "
            "(75% above 36 GiB, 2/3 below); set ram= for another configuration"
        ),
    )


# Sources of the MiB totals. "measured" = the driver's total as printed by nvidia-smi /
# NVML / rocm-smi on a real machine, in public output; "derived" = not seen, reasoned.
_MODAL = "modal-labs/modal-client#2797 (nvidia-smi totals across Modal's fleet)"

# fmt: off
_CARDS: tuple[Profile, ...] = (
    _card("rtx-3090", "NVIDIA GeForce RTX 3090", "nvidia", 24576, 936 * GB, (8, 6), "desktop",
          "measured: nvidia-smi 24576MiB (noonghunna/club-3090#390, #741)",
          ("3090", "geforce-rtx-3090")),
    _card("rtx-4090", "NVIDIA GeForce RTX 4090", "nvidia", 24564, 1008 * GB, (8, 9), "desktop",
          "measured: nvidia-smi 24564MiB (RLinf/RLinf#255)",
          ("4090", "geforce-rtx-4090")),
    _card("rtx-5090", "NVIDIA GeForce RTX 5090", "nvidia", 32607, 1792 * GB, (12, 0), "desktop",
          "measured: nvidia-smi 32607MiB (noonghunna/club-3090#617, #741)",
          ("5090", "geforce-rtx-5090")),
    _card("t4", "Tesla T4", "nvidia", 15360, 320 * GB, (7, 5), "cloud",
          f"measured: nvidia-smi 15360MiB ({_MODAL})",
          ("tesla-t4", "nvidia-t4")),
    _card("l4", "NVIDIA L4", "nvidia", 23034, 300 * GB, (8, 9), "cloud",
          f"measured: nvidia-smi 23034MiB ({_MODAL})",
          ("nvidia-l4",)),
    _card("a10", "NVIDIA A10", "nvidia", 23028, 600 * GB, (8, 6), "cloud",
          "measured: NVML total 24146608128 B = 23028 MiB (mayooot/detect-gpu#3)",
          ("nvidia-a10",)),
    _card("a10g", "NVIDIA A10G", "nvidia", 23028, 600 * GB, (8, 6), "cloud",
          f"measured: nvidia-smi 23028MiB (NVIDIA/DCGM#232; {_MODAL})",
          ("nvidia-a10g",)),
    _card("l40s", "NVIDIA L40S", "nvidia", 46068, 864 * GB, (8, 9), "server",
          f"measured: nvidia-smi 46068 MiB (akash-network/provider-configs#99; {_MODAL})",
          ("nvidia-l40s",)),
    _card("a100-40gb-sxm", "NVIDIA A100-SXM4-40GB", "nvidia", 40960, 1555 * GB, (8, 0), "server",
          f"measured: nvidia-smi 40960MiB for A100 40GB ({_MODAL})",
          ("a100-sxm4-40gb", "a100-40gb-sxm4")),
    _card("a100-40gb-pcie", "NVIDIA A100-PCIE-40GB", "nvidia", 40960, 1555 * GB, (8, 0),
          "server",
          "derived: same 40 GiB HBM2 as the SXM4 40GB board (40960MiB measured there)",
          ("a100-pcie-40gb",)),
    _card("a100-80gb", "NVIDIA A100-SXM4-80GB", "nvidia", 81920, 2039 * GB, (8, 0), "server",
          f"measured: nvidia-smi 81920MiB ({_MODAL}; A800-SXM4-80GB in dexmal/dexbotic#41)",
          ("a100-80gb-sxm", "a100-sxm4-80gb", "a100-sxm")),
    _card("a100-80gb-pcie", "NVIDIA A100 80GB PCIe", "nvidia", 81920, 1935 * GB, (8, 0),
          "server",
          "derived: same 80 GiB HBM2e as the SXM4 80GB board; its PCIe twin A800 80GB PCIe "
          "reports 81920 MB (Datura-ai/lium-io#1199)",
          ("a100-pcie-80gb", "a100-pcie")),
    _card("h100-pcie", "NVIDIA H100 PCIe", "nvidia", 81559, 2000 * GB, (9, 0), "hpc",
          "measured: nvidia-smi 81559MiB (public nvidia-smi outputs of H100 PCIe hosts)",
          ("h100-80gb-pcie", "h100pcie")),
    _card("h100-sxm", "NVIDIA H100 80GB HBM3", "nvidia", 81559, 3350 * GB, (9, 0), "hpc",
          f"measured: nvidia-smi 81559MiB (NVIDIA/nccl#1264; {_MODAL})",
          ("h100-sxm5", "h100-80gb-hbm3", "h100-80gb-sxm")),
    _card("h100-nvl", "NVIDIA H100 NVL", "nvidia", 95830, 3900 * GB, (9, 0), "hpc",
          "measured: nvidia-smi 95830MiB (NVIDIA/gpu-admin-tools#4)",
          ("h100nvl", "h100-94gb")),
    _card("h200", "NVIDIA H200", "nvidia", 143771, 4800 * GB, (9, 0), "hpc",
          "measured: nvidia-smi 143771MiB (seen on a real H200 machine; DESIGN.md)",
          ("h200-sxm", "h200-141gb")),
    _card("b200", "NVIDIA B200", "nvidia", 183359, 8000 * GB, (10, 0), "hpc",
          "measured: nvidia-smi 183359MiB (NVIDIA/TensorRT-LLM#10278); bandwidth is the 8 TB/s "
          "datasheet figure, the driver's bus width gives 7.67 TB/s (pytorch/ao#4002)",
          ("b200-sxm", "b200-180gb")),
    _card("mi300x", "AMD Instinct MI300X", "amd", 196288, 5300 * GB, None, "hpc",
          "measured: rocm-smi VRAM Total Memory 205822885888 B = 196288 MiB "
          "(several public rocm-smi/sysfs outputs)",
          ("instinct-mi300x", "amd-mi300x")),
)
# fmt: on

_SOCS: tuple[Profile, ...] = (
    _soc("m2-max", "Apple M2 Max", 96, 400 * GB, 12, ("apple-m2-max",)),
    _soc("m2-ultra", "Apple M2 Ultra", 192, 800 * GB, 24, ("apple-m2-ultra",)),
    _soc("m3-max", "Apple M3 Max", 128, 400 * GB, 16, ("apple-m3-max",)),
    _soc("m4-max", "Apple M4 Max", 128, 546 * GB, 16, ("apple-m4-max",)),
    _soc("m3-ultra", "Apple M3 Ultra", 512, 819 * GB, 32, ("apple-m3-ultra",)),
)

_CARD_BY_ID = {p.id: p for p in _CARDS}


def _runner(
    id: str,
    name: str,
    host: HostDefaults,
    gpus: tuple[tuple[str, int], ...],
    aliases: tuple[str, ...],
    source: str,
) -> Profile:
    if gpus:
        first = _CARD_BY_ID[gpus[0][0]]
        memory = sum(_CARD_BY_ID[card].memory * count for card, count in gpus)
        bandwidth = first.bandwidth
        vendor = first.vendor
    else:
        memory, bandwidth, vendor = host.ram, host.ram_bandwidth, ""
    return Profile(
        id=id,
        kind="runner",
        name=name,
        vendor=vendor,
        memory=memory,
        bandwidth=bandwidth,
        host=host,
        aliases=aliases,
        gpus=gpus,
        source=source,
    )


_RUNNERS: tuple[Profile, ...] = (
    _runner(
        "github-ubuntu-latest",
        "GitHub-hosted ubuntu-latest (public repos): 4 vCPU, 16 GiB, no GPU",
        # 4 vCPU = 2 cores x 2 threads on the AMD EPYC hosts (derived); RAM bandwidth is a
        # rough share of the host's DDR4 for a 4-vCPU VM.
        HostDefaults(16 * GiB, 20 * GB, 2, 4, "AMD EPYC 7763 64-Core Processor"),
        (),
        ("ubuntu-latest", "gha", "github-actions", "ci-cpu"),
        "GitHub docs: standard Linux runner, 4 CPU, 16 GB RAM; GiB and cores derived",
    ),
    _runner(
        "github-gpu-t4",
        "GitHub-hosted GPU runner: 4 vCPU, 28 GiB, 1x Tesla T4",
        HostDefaults(28 * GiB, 20 * GB, 2, 4, "simulated 4-vCPU VM"),
        (("t4", 1),),
        ("gha-gpu", "github-gpu"),
        "GitHub docs: GPU larger runner, 4 CPU, 28 GB RAM, Tesla T4 16 GB",
    ),
    _runner(
        "colab-t4",
        "Google Colab T4 runtime: 2 vCPU, 12.7 GB, 1x Tesla T4",
        HostDefaults(12_700 * 10**6, 15 * GB, 1, 2, "Intel(R) Xeon(R) CPU @ 2.20GHz"),
        (("t4", 1),),
        ("colab",),
        "Colab free tier as commonly reported (12.7 GB RAM, 2 vCPU); derived",
    ),
    _runner(
        "aws-g5-xlarge",
        "AWS g5.xlarge: 4 vCPU, 16 GiB, 1x A10G",
        HostDefaults(16 * GiB, 20 * GB, 2, 4, "AMD EPYC 7R32"),
        (("a10g", 1),),
        ("g5-xlarge", "g5.xlarge"),
        "AWS instance type page: 4 vCPU, 16 GiB, 1x A10G 24 GB",
    ),
    _runner(
        "aws-g6-xlarge",
        "AWS g6.xlarge: 4 vCPU, 16 GiB, 1x L4",
        HostDefaults(16 * GiB, 20 * GB, 2, 4, "AMD EPYC 7R13"),
        (("l4", 1),),
        ("g6-xlarge", "g6.xlarge"),
        "AWS instance type page: 4 vCPU, 16 GiB, 1x L4 24 GB",
    ),
    _runner(
        "aws-p4d-24xlarge",
        "AWS p4d.24xlarge: 96 vCPU, 1152 GiB, 8x A100 40GB SXM4",
        HostDefaults(1152 * GiB, 400 * GB, 48, 96, "Intel Xeon Platinum 8275CL"),
        (("a100-40gb-sxm", 8),),
        ("p4d-24xlarge", "p4d.24xlarge", "p4d"),
        "AWS instance type page: 96 vCPU, 1152 GiB, 8x A100 40GB",
    ),
    _runner(
        "aws-p5-48xlarge",
        "AWS p5.48xlarge: 192 vCPU, 2048 GiB, 8x H100 80GB SXM",
        HostDefaults(2048 * GiB, 600 * GB, 96, 192, "AMD EPYC 7R13"),
        (("h100-sxm", 8),),
        ("p5-48xlarge", "p5.48xlarge", "p5", "dgx-h100-class"),
        "AWS instance type page: 192 vCPU, 2 TiB, 8x H100 80GB",
    ),
)

_CATALOG: tuple[Profile, ...] = _CARDS + _SOCS + _RUNNERS

#: Family names: the first variant is the default (the most common in clouds and labs).
FAMILIES: dict[str, tuple[str, ...]] = {
    "h100": ("h100-sxm", "h100-pcie", "h100-nvl"),
    "h100-80gb": ("h100-sxm", "h100-pcie"),
    "a100": ("a100-80gb", "a100-80gb-pcie", "a100-40gb-sxm", "a100-40gb-pcie"),
    "a100-40gb": ("a100-40gb-sxm", "a100-40gb-pcie"),
    "mi300": ("mi300x",),
}


def _key(name: str) -> str:
    """Names compare with case, spaces, dashes, dots and underscores ignored."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _build_index() -> dict[str, Profile]:
    index: dict[str, Profile] = {}
    for profile in _CATALOG:
        for name in (profile.id, *profile.aliases, profile.name):
            key = _key(name)
            if profile.kind == "runner" and key == _key(profile.name):
                continue  # runner descriptions are prose, not names
            if key in index and index[key] is not profile:
                raise AssertionError(f"catalog name {name!r} is ambiguous")
            index[key] = profile
    for family in FAMILIES:
        if _key(family) in index:
            raise AssertionError(f"family {family!r} shadows a profile")
    return index


_INDEX = _build_index()
_FAMILY_INDEX = {_key(name): name for name in FAMILIES}


def catalog() -> list[Profile]:
    """Every built-in profile: cards, then Apple SoCs, then runners."""
    return list(_CATALOG)


def lookup(name: str) -> tuple[Profile, str | None]:
    """Return the profile ``name`` designates, and a note when ``name`` was a family.

    ``lookup("H100")`` gives the h100-sxm profile and the note "'h100' is a family: using
    its most common variant 'h100-sxm' (NVIDIA H100 80GB HBM3); others: 'h100-pcie',
    'h100-nvl'". Unknown names raise :class:`ProfileError` with close matches.
    """
    key = _key(name)
    profile = _INDEX.get(key)
    if profile is not None:
        return profile, None
    family = _FAMILY_INDEX.get(key)
    if family is not None:
        variants = FAMILIES[family]
        chosen = _INDEX[_key(variants[0])]
        note = (
            f"{family!r} is a family: using its most common variant {chosen.id!r} ({chosen.name})"
        )
        if len(variants) > 1:
            note += "; others: " + ", ".join(repr(v) for v in variants[1:])
        return chosen, note
    raise _unknown(name)


def find_profile(name: str) -> Profile:
    """The profile ``name`` designates (families resolve silently); ProfileError if none."""
    return lookup(name)[0]


def _suggestions(name: str) -> list[str]:
    wanted = name.strip().lower()
    names: dict[str, tuple[str, ...]] = {}
    for profile in _CATALOG:
        for alias in (profile.id, *profile.aliases):
            names[alias] = (profile.id,)
    for family, variants in FAMILIES.items():
        names[family] = variants
    found: list[str] = []
    matches = difflib.get_close_matches(wanted, list(names), n=6, cutoff=0.7)
    if not matches:  # "rtx4090x" -> compare the squashed forms too
        squashed = {_key(n): n for n in names}
        matches = [
            squashed[m]
            for m in difflib.get_close_matches(_key(wanted), list(squashed), n=6, cutoff=0.7)
        ]
    for match in matches:
        for profile_id in names[match]:
            if profile_id not in found:
                found.append(profile_id)
    return found[:5]


def _unknown(name: str, *, source: str | None = None) -> ProfileError:
    close = _suggestions(name)
    hint = "did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
    hint = (hint + " " if hint else "") + _LIST_HINT
    return ProfileError(name, "a known GPU, Apple chip or runner profile", source=source, hint=hint)


# --------------------------------------------------------------------------- values


def parse_bandwidth(value: object, *, source: str | None = None) -> float:
    """Bytes per second from ``"80GB/s"``, ``"3.35 TB/s"``, ``"80GB"`` or a number."""
    if isinstance(value, str):
        text = re.sub(r"\s*/\s*s(?:ec)?\s*$", "", value.strip(), flags=re.IGNORECASE)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = value  # type: ignore[assignment]
    else:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source)
    try:
        rate = parse_size(text)
    except ConfigError as exc:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source, hint=exc.hint) from exc
    if rate <= 0:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source, hint="must be more than 0")
    return float(rate)


def _size(value: object, *, source: str | None, positive: bool = True) -> int:
    try:
        size = parse_size(value)
    except ConfigError as exc:
        raise ProfileError(value, SIZE_FORMS, source=source, hint=exc.hint) from exc
    if positive and size <= 0:
        raise ProfileError(value, SIZE_FORMS, source=source, hint="must be more than 0")
    return size


def _cores(value: object, *, source: str | None) -> int:
    expected = "a number of CPU cores like 8"
    if isinstance(value, bool):
        raise ProfileError(value, expected, source=source)
    if isinstance(value, int):
        cores = value
    elif isinstance(value, str) and value.strip().isdigit():
        cores = int(value.strip())
    else:
        raise ProfileError(value, expected, source=source)
    if not 1 <= cores <= 4096:
        raise ProfileError(value, expected, source=source, hint="between 1 and 4096")
    return cores


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _CustomCard:
    """A card described field by field in a TOML file."""

    name: str
    memory: int
    bandwidth: float | None
    vendor: str = "custom"
    compute_capability: tuple[int, int] | None = None
    unified: bool = False


@dataclass
class _Request:
    """What a spec or a file asks for, before defaults are applied."""

    runner: Profile | None = None
    cards: list[tuple[Profile | _CustomCard, int, int | None, int | None]] = field(
        default_factory=list
    )  # (card, count, used, free) per GPU entry
    cpu_only: bool = False
    ram: int | None = None
    ram_bandwidth: float | None = None
    cpu_cores: int | None = None
    cpu_model: str | None = None
    used: int | None = None
    free: int | None = None
    vram: int | None = None
    notes: list[str] = field(default_factory=list)


def _build(request: _Request, *, source: str, where: str | None) -> Host:
    notes = list(request.notes)
    cards = list(request.cards)
    base: HostDefaults
    if request.runner is not None:
        base = request.runner.host
        cards = [(_CARD_BY_ID[cid], count, None, None) for cid, count in request.runner.gpus]
    elif cards:
        defaults = [
            (c.host if isinstance(c, Profile) else HOST_DEFAULTS["desktop"], n)
            for c, n, _, _ in cards
        ]
        base = HostDefaults(
            ram=sum(d.ram * n for d, n in defaults),
            ram_bandwidth=max(d.ram_bandwidth for d, _ in defaults),
            cpu_cores=sum(d.cpu_cores * n for d, n in defaults),
            cpu_model=defaults[0][0].cpu_model,
        )
    else:
        base = HOST_DEFAULTS["desktop"]

    ram = request.ram if request.ram is not None else base.ram
    ram_bw = request.ram_bandwidth if request.ram_bandwidth is not None else base.ram_bandwidth
    if request.cpu_cores is not None:
        cores, threads = request.cpu_cores, request.cpu_cores
    else:
        cores, threads = base.cpu_cores, base.cpu_threads or base.cpu_cores
    assumed = [
        label
        for label, given in (
            (f"RAM {format_size(ram, binary=True)} (ram=)", request.ram),
            (f"RAM bandwidth {format_bandwidth(ram_bw)} (ram_bw=)", request.ram_bandwidth),
            (f"{cores} CPU cores (cpu=)", request.cpu_cores),
        )
        if given is None
    ]
    if assumed and request.runner is None:
        notes.append("assumed host defaults: " + ", ".join(assumed))

    gpus: list[Gpu] = []
    for card, count, used, free in cards:
        for _ in range(count):
            index = len(gpus)
            bandwidth: float | None
            if isinstance(card, Profile):
                total = apple_gpu_share(ram) if card.unified else card.memory
                vendor, name, bandwidth = card.vendor, card.name, card.bandwidth
                cc, unified = card.compute_capability, card.unified
            else:
                total, vendor, name, bandwidth = card.memory, card.vendor, card.name, card.bandwidth
                cc, unified = card.compute_capability, card.unified
            if request.vram is not None:
                total = request.vram
            gpu_used = used if used is not None else request.used
            gpu_free = free if free is not None else request.free
            if gpu_free is not None and gpu_free > total:
                raise ProfileError(
                    format_size(gpu_free),
                    f"a free= within GPU {index}'s total ({name}, {format_size(total)})",
                    source=where,
                )
            if gpu_used is not None and gpu_used > total:
                raise ProfileError(
                    format_size(gpu_used),
                    f"a used= within GPU {index}'s total ({name}, {format_size(total)})",
                    source=where,
                )
            available = gpu_free if gpu_free is not None else total - (gpu_used or 0)
            gpus.append(
                Gpu(
                    vendor=vendor,
                    name=name,
                    index=index,
                    memory_total=total,
                    memory_free=available,
                    bandwidth=bandwidth,
                    cuda_index=None if vendor == "apple" else index,
                    uuid=f"SIM-GPU-{index}",
                    compute_capability=cc,
                    unified=unified,
                )
            )
    model = request.cpu_model or base.cpu_model
    return Host(
        gpus=tuple(gpus),
        cpu=Cpu(model=model, cores_physical=cores, cores_logical=max(threads, cores)),
        ram=Ram(total=ram, available=ram, bandwidth=ram_bw),
        simulated=True,
        source=source,
        notes=tuple(notes),
    )


def _check_combination(request: _Request, *, where: str | None, spec: str) -> None:
    kinds = [c for c, _, _, _ in request.cards]
    if request.cpu_only and kinds:
        raise ProfileError(
            spec, SPEC_FORMS, source=where, hint="'cpu-only' cannot be mixed with GPUs"
        )
    if request.runner is not None and (kinds or request.cpu_only):
        raise ProfileError(
            spec,
            SPEC_FORMS,
            source=where,
            hint=f"runner {request.runner.id!r} is a whole machine: add only options "
            "(ram=, ram_bw=, cpu=, used=, free=, vram=) to it",
        )
    socs = [(c, n) for c, n, _, _ in request.cards if isinstance(c, Profile) and c.kind == "soc"]
    if socs and (len(socs) > 1 or socs[0][1] != 1 or len(kinds) > 1):
        raise ProfileError(
            spec,
            SPEC_FORMS,
            source=where,
            hint=f"an Apple chip ({socs[0][0].id!r}) is the whole machine: one, on its own",
        )
    if request.used is not None and request.free is not None:
        raise ProfileError(spec, SPEC_FORMS, source=where, hint="give used= or free=, not both")


# --------------------------------------------------------------------------- spec strings

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
_MAX_COUNT = 64


def host_from_spec(spec: str, *, source: str | None = None) -> Host:
    """Build a simulated Host from a spec string (grammar in the module docstring).

    ``source`` says where the spec came from (``"--llmfit-hardware"``, an ini key) and is
    named in errors; the Host's own ``source`` is the spec itself.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ProfileError(spec, SPEC_FORMS, source=source)
    request = _Request()
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
        if _key(item) in ("cpuonly", "none", "cpu", "nogpu"):
            request.cpu_only = True
            continue
        count, name = 1, item
        counted = _COUNT_RE.match(item)
        if counted:
            count, name = int(counted.group(1)), counted.group(2).strip()
            if not 1 <= count <= _MAX_COUNT:
                raise ProfileError(item, f"a GPU count between 1 and {_MAX_COUNT}", source=where)
        try:
            profile, note = lookup(name)
        except ProfileError:
            raise _unknown(name, source=where) from None
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
    _check_combination(request, where=source, spec=spec)
    spec_where = f"hardware spec {spec!r}" + (f", {source}" if source else "")
    return _build(request, source=spec, where=spec_where)


def _apply_option(request: _Request, key: str, value: str, *, where: str) -> None:
    if key == "ram":
        request.ram = _size(value, source=where)
    elif key == "ram_bw":
        request.ram_bandwidth = parse_bandwidth(value, source=where)
    elif key == "cpu":
        request.cpu_cores = _cores(value, source=where)
    elif key == "used":
        request.used = _size(value, source=where, positive=False)
    elif key == "free":
        request.free = _size(value, source=where, positive=False)
    elif key == "vram":
        request.vram = _size(value, source=where)
    else:  # pragma: no cover - _OPTION_NAMES and this chain are kept in step
        raise AssertionError(key)


def host_from_profile(profile: Profile | str, *, count: int = 1) -> Host:
    """A simulated Host of ``count`` copies of a card (or one runner / Apple chip)."""
    chosen = profile if isinstance(profile, Profile) else find_profile(profile)
    prefix = f"{count}x " if count != 1 else ""
    return host_from_spec(prefix + chosen.id)


# --------------------------------------------------------------------------- TOML files

_HOST_FIELDS = ("profile", "ram", "ram_bandwidth", "cpu_cores", "cpu_model", "used", "free")
_GPU_FIELDS = (
    "profile", "count", "name", "memory", "bandwidth", "vendor", "compute_capability",
    "unified", "used", "free",
)  # fmt: skip


def host_from_toml(path: str | os.PathLike[str]) -> Host:
    """Build a simulated Host from a TOML profile file::

        [host]                       # optional
        profile = "aws-p5-48xlarge"  # optional: a runner or Apple chip as the base
        ram = "256GB"
        ram_bandwidth = "80GB/s"
        cpu_cores = 32
        used = "500MiB"              # optional, every GPU

        [[gpu]]                      # one table per kind of card, in CUDA order
        profile = "h100-sxm"
        count = 2

        [[gpu]]                      # or fully custom
        name = "My Accelerator"
        memory = "80GB"
        bandwidth = "3.35TB/s"       # optional
        vendor = "nvidia"            # optional, "custom" by default
        compute_capability = "9.0"   # optional

    Every error names the file, the table and the field.
    """
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(file, "an existing .toml profile file", hint="no such file") from None
    except OSError as exc:
        raise ProfileError(file, "a readable .toml profile file", hint=str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(file, "a valid TOML file", hint=str(exc)) from None

    unknown = sorted(set(data) - {"host", "gpu"})
    if unknown:
        raise ProfileError(unknown[0], "a table of a profile file ([host] or [[gpu]])", source=file)
    request = _Request()
    host = data.get("host", {})
    if not isinstance(host, dict):
        raise ProfileError(host, "a [host] table", source=file)
    _check_fields(host, _HOST_FIELDS, file=file, label="[host]")
    where = _where(file, "[host]")
    if "profile" in host:
        profile, note = _toml_profile(host["profile"], where=where("profile"))
        if note:
            request.notes.append(note)
        if profile.kind == "runner":
            request.runner = profile
        elif profile.kind == "soc":
            request.cards.append((profile, 1, None, None))
        else:
            raise ProfileError(
                profile.id,
                "a runner or Apple chip profile",
                source=where("profile"),
                hint="put cards in [[gpu]] tables",
            )
    if "ram" in host:
        request.ram = _size(host["ram"], source=where("ram"))
    if "ram_bandwidth" in host:
        request.ram_bandwidth = parse_bandwidth(
            host["ram_bandwidth"], source=where("ram_bandwidth")
        )
    if "cpu_cores" in host:
        request.cpu_cores = _cores(host["cpu_cores"], source=where("cpu_cores"))
    if "cpu_model" in host:
        request.cpu_model = _text(host["cpu_model"], source=where("cpu_model"))
    if "used" in host:
        request.used = _size(host["used"], source=where("used"), positive=False)
    if "free" in host:
        request.free = _size(host["free"], source=where("free"), positive=False)

    tables = data.get("gpu", [])
    if not isinstance(tables, list):
        raise ProfileError(
            "gpu", "an array of tables", source=file, hint="write [[gpu]], not [gpu]"
        )
    for number, table in enumerate(tables, start=1):
        label = f"[[gpu]] #{number}"
        _check_fields(table, _GPU_FIELDS, file=file, label=label)
        request.cards.append(_toml_gpu(table, file=file, label=label, notes=request.notes))
    _check_combination(request, where=file, spec=file)
    return _build(request, source=file, where=file)


def _where(file: str, table: str) -> Callable[[str], str]:
    return lambda name: f"{file}, {table}, field {name!r}"


def _check_fields(
    data: Mapping[str, Any], allowed: Sequence[str], *, file: str, label: str
) -> None:
    if not isinstance(data, dict):
        raise ProfileError(data, f"a {label} table", source=file)
    for name in data:
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), 1)
            raise ProfileError(
                name,
                f"a field of {label} ({', '.join(allowed)})",
                source=file,
                hint=f"did you mean {close[0]!r}?" if close else None,
            )


def _text(value: object, *, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(value, "a non-empty string", source=source)
    return value.strip()


def _toml_profile(value: object, *, where: str) -> tuple[Profile, str | None]:
    name = _text(value, source=where)
    try:
        return lookup(name)
    except ProfileError:
        raise _unknown(name, source=where) from None


def _toml_gpu(
    table: Mapping[str, Any], *, file: str, label: str, notes: list[str]
) -> tuple[Profile | _CustomCard, int, int | None, int | None]:
    where = _where(file, label)
    count = 1
    if "count" in table:
        value = table["count"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_COUNT:
            raise ProfileError(
                value, f"a GPU count between 1 and {_MAX_COUNT}", source=where("count")
            )
        count = value
    used = _size(table["used"], source=where("used"), positive=False) if "used" in table else None
    free = _size(table["free"], source=where("free"), positive=False) if "free" in table else None
    if used is not None and free is not None:
        raise ProfileError(label, "a GPU table with used or free", source=file, hint="not both")
    card: Profile | _CustomCard
    if "profile" in table:
        extra = [k for k in ("name", "vendor", "compute_capability", "unified") if k in table]
        if extra:
            raise ProfileError(
                extra[0],
                f"a field of a {label} table that names a profile",
                source=file,
                hint="use either 'profile' or 'name' with 'memory'",
            )
        profile, note = _toml_profile(table["profile"], where=where("profile"))
        if note:
            notes.append(note)
        if profile.kind == "runner":
            raise ProfileError(
                profile.id,
                "a GPU profile",
                source=where("profile"),
                hint="a runner is a whole machine: put it in [host] profile",
            )
        card = profile
        if "memory" in table or "bandwidth" in table:  # a modified card
            card = _CustomCard(
                name=profile.name,
                memory=(
                    _size(table["memory"], source=where("memory"))
                    if "memory" in table
                    else profile.memory
                ),
                bandwidth=(
                    parse_bandwidth(table["bandwidth"], source=where("bandwidth"))
                    if "bandwidth" in table
                    else profile.bandwidth
                ),
                vendor=profile.vendor,
                compute_capability=profile.compute_capability,
                unified=profile.unified,
            )
        return card, count, used, free
    missing = [k for k in ("name", "memory") if k not in table]
    if missing:
        raise ProfileError(
            label,
            "a complete GPU table",
            source=file,
            hint=f"field {missing[0]!r} is missing; give 'profile', or 'name' and 'memory'",
        )
    cc: tuple[int, int] | None = None
    if "compute_capability" in table:
        cc = _compute_capability(table["compute_capability"], source=where("compute_capability"))
    unified = table.get("unified", False)
    if not isinstance(unified, bool):
        raise ProfileError(unified, "true or false", source=where("unified"))
    card = _CustomCard(
        name=_text(table["name"], source=where("name")),
        memory=_size(table["memory"], source=where("memory")),
        bandwidth=(
            parse_bandwidth(table["bandwidth"], source=where("bandwidth"))
            if "bandwidth" in table
            else None
        ),
        vendor=_text(table["vendor"], source=where("vendor")).lower()
        if "vendor" in table
        else "custom",
        compute_capability=cc,
        unified=unified,
    )
    return card, count, used, free


def _compute_capability(value: object, *, source: str) -> tuple[int, int]:
    expected = "a compute capability like '8.9'"
    text = str(value) if isinstance(value, (str, float)) else None
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    if not match:
        raise ProfileError(value, expected, source=source)
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- entry point


def resolve_hardware(value: str, *, source: str | None = None) -> Host:
    """A simulated Host from a path to a .toml profile file or else a spec string."""
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(value, SPEC_FORMS, source=source)
    text = value.strip()
    if text.lower().endswith(".toml") or os.path.isfile(text):
        if not os.path.isfile(text):
            raise ProfileError(
                text, "an existing .toml profile file", source=source, hint="no such file"
            )
        return host_from_toml(text)
    return host_from_spec(text, source=source)


# --------------------------------------------------------------------------- rendering


def _memory_cell(profile: Profile) -> str:
    if profile.kind == "runner":
        if not profile.gpus:
            return f"RAM {format_size(profile.host.ram, binary=True, digits=0)}"
        return " + ".join(
            f"{count}x {_CARD_BY_ID[card].memory // MiB} MiB" for card, count in profile.gpus
        )
    if profile.kind == "soc":
        ram = format_size(profile.host.ram, binary=True, digits=0)
        return f"{profile.memory // MiB} MiB of {ram}"
    return f"{profile.memory // MiB} MiB"


def render_profiles(profiles: Iterable[Profile] | None = None) -> str:
    """A plain-text table of profiles for ``pytest-llmfit profiles``.

    Memory is the driver's figure in MiB (a "24 GB" card shows 24564 MiB = 25.8 GB).
    """
    rows = [("ID", "KIND", "MEMORY", "BANDWIDTH", "NAME")]
    for profile in catalog() if profiles is None else profiles:
        rows.append(
            (
                profile.id,
                profile.kind,
                _memory_cell(profile),
                format_bandwidth(profile.bandwidth),
                profile.name,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    ]
    families = ", ".join(f"{name} -> {variants[0]}" for name, variants in FAMILIES.items())
    lines.append("")
    lines.append(f"families: {families}")
    return "\n".join(lines)


#: The name the CLI uses (``pytest-llmfit profiles``).
render_catalog = render_profiles


def _check_catalog() -> None:
    """Import-time sanity: every entry has a positive size and bandwidth."""
    for profile in _CATALOG:
        if profile.memory <= 0 or not math.isfinite(profile.bandwidth) or profile.bandwidth <= 0:
            raise AssertionError(f"catalog entry {profile.id!r} is not sane")


_check_catalog()
