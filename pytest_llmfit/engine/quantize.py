"""What llama-quantize writes: every tensor's type at a file type, and the header it makes.

Role: a model sized at any llama-quantize file type (Q8_0 ... Q2_K, the IQ types, the
_S/_M/_L mixes) from its own tensor table: :func:`target_types` walks the table in the
quantizer's order through llama.cpp's per-tensor rules (:mod:`.quant_rules`, a transcription
of ``src/llama-quant.cpp`` in llama-cpp-python 0.3.36), and :func:`requantize` returns the
header llama-quantize would write (new types, tensors in its order, offsets re-aligned, file
size) for the estimator and the planner. Checked against ``llama_model_quantize`` on
generated f16 models (tests/test_quantize.py). Not modelled: ``--tensor-type`` overrides,
``--output-tensor-type``, ``--token-embedding-type``, ``--prune-layers``, ``--keep-split``,
and an importance matrix (it changes a few IQ3/IQ4 choices; :func:`tensors_requiring_imatrix`
names what cannot be made without one). Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from .ftypes import FTYPE_DEFAULT_TYPE, FTYPES, ftype_name
from .ggml import GGML_TYPES_BY_NAME
from .gguf import GGUFFile, MetadataValue, TensorInfo
from .quant_rules import (
    QuantizeError,
    Row,
    Rules,
    allows_quantization,
    order_key,
    requires_imatrix,
    tensor_category,
)

__all__ = [
    "FTYPES",
    "FTYPE_DEFAULT_TYPE",
    "QuantizeError",
    "allows_quantization",
    "ftype_name",
    "guess_ftype",
    "model_ftype",
    "requantize",
    "requires_imatrix",
    "target_types",
    "tensor_category",
    "tensors_requiring_imatrix",
]


def _sorted(tensors: Iterable[TensorInfo]) -> list[TensorInfo]:
    """The quantizer's walking (and writing) order: ml.weights_map, a std::map."""
    return sorted(tensors, key=lambda t: order_key(t.name))


_TABLES: dict[int, tuple[tuple[TensorInfo, ...], str, list[Row]]] = {}


def _rows(tensors: tuple[TensorInfo, ...], arch: str) -> list[Row]:
    """The tensor table in the quantizer's order, read once per table (the advisor sizes one
    model at every file type)."""
    found = _TABLES.get(id(tensors))
    if found is not None and found[0] is tensors and found[1] == arch:
        return found[2]
    rows: list[Row] = []
    for info in _sorted(tensors):
        kind = info.ggml_type
        if kind is None:
            raise QuantizeError(f"tensor {info.name} has an unknown ggml type {info.type_id}")
        shape = info.shape or (1,)
        allowed = allows_quantization(info.name, shape, arch)
        rows.append(Row(info.name, shape, kind.name, tensor_category(info.name), allowed))
    if len(_TABLES) >= 32:
        _TABLES.clear()
    _TABLES[id(tensors)] = (tensors, arch, rows)
    return rows


def target_types(
    tensors: Iterable[TensorInfo], metadata: Mapping[str, MetadataValue], ftype: str | int
) -> dict[str, str]:
    """The ggml type llama-quantize (no imatrix, no overrides) writes for every tensor, by name.

    ``ftype``: a llama-quantize type name (``"Q4_K_M"``, alias ``"Q4_K"``) or the
    ``llama_ftype`` number. Raises :class:`QuantizeError` where llama.cpp's quantizer would
    fail on types and shapes (a row without a fallback).
    """
    name = ftype_name(ftype)
    default = FTYPE_DEFAULT_TYPE[name]
    arch = metadata.get("general.architecture")
    table = tensors if isinstance(tensors, tuple) else tuple(tensors)
    rows = _rows(table, arch if isinstance(arch, str) else "")
    rules = Rules(metadata, rows, name)
    return {row.name: rules.get_type(row, default) for row in rows}


def tensors_requiring_imatrix(
    tensors: Iterable[TensorInfo], metadata: Mapping[str, MetadataValue], ftype: str | int
) -> list[str]:
    """Tensors that make llama_model_quantize fail without an importance matrix ("this
    quantization requires an imatrix!"), in the quantizer's order."""
    name = ftype_name(ftype)
    types = target_types(tensors, metadata, name)
    arch = str(metadata.get("general.architecture", ""))
    return [
        t.name
        for t in _sorted(tensors)
        if allows_quantization(t.name, t.shape, arch)
        and requires_imatrix(t.name, types[t.name], name)
    ]


def model_ftype(model: GGUFFile) -> str | None:
    """The file type the model says it is (``general.file_type``), as a llama-quantize name."""
    value = model.metadata.get("general.file_type")
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ftype_name(value)
        except QuantizeError:
            return None
    return None


# The file type a file whose general.file_type is missing most likely is, by its main type.
_MAIN_TYPE_FTYPE = {"Q4_K": "Q4_K_M", "Q3_K": "Q3_K_M", "Q5_K": "Q5_K_M", "Q2_K": "Q2_K"}


def guess_ftype(model: GGUFFile) -> str | None:
    """The file type ``model`` says it is, else the one its largest tensor type suggests."""
    said = model_ftype(model)
    if said is not None:
        return said
    by_type: dict[str, int] = {}
    for info in model.tensors:
        kind = info.ggml_type
        if kind is not None and allows_quantization(info.name, info.shape, model.architecture):
            by_type[kind.name] = by_type.get(kind.name, 0) + info.nbytes
    if not by_type:
        return None
    main = max(by_type, key=lambda name: by_type[name])
    main = _MAIN_TYPE_FTYPE.get(main, main)
    return main if main in FTYPES else None


# --------------------------------------------------------------------------- the new header

_SPLIT_KEYS = ("split.no", "split.count", "split.tensors.count")


def _tensor_info_bytes(info: TensorInfo) -> int:
    """A tensor's entry in the table: name, n_dims, ne[], type, offset."""
    return 8 + len(info.name.encode()) + 4 + 8 * len(info.shape) + 4 + 8


def _kv_bytes(key: str, value: MetadataValue) -> int:
    """One scalar key/value pair (the split keys: u16/u16/i32)."""
    size = 2 if key in ("split.no", "split.count") else 4
    return 8 + len(key.encode()) + 4 + size if not isinstance(value, tuple) else 0


def requantize(model: GGUFFile, ftype: str | int) -> GGUFFile:
    """The header llama-quantize writes for ``model`` at ``ftype``, without the weights.

    Tensors get the types of :func:`target_types`, in the quantizer's order (block number,
    then name), each at the next multiple of the alignment; ``general.file_type`` is set and
    the split keys go (one file, as llama-quantize writes without ``--keep-split``). The data
    offset is the original header's, grown by the other shards' tensor entries: exact to
    within the alignment padding. The result is ``header_only`` and keeps ``model.path``.
    """
    name = ftype_name(ftype)
    types = target_types(model.tensors, model.metadata, name)
    align = model.alignment
    metadata = {k: v for k, v in model.metadata.items() if k not in _SPLIT_KEYS}
    header = model.data_offset - sum(_tensor_info_bytes(t) for t in model.tensors if t.shard == 0)
    header -= sum(_kv_bytes(k, v) for k, v in model.metadata.items() if k in _SPLIT_KEYS)
    for key in ("general.file_type", "general.quantization_version"):
        if key not in metadata:
            header += 8 + len(key) + 4 + 4
    metadata["general.file_type"] = FTYPES[name]
    metadata["general.quantization_version"] = 2
    header += sum(_tensor_info_bytes(t) for t in model.tensors)
    data_offset = -(-header // align) * align
    tensors: list[TensorInfo] = []
    offset = 0
    for info in _sorted(model.tensors):
        new = replace(
            info, type_id=GGML_TYPES_BY_NAME[types[info.name].lower()].id, offset=offset, shard=0
        )
        tensors.append(new)
        offset += -(-new.nbytes // align) * align
    return replace(
        model,
        metadata=metadata,
        tensors=tuple(tensors),
        data_offset=data_offset,
        file_size=data_offset + offset,
        shards=(model.shards[0] if model.shards else model.path,),
        header_only=True,
    )
