"""Byte sizes: parsing what people write and formatting what people read.

Decimal and binary units are kept apart everywhere: GB = 10**9 bytes, GiB = 2**30 bytes.
A "24 GB" card reports 24564 MiB, which is more than 24 GB, so ``requires_vram("24GB")``
passes on it, as its owner expects.
"""

from __future__ import annotations

import math
import re

from .errors import ConfigError

_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\s*([a-zA-Z]*)\s*$")

SIZE_FORMS = "a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of bytes"


def parse_size(value: object, *, source: str | None = None) -> int:
    """Return ``value`` in bytes.

    Accepts ints (bytes), floats (bytes, rounded) and strings such as ``"162GB"``,
    ``"16 GiB"``, ``"0.5tb"`` or ``"1024"``. Raises :class:`ConfigError` naming the value,
    ``source`` and the accepted forms.
    """
    if isinstance(value, bool):
        raise ConfigError(value, SIZE_FORMS, source=source)
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(value, SIZE_FORMS, source=source, hint="sizes cannot be negative")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(value, SIZE_FORMS, source=source)
        return round(value)
    if not isinstance(value, str):
        raise ConfigError(value, SIZE_FORMS, source=source)
    match = _SIZE_RE.match(value)
    if not match:
        negative = "sizes cannot be negative" if value.strip().startswith("-") else None
        raise ConfigError(value, SIZE_FORMS, source=source, hint=negative)
    number, exponent, unit = match.groups()
    factor = _UNITS.get(unit.lower() or "b")
    if factor is None:
        hint = f"unknown unit {unit!r} (use B, KB..TB, KiB..TiB)"
        raise ConfigError(value, SIZE_FORMS, source=source, hint=hint)
    try:
        amount = float(number) * (10 ** int(exponent) if exponent else 1) * factor
        if not math.isfinite(amount):
            raise OverflowError
        return round(amount)
    except OverflowError:
        raise ConfigError(value, SIZE_FORMS, source=source, hint="too large") from None


def format_size(n_bytes: float, *, binary: bool = False, digits: int = 1) -> str:
    """Format bytes for people: ``format_size(24_000_000_000) == "24.0 GB"``.

    Decimal units by default (as datasheets and markers use); ``binary=True`` gives GiB.
    """
    sign = "-" if n_bytes < 0 else ""
    n = abs(float(n_bytes))
    step = 1024.0 if binary else 1000.0
    names = ["B", "KiB", "MiB", "GiB", "TiB"] if binary else ["B", "KB", "MB", "GB", "TB"]
    for name in names:
        if n < step or name == names[-1]:
            if name == "B":
                return f"{sign}{int(n)} B"
            return f"{sign}{n:.{digits}f} {name}"
        n /= step
    raise AssertionError("unreachable")


def format_bandwidth(bytes_per_second: float | None) -> str:
    """``format_bandwidth(1.008e12) == "1008 GB/s"``; unknown bandwidth reads ``"? GB/s"``."""
    if bytes_per_second is None:
        return "? GB/s"
    return f"{bytes_per_second / 1e9:.0f} GB/s"


def format_rate(tokens_per_second: float | None) -> str:
    """Tokens/s with the digits that matter: ``"0.24"``, ``"6.2"``, ``"156"``."""
    if tokens_per_second is None:
        return "?"
    if tokens_per_second < 1:
        return f"{tokens_per_second:.2f}"
    if tokens_per_second < 100:
        return f"{tokens_per_second:.1f}"
    return f"{tokens_per_second:.0f}"
