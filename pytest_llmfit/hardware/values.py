"""Checking the values hardware descriptions are written with: sizes, bandwidths, core
counts, names, compute capabilities, the fields of a TOML table, and reading the TOML file.

Shared by the catalog (catalog.py), spec strings (specs.py) and host files (hostfile.py), so a
bad value reads the same wherever it was written: ``'lots' is not a size like '24GB' ...
(lab.toml, [[gpu]] #1, field 'memory')``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError, ProfileError
from ..units import SIZE_FORMS, parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]

__all__ = [
    "BANDWIDTH_FORMS",
    "MAX_CORES",
    "check_compute_capability",
    "check_cores",
    "check_fields",
    "check_positive_number",
    "check_size",
    "check_text",
    "parse_bandwidth",
    "parse_toml",
    "read_toml",
]

BANDWIDTH_FORMS = "a bandwidth like '80GB/s', '3.35TB/s' or a number of bytes per second"
MAX_CORES = 4096


def parse_bandwidth(value: object, *, source: str | None = None) -> float:
    """Bytes per second from ``"80GB/s"``, ``"3.35 TB/s"``, ``"80GB"`` or a number."""
    if isinstance(value, str):
        text: object = re.sub(r"\s*/\s*s(?:ec)?\s*$", "", value.strip(), flags=re.IGNORECASE)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = value
    else:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source)
    try:
        rate = parse_size(text)
    except ConfigError as exc:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source, hint=exc.hint) from exc
    if rate <= 0:
        raise ProfileError(value, BANDWIDTH_FORMS, source=source, hint="must be more than 0")
    return float(rate)


def check_size(value: object, *, source: str | None, positive: bool = True) -> int:
    """Bytes from a size; ``positive`` rejects 0 (a total), not a used/free amount."""
    try:
        size = parse_size(value)
    except ConfigError as exc:
        raise ProfileError(value, SIZE_FORMS, source=source, hint=exc.hint) from exc
    if positive and size <= 0:
        raise ProfileError(value, SIZE_FORMS, source=source, hint="must be more than 0")
    return size


def check_cores(value: object, *, source: str | None) -> int:
    """A number of CPU cores (or threads): an int or a string of digits, 1 to 4096."""
    expected = "a number of CPU cores like 8"
    if isinstance(value, bool):
        raise ProfileError(value, expected, source=source)
    if isinstance(value, int):
        cores = value
    elif isinstance(value, str) and value.strip().isdigit():
        cores = int(value.strip())
    else:
        raise ProfileError(value, expected, source=source)
    if not 1 <= cores <= MAX_CORES:
        raise ProfileError(value, expected, source=source, hint=f"between 1 and {MAX_CORES}")
    return cores


def check_text(value: object, *, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(value, "a non-empty string", source=source)
    return value.strip()


def check_compute_capability(value: object, *, source: str) -> tuple[int, int]:
    # A float is accepted because TOML users write compute_capability = 8.9; "12.0" must be
    # a string to keep its zero, which a float would too, but "8.10" would not.
    expected = "a compute capability like '8.9'"
    text = str(value) if isinstance(value, (str, float)) else None
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text or "")
    if not match:
        raise ProfileError(value, expected, source=source)
    return int(match.group(1)), int(match.group(2))


def check_positive_number(value: object, expected: str, *, source: str) -> float:
    """A finite number above 0 (int or float, not a bool or a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(value, expected, source=source)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ProfileError(value, expected, source=source, hint="must be more than 0")
    return number


def check_fields(data: object, allowed: Iterable[str], *, file: str, label: str) -> dict[str, Any]:
    """``data`` as a table whose keys are all in ``allowed``; the first unknown key is an
    error naming the table and the accepted keys, with the closest one as a hint."""
    names = list(allowed)
    if not isinstance(data, dict):
        raise ProfileError(data, f"a {label} table", source=file)
    for name in data:
        if name not in names:
            close = difflib.get_close_matches(name, names, 1)
            raise ProfileError(
                name,
                f"a field of {label} ({', '.join(names)})",
                source=file,
                hint=f"did you mean {close[0]!r}?" if close else None,
            )
    return data


def read_toml(path: str | os.PathLike[str], *, what: str, source: str | None = None) -> Any:
    """The parsed TOML file at ``path``; a missing, unreadable or invalid file is a
    ProfileError naming it (``what`` is "profile file", "catalog file")."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(
            file, f"an existing .toml {what}", source=source, hint="no such file"
        ) from None
    except IsADirectoryError:
        raise ProfileError(
            file, f"an existing .toml {what}", source=source, hint="it is a directory"
        ) from None
    except OSError as exc:
        raise ProfileError(file, f"a readable .toml {what}", source=source, hint=str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(file, "a valid TOML file", source=source, hint=str(exc)) from None


def parse_toml(text: str, *, file: str) -> Any:
    """TOML text that came with the package (the built-in catalog)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(file, "a valid TOML file", hint=str(exc)) from None
