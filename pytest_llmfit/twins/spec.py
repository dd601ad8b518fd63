"""What a shape twin is made of: a real model's metadata and tensor table, without weights.

A :class:`ModelShape` holds the true hyperparameters (as GGUF metadata) and tensor shapes
of a published model. The writer turns it into a GGUF file whose data section is a sparse
hole: llama.cpp maps and sizes it exactly as it would the real file, at no disk cost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# A metadata value as written to GGUF. The writer maps Python types to GGUF types:
# int -> UINT32 (unless listed in ModelShape.metadata_types), float -> FLOAT32, bool -> BOOL,
# str -> STRING, list/tuple of those -> ARRAY of that element type.
MetaValue = int | float | bool | str | list[int] | list[float] | list[bool] | list[str]


@dataclass(frozen=True)
class TensorSpec:
    name: str  # "blk.0.attn_q.weight"
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length (ne0)
    # A fixed ggml type name ("F32", "MXFP4"); None lets the quantization mix choose.
    type: str | None = None


@dataclass(frozen=True)
class ModelShape:
    id: str  # "llama-3.1-8b"
    arch: str  # general.architecture, e.g. "llama"
    title: str  # "Meta Llama 3.1 8B Instruct"
    n_vocab: int
    # Architecture keys without the "<arch>." prefix: {"block_count": 32, ...}
    metadata: Mapping[str, MetaValue]
    # Builds the tensor table; kept lazy so the catalog costs nothing to import.
    tensors: Callable[[], list[TensorSpec]]
    # GGUF type names for metadata keys that are not UINT32/FLOAT32 by default, e.g.
    # {"expert_gating_func": "UINT32", "rope.scaling.factor": "FLOAT32"}.
    metadata_types: Mapping[str, str] = field(default_factory=dict)
    default_quant: str = "q4_k_m"
    notes: str = ""  # where the figures come from (config.json of which repository)
