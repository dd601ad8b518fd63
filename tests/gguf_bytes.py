"""Build GGUF bytes by hand with struct.pack: valid files, and hostile ones.

Everything here writes the on-disk layout that ``ggml/src/gguf.cpp`` reads (little-endian):

    magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
    n_kv x (string key | u32 type | value)
    n_tensors x (string name | u32 n_dims | i64 ne[n_dims] | u32 ggml type | u64 offset)
    padding to the alignment | tensor data, each tensor padded to the alignment

where a string is ``u64 length | bytes`` and an array value is
``u32 item type | u64 length | items``. The builders take explicit overrides (counts,
offsets, lengths) so tests can lie about any field.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

# value types (gguf.h enum gguf_type)
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = (
    range(13)
)
CODES = {
    UINT8: "B",
    INT8: "b",
    UINT16: "H",
    INT16: "h",
    UINT32: "I",
    INT32: "i",
    FLOAT32: "f",
    BOOL: "?",
    UINT64: "Q",
    INT64: "q",
    FLOAT64: "d",
}

# a few ggml type ids with (block size, bytes per block)
F32, F16, Q4_0, Q8_0, Q4_K, Q6_K = 0, 1, 2, 8, 12, 14
TYPE_SIZES = {
    F32: (1, 4),
    F16: (1, 2),
    Q4_0: (32, 18),
    Q8_0: (32, 34),
    Q4_K: (256, 144),
    Q6_K: (256, 210),
}


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def i64(n: int) -> bytes:
    return struct.pack("<q", n)


def gstr(text: str | bytes, *, length: int | None = None) -> bytes:
    """A GGUF string; ``length`` overrides the length prefix (to lie about it)."""
    raw = text.encode() if isinstance(text, str) else text
    return u64(len(raw) if length is None else length) + raw


def scalar(vtype: int, value: object) -> bytes:
    """The encoding of one value of ``vtype`` (without the type tag)."""
    if vtype == STRING:
        assert isinstance(value, (str, bytes))
        return gstr(value)
    if vtype == ARRAY:
        item_type, items = value  # type: ignore[misc]
        return array(item_type, items)
    return struct.pack("<" + CODES[vtype], value)


def array(item_type: int, items: Sequence[object], *, length: int | None = None) -> bytes:
    """An array value: item type, length (overridable), the items."""
    body = b"".join(scalar(item_type, item) for item in items)
    return u32(item_type) + u64(len(items) if length is None else length) + body


def kv(key: str | bytes, vtype: int, value: object) -> bytes:
    """One metadata entry; for ARRAY, ``value`` is ``(item_type, items)``."""
    return gstr(key) + u32(vtype) + scalar(vtype, value)


def kv_raw(key: str | bytes, vtype: int, encoded: bytes) -> bytes:
    """One metadata entry whose value bytes are given as they are (possibly hostile)."""
    return gstr(key) + u32(vtype) + encoded


def tensor_info(
    name: str | bytes, shape: Sequence[int], type_id: int, offset: int, *, n_dims: int | None = None
) -> bytes:
    return (
        gstr(name)
        + u32(len(shape) if n_dims is None else n_dims)
        + b"".join(i64(d) for d in shape)
        + u32(type_id)
        + u64(offset)
    )


def header(n_tensors: int, n_kv: int, *, version: int = 3, magic: bytes = b"GGUF") -> bytes:
    return magic + u32(version) + u64(n_tensors) + u64(n_kv)


def nbytes(shape: Sequence[int], type_id: int) -> int:
    block, size = TYPE_SIZES[type_id]
    n = 1
    for d in shape[1:]:
        n *= d
    row = shape[0] if shape else 1
    return row // block * size * n


def pad(n: int, alignment: int) -> int:
    return n + (-n % alignment)


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    type_id: int = F32


@dataclass
class Built:
    """A built file and where its parts are."""

    data: bytes
    table_end: int  # end of the tensor table
    data_offset: int  # start of the data section
    offsets: list[int] = field(default_factory=list)  # each tensor's offset in the data section
    kv_starts: list[int] = field(default_factory=list)
    tensor_starts: list[int] = field(default_factory=list)

    @property
    def stub(self) -> bytes:
        """The header-only stub: everything before the data section, padded."""
        return self.data[: self.data_offset]


def build(
    kvs: Sequence[bytes] = (),
    tensors: Sequence[Tensor] = (),
    *,
    version: int = 3,
    alignment: int = 32,
    with_data: bool = True,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    offsets: Sequence[int] | None = None,
) -> Built:
    """A GGUF file from encoded ``kvs`` (see :func:`kv`) and ``tensors``.

    ``alignment`` is only used for the layout: add ``kv("general.alignment", UINT32, a)``
    yourself for a non-default one. ``with_data=False`` gives the stub padded to the data
    offset. ``n_tensors``, ``n_kv`` and ``offsets`` override what the header claims.
    """
    computed: list[int] = []
    running = 0
    for t in tensors:
        computed.append(running)
        running = pad(running + nbytes(t.shape, t.type_id), alignment)
    used = list(offsets) if offsets is not None else computed
    head = header(
        len(tensors) if n_tensors is None else n_tensors,
        len(kvs) if n_kv is None else n_kv,
        version=version,
    )
    out = bytearray(head)
    kv_starts = []
    for entry in kvs:
        kv_starts.append(len(out))
        out += entry
    tensor_starts = []
    for t, offset in zip(tensors, used, strict=True):
        tensor_starts.append(len(out))
        out += tensor_info(t.name, t.shape, t.type_id, offset)
    table_end = len(out)
    data_offset = pad(table_end, alignment)
    out += bytes(data_offset - table_end)
    if with_data:
        for t, offset in zip(tensors, computed, strict=True):
            size = nbytes(t.shape, t.type_id)
            out += bytes(data_offset + offset - len(out))
            out += bytes([0x5A]) * size
        out += bytes(-len(out) % alignment)
    return Built(bytes(out), table_end, data_offset, computed, kv_starts, tensor_starts)


def small_model(
    *,
    alignment: int = 32,
    version: int = 3,
    with_data: bool = True,
    extra_kvs: Sequence[bytes] = (),
) -> Built:
    """A small valid llama-like model: a handful of keys, arrays of every kind, 5 tensors."""
    kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("llama.block_count", UINT32, 1),
        kv("llama.context_length", UINT32, 4096),
        kv("llama.embedding_length", UINT32, 64),
        kv("llama.attention.head_count", UINT32, 4),
        kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "a", "bb", "ccc"])),
        kv("tokenizer.ggml.scores", ARRAY, (FLOAT32, [0.0, 0.5, -1.0, 2.0, 3.0])),
        kv("tokenizer.ggml.token_type", ARRAY, (INT32, [3, 3, 1, 1, 1])),
        *extra_kvs,
    ]
    if alignment != 32:
        kvs.append(kv("general.alignment", UINT32, alignment))
    tensors = [
        Tensor("token_embd.weight", (64, 5), F16),
        Tensor("blk.0.attn_norm.weight", (64,), F32),
        Tensor("blk.0.attn_q.weight", (64, 64), Q8_0),
        Tensor("output_norm.weight", (64,), F32),
        Tensor("output.weight", (256, 5), Q6_K),
    ]
    return build(kvs, tensors, alignment=alignment, version=version, with_data=with_data)
