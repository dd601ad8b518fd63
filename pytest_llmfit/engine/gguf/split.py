"""Split models: a model stored as ``name-00001-of-00003.gguf`` and its sibling shards.

llama.cpp's ``llama_split_path`` names the shards ``%s-%05d-of-%05d.gguf`` (numbered from
1); each shard is a GGUF file whose metadata carries ``split.count`` and ``split.no``.
:func:`split_shard_paths` derives every shard's path from any one of them;
:func:`join_split` reads the others through a caller-given function and joins them into
one :class:`GGUFFile`, so the same join serves any source of shards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ...errors import GGUFError
from .values import GGUFFile, Shard, TensorInfo, quote_name

SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>[0-9]{5})-of-(?P<count>[0-9]{5})\.gguf$")


def split_shard_paths(path: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """All shard paths of a split model named like ``name-00002-of-00005.gguf``, or None.

    Uses llama.cpp's naming (``llama_split_path``: ``%s-%05d-of-%05d.gguf``, numbered from 1)
    and the file name alone; the files need not exist.
    """
    text = os.fspath(path)
    directory, base = os.path.split(text)
    match = SPLIT_RE.match(base)
    if match is None:
        return None
    count = int(match["count"])
    if count < 1 or not 1 <= int(match["no"]) <= count:
        return None
    prefix = match["prefix"]
    return tuple(
        os.path.join(directory, f"{prefix}-{i + 1:05d}-of-{count:05d}.gguf") for i in range(count)
    )


def split_count(shard: Shard) -> int:
    """The shard's ``split.count``: 1 for a model in one file."""
    value = shard.metadata.get("split.count")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise GGUFError(shard.path, f"split.count must be an integer, not {value!r}")
    return value


def _check_split_no(shard: Shard, expected: int, count: int) -> None:
    value = shard.metadata.get("split.no")
    if isinstance(value, bool) or not isinstance(value, int):
        raise GGUFError(shard.path, f"shard of a {count}-file split model has no integer split.no")
    if value != expected:
        raise GGUFError(
            shard.path,
            f"split.no is {value} but the file name makes it shard {expected + 1} of {count} "
            f"(split.no {expected})",
        )


def join_split(given: Shard, count: int, read_shard: Callable[[str], Shard]) -> GGUFFile:
    """The model that ``given``, one shard of a ``count``-file split model, belongs to.

    The other shards' paths come from ``given.path`` (:func:`split_shard_paths`) and are
    read with ``read_shard``; each must agree on ``split.count`` and carry its own
    ``split.no``. Tensors are concatenated (``TensorInfo.shard`` is the shard index),
    metadata comes from the first shard, ``file_size`` is the sum.
    """
    paths = split_shard_paths(given.path)
    if paths is None:
        raise GGUFError(
            given.path,
            f"split.count is {count} but the file name does not follow llama.cpp's "
            f"'<name>-00001-of-{count:05d}.gguf' pattern",
        )
    if len(paths) != count:
        raise GGUFError(
            given.path,
            f"split.count is {count} but the file name says {len(paths)} shards",
        )
    match = SPLIT_RE.match(os.path.basename(given.path))
    assert match is not None
    index = int(match["no"]) - 1
    _check_split_no(given, index, count)
    shards: list[Shard] = []
    for i, shard_path in enumerate(paths):
        if i == index:
            shard = given
        else:
            try:
                shard = read_shard(shard_path)
            except GGUFError as error:
                if error.reason == "no such file":
                    raise GGUFError(
                        shard_path, f"shard {i + 1} of {count} is missing (no such file)"
                    ) from None
                raise
            shard_count = split_count(shard)
            if shard_count != count:
                raise GGUFError(
                    shard_path,
                    f"split.count is {shard_count} but shard {index + 1} "
                    f"({os.path.basename(given.path)}) says {count}",
                )
            _check_split_no(shard, i, count)
        shards.append(shard)

    first = shards[0]
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for i, shard in enumerate(shards):
        for info in shard.tensors:
            if info.name in seen:
                raise GGUFError(
                    shard.path, f"tensor {quote_name(info.name)} appears in more than one shard"
                )
            seen.add(info.name)
            tensors.append(TensorInfo(info.name, info.shape, info.type_id, info.offset, i))
    expected = first.metadata.get("split.tensors.count")
    if expected is not None and expected != len(tensors):
        raise GGUFError(
            first.path,
            f"split.tensors.count is {expected!r} but the {count} shards hold "
            f"{len(tensors)} tensors",
        )
    return GGUFFile(
        path=first.path,
        version=first.version,
        alignment=first.alignment,
        metadata=first.metadata,
        tensors=tuple(tensors),
        data_offset=first.data_offset,
        file_size=sum(s.file_size for s in shards),
        shards=tuple(s.path for s in shards),
        header_only=any(s.header_only for s in shards),
    )
