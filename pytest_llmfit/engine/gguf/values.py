"""GGUF's value types and the parsed header's dataclasses; no parsing here.

:class:`ValueType` numbers a metadata value's type as the file does; :class:`SkippedArray`
stands for an array the reader stepped over; :class:`TensorInfo` is one row of the tensor
table and :class:`GGUFFile` one model (all its shards together). :class:`Shard` is what
the parser makes of one file, before a split model's shards are joined.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from ..ggml import GGMLType, ggml_type

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32


class ValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


@dataclass(frozen=True)
class SkippedArray:
    """An array the reader stepped over: its element type and length, not its items."""

    item_type: int
    length: int


MetadataValue: TypeAlias = int | float | bool | str | tuple["MetadataValue", ...] | SkippedArray


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length (ne0)
    type_id: int
    offset: int  # from the start of its shard's data section
    shard: int = 0  # index into GGUFFile.shards

    @property
    def ggml_type(self) -> GGMLType | None:
        return ggml_type(self.type_id)

    @property
    def n_elements(self) -> int:
        return int(math.prod(self.shape))

    @property
    def nbytes(self) -> int:
        """Bytes of this tensor's data, as ggml_nbytes computes them for a contiguous tensor."""
        kind = self.ggml_type
        if kind is None:
            return 0
        if not self.shape:  # n_dims == 0: ggml treats it as one element
            return kind.row_bytes(1)
        return kind.row_bytes(self.shape[0]) * int(math.prod(self.shape[1:]))


@dataclass(frozen=True)
class GGUFFile:
    """The parsed header of one model (all shards of a split model together)."""

    path: str  # the first shard
    version: int
    alignment: int
    metadata: Mapping[str, MetadataValue]
    tensors: tuple[TensorInfo, ...]
    data_offset: int  # start of the first shard's data section
    file_size: int  # bytes on disk, all shards together
    shards: tuple[str, ...]
    header_only: bool  # a stub: the data section is absent

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else "unknown"

    def arch_value(self, suffix: str, default: MetadataValue | None = None) -> MetadataValue | None:
        """``metadata["<arch>.<suffix>"]``, e.g. ``arch_value("block_count")``."""
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    def tensor(self, name: str) -> TensorInfo | None:
        for info in self.tensors:
            if info.name == name:
                return info
        return None

    @property
    def weights_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def vocab_size(self) -> int | None:
        """Entries in ``tokenizer.ggml.tokens`` (n_vocab), or None when the file has none."""
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, SkippedArray):
            return tokens.length
        if isinstance(tokens, tuple):
            return len(tokens)
        return None


@dataclass
class Shard:
    """One parsed file (a whole model, or one shard of a split model)."""

    path: str
    version: int
    alignment: int
    metadata: dict[str, MetadataValue]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    header_only: bool

    def as_model(self) -> GGUFFile:
        """This file as a whole model: a model that is not split."""
        return GGUFFile(
            path=self.path,
            version=self.version,
            alignment=self.alignment,
            metadata=self.metadata,
            tensors=tuple(self.tensors),
            data_offset=self.data_offset,
            file_size=self.file_size,
            shards=(self.path,),
            header_only=self.header_only,
        )


def quote_name(text: str, limit: int = 60) -> str:
    """A key or tensor name for an error message: quoted, escaped onto one line, shortened."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)
