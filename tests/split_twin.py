"""Split a GGUF file into shards the way ``llama-gguf-split --split-max-tensors`` does: the
first shard keeps every metadata key, each shard gets ``split.no``, ``split.count`` and
``split.tensors.count``, the tensors are dealt out in table order with their offsets
rebased, and each shard's data section is a sparse hole (so a 405B twin splits into five
~39 GB files that take no disk)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import gguf_bytes as gb

from pytest_llmfit.engine.gguf import read_gguf

_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def _skip_value(buf: bytes, pos: int, vtype: int) -> int:
    if vtype in _SIZES:
        return pos + _SIZES[vtype]
    if vtype == 8:
        (n,) = struct.unpack_from("<Q", buf, pos)
        return pos + 8 + n
    item, count = struct.unpack_from("<IQ", buf, pos)
    pos += 12
    if item in _SIZES:
        return pos + count * _SIZES[item]
    for _ in range(count):
        pos = _skip_value(buf, pos, item)
    return pos


def split_gguf(src: str | os.PathLike[str], out_dir: Path, count: int, *, stem: str) -> list[Path]:
    """Write ``stem-0000N-of-0000M.gguf`` shards of ``src`` into ``out_dir``."""
    model = read_gguf(src)
    head = Path(src).read_bytes()[: model.data_offset] if model.header_only else b""
    if not head:
        with open(src, "rb") as f:
            head = f.read(model.data_offset)
    _, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", head, 0)
    pos = 24
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", head, pos)
        pos += 8 + klen
        (vtype,) = struct.unpack_from("<I", head, pos)
        pos = _skip_value(head, pos + 4, vtype)
    kv_bytes = head[24:pos]
    entries = []  # (name bytes, dims/type bytes, offset)
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", head, pos)
        name = head[pos + 8 : pos + 8 + nlen]
        pos += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", head, pos)
        body = head[pos : pos + 4 + 8 * n_dims + 4]
        pos += 4 + 8 * n_dims + 4
        (offset,) = struct.unpack_from("<Q", head, pos)
        pos += 8
        entries.append((name, body, offset))
    per = -(-len(entries) // count)
    paths = []
    for i in range(count):
        chunk = entries[i * per : (i + 1) * per]
        infos = model.tensors[i * per : (i + 1) * per]
        base = chunk[0][2]
        split_kvs = (
            gb.kv("split.no", gb.UINT16, i)
            + gb.kv("split.count", gb.UINT16, count)
            + gb.kv("split.tensors.count", gb.INT32, len(entries))
        )
        kvs = (kv_bytes if i == 0 else b"") + split_kvs
        out = bytearray(
            struct.pack("<4sIQQ", b"GGUF", version, len(chunk), (n_kv if i == 0 else 0) + 3)
        )
        out += kvs
        for name, body, offset in chunk:
            out += struct.pack("<Q", len(name)) + name + body + struct.pack("<Q", offset - base)
        out += bytes(-len(out) % model.alignment)
        last = infos[-1]
        data_end = last.offset - base + last.nbytes
        path = out_dir / f"{stem}-{i + 1:05d}-of-{count:05d}.gguf"
        with open(path, "wb") as f:
            f.write(out)
            f.truncate(len(out) + data_end + (-data_end % model.alignment))
        paths.append(path)
    return paths
