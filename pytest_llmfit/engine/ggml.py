"""ggml's tensor type table: how many bytes a row of each type takes.

Mirrors ``ggml/src/ggml.c``'s ``type_traits`` (block size and bytes per block) and the ids
of ``enum ggml_type``; the test suite checks it against the ``gguf`` package's
``GGML_QUANT_SIZES`` so a drift is caught.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class GGMLType:
    id: int
    name: str
    block_size: int  # elements per block
    type_size: int  # bytes per block

    def row_bytes(self, n_elements: int) -> int:
        """Bytes of ``n_elements`` of this type (ggml_row_size); partial blocks round up."""
        return -(-n_elements // self.block_size) * self.type_size


_TABLE = [
    GGMLType(0, "F32", 1, 4),
    GGMLType(1, "F16", 1, 2),
    GGMLType(2, "Q4_0", 32, 18),
    GGMLType(3, "Q4_1", 32, 20),
    GGMLType(6, "Q5_0", 32, 22),
    GGMLType(7, "Q5_1", 32, 24),
    GGMLType(8, "Q8_0", 32, 34),
    GGMLType(9, "Q8_1", 32, 36),
    GGMLType(10, "Q2_K", 256, 84),
    GGMLType(11, "Q3_K", 256, 110),
    GGMLType(12, "Q4_K", 256, 144),
    GGMLType(13, "Q5_K", 256, 176),
    GGMLType(14, "Q6_K", 256, 210),
    GGMLType(15, "Q8_K", 256, 292),
    GGMLType(16, "IQ2_XXS", 256, 66),
    GGMLType(17, "IQ2_XS", 256, 74),
    GGMLType(18, "IQ3_XXS", 256, 98),
    GGMLType(19, "IQ1_S", 256, 50),
    GGMLType(20, "IQ4_NL", 32, 18),
    GGMLType(21, "IQ3_S", 256, 110),
    GGMLType(22, "IQ2_S", 256, 82),
    GGMLType(23, "IQ4_XS", 256, 136),
    GGMLType(24, "I8", 1, 1),
    GGMLType(25, "I16", 1, 2),
    GGMLType(26, "I32", 1, 4),
    GGMLType(27, "I64", 1, 8),
    GGMLType(28, "F64", 1, 8),
    GGMLType(29, "IQ1_M", 256, 56),
    GGMLType(30, "BF16", 1, 2),
    GGMLType(34, "TQ1_0", 256, 54),
    GGMLType(35, "TQ2_0", 256, 66),
    GGMLType(39, "MXFP4", 32, 17),
    GGMLType(40, "NVFP4", 64, 36),
    GGMLType(41, "Q1_0", 128, 18),
    GGMLType(42, "Q2_0", 64, 18),
]

GGML_TYPES: dict[int, GGMLType] = {t.id: t for t in _TABLE}
GGML_TYPES_BY_NAME: dict[str, GGMLType] = {t.name.lower(): t for t in _TABLE}

# The KV cache types llama.cpp accepts for --cache-type-k/-v (common/arg.cpp kv_cache_types).
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


def ggml_type(type_id: int) -> GGMLType | None:
    """The type with this id, or None for an id this table does not know."""
    return GGML_TYPES.get(type_id)


def kv_cache_type(name: str, *, source: str | None = None) -> GGMLType:
    """Resolve a cache type name (``"q8_0"``, ``"F16"``) or raise a one-line ConfigError."""
    key = str(name).strip().lower()
    if key not in KV_CACHE_TYPES:
        raise ConfigError(name, f"a KV cache type ({', '.join(KV_CACHE_TYPES)})", source=source)
    return GGML_TYPES_BY_NAME[key]
