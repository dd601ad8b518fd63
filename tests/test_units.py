from __future__ import annotations

import pytest

from pytest_llmfit.errors import ConfigError
from pytest_llmfit.units import format_bandwidth, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("162GB", 162 * 10**9),
        ("24 GB", 24 * 10**9),
        ("16GiB", 16 * 2**30),
        ("16 gib", 16 * 2**30),
        ("1.5TB", 1_500_000_000_000),
        ("2TiB", 2 * 2**40),
        ("512 MiB", 512 * 2**20),
        ("512mb", 512 * 10**6),
        ("4KB", 4000),
        ("4KiB", 4096),
        ("1024", 1024),
        ("1024B", 1024),
        (" 0.5 GB ", 500_000_000),
        (".5GB", 500_000_000),
        ("1e9", 10**9),
        (2048, 2048),
        (1.6e10, 16_000_000_000),
    ],
)
def test_parse_size_accepts_the_documented_forms(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["16 gigs", "", "GB", "-5GB", "5 XB", "1.2.3GB", True, None, [1]])
def test_parse_size_rejects_with_one_line_naming_value_source_and_forms(bad: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_size(bad, source="marker requires_vram on tests/test_x.py::test_y")
    message = str(info.value)
    assert "\n" not in message
    assert repr(bad) in message
    assert "'24GB'" in message and "'16GiB'" in message
    assert message.endswith("(marker requires_vram on tests/test_x.py::test_y)")


def test_parse_size_error_exact_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_size("16 gigs", source="marker requires_vram")
    assert str(info.value) == (
        "'16 gigs' is not a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of bytes; "
        "unknown unit 'gigs' (use B, KB..TB, KiB..TiB) (marker requires_vram)"
    )


def test_a_24gb_card_passes_a_24gb_requirement() -> None:
    # An RTX 4090 reports 24564 MiB = 25.76e9 bytes: above 24 GB, as its owner expects.
    assert parse_size("24GB") < 24564 * 2**20
    assert parse_size("25GiB") > 24564 * 2**20


@pytest.mark.parametrize(
    ("n", "binary", "text"),
    [
        (0, False, "0 B"),
        (999, False, "999 B"),
        (24_000_000_000, False, "24.0 GB"),
        (195_400_000_000, False, "195.4 GB"),
        (2**30, True, "1.0 GiB"),
        (1.5 * 2**20, True, "1.5 MiB"),
        (-2_000_000, False, "-2.0 MB"),
        (3 * 10**15, False, "3000.0 TB"),
    ],
)
def test_format_size(n: float, binary: bool, text: str) -> None:
    assert format_size(n, binary=binary) == text


def test_format_bandwidth() -> None:
    assert format_bandwidth(1.008e12) == "1008 GB/s"
    assert format_bandwidth(None) == "? GB/s"
