"""Header-only stubs: a GGUF file's bytes up to its data section, and nothing after.

A stub carries the true metadata and tensor table, so :func:`~.reader.read_gguf` (and
llama.cpp's ``gguf_init_from_file``) read it like the model, at a few MB instead of many
GB: what a test suite can check in to decide its model markers without the weights.
"""

from __future__ import annotations

import contextlib
import os

from ...errors import GGUFError
from .reader import open_checked, read_gguf, read_header
from .split import split_shard_paths
from .values import Shard


def write_stub(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
    """Write a header-only copy of ``src`` to ``dst``; return the bytes written.

    The stub holds bytes 0 to the data offset (header, metadata, tensor table and padding),
    so :func:`read_gguf` reports the same metadata and tensors with ``header_only=True``, and
    llama.cpp's ``gguf_init_from_file`` accepts it. ``dst`` may be a directory (the stub
    takes ``src``'s file name). For a split model one stub per shard is written: ``dst``
    names the first shard (``x-00001-of-00003.gguf``), or any ``x.gguf`` from which the
    shard names ``x-0000N-of-00003.gguf`` are made, or a directory (the source's names).
    """
    model = read_gguf(src)
    target = os.fspath(dst)
    count = len(model.shards)
    if os.path.isdir(target):
        targets = [os.path.join(target, os.path.basename(p)) for p in model.shards]
    elif count == 1:
        targets = [target]
    else:
        named = split_shard_paths(target)
        if named is not None and len(named) == count:
            targets = list(named)
        else:
            directory, base = os.path.split(target)
            stem = base[: -len(".gguf")] if base.endswith(".gguf") else base
            targets = [
                os.path.join(directory, f"{stem}-{i + 1:05d}-of-{count:05d}.gguf")
                for i in range(count)
            ]
    written = 0
    for shard_path, target_path in zip(model.shards, targets, strict=True):
        shard = read_header(shard_path)
        written += _copy_header(shard, target_path)
    return written


def _copy_header(shard: Shard, target: str) -> int:
    """Write bytes [0, data offset) of ``shard`` to ``target`` (atomically, via a rename)."""
    try:
        same = os.path.exists(target) and os.path.samefile(shard.path, target)
    except OSError:
        same = False
    if same:
        raise GGUFError(target, "refusing to write a stub over its own source")
    end = shard.data_offset
    handle, _ = open_checked(shard.path)
    try:
        with handle:
            head = handle.read(end)
    except OSError as error:
        raise GGUFError(shard.path, f"cannot read its header: {error.strerror or error}") from None
    return write_header_file(target, head + bytes(end - len(head)))  # a stub may stop short


def write_header_file(target: str, head: bytes) -> int:
    """Write a stub's bytes to ``target`` atomically (a temporary file, then a rename)."""
    tmp = f"{target}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as out:
            out.write(head)
        os.replace(tmp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise GGUFError(target, f"cannot write stub: {error.strerror or error}") from None
    return len(head)
