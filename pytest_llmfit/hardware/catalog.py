"""The hardware catalog: GPU cards, Apple chips and CI runners, kept as data.

Role: the catalog's value types (:class:`Profile`, :class:`HostDefaults`), reading and
checking catalog TOML files, and the :class:`Catalog` that indexes them by id, alias and the
driver's own name. The built-in entries live in ``data/catalog.toml`` (its comments say where
every figure comes from); a user catalog file has the same schema::

    [hosts.lab]                      # optional host classes, for [[gpu]] host = "lab"
    ram = "512GiB"
    ram_bandwidth = "300GB/s"
    cpu_cores = 32

    [[gpu]]
    id = "my-card"                   # lowercase letters, digits, '.', '-', '_'
    name = "ACME Accelerator 96GB"   # as the driver reports it
    vendor = "nvidia"
    memory_mib = 98304               # or memory = "96GiB"
    bandwidth = "4TB/s"
    compute_capability = "9.0"       # optional
    host = "lab"                     # optional, "desktop" by default
    aliases = ["acme-96"]            # optional
    fp16_tflops = 400.0              # optional, like fp32_tflops and int8_tops

    [[soc]] / [[runner]] / [families]    as in data/catalog.toml

A user file's entries are added; an entry with an existing id replaces that entry (and
drops its aliases), in its place in the list. A name used by two entries, a redefined
host class or an unknown key is an error naming the file, the entry and the field. The
library never reads pytest's configuration: the glue (``--llmfit-catalog``,
``LLMFIT_CATALOG``, ini ``llmfit_catalog``) and the CLI (``--catalog``) pass the path to
:func:`load_catalog`, and the Catalog goes to ``resolve_hardware(value, catalog=...)``.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import get_args

from ..errors import ProfileError
from .catalog_schema import (
    FileData,
    HostDefaults,
    Profile,
    ProfileKind,
    RunnerDraft,
    apple_gpu_share,
    parse_catalog_data,
)
from .values import parse_toml, read_toml

__all__ = [
    "FAMILIES",
    "HOST_DEFAULTS",
    "Catalog",
    "HostDefaults",
    "Profile",
    "ProfileKind",
    "apple_gpu_share",
    "builtin_catalog",
    "catalog",
    "find_profile",
    "load_catalog",
    "lookup",
    "name_key",
]

_LIST_HINT = (
    "a GPU item is '[N x] NAME' with NAME an id or alias such as '2x h100-sxm'; "
    "`pytest-llmfit profiles` lists them"
)
_KIND_ORDER = {kind: n for n, kind in enumerate(get_args(ProfileKind))}


def name_key(name: str) -> str:
    """Names compare with case, spaces, dashes, dots and underscores ignored."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


@dataclass(frozen=True)
class Catalog:
    """Profiles (cards, then Apple chips, then runners), families and host classes: the
    built-in ones plus those of ``files``, the user catalog files in the order given."""

    profiles: tuple[Profile, ...]
    families: Mapping[str, tuple[str, ...]]
    hosts: Mapping[str, HostDefaults]
    files: tuple[str, ...] = ()
    builtin_ids: frozenset[str] = frozenset()
    _index: Mapping[str, Profile] = field(default_factory=dict, repr=False, compare=False)

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def get(self, profile_id: str) -> Profile | None:
        """The profile with exactly this id, or None."""
        found = self._index.get(name_key(profile_id))
        return found if found is not None and found.id == profile_id else None

    def replaces_builtin(self, profile: Profile) -> bool:
        """Whether ``profile`` comes from a user file and took a built-in entry's place."""
        return profile.catalog_file is not None and profile.id in self.builtin_ids

    def lookup(self, name: str) -> tuple[Profile, str | None]:
        """The profile ``name`` designates, and a note when ``name`` was a family.

        ``lookup("H100")`` gives the h100-sxm profile and the note "'h100' is a family:
        using its most common variant 'h100-sxm' (NVIDIA H100 80GB HBM3); others:
        'h100-pcie', 'h100-nvl'". Unknown names raise ProfileError with close matches.
        """
        key = name_key(name)
        profile = self._index.get(key)
        if profile is not None:
            return profile, None
        for family, variants in self.families.items():
            if name_key(family) == key:
                chosen = self._index[name_key(variants[0])]
                note = (
                    f"{family!r} is a family: using its most common variant {chosen.id!r} "
                    f"({chosen.name})"
                )
                if len(variants) > 1:
                    note += "; others: " + ", ".join(repr(v) for v in variants[1:])
                return chosen, note
        raise self.unknown(name)

    def find(self, name: str) -> Profile:
        """The profile ``name`` designates (families resolve silently); ProfileError if none."""
        return self.lookup(name)[0]

    def suggestions(self, name: str) -> list[str]:
        """Up to five profile ids whose id, alias or family name is close to ``name``."""
        wanted = name.strip().lower()
        names: dict[str, tuple[str, ...]] = {}
        for profile in self.profiles:
            for alias in (profile.id, *profile.aliases):
                names[alias] = (profile.id,)
        names.update(self.families)
        matches = difflib.get_close_matches(wanted, list(names), n=6, cutoff=0.7)
        if not matches:  # "rtx4090x" -> compare the squashed forms too
            squashed = {name_key(n): n for n in names}
            close = difflib.get_close_matches(name_key(wanted), list(squashed), n=6, cutoff=0.7)
            matches = [squashed[m] for m in close]
        found: list[str] = []
        for match in matches:
            for profile_id in names[match]:
                if profile_id not in found:
                    found.append(profile_id)
        return found[:5]

    def unknown(self, name: str, *, source: str | None = None) -> ProfileError:
        """The error for a name that designates nothing, with close matches."""
        close = self.suggestions(name)
        hint = "did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
        hint = (hint + " " if hint else "") + _LIST_HINT
        return ProfileError(
            name, "a known GPU, Apple chip or runner profile", source=source, hint=hint
        )


# --------------------------------------------------------------------------- loading


@functools.cache  # read once per process, whatever user files are added to it
def _builtin_data() -> FileData:
    resource = resources.files(__package__ or "pytest_llmfit.hardware") / "data" / "catalog.toml"
    label = str(resource)
    return parse_catalog_data(
        parse_toml(resource.read_text(encoding="utf-8"), file=label),
        file=label,
        known_hosts={},
        builtin=True,
    )


@functools.cache
def builtin_catalog() -> Catalog:
    """The catalog that ships with pytest-llmfit."""
    return _assemble([_builtin_data()])


def load_catalog(
    paths: Iterable[str | os.PathLike[str]] = (), *, source: str | None = None
) -> Catalog:
    """The built-in catalog extended by the user catalog files ``paths``, later files
    taking precedence. ``source`` (``"command line --llmfit-catalog"``) is named when a
    file is missing; errors inside a file name the file, the entry and the field."""
    files = [os.fspath(p) for p in paths]
    if not files:
        return builtin_catalog()
    parsed = [_builtin_data()]
    hosts = dict(parsed[0].hosts)
    for file in files:
        data = read_toml(file, what="catalog file", source=source)
        parsed.append(parse_catalog_data(data, file=file, known_hosts=hosts, builtin=False))
        hosts.update(parsed[-1].hosts)
    return _assemble(parsed)


@dataclass(frozen=True)
class _Placed:
    """A profile and where it was written, to name the later file when two entries clash."""

    profile: Profile
    file: str
    label: str
    order: int  # 0 = built-in, 1.. = user files in the order given


def _assemble(parsed: list[FileData]) -> Catalog:
    hosts: dict[str, HostDefaults] = {}
    # dict assignment keeps an existing key's position: a replaced entry stays in its place.
    by_id: dict[str, _Placed | tuple[RunnerDraft, int]] = {}
    families: dict[str, tuple[tuple[str, ...], str, int]] = {}
    for order, data in enumerate(parsed):
        hosts.update(data.hosts)
        for entry in data.entries:
            by_id[entry.profile.id] = _Placed(entry.profile, data.file, entry.label, order)
        for draft in data.runners:
            by_id[draft.id] = (draft, order)
        for name, variants in data.families.items():
            families[name] = (variants, data.file, order)
    placed = [
        item if isinstance(item, _Placed) else _runner(item[0], item[1], by_id)
        for item in by_id.values()
    ]
    placed.sort(key=lambda p: _KIND_ORDER[p.profile.kind])  # stable: file order within a kind
    index = _index(placed, families)
    return Catalog(
        profiles=tuple(p.profile for p in placed),
        families=MappingProxyType({name: value[0] for name, value in families.items()}),
        hosts=MappingProxyType(hosts),
        files=tuple(data.file for data in parsed[1:]),
        builtin_ids=frozenset(e.profile.id for e in parsed[0].entries)
        | frozenset(d.id for d in parsed[0].runners),
        _index=MappingProxyType(index),
    )


def _runner(
    draft: RunnerDraft, order: int, by_id: Mapping[str, _Placed | tuple[RunnerDraft, int]]
) -> _Placed:
    # A runner's memory and bandwidth come from its cards, looked up after every file is
    # merged, so a user file that replaces 't4' changes the runners built on a T4 too.
    cards: list[tuple[Profile, int]] = []
    for card_id, count, where in draft.gpus:
        item = by_id.get(card_id)
        if not isinstance(item, _Placed) or item.profile.kind != "gpu":
            raise ProfileError(card_id, "the id of a [[gpu]] entry of the catalog", source=where)
        cards.append((item.profile, count))
    if cards:
        first = cards[0][0]
        memory = sum(card.memory * count for card, count in cards)
        bandwidth, vendor = first.bandwidth, first.vendor
    else:
        memory, bandwidth, vendor = draft.host.ram, draft.host.ram_bandwidth, ""
    profile = Profile(
        id=draft.id,
        kind="runner",
        name=draft.name,
        vendor=vendor,
        memory=memory,
        bandwidth=bandwidth,
        host=draft.host,
        aliases=draft.aliases,
        gpus=tuple((card.id, count) for card, count in cards),
        source=draft.source,
        catalog_file=draft.catalog_file,
    )
    return _Placed(profile, draft.file, draft.label, order)


def _index(
    placed: list[_Placed], families: Mapping[str, tuple[tuple[str, ...], str, int]]
) -> dict[str, Profile]:
    index: dict[str, _Placed] = {}
    for item in placed:
        profile = item.profile
        names = [profile.id, *profile.aliases]
        if profile.kind != "runner":  # runner descriptions are prose, not names
            names.append(profile.name)
        for name in names:
            key = name_key(name)
            other = index.get(key)
            if other is not None and other is not item:
                # Blame the later file: the built-in catalog is consistent on its own.
                late, early = (item, other) if item.order >= other.order else (other, item)
                raise ProfileError(
                    name,
                    "a name no other catalog entry has",
                    source=f"{late.file}, {late.label}",
                    hint=f"{early.profile.id!r} ({_origin(early)}) is already called that",
                )
            index[key] = item
    ids = {p.profile.id for p in placed}
    for family, (variants, file, order) in families.items():
        where = f"{file}, [families], field {family!r}"
        clash = index.get(name_key(family))
        if clash is not None:
            blamed = f"{clash.file}, {clash.label}" if clash.order > order else where
            raise ProfileError(
                family,
                "a name no other catalog entry has",
                source=blamed,
                hint=f"it is both a family and a name of {clash.profile.id!r}",
            )
        for variant in variants:
            if variant not in ids:
                raise ProfileError(variant, "the id of a catalog entry", source=where)
    return {key: item.profile for key, item in index.items()}


def _origin(item: _Placed) -> str:
    return "built in" if item.order == 0 else f"from {item.file}"


# --------------------------------------------------------------------------- the built-in one


def catalog() -> list[Profile]:
    """Every built-in profile: cards, then Apple SoCs, then runners."""
    return list(builtin_catalog().profiles)


def lookup(name: str, *, catalog: Catalog | None = None) -> tuple[Profile, str | None]:
    """:meth:`Catalog.lookup` on ``catalog`` (the built-in one by default)."""
    return (catalog or builtin_catalog()).lookup(name)


def find_profile(name: str, *, catalog: Catalog | None = None) -> Profile:
    """:meth:`Catalog.find` on ``catalog`` (the built-in one by default)."""
    return (catalog or builtin_catalog()).find(name)


#: Family names of the built-in catalog: the first variant is the default.
FAMILIES: Mapping[str, tuple[str, ...]] = builtin_catalog().families
#: The built-in host classes a card implies: "desktop", "cloud", "server", "hpc".
HOST_DEFAULTS: Mapping[str, HostDefaults] = builtin_catalog().hosts
