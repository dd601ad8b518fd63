"""Stepping over length-prefixed strings without decoding them: the reader's hot loop.

A GGUF string is a little-endian u64 length and that many bytes; a vocabulary is an array
of 128k or more of them. :func:`walk_strings` finds where such a run ends, stepping over
runs of short strings with one regular-expression match per 256 strings (in C) and over
anything else one string at a time (:func:`hop_strings`).
"""

from __future__ import annotations

import functools
import re
import struct
import sys

_LITTLE_ENDIAN_HOST = sys.byteorder == "little"
_U64 = struct.Struct("<Q")
_RUN = 256  # strings per regular-expression match
_SHORT = 64  # the expression covers strings of 0 to 63 bytes


def walk_strings(buf: bytes, pos: int, count: int) -> int:
    """The offset just after ``count`` length-prefixed strings that start at ``pos``.

    Raises IndexError, OverflowError or struct.error when a length lies beyond ``buf``.
    Runs of short strings (the bulk of any vocabulary) are stepped over by a regular
    expression, 256 strings per match, in C; anything else by :func:`hop_strings`.
    """
    if count >= _RUN:
        match = short_string_run().match
        for _ in range(count // _RUN):
            found = match(buf, pos)
            pos = found.end() if found is not None else hop_strings(buf, pos, _RUN)
        count %= _RUN
    return hop_strings(buf, pos, count)


def hop_strings(buf: bytes, pos: int, count: int) -> int:
    """:func:`walk_strings` one string at a time.

    On a little-endian host the u64 at ``pos`` is read as ``words[pos & 7][pos >> 3]``:
    eight u64 views of the buffer, one per byte phase, so each hop is two subscripts
    rather than a function call.
    """
    if _LITTLE_ENDIAN_HOST:
        view = memoryview(buf)
        size = len(buf)
        words = [view[k : k + (size - k) // 8 * 8].cast("Q") for k in range(8)]
        for _ in range(count >> 2):
            pos += 8 + words[pos & 7][pos >> 3]
            pos += 8 + words[pos & 7][pos >> 3]
            pos += 8 + words[pos & 7][pos >> 3]
            pos += 8 + words[pos & 7][pos >> 3]
        for _ in range(count & 3):
            pos += 8 + words[pos & 7][pos >> 3]
        return pos
    unpack = _U64.unpack_from
    for _ in range(count):
        pos += 8 + unpack(buf, pos)[0]
    return pos


@functools.cache
def short_string_run() -> re.Pattern[bytes]:
    """Matches exactly ``_RUN`` consecutive strings shorter than ``_SHORT`` bytes.

    One alternative per length n: the u64 n (n, then seven zero bytes) and n bytes. The
    first bytes differ, so at most one alternative matches at any point and a match steps
    over exactly the strings the one-by-one walk would.
    """
    one = b"|".join(
        re.escape(bytes([n]) + bytes(7)) + (b".{%d}" % n if n else b"") for n in range(_SHORT)
    )
    possessive = b"+" if sys.version_info >= (3, 11) else b""  # no backtracking into a run
    return re.compile(b"(?:" + one + b"){%d}" % _RUN + possessive, re.DOTALL)
