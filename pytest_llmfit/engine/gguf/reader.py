"""The bounded GGUF header parser: metadata and tensor table, standard library only.

Reads what sizing needs and nothing more: string arrays (the vocabulary, the merges) are
stepped over, never decoded, keeping only their length (:class:`SkippedArray`); numeric
arrays are kept as tuples up to ``MAX_MATERIALISED`` items. Every count and length is
checked against the bytes left in the file before the reader allocates or loops, so a
hostile file cannot make it do more work than its own size allows.

The rules are llama.cpp's (``ggml/src/gguf.cpp``): versions 2 and 3 (v1 and big-endian
files are refused with a clear message), non-empty unique keys, ``general.alignment`` a
uint32 power of two, unique tensor names shorter than 64 bytes, at most 4 dimensions, none
negative, fewer than 2**63 elements, a known ggml type whose block divides the row, and
tensors stored in table order, each padded to the alignment. Beyond gguf.cpp: the data
must be in the file, unless the file stops before its data section (a header-only stub,
``header_only=True``).

:func:`parse_header` parses one file from any byte source (``read_at(offset, n)``);
:func:`read_header` is that for a local file, and :func:`read_gguf` reads a whole model,
bringing in a split model's other shards (:mod:`.split`).
"""

from __future__ import annotations

import math
import os
import stat
import struct
from collections.abc import Callable
from typing import Any, BinaryIO, TypeAlias

from ...errors import GGUFError
from ..ggml import GGML_TYPES
from .split import join_split, split_count
from .strings import walk_strings
from .values import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUFFile,
    MetadataValue,
    Shard,
    SkippedArray,
    TensorInfo,
    ValueType,
    quote_name,
)

ReadAt: TypeAlias = Callable[[int, int], bytes]
"""``read_at(offset, n)``: bytes [offset, offset + n) of a source, fewer only at its end."""

SUPPORTED_VERSIONS = (2, 3)  # v2 and v3 share one layout (u64 counts); v3 added big-endian
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64  # llama.cpp rejects tensor names of this many bytes or more
MAX_MATERIALISED = 16384  # numeric arrays longer than this are skipped (SkippedArray)
MAX_ARRAY_NESTING = 16
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_FIRST_CHUNK = 4 << 20  # one read covers the header of nearly every model

# struct codes and sizes of the fixed-size value types
_CODES: dict[int, str] = {
    ValueType.UINT8: "B",
    ValueType.INT8: "b",
    ValueType.UINT16: "H",
    ValueType.INT16: "h",
    ValueType.UINT32: "I",
    ValueType.INT32: "i",
    ValueType.FLOAT32: "f",
    ValueType.BOOL: "?",  # unpacks any non-zero byte as True, like llama.cpp's int8 != 0
    ValueType.UINT64: "Q",
    ValueType.INT64: "q",
    ValueType.FLOAT64: "d",
}
_SCALARS: dict[int, struct.Struct] = {t: struct.Struct("<" + c) for t, c in _CODES.items()}
_VALUE_TYPE_NAMES = {t.value: t.name.lower() for t in ValueType}

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")  # magic, version, n_tensors, n_kv
_KV_TYPE = struct.Struct("<I")
_ARRAY_HEAD = struct.Struct("<IQ")  # item type, length
# after a tensor's name: n_dims (u32) is read first, then ne[n_dims] (i64), type (u32), offset (u64)
_TENSOR_TAIL = tuple(struct.Struct("<" + "q" * n + "IQ") for n in range(GGML_MAX_DIMS + 1))

_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, a 1-byte key, type, a 1-byte value
_MIN_TENSOR_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset (empty name, 0 dims)


def _pad(n: int, alignment: int) -> int:
    return n + (-n % alignment)


class _Parser:
    """Parses one file. ``buf`` holds a prefix of the file and grows on demand."""

    def __init__(
        self, path: str, read_at: ReadAt, size: int, first_read: int | None = None
    ) -> None:
        self.path = path
        self.read_at = read_at
        self.size = size
        # Read at call time, not definition time: the fuzzer shrinks _FIRST_CHUNK to drive
        # the growing-buffer path.
        first = min(size, max(_FIRST_CHUNK if first_read is None else first_read, 1))
        self.buf = read_at(0, first)
        if len(self.buf) != first:
            self.size = len(self.buf)  # the file shrank under us: trust what was read

    # -- plumbing ---------------------------------------------------------------------------

    def fail(self, reason: str, offset: int | None = None) -> GGUFError:
        return GGUFError(self.path, reason, offset=offset)

    def need(self, pos: int, n: int, what: str) -> None:
        """Make ``buf`` hold bytes [pos, pos + n), or fail if the file is shorter."""
        end = pos + n
        if end <= len(self.buf):
            return
        if end > self.size:
            left = max(self.size - pos, 0)
            raise self.fail(f"file ends inside {what}: needs {n} bytes, {left} left", pos)
        self.grow(min(self.size, max(end, 2 * len(self.buf))))
        if len(self.buf) < end:  # the file shrank while we were reading it
            raise self.fail(f"file ends inside {what} (it shrank while being read)", pos)

    def grow(self, end: int) -> None:
        """Read the file up to ``end`` (at most the file size) into ``buf``."""
        chunk = self.read_at(len(self.buf), end - len(self.buf))
        if len(chunk) < end - len(self.buf):
            self.size = len(self.buf) + len(chunk)  # the file shrank: trust what was read
        self.buf += chunk

    def unpack(self, fmt: struct.Struct, pos: int, what: str) -> tuple[Any, ...]:
        self.need(pos, fmt.size, what)
        return fmt.unpack_from(self.buf, pos)

    def string(self, pos: int, what: str) -> tuple[str, int]:
        (length,) = self.unpack(_U64, pos, f"the length of {what}")
        left = self.size - pos - 8
        if length > left:
            raise self.fail(
                f"{what} claims {length} bytes but only {max(left, 0)} are left in the file", pos
            )
        start = pos + 8
        self.need(start, length, what)
        return self.buf[start : start + length].decode("utf-8", errors="replace"), start + length

    # -- values -----------------------------------------------------------------------------

    def value(self, vtype: int, pos: int, key: str, depth: int = 0) -> tuple[MetadataValue, int]:
        fmt = _SCALARS.get(vtype)
        if fmt is not None:
            (item,) = self.unpack(fmt, pos, f"the value of {quote_name(key)}")
            return item, pos + fmt.size
        if vtype == ValueType.STRING:
            return self.string(pos, f"the value of {quote_name(key)}")
        if vtype == ValueType.ARRAY:
            return self.array(pos, key, depth)
        raise self.fail(
            f"key {quote_name(key)} has unknown value type {vtype} (known: 0-12)", pos - 4
        )

    def array(self, pos: int, key: str, depth: int) -> tuple[MetadataValue, int]:
        if depth >= MAX_ARRAY_NESTING:
            raise self.fail(
                f"key {quote_name(key)} nests arrays more than {MAX_ARRAY_NESTING} deep", pos
            )
        item_type, length = self.unpack(_ARRAY_HEAD, pos, f"the array header of {quote_name(key)}")
        start = pos + _ARRAY_HEAD.size
        left = self.size - start
        fmt = _SCALARS.get(item_type)
        if fmt is not None:
            n_bytes = length * fmt.size
            if n_bytes > left:
                raise self.fail(
                    f"array {quote_name(key)} of {length} {_VALUE_TYPE_NAMES[item_type]} needs "
                    f"{n_bytes} bytes but only {left} are left in the file",
                    pos,
                )
            if length > MAX_MATERIALISED:
                return SkippedArray(item_type, length), start + n_bytes
            self.need(start, n_bytes, f"array {quote_name(key)}")
            items = struct.unpack_from(f"<{length}{_CODES[item_type]}", self.buf, start)
            return items, start + n_bytes
        if item_type == ValueType.STRING:
            if length * 8 > left:
                raise self.fail(
                    f"array {quote_name(key)} of {length} strings needs at least "
                    f"{length * 8} bytes but only {left} are left in the file",
                    pos,
                )
            return SkippedArray(item_type, length), self.skip_strings(start, length, key)
        if item_type == ValueType.ARRAY:
            if length * _ARRAY_HEAD.size > left:
                raise self.fail(
                    f"array {quote_name(key)} of {length} arrays needs at least "
                    f"{length * _ARRAY_HEAD.size} bytes but only {left} are left in the file",
                    pos,
                )
            keep = length <= MAX_MATERIALISED
            nested: list[MetadataValue] = []
            for _ in range(length):
                inner, start = self.array(start, key, depth + 1)
                if keep:
                    nested.append(inner)
            return (tuple(nested) if keep else SkippedArray(item_type, length)), start
        raise self.fail(
            f"array {quote_name(key)} has unknown item type {item_type} (known: 0-12)", pos
        )

    def skip_strings(self, pos: int, count: int, key: str) -> int:
        """Step over ``count`` length-prefixed strings without decoding them (the hot loop).

        The caller has checked that ``8 * count`` bytes are left. When a string lies beyond
        the buffer, the buffer doubles and the walk starts again: at most log2(file size)
        restarts, so the work stays proportional to the file.
        """
        while True:
            try:
                end = walk_strings(self.buf, pos, count)
            except (IndexError, OverflowError, struct.error):
                if len(self.buf) >= self.size:
                    raise self.fail(
                        f"array {quote_name(key)} of {count} strings runs past the end of the file",
                        pos,
                    ) from None
                self.grow(min(self.size, 2 * len(self.buf)))
                continue
            if end > self.size:
                raise self.fail(
                    f"array {quote_name(key)}: its last string runs {end - self.size} bytes past "
                    "the end of the file",
                    pos,
                )
            return end

    # -- the file ---------------------------------------------------------------------------

    def parse(self) -> Shard:
        size = self.size
        if size < 4 or self.buf[:4] != GGUF_MAGIC:
            if size == 0:
                raise self.fail("empty file, not GGUF")
            head = self.buf[:4]
            raise self.fail(f"not a GGUF file (starts with {head!r}, expected b'GGUF')", 0)
        if size < 8:
            raise self.fail(f"file ends inside the header: {size} bytes", 0)
        (version,) = _U32.unpack_from(self.buf, 4)
        if version != 0 and version & 0xFFFF == 0:
            raise self.fail(
                f"big-endian GGUF not supported (version field reads {version:#010x}, "
                f"version {int.from_bytes(version.to_bytes(4, 'little'), 'big')} byte-swapped)",
                4,
            )
        if version == 1:
            raise self.fail(
                "GGUF version 1 is not supported (llama.cpp dropped it); "
                "convert the model again with a current llama.cpp",
                4,
            )
        if version not in SUPPORTED_VERSIONS:
            raise self.fail(f"unsupported GGUF version {version} (supported: 2 and 3)", 4)
        if size < _HEADER.size:
            raise self.fail(f"file ends inside the header: {size} of {_HEADER.size} bytes", 0)
        _, _, n_tensors, n_kv = _HEADER.unpack_from(self.buf, 0)
        pos = _HEADER.size
        left = size - pos
        if n_kv * _MIN_KV_BYTES > left:
            raise self.fail(
                f"header claims {n_kv} metadata entries, which need at least "
                f"{n_kv * _MIN_KV_BYTES} bytes, but only {left} are left in the file",
                16,
            )
        if n_tensors * _MIN_TENSOR_BYTES + n_kv * _MIN_KV_BYTES > left:
            raise self.fail(
                f"header claims {n_tensors} tensors, whose table needs at least "
                f"{n_tensors * _MIN_TENSOR_BYTES} bytes, but only "
                f"{left - n_kv * _MIN_KV_BYTES} are left in the file after the metadata",
                8,
            )

        metadata: dict[str, MetadataValue] = {}
        alignment_type: int | None = None
        for index in range(n_kv):
            key_pos = pos
            key, pos = self.string(pos, f"key {index}")
            if not key:
                raise self.fail(f"metadata key {index} is empty", key_pos)
            if key in metadata:
                raise self.fail(f"duplicate metadata key {quote_name(key)}", key_pos)
            (vtype,) = self.unpack(_KV_TYPE, pos, f"the type of {quote_name(key)}")
            pos += 4
            metadata[key], pos = self.value(vtype, pos, key)
            if key == "general.alignment":
                alignment_type = vtype

        alignment = DEFAULT_ALIGNMENT
        if alignment_type is not None:
            if alignment_type != ValueType.UINT32:
                raise self.fail(
                    "general.alignment must be a uint32, not "
                    f"{_VALUE_TYPE_NAMES.get(alignment_type, alignment_type)}"
                )
            value = metadata["general.alignment"]
            assert isinstance(value, int)
            if value == 0 or value & (value - 1):
                raise self.fail(f"general.alignment {value} is not a power of two")
            alignment = value

        tensors, pos, data_end = self.tensor_table(pos, n_tensors, alignment)
        table_end = pos
        # like gguf.cpp: the data section is aligned only when there is one
        data_offset = _pad(table_end, alignment) if n_tensors else table_end
        header_only = False
        if data_end > 0:
            if size <= data_offset:
                header_only = True  # a stub: ends at (or in the padding after) the table
            elif size < data_offset + data_end:
                missing = data_offset + data_end - size
                raise self.fail(
                    f"data section truncated: {missing} bytes missing (tensors need "
                    f"{data_offset + data_end} bytes, the file has {size})"
                )
        return Shard(
            self.path, version, alignment, metadata, tensors, data_offset, size, header_only
        )

    def tensor_table(
        self, pos: int, n_tensors: int, alignment: int
    ) -> tuple[list[TensorInfo], int, int]:
        """Read ``n_tensors`` tensor infos from ``pos``: (tensors, end of table, data size).

        The second hot loop (1,137 tensors for Llama 3.1 405B): fields are unpacked from a
        local buffer and error messages are only built on the error paths.
        """
        u64 = _U64.unpack_from
        u32 = _U32.unpack_from
        tails = _TENSOR_TAIL
        types = GGML_TYPES
        buf = self.buf
        have = len(buf)
        tensors: list[TensorInfo] = []
        seen: set[str] = set()
        expected = 0  # llama.cpp requires tensors stored in table order, each padded
        data_end = 0
        for index in range(n_tensors):
            start = pos
            if pos + 8 > have:
                self.need(pos, 8, f"the name of tensor {index}")
                buf, have = self.buf, len(self.buf)
            (length,) = u64(buf, pos)
            pos += 8
            if pos + length + 4 > have:
                left = self.size - pos
                if length > left:
                    raise self.fail(
                        f"the name of tensor {index} claims {length} bytes but only "
                        f"{max(left, 0)} are left in the file",
                        start,
                    )
                self.need(pos, length + 4, f"tensor {index}")
                buf, have = self.buf, len(self.buf)
            name = buf[pos : pos + length].decode("utf-8", errors="replace")
            if length >= GGML_MAX_NAME:
                raise self.fail(
                    f"tensor name {quote_name(name)} is {length} bytes long; llama.cpp allows at "
                    f"most {GGML_MAX_NAME - 1}",
                    start,
                )
            if name in seen:
                raise self.fail(f"duplicate tensor name {quote_name(name)}", start)
            seen.add(name)
            pos += length
            (n_dims,) = u32(buf, pos)
            if n_dims > GGML_MAX_DIMS:
                raise self.fail(
                    f"tensor {quote_name(name)} has {n_dims} dimensions (at most {GGML_MAX_DIMS})",
                    pos,
                )
            pos += 4
            tail = tails[n_dims]
            if pos + tail.size > have:
                self.need(pos, tail.size, f"tensor {quote_name(name)}")
                buf, have = self.buf, len(self.buf)
            fields = tail.unpack_from(buf, pos)
            shape: tuple[int, ...] = fields[:n_dims]
            type_id: int = fields[n_dims]
            offset: int = fields[n_dims + 1]
            count = math.prod(shape)
            if n_dims and (count <= 0 or count > INT64_MAX or min(shape) < 0):
                self.check_shape(name, shape, pos)
            kind = types.get(type_id)
            if kind is None:
                raise self.fail(
                    f"tensor {quote_name(name)} has unknown ggml type id {type_id}",
                    pos + 8 * n_dims,
                )
            block = kind.block_size
            row = shape[0] if n_dims else 1
            if row % block:
                raise self.fail(
                    f"tensor {quote_name(name)} of type {kind.name} has {row} elements per row, "
                    f"not a multiple of its block size {block}",
                    pos,
                )
            if offset != expected:
                raise self.fail(
                    f"tensor {quote_name(name)} has data offset {offset}, expected {expected} "
                    f"(tensors are stored in table order, each padded to {alignment} bytes)",
                    pos + 8 * n_dims + 4,
                )
            data_end = offset + count // block * kind.type_size  # ggml_nbytes
            expected = data_end + (-data_end % alignment)
            if expected > UINT64_MAX:
                raise self.fail(
                    f"tensor {quote_name(name)} takes the data section past 2**64 bytes", pos
                )
            tensors.append(TensorInfo(name, shape, type_id, offset))
            pos += tail.size
        return tensors, pos, data_end

    def check_shape(self, name: str, shape: tuple[int, ...], pos: int) -> None:
        for dim, ne in enumerate(shape):
            if ne < 0:
                raise self.fail(
                    f"tensor {quote_name(name)} dimension {dim} is negative ({ne})", pos + 8 * dim
                )
        # the same test as gguf.cpp: the element count must stay below INT64_MAX
        count = shape[0] if shape else 1
        for ne in shape[1:]:
            if ne > 1 and INT64_MAX // ne < count:
                raise self.fail(
                    f"tensor {quote_name(name)} shape {shape} has more than INT64_MAX elements", pos
                )
            count *= ne


def parse_header(
    path: str, read_at: ReadAt, size: int, *, first_read: int | None = None
) -> Shard:
    """Parse the header, metadata and tensor table of one GGUF file from any byte source.

    ``read_at(offset, n)`` returns the source's bytes [offset, offset + n), fewer only where
    the source ends; ``size`` is the source's length in bytes. The parser asks for a prefix
    of the source, first ``min(size, first_read)`` bytes from offset 0 (4 MiB: one read for
    nearly every local header; a remote source asks for less, since every byte travels),
    then (only when the header is longer) the bytes after what it holds, doubling the
    prefix each time. ``path`` names the source in errors. Problems raise
    :class:`GGUFError`; the source's own errors (OSError...) propagate.
    """
    return _Parser(path, read_at, size, first_read).parse()


def open_checked(path: str) -> tuple[BinaryIO, int]:
    """Open ``path`` for reading, turning every OSError into a one-line GGUFError."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise GGUFError(path, "no such file") from None
    except PermissionError:
        raise GGUFError(path, "permission denied") from None
    except OSError as error:
        raise GGUFError(path, f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise GGUFError(path, "is a directory, not a GGUF file")
    if not stat.S_ISREG(info.st_mode):
        raise GGUFError(path, "not a regular file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise GGUFError(path, "no such file") from None
    except PermissionError:
        raise GGUFError(path, "permission denied") from None
    except OSError as error:
        raise GGUFError(path, f"cannot read: {error.strerror or error}") from None
    return handle, info.st_size


def read_header(path: str) -> Shard:
    """:func:`parse_header` of the local file ``path``; every OSError becomes a GGUFError."""
    handle, size = open_checked(path)
    try:
        with handle:
            return parse_header(path, _file_reader(handle), size)
    except OSError as error:
        raise GGUFError(path, f"cannot read: {error.strerror or error}") from None


def _file_reader(handle: BinaryIO) -> ReadAt:
    """``read_at`` for an open file."""

    def read_at(offset: int, n: int) -> bytes:
        handle.seek(offset)
        return handle.read(n)

    return read_at


def read_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Read the header, metadata and tensor table of a GGUF model.

    A shard of a split model (``name-00001-of-00005.gguf``, with ``split.count`` > 1) brings
    in all its shards from the same directory: tensors are concatenated (``TensorInfo.shard``
    is the shard index), metadata comes from the first shard, ``file_size`` is the sum.
    A header-only stub (the file ends before the data section) is valid: ``header_only``.
    Every problem, including a missing or unreadable file, raises :class:`GGUFError`.
    """
    text = os.fspath(path)
    given = read_header(text)
    count = split_count(given)
    if count <= 1:
        return given.as_model()
    return join_split(given, count, read_header)
