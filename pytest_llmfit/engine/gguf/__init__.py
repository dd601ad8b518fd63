"""GGUF files: read a model's header, metadata and tensor table; write header-only stubs.

Standard library only. One module per role:

- :mod:`.values`: the value types (:class:`ValueType`, :class:`SkippedArray`) and the parsed
  header (:class:`TensorInfo`, :class:`GGUFFile`);
- :mod:`.reader`: the bounded parser, from any byte source (:func:`parse_header`) or a local
  file, and :func:`read_gguf`, which reads a whole model;
- :mod:`.strings`: stepping over string arrays (a vocabulary) without decoding them;
- :mod:`.split`: split models (``name-00001-of-00003.gguf``) read as one;
- :mod:`.stub`: :func:`write_stub`, header-only copies of a model.

Public API: :func:`read_gguf`, :func:`write_stub`, :func:`split_shard_paths` and the value
types :class:`GGUFFile`, :class:`TensorInfo`, :class:`SkippedArray`, :class:`ValueType`.
Errors are :class:`~pytest_llmfit.errors.GGUFError` (one line: the file, why, and the
offset where known).
"""

from __future__ import annotations

from .reader import MAX_MATERIALISED, ReadAt, parse_header, read_gguf
from .split import split_shard_paths
from .stub import write_stub
from .values import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGUFFile,
    MetadataValue,
    SkippedArray,
    TensorInfo,
    ValueType,
)

__all__ = [
    "DEFAULT_ALIGNMENT",
    "GGUF_MAGIC",
    "MAX_MATERIALISED",
    "GGUFFile",
    "MetadataValue",
    "ReadAt",
    "SkippedArray",
    "TensorInfo",
    "ValueType",
    "parse_header",
    "read_gguf",
    "split_shard_paths",
    "write_stub",
]
