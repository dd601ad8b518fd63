"""What an architecture means for memory, one module per memory family.

- :mod:`.rules`: the vocabulary (:class:`ArchRule`, :class:`SwaRule`) every table uses;
- :mod:`.base`: :class:`ModelParams`, :class:`LayerShape`, the generic key reading, the
  registry and :func:`model_params`, which reads a GGUF header as llama.cpp does;
- one table per family, each rule citing the llama.cpp lines it follows:
  :mod:`.dense` (one K/V row per layer), :mod:`.swa` (sliding windows, shared KV),
  :mod:`.mla` (latent K-only caches, DSA indexer), :mod:`.recurrent` (Mamba, RWKV),
  :mod:`.hybrid` (KV beside recurrent state), :mod:`.encoder` (no memory).

Adding an architecture: read ``load_arch_hparams``/``load_arch_tensors`` in
src/models/<arch>.cpp and its branch of ``create_memory``, add an ArchRule to the family's
``RULES``, a twin to pytest_llmfit/twins/ and its llama.cpp truth to tests/data/llamacpp/
(scripts/record_llamacpp.py).
"""

from __future__ import annotations

from . import dense, encoder, hybrid, mla, recurrent, swa
from .base import (
    REGISTRY,
    UNKNOWN_ARCH,
    LayerShape,
    ModelParams,
    archs_of,
    known_archs,
    model_params,
    register,
)
from .rules import FAMILIES, ArchRule, SwaRule

for _family in (dense, swa, mla, recurrent, hybrid, encoder):
    register(*_family.RULES)

# The known architectures by memory family (GGUF general.architecture names).
DENSE_ARCHS = archs_of("dense")
SWA_ARCHS = archs_of("swa")
MLA_ARCHS = archs_of("mla")
RECURRENT_ARCHS = archs_of("recurrent")
HYBRID_ARCHS = archs_of("hybrid")
ENCODER_ARCHS = archs_of("encoder")
KNOWN_ARCHS = frozenset(REGISTRY)

__all__ = [
    "DENSE_ARCHS",
    "ENCODER_ARCHS",
    "FAMILIES",
    "HYBRID_ARCHS",
    "KNOWN_ARCHS",
    "MLA_ARCHS",
    "RECURRENT_ARCHS",
    "REGISTRY",
    "SWA_ARCHS",
    "UNKNOWN_ARCH",
    "ArchRule",
    "LayerShape",
    "ModelParams",
    "SwaRule",
    "known_archs",
    "model_params",
]
