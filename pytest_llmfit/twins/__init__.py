"""Shape twins: GGUF files with a real model's metadata and tensor table, without weights.

``write_twin("llama-3.1-405b", path, quant="q3_k_m")`` writes a file that llama.cpp maps and
sizes exactly like the published one, while the data section stays a sparse hole (no disk
blocks). ``MODELS`` is the catalog by id; ``get_model`` looks one up with a helpful error.
Writing needs the optional ``gguf`` and ``numpy`` packages; the catalog does not.
"""

from __future__ import annotations

from .registry import MODELS, get_model
from .spec import ModelShape, TensorSpec
from .writer import QUANTS, data_size, get_quant, tensor_types, write_twin

__all__ = [
    "MODELS",
    "QUANTS",
    "ModelShape",
    "TensorSpec",
    "data_size",
    "get_model",
    "get_quant",
    "tensor_types",
    "write_twin",
]
