"""Simulated hardware from a TOML host file, for machines worth keeping in a repository.

Role: :func:`host_from_toml` reads and checks one host file and builds its Host through
:mod:`.simulate`, like a spec string. Every error names the file, the table and the field;
a file that describes no machine at all (no [[gpu]] table, no [host] profile, no [host]
ram) is an error too, not a silently assumed desktop.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ProfileError
from .catalog import Catalog, Profile, builtin_catalog
from .catalog_schema import MAX_COUNT
from .simulate import CustomCard, Request, build_host, check_combination
from .types import Host
from .values import (
    check_compute_capability,
    check_cores,
    check_fields,
    check_size,
    check_text,
    parse_bandwidth,
    read_toml,
)

__all__ = ["host_from_toml"]

_HOST_FIELDS = ("profile", "ram", "ram_bandwidth", "cpu_cores", "cpu_model", "used", "free")
_GPU_FIELDS = (
    "profile", "count", "name", "memory", "bandwidth", "vendor", "compute_capability",
    "unified", "used", "free",
)  # fmt: skip
_EMPTY_HINT = (
    'it describes no machine: give [[gpu]] tables (profile = "rtx-4090", or name and '
    'memory), a [host] profile (a runner or Apple chip such as "github-ubuntu-latest") '
    "or, for a CPU-only host, [host] ram"
)


def host_from_toml(path: str | os.PathLike[str], *, catalog: Catalog | None = None) -> Host:
    """Build a simulated Host from a TOML host file::

        [host]                       # optional when [[gpu]] tables are given
        profile = "aws-p5-48xlarge"  # optional: a runner or Apple chip as the base
        ram = "256GB"                # a CPU-only host needs at least this
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

    Profile names are looked up in ``catalog`` (the built-in one by default). Every error
    names the file, the table and the field.
    """
    file = os.fspath(path)
    data = read_toml(file, what="profile file")
    cat = catalog or builtin_catalog()
    unknown = sorted(set(data) - {"host", "gpu"})
    if unknown:
        raise ProfileError(unknown[0], "a table of a profile file ([host] or [[gpu]])", source=file)
    request = Request(cat)
    host = data.get("host", {})
    if not isinstance(host, dict):
        raise ProfileError(host, "a [host] table", source=file)
    check_fields(host, _HOST_FIELDS, file=file, label="[host]")
    tables = data.get("gpu", [])
    if not isinstance(tables, list):
        raise ProfileError(
            "gpu", "an array of tables", source=file, hint="write [[gpu]], not [gpu]"
        )
    _read_host(host, request, file=file)  # its values are checked first: a bad one is news
    if not tables and "profile" not in host and "ram" not in host:
        # Assuming a 64 GiB desktop here would answer a question nobody asked.
        raise ProfileError(file, "a hardware profile file", hint=_EMPTY_HINT)
    for number, table in enumerate(tables, start=1):
        label = f"[[gpu]] #{number}"
        check_fields(table, _GPU_FIELDS, file=file, label=label)
        request.cards.append(_toml_gpu(table, cat, file=file, label=label, notes=request.notes))
    check_combination(request, where=file, spec=file)
    return build_host(request, source=file, where=file)


def _where(file: str, table: str) -> Callable[[str], str]:
    return lambda name: f"{file}, {table}, field {name!r}"


def _read_host(host: Mapping[str, Any], request: Request, *, file: str) -> None:
    where = _where(file, "[host]")
    if "profile" in host:
        profile, note = _toml_profile(host["profile"], request.catalog, where=where("profile"))
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
        request.ram = check_size(host["ram"], source=where("ram"))
    if "ram_bandwidth" in host:
        request.ram_bandwidth = parse_bandwidth(
            host["ram_bandwidth"], source=where("ram_bandwidth")
        )
    if "cpu_cores" in host:
        request.cpu_cores = check_cores(host["cpu_cores"], source=where("cpu_cores"))
    if "cpu_model" in host:
        request.cpu_model = check_text(host["cpu_model"], source=where("cpu_model"))
    if "used" in host:
        request.used = check_size(host["used"], source=where("used"), positive=False)
    if "free" in host:
        request.free = check_size(host["free"], source=where("free"), positive=False)


def _toml_profile(value: object, catalog: Catalog, *, where: str) -> tuple[Profile, str | None]:
    name = check_text(value, source=where)
    try:
        return catalog.lookup(name)
    except ProfileError:
        raise catalog.unknown(name, source=where) from None


def _toml_gpu(
    table: Mapping[str, Any], catalog: Catalog, *, file: str, label: str, notes: list[str]
) -> tuple[Profile | CustomCard, int, int | None, int | None]:
    where = _where(file, label)
    count = 1
    if "count" in table:
        value = table["count"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
            raise ProfileError(
                value, f"a GPU count between 1 and {MAX_COUNT}", source=where("count")
            )
        count = value
    used = (
        check_size(table["used"], source=where("used"), positive=False) if "used" in table else None
    )
    free = (
        check_size(table["free"], source=where("free"), positive=False) if "free" in table else None
    )
    if used is not None and free is not None:
        raise ProfileError(label, "a GPU table with used or free", source=file, hint="not both")
    if "profile" in table:
        card = _profile_gpu(table, catalog, where, file=file, label=label, notes=notes)
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
        cc = check_compute_capability(
            table["compute_capability"], source=where("compute_capability")
        )
    unified = table.get("unified", False)
    if not isinstance(unified, bool):
        raise ProfileError(unified, "true or false", source=where("unified"))
    custom = CustomCard(
        name=check_text(table["name"], source=where("name")),
        memory=check_size(table["memory"], source=where("memory")),
        bandwidth=(
            parse_bandwidth(table["bandwidth"], source=where("bandwidth"))
            if "bandwidth" in table
            else None
        ),
        vendor=check_text(table["vendor"], source=where("vendor")).lower()
        if "vendor" in table
        else "custom",
        compute_capability=cc,
        unified=unified,
    )
    return custom, count, used, free


def _profile_gpu(
    table: Mapping[str, Any],
    catalog: Catalog,
    where: Callable[[str], str],
    *,
    file: str,
    label: str,
    notes: list[str],
) -> Profile | CustomCard:
    """A [[gpu]] table that names a catalog card, possibly with its memory or bandwidth
    changed (a modded card)."""
    extra = [k for k in ("name", "vendor", "compute_capability", "unified") if k in table]
    if extra:
        raise ProfileError(
            extra[0],
            f"a field of a {label} table that names a profile",
            source=file,
            hint="use either 'profile' or 'name' with 'memory'",
        )
    profile, note = _toml_profile(table["profile"], catalog, where=where("profile"))
    if note:
        notes.append(note)
    if profile.kind == "runner":
        raise ProfileError(
            profile.id,
            "a GPU profile",
            source=where("profile"),
            hint="a runner is a whole machine: put it in [host] profile",
        )
    if "memory" not in table and "bandwidth" not in table:
        return profile
    return CustomCard(
        name=profile.name,
        memory=(
            check_size(table["memory"], source=where("memory"))
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
