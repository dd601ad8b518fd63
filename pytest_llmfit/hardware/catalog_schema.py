"""The catalog's schema: the value types an entry becomes (:class:`Profile`,
:class:`HostDefaults`) and the check of every field of one catalog TOML file.

The built-in ``data/catalog.toml`` and a user's catalog file go through the same checks, so
a user sees the same kind of line for any mistake::

    -5 is not a whole number of MiB like 24564; must be more than 0
    (lab.toml, [[gpu]] #1 'my-card', field 'memory_mib')

Merging files and indexing names is :mod:`.catalog`'s job; this module reads one file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ..errors import ProfileError
from .values import (
    check_compute_capability,
    check_cores,
    check_fields,
    check_positive_number,
    check_size,
    check_text,
    parse_bandwidth,
)

__all__ = [
    "MAX_COUNT",
    "Entry",
    "FileData",
    "HostDefaults",
    "Profile",
    "ProfileKind",
    "RunnerDraft",
    "apple_gpu_share",
    "check_name",
    "parse_catalog_data",
]

GiB = 2**30
MiB = 2**20
MAX_COUNT = 64  # GPUs of one kind in a spec, a host file or a runner

ProfileKind = Literal["gpu", "soc", "runner"]


@dataclass(frozen=True)
class HostDefaults:
    """The host a profile implies when a spec does not say: RAM, its bandwidth, CPU cores."""

    ram: int  # bytes
    ram_bandwidth: float  # bytes/s, datasheet peak of the memory channels
    cpu_cores: int  # physical cores
    cpu_threads: int | None = None  # logical CPUs when they differ (SMT)
    cpu_model: str = "simulated CPU"


@dataclass(frozen=True)
class Profile:
    """One catalog entry: a GPU card, an Apple SoC, or a whole runner machine.

    ``memory`` is bytes as the driver reports it: per card for ``gpu``; the GPU's share of
    the default RAM for ``soc``; for ``runner``, the total over its GPUs, or its RAM when it
    has none. ``bandwidth`` is the datasheet peak of that memory, bytes/s. The compute
    figures are dense datasheet peaks per card (None where the catalog does not say yet).
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
    fp16_tflops: float | None = None
    fp32_tflops: float | None = None
    int8_tops: float | None = None
    catalog_file: str | None = None  # the user catalog file it came from; None = built in

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
            "fp16_tflops": self.fp16_tflops,
            "fp32_tflops": self.fp32_tflops,
            "int8_tops": self.int8_tops,
            "catalog_file": self.catalog_file,
        }


def apple_gpu_share(ram: int) -> int:
    """macOS's default GPU working set for ``ram`` bytes of unified memory.

    75% above 36 GiB, 2/3 at or below: ``apple_gpu_share(96 * 2**30) == 72 * 2**30``
    (llama.cpp logs ``recommendedMaxWorkingSetSize = 73728 MB`` on a 96 GiB M2 Max and
    21845.34 on a 32 GiB machine).
    """
    return ram * 3 // 4 if ram > 36 * GiB else ram * 2 // 3


@dataclass(frozen=True)
class Entry:
    """A card or Apple chip as read, with the label errors name it by."""

    profile: Profile
    label: str  # "[[gpu]] #3 'l4'"


@dataclass(frozen=True)
class RunnerDraft:
    """A runner as read: its cards are looked up once every file is merged."""

    id: str
    name: str
    host: HostDefaults
    gpus: tuple[tuple[str, int, str], ...]  # (card id, count, where the card was named)
    aliases: tuple[str, ...]
    source: str
    catalog_file: str | None
    file: str
    label: str


@dataclass(frozen=True)
class FileData:
    """Everything one catalog file defines, checked."""

    file: str
    hosts: Mapping[str, HostDefaults] = field(default_factory=dict)
    entries: tuple[Entry, ...] = ()
    runners: tuple[RunnerDraft, ...] = ()
    families: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


_THROUGHPUT = ("fp16_tflops", "fp32_tflops", "int8_tops")
_FIELDS: dict[str, tuple[str, ...]] = {
    "gpu": (
        "id", "name", "vendor", "memory_mib", "memory", "bandwidth", "compute_capability",
        "host", "aliases", "source", *_THROUGHPUT,
    ),
    "soc": ("id", "name", "vendor", "ram", "bandwidth", "cpu_cores", "aliases", "source",
            *_THROUGHPUT),
    "runner": ("id", "name", "ram", "ram_bandwidth", "cpu_cores", "cpu_threads", "cpu_model",
               "gpus", "aliases", "source"),
}  # fmt: skip
_REQUIRED: dict[str, tuple[str, ...]] = {
    "gpu": ("id", "name", "vendor", "bandwidth"),  # and memory_mib or memory
    "soc": ("id", "name", "ram", "bandwidth", "cpu_cores"),
    "runner": ("id", "name", "ram", "ram_bandwidth", "cpu_cores"),
}
_HOST_FIELDS = ("ram", "ram_bandwidth", "cpu_cores", "cpu_threads", "cpu_model")
_TOP = ("hosts", "gpu", "soc", "runner", "families")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]*")
_NAME_FORMS = "a name like 'rtx-4090' (lowercase letters, digits, '.', '-', '_')"
_NAMES_FORMS = 'a list of names like ["4090", "geforce-rtx-4090"]'
_CARDS_FORMS = 'a list of cards like [{ profile = "t4", count = 1 }]'
# Spec strings read these as "no GPU" before any catalog lookup: a profile cannot be one.
_RESERVED = ("cpuonly", "none", "cpu", "nogpu")

T = TypeVar("T")


def check_name(value: object, *, source: str) -> str:
    """An id or alias that a spec string can name: 'rtx-4090', 'g5.xlarge', '4090'."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ProfileError(value, _NAME_FORMS, source=source)
    if re.match(r"\d+[x*]", value):
        raise ProfileError(value, _NAME_FORMS, source=source, hint="'2x ...' reads as a count")
    if re.sub(r"[^a-z0-9]", "", value) in _RESERVED:
        raise ProfileError(value, _NAME_FORMS, source=source, hint="it means 'no GPU' in a spec")
    return value


class _Table:
    """One table of a catalog file: each getter checks one field and names it in errors."""

    def __init__(self, data: Mapping[str, Any], *, file: str, label: str) -> None:
        self.data, self.file, self.label = data, file, label

    def where(self, key: str) -> str:
        return f"{self.file}, {self.label}, field {key!r}"

    def get(self, key: str, check: Callable[[object, str], T], default: T) -> T:
        return check(self.data[key], self.where(key)) if key in self.data else default

    def need(self, key: str, check: Callable[[object, str], T]) -> T:
        return check(self.data[key], self.where(key))


def _text(value: object, where: str) -> str:
    return check_text(value, source=where)


def _size(value: object, where: str) -> int:
    return check_size(value, source=where)


def _bandwidth(value: object, where: str) -> float:
    return parse_bandwidth(value, source=where)


def _cores(value: object, where: str) -> int:
    return check_cores(value, source=where)


def _mib(value: object, where: str) -> int:
    expected = "a whole number of MiB like 24564"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProfileError(value, expected, source=where)
    if value <= 0:
        raise ProfileError(value, expected, source=where, hint="must be more than 0")
    return value * MiB


def _tflops(value: object, where: str) -> float:
    return check_positive_number(value, "a number like 82.6 (datasheet, dense)", source=where)


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ProfileError(value, _NAMES_FORMS, source=where)
    return tuple(check_name(item, source=where) for item in value)


def _cc(value: object, where: str) -> tuple[int, int]:
    return check_compute_capability(value, source=where)


def parse_catalog_data(
    data: Mapping[str, Any], *, file: str, known_hosts: Mapping[str, HostDefaults], builtin: bool
) -> FileData:
    """Check one parsed catalog file. ``known_hosts`` are the host classes of the files
    read before (a user file may use and add host classes, not redefine them)."""
    for key in data:
        if key not in _TOP:
            close = difflib.get_close_matches(key, _TOP, 1)
            raise ProfileError(
                key,
                "a table of a catalog file ([hosts.NAME], [[gpu]], [[soc]], [[runner]], "
                "[families])",
                source=file,
                hint=f"did you mean {close[0]!r}?" if close else None,
            )
    hosts = _hosts(data.get("hosts", {}), file=file, known=known_hosts)
    all_hosts = {**known_hosts, **hosts}
    origin = None if builtin else file
    entries: list[Entry] = []
    runners: list[RunnerDraft] = []
    seen: dict[str, str] = {}
    for kind in ("gpu", "soc", "runner"):
        tables = data.get(kind, [])
        if not isinstance(tables, list):
            raise ProfileError(
                kind, "an array of tables", source=file, hint=f"write [[{kind}]], not [{kind}]"
            )
        for number, raw in enumerate(tables, start=1):
            label = f"[[{kind}]] #{number}"
            check_fields(raw, _FIELDS[kind], file=file, label=label)
            table = _Table(raw, file=file, label=label)
            profile_id = table.need("id", _check_id) if "id" in raw else None
            if profile_id is not None:
                table.label = label = f"{label} {profile_id!r}"
                if profile_id in seen:
                    raise ProfileError(
                        profile_id,
                        "an id used once in a catalog file",
                        source=table.where("id"),
                        hint=f"{seen[profile_id]} has it too",
                    )
                seen[profile_id] = label
            _require(table, kind)
            if kind == "runner":
                runners.append(_runner(table, origin=origin))
            else:
                read = _gpu if kind == "gpu" else _soc
                entries.append(Entry(read(table, hosts=all_hosts, origin=origin), label))
    families = _families(data.get("families", {}), file=file)
    return FileData(file, hosts, tuple(entries), tuple(runners), families)


def _check_id(value: object, where: str) -> str:
    return check_name(value, source=where)


def _require(table: _Table, kind: str) -> None:
    needed = list(_REQUIRED[kind])
    if kind == "gpu" and "memory_mib" not in table.data and "memory" not in table.data:
        needed.append("memory_mib")
    missing = [key for key in needed if key not in table.data]
    if missing:
        fields = ", ".join(_REQUIRED[kind]) + (" and memory_mib or memory" if kind == "gpu" else "")
        raise ProfileError(
            table.data.get("id", table.label),
            f"a complete [[{kind}]] entry",
            source=f"{table.file}, {table.label}",
            hint=f"field {missing[0]!r} is missing; an entry needs {fields}",
        )


def _gpu(table: _Table, *, hosts: Mapping[str, HostDefaults], origin: str | None) -> Profile:
    if "memory_mib" in table.data and "memory" in table.data:
        raise ProfileError(
            table.data["memory"],
            "a second memory figure",
            source=table.where("memory"),
            hint="give memory_mib or memory, not both",
        )
    memory = table.get("memory_mib", _mib, 0) or table.need("memory", _size)
    host_name = table.get("host", _text, "desktop")
    if host_name not in hosts:
        raise ProfileError(
            host_name,
            f"a host class ({', '.join(hosts)})",
            source=table.where("host"),
            hint="define others in [hosts.NAME] tables",
        )
    return Profile(
        id=table.need("id", _check_id),
        kind="gpu",
        name=table.need("name", _text),
        vendor=table.need("vendor", _text).lower(),
        memory=memory,
        bandwidth=table.need("bandwidth", _bandwidth),
        host=hosts[host_name],
        aliases=table.get("aliases", _names, ()),
        compute_capability=table.get("compute_capability", _cc, None),
        source=table.get("source", _text, ""),
        fp16_tflops=table.get("fp16_tflops", _tflops, None),
        fp32_tflops=table.get("fp32_tflops", _tflops, None),
        int8_tops=table.get("int8_tops", _tflops, None),
        catalog_file=origin,
    )


def _soc(table: _Table, *, hosts: Mapping[str, HostDefaults], origin: str | None) -> Profile:
    # Unified memory: the GPU may use macOS's default working set of the modelled RAM, and
    # the CPU reads the same memory at the chip's bandwidth.
    ram = table.need("ram", _size)
    bandwidth = table.need("bandwidth", _bandwidth)
    name = table.need("name", _text)
    return Profile(
        id=table.need("id", _check_id),
        kind="soc",
        name=name,
        vendor=table.get("vendor", _text, "apple").lower(),
        memory=apple_gpu_share(ram),
        bandwidth=bandwidth,
        host=HostDefaults(ram, bandwidth, table.need("cpu_cores", _cores), cpu_model=name),
        aliases=table.get("aliases", _names, ()),
        unified=True,
        source=table.get("source", _text, ""),
        fp16_tflops=table.get("fp16_tflops", _tflops, None),
        fp32_tflops=table.get("fp32_tflops", _tflops, None),
        int8_tops=table.get("int8_tops", _tflops, None),
        catalog_file=origin,
    )


def _runner(table: _Table, *, origin: str | None) -> RunnerDraft:
    raw = table.data.get("gpus", [])
    if not isinstance(raw, list):
        raise ProfileError(raw, _CARDS_FORMS, source=table.where("gpus"))
    gpus: list[tuple[str, int, str]] = []
    for number, item in enumerate(raw, start=1):
        label = f"{table.label}, gpus #{number}"
        check_fields(item, ("profile", "count"), file=table.file, label=label)
        card = _Table(item, file=table.file, label=label)
        if "profile" not in item:
            raise ProfileError(
                label, "a card of a runner", source=table.file, hint="field 'profile' is missing"
            )
        count = card.get("count", _count, 1)
        gpus.append((card.need("profile", _text), count, card.where("profile")))
    return RunnerDraft(
        id=table.need("id", _check_id),
        name=table.need("name", _text),
        host=_host_defaults(table),
        gpus=tuple(gpus),
        aliases=table.get("aliases", _names, ()),
        source=table.get("source", _text, ""),
        catalog_file=origin,
        file=table.file,
        label=table.label,
    )


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ProfileError(value, f"a GPU count between 1 and {MAX_COUNT}", source=where)
    return value


def _host_defaults(table: _Table) -> HostDefaults:
    cores = table.need("cpu_cores", _cores)
    threads = table.get("cpu_threads", _cores, None)
    if threads is not None and threads < cores:
        raise ProfileError(
            threads, f"a number of CPU threads of at least cpu_cores ({cores})",
            source=table.where("cpu_threads"),
        )  # fmt: skip
    return HostDefaults(
        ram=table.need("ram", _size),
        ram_bandwidth=table.need("ram_bandwidth", _bandwidth),
        cpu_cores=cores,
        cpu_threads=threads,
        cpu_model=table.get("cpu_model", _text, "simulated CPU"),
    )


def _hosts(
    data: object, *, file: str, known: Mapping[str, HostDefaults]
) -> dict[str, HostDefaults]:
    if not isinstance(data, dict):
        raise ProfileError(data, "a table of host classes like [hosts.lab]", source=file)
    hosts: dict[str, HostDefaults] = {}
    for name, raw in data.items():
        label = f"[hosts.{name}]"
        check_name(name, source=f"{file}, {label}")
        if name in known:
            raise ProfileError(
                name,
                "a new host class",
                source=f"{file}, {label}",
                hint="a host class cannot be redefined; give it another name",
            )
        check_fields(raw, _HOST_FIELDS, file=file, label=label)
        table = _Table(raw, file=file, label=label)
        for key in ("ram", "ram_bandwidth", "cpu_cores"):
            if key not in raw:
                raise ProfileError(
                    name,
                    "a complete host class",
                    source=f"{file}, {label}",
                    hint=f"field {key!r} is missing; a host class needs ram, ram_bandwidth "
                    "and cpu_cores",
                )
        hosts[name] = _host_defaults(table)
    return hosts


def _families(data: object, *, file: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise ProfileError(data, "a [families] table", source=file)
    families: dict[str, tuple[str, ...]] = {}
    for name, variants in data.items():
        where = f"{file}, [families], field {name!r}"
        check_name(name, source=where)
        if not isinstance(variants, list) or not variants:
            raise ProfileError(
                variants, "a non-empty list of ids, the most common first", source=where
            )
        families[name] = tuple(check_name(v, source=where) for v in variants)
    return families
