"""llama-quantize's file types: their names, ``llama_ftype`` numbers and default tensor types.

Role: the table behind ``--quant`` and the quantization ways out. Names are llama-quantize's
(``tools/quantize/quantize.cpp``), numbers ``enum llama_ftype`` (``include/llama.h``), default
types ``llama_ftype_get_default_type()`` (``src/llama-quant.cpp``), for the llama.cpp inside
llama-cpp-python 0.3.36. The per-tensor rules live in :mod:`.quantize`.
"""

from __future__ import annotations

from ..errors import ConfigError

FTYPES: dict[str, int] = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q8_0": 7,
    "Q5_0": 8,
    "Q5_1": 9,
    "Q2_K": 10,
    "Q3_K_S": 11,
    "Q3_K_M": 12,
    "Q3_K_L": 13,
    "Q4_K_S": 14,
    "Q4_K_M": 15,
    "Q5_K_S": 16,
    "Q5_K_M": 17,
    "Q6_K": 18,
    "IQ2_XXS": 19,
    "IQ2_XS": 20,
    "Q2_K_S": 21,
    "IQ3_XS": 22,
    "IQ3_XXS": 23,
    "IQ1_S": 24,
    "IQ4_NL": 25,
    "IQ3_S": 26,
    "IQ3_M": 27,
    "IQ2_S": 28,
    "IQ2_M": 29,
    "IQ4_XS": 30,
    "IQ1_M": 31,
    "BF16": 32,
    "TQ1_0": 36,
    "TQ2_0": 37,
    "MXFP4_MOE": 38,
    # 39 (NVFP4) has no default type in llama_ftype_get_default_type(): left out.
    "Q1_0": 40,
    "Q2_0": 41,
}
FTYPE_NAMES: dict[int, str] = {number: name for name, number in FTYPES.items()}
FTYPE_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}

FTYPE_DEFAULT_TYPE: dict[str, str] = {
    "F32": "F32",
    "F16": "F16",
    "BF16": "BF16",
    "Q4_0": "Q4_0",
    "Q4_1": "Q4_1",
    "Q5_0": "Q5_0",
    "Q5_1": "Q5_1",
    "Q8_0": "Q8_0",
    "Q1_0": "Q1_0",
    "Q2_0": "Q2_0",
    "MXFP4_MOE": "MXFP4",
    "Q2_K": "Q2_K",
    "Q2_K_S": "Q2_K",
    "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K",
    "Q3_K_L": "Q3_K",
    "Q4_K_S": "Q4_K",
    "Q4_K_M": "Q4_K",
    "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K",
    "Q6_K": "Q6_K",
    "TQ1_0": "TQ1_0",
    "TQ2_0": "TQ2_0",
    "IQ2_XXS": "IQ2_XXS",
    "IQ2_XS": "IQ2_XS",
    "IQ2_S": "IQ2_XS",  # sic: an IQ2_S file defaults to IQ2_XS
    "IQ2_M": "IQ2_S",
    "IQ3_XXS": "IQ3_XXS",
    "IQ3_XS": "IQ3_S",
    "IQ3_S": "IQ3_S",
    "IQ3_M": "IQ3_S",
    "IQ1_S": "IQ1_S",
    "IQ1_M": "IQ1_M",
    "IQ4_NL": "IQ4_NL",
    "IQ4_XS": "IQ4_XS",
}

# Tensor types llama-quantize refuses to make without an importance matrix (--imatrix).
IMATRIX_TYPES = frozenset({"IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ1_M", "IQ1_S"})

# The file types people publish and pick from, largest first: what the advisor tries.
COMMON_FTYPES = (
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "IQ4_XS", "Q4_0", "IQ4_NL",
    "Q3_K_L", "Q3_K_M", "IQ3_M", "IQ3_S", "Q3_K_S", "IQ3_XS", "IQ3_XXS", "Q2_K", "Q2_K_S",
    "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S",
)  # fmt: skip


def ftype_name(ftype: str | int, *, source: str | None = None) -> str:
    """The canonical llama-quantize name of ``ftype`` (a name in any case, an alias such as
    ``Q4_K``, ``MOSTLY_Q4_K_M``, or a ``llama_ftype`` number); ConfigError otherwise."""
    if isinstance(ftype, int) and not isinstance(ftype, bool):
        if ftype in FTYPE_NAMES:
            return FTYPE_NAMES[ftype]
        raise ConfigError(ftype, "a llama_ftype number llama-quantize writes", source=source)
    name = str(ftype).strip().upper().replace("-", "_")
    name = name.removeprefix("MOSTLY_")
    name = FTYPE_ALIASES.get(name, name)
    if name not in FTYPES:
        raise ConfigError(
            ftype,
            "a llama-quantize type (" + ", ".join(FTYPES) + ")",
            source=source,
        )
    return name
