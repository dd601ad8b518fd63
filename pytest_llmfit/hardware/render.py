"""The catalog as a plain-text table, for ``pytest-llmfit profiles``.

Role: rendering only. Memory is the driver's figure in MiB (a "24 GB" card shows 24564
MiB = 25.8 GB); entries from a user catalog file are marked with that file, and with
"replaces built-in" when they took a built-in entry's place.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..units import format_bandwidth, format_size
from .catalog import Catalog, Profile, builtin_catalog

__all__ = ["render_catalog", "render_profiles"]

MiB = 2**20


def _memory_cell(profile: Profile, catalog: Catalog) -> str:
    if profile.kind == "runner":
        if not profile.gpus:
            return f"RAM {format_size(profile.host.ram, binary=True, digits=0)}"
        cells = []
        for card_id, count in profile.gpus:
            card = catalog.get(card_id)
            cells.append(f"{count}x {card.memory // MiB if card else '?'} MiB")
        return " + ".join(cells)
    if profile.kind == "soc":
        ram = format_size(profile.host.ram, binary=True, digits=0)
        return f"{profile.memory // MiB} MiB of {ram}"
    return f"{profile.memory // MiB} MiB"


def _name_cell(profile: Profile, catalog: Catalog) -> str:
    if profile.catalog_file is None:
        return profile.name
    replaces = ", replaces built-in" if catalog.replaces_builtin(profile) else ""
    return f"{profile.name}  [user catalog {profile.catalog_file}{replaces}]"


def render_profiles(
    profiles: Iterable[Profile] | None = None, *, catalog: Catalog | None = None
) -> str:
    """A table of ``profiles`` (every profile of ``catalog`` by default; the built-in
    catalog when none is given), then the families and the user catalog files."""
    cat = catalog or builtin_catalog()
    rows = [("ID", "KIND", "MEMORY", "BANDWIDTH", "NAME")]
    for profile in cat.profiles if profiles is None else profiles:
        rows.append(
            (
                profile.id,
                profile.kind,
                _memory_cell(profile, cat),
                format_bandwidth(profile.bandwidth),
                _name_cell(profile, cat),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    ]
    families = ", ".join(f"{name} -> {variants[0]}" for name, variants in cat.families.items())
    lines.append("")
    lines.append(f"families: {families}")
    if cat.files:
        lines.append("user catalog: " + ", ".join(cat.files))
    return "\n".join(lines)


def render_catalog(catalog: Catalog | None = None) -> str:
    """The whole catalog, as ``pytest-llmfit profiles`` prints it."""
    return render_profiles(catalog=catalog)
