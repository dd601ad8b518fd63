"""Header-only stubs of models that live elsewhere: the header cache's bytes up to each
shard's data section, written as local files (what ``pytest-llmfit stub hf://...`` does),
without downloading the weights."""

from __future__ import annotations

import os

from ..engine.gguf import ReadAt, parse_header, write_stub
from ..engine.gguf.split import split_shard_paths
from ..engine.gguf.stub import write_header_file
from ..errors import SourceError
from .cache import HeaderCache
from .protocol import SourceSettings


def write_any_stub(
    spec: str, dst: str | os.PathLike[str], settings: SourceSettings
) -> tuple[int, list[str]]:
    """Write a header-only copy of the model at ``spec`` to ``dst`` (a file, or a directory
    that takes the shards' names); returns (bytes written, files written)."""
    from . import resolve_source

    source = resolve_source(spec)
    if source.kind in ("local", "ollama"):
        path = source.local_file(settings)
        target = os.fspath(dst)
        if os.path.isdir(target) and source.kind == "ollama":
            target = os.path.join(target, _name(spec))
        written = write_stub(path, target)
        return written, [target]
    model = source.read(settings)  # fills the header cache
    cache = HeaderCache(settings.header_dir())
    targets = _targets(model.shards, os.fspath(dst))
    written = 0
    for shard, target in zip(model.shards, targets, strict=True):
        entry = cache.lookup(shard)
        data = cache.data(entry) if entry is not None else None
        if entry is None or data is None:
            raise SourceError(shard, "its header left the cache while the stub was written")
        end = parse_header(shard, _reader(data), entry.size).data_offset
        written += write_header_file(target, data[:end] + bytes(max(0, end - len(data))))
    return written, targets


def _reader(data: bytes) -> ReadAt:
    def read_at(offset: int, n: int) -> bytes:
        return data[offset : offset + n]

    return read_at


def _name(spec: str) -> str:
    base = spec.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
    base = base.replace(":", "-")
    return base if base.endswith(".gguf") else base + ".gguf"


def _targets(shards: tuple[str, ...], target: str) -> list[str]:
    if os.path.isdir(target):
        return [os.path.join(target, _name(s)) for s in shards]
    if len(shards) == 1:
        return [target]
    named = split_shard_paths(target)
    if named is not None and len(named) == len(shards):
        return list(named)
    directory, base = os.path.split(target)
    stem = base[: -len(".gguf")] if base.endswith(".gguf") else base
    count = len(shards)
    return [
        os.path.join(directory, f"{stem}-{i + 1:05d}-of-{count:05d}.gguf") for i in range(count)
    ]
