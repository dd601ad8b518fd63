"""llama.cpp's quantizer rules, transcribed: which type each tensor gets at a file type.

Role: ``src/llama-quant.cpp`` of the llama.cpp inside llama-cpp-python 0.3.36, function by
function: ``tensor_allows_quantization`` (:func:`allows_quantization`), ``tensor_get_category``
(:func:`tensor_category`), ``tensor_type_fallback`` (:func:`fallback`), ``llama_tensor_get_type``
and ``_impl`` (:class:`Rules`), ``tensor_requires_imatrix`` (:func:`requires_imatrix`). The
rules read the tensor's role, its layer (a running counter, or the block number for MoE
models), the model's GQA factor and expert count, and whether the embeddings are tied;
:mod:`.quantize` walks a model's tensor table through them. Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import LlmfitError
from .ftypes import IMATRIX_TYPES
from .ggml import GGML_TYPES_BY_NAME, GGMLType
from .gguf import MetadataValue


class QuantizeError(LlmfitError):
    """llama_model_quantize would fail on this model for reasons of types and shapes."""


def _type(name: str) -> GGMLType:
    return GGML_TYPES_BY_NAME[name.lower()]


def _quantized(name: str) -> bool:
    return _type(name).block_size > 1  # ggml_is_quantized


# --------------------------------------------------------------------------- roles

TOKEN_EMBD, OUTPUT, OTHER = "token_embd", "output", "other"
ATTN_Q, ATTN_K, ATTN_V, ATTN_QKV, ATTN_KV_B, ATTN_OUT = (
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_kv_b",
    "attn_output",
)
FFN_UP, FFN_GATE, FFN_DOWN = "ffn_up", "ffn_gate", "ffn_down"
# tensor_get_category: substring tests, first match wins; the ffn ones have no ".weight", so
# ffn_up_exps, ffn_gate_shexp ... match too.
_CATEGORIES = (
    ("attn_qkv.weight", ATTN_QKV),
    ("attn_kv_b.weight", ATTN_KV_B),
    ("attn_v.weight", ATTN_V),
    ("attn_k.weight", ATTN_K),
    ("attn_q.weight", ATTN_Q),
    ("attn_output.weight", ATTN_OUT),
    ("ffn_up", FFN_UP),
    ("ffn_gate", FFN_GATE),
    ("ffn_down", FFN_DOWN),
)
_ATTN_V_LIKE = frozenset({ATTN_V, ATTN_QKV, ATTN_KV_B})  # category_is_attn_v


def tensor_category(name: str) -> str:
    """tensor_get_category(): the role the quantizer's rules look at."""
    if name == "output.weight":
        return OUTPUT
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return TOKEN_EMBD
    for needle, category in _CATEGORIES:
        if needle in name:
            return category
    return OTHER


# Substrings tensor_allows_quantization() excludes for every architecture.
_NO_QUANT = (
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
    "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
    "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
    "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
    "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
    "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
    ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
    ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
)  # fmt: skip
_NO_QUANT_GLM5_NEXT = (
    "hc_", "indexer.attn_q_b", "indexer.attn_k", "indexer.proj", "indexer_compressor_gate",
    "indexer_compressor_ape", "ssm_f_a.weight", "ssm_f_b.weight", "ssm_g_a.weight",
    "ssm_g_b.weight", "ssm_beta.weight", "attn_kv_a_mqa.weight", "attn_k_b.weight",
    "attn_v_b.weight",
)  # fmt: skip


def _n_dims(shape: Sequence[int]) -> int:
    """ggml_n_dims(): trailing dimensions of size 1 do not count; at least 1."""
    for i in range(len(shape) - 1, 0, -1):
        if shape[i] > 1:
            return i + 1
    return 1


def allows_quantization(name: str, shape: Sequence[int], arch: str = "") -> bool:
    """tensor_allows_quantization(): 2-D/3-D ``*weight`` tensors but norms, routers, convs..."""
    if _n_dims(shape) < 2 or not name.endswith("weight"):
        return False
    if any(s in name for s in _NO_QUANT):
        return False
    if name in ("position_embd.weight", "token_types.weight"):
        return False
    return not (arch == "glm5-next" and any(s in name for s in _NO_QUANT_GLM5_NEXT))


def requires_imatrix(name: str, dst_type: str, ftype: str) -> bool:
    """tensor_requires_imatrix(): very low-bit targets cannot be made without an imatrix."""
    if name in ("token_embd.weight", "per_layer_token_embd.weight", "output.weight"):
        return False
    if dst_type in IMATRIX_TYPES:
        return True
    return dst_type == "Q2_K" and ftype == "Q2_K_S"


# --------------------------------------------------------------------------- the rules

_BLK = re.compile(r"blk\.\s*([+-]?\d+)")
_IQ2_FAMILY = frozenset({"IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"})
_IQ_FALLBACK = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S"})
_MOE8_ATTN_OUT = frozenset(
    {"Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S"}
    | {"IQ3_M", "IQ4_XS"}
)


def _block_of(name: str) -> int | None:
    match = _BLK.match(name)
    return int(match.group(1)) if match else None


def order_key(name: str) -> tuple[int, bytes]:
    """llama_model_loader::weight_name_comparer: block number (others -1, first), then name."""
    block = _block_of(name)
    return (-1 if block is None else block, name.encode())


def _div(a: int, b: int) -> int:
    """C integer division (towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _more_bits(i: int, n: int) -> bool:
    """use_more_bits: the first and last eighth of the layers and every third in between."""
    return (
        i < _div(n, 8) or i >= _div(7 * n, 8) or (i - _div(n, 8)) - 3 * _div(i - _div(n, 8), 3) == 2
    )


def fallback(name: str, ncols: int, target: str) -> tuple[str, bool]:
    """tensor_type_fallback(): a row that is not a multiple of the target's block."""
    block = _type(target).block_size
    if ncols % block == 0:
        return target, False
    if target in _IQ_FALLBACK or target == "IQ4_XS":
        out = "IQ4_NL"
    elif target in ("Q2_0", "Q2_K", "Q3_K", "TQ1_0", "TQ2_0"):
        out = "Q4_0"
    elif target in ("Q4_K", "Q5_K", "Q6_K"):
        out = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}[target]
    elif block <= 32:
        out = target  # already a 32-block type: nothing smaller to demote to
    else:
        raise QuantizeError(
            f"no tensor type fallback is defined for type {target.lower()} ({name})"
        )
    return ("F16" if ncols % _type(out).block_size else out), True


def _first_int(value: MetadataValue | None, default: int) -> int:
    if isinstance(value, tuple):
        value = value[0] if value else None
    return int(value) if isinstance(value, (int, float)) else default


class Rules:
    """quantize_state_impl and llama_tensor_get_type(): the counters depend on tensor order."""

    def __init__(self, metadata: Mapping[str, MetadataValue], rows: list[Row], ftype: str):
        arch = metadata.get("general.architecture")
        self.arch = arch if isinstance(arch, str) else ""
        get = metadata.get
        n_layer_all = _first_int(get(f"{self.arch}.block_count"), 0)
        if n_layer_all <= 0:
            raise QuantizeError(f"missing or bad {self.arch}.block_count")
        self.n_layer_all = n_layer_all
        n_layer = n_layer_all - _first_int(get(f"{self.arch}.nextn_predict_layers"), 0)
        n_head = _first_int(get(f"{self.arch}.attention.head_count"), 0)
        n_head_kv = _first_int(get(f"{self.arch}.attention.head_count_kv"), n_head)
        self.n_gqa = n_head // n_head_kv if n_head_kv else 0
        n_expert = _first_int(get(f"{self.arch}.expert_count"), 0)
        if self.arch in ("hunyuan_vl", "hunyuan-dense") and n_expert <= 1:
            n_expert = 0
        self.n_expert = n_expert
        # model.type == LLM_TYPE_70B, the only size class the quantizer looks at.
        if self.arch == "llama":
            self.is_70b = n_expert != 8 and n_layer == 80 and n_head != n_head_kv
        else:
            self.is_70b = (self.arch in ("qwen2", "deci", "olmo") and n_layer == 80) or (
                self.arch == "jais2" and n_layer == 68
            )
        self.ftype = ftype
        self.n_attention_wv = sum(row.category in _ATTN_V_LIKE for row in rows)
        self.tied = not any(row.category == OUTPUT for row in rows)
        self.i_attention_wv = self.i_ffn_down = self.i_ffn_gate = self.i_ffn_up = 0

    def _layer(self, counter: int, name: str) -> int:
        """layer_info: MoE models take the layer from the name, others a running counter."""
        if max(1, self.n_expert) == 1:
            return counter
        block = _block_of(name)
        if block is None or not 0 <= block < self.n_layer_all:
            raise QuantizeError(f"Failed to determine layer for tensor {name}")
        return block

    def get_type(self, row: Row, default: str) -> str:
        """llama_tensor_get_type() for one tensor, in the quantizer's order."""
        if not row.allowed:
            return row.current
        if not _quantized(default):
            return default
        new = self._impl(default, row.name, row.shape, row.category)
        return fallback(row.name, row.shape[0], new)[0]

    def _impl(self, new: str, name: str, shape: Sequence[int], cat: str) -> str:
        """llama_tensor_get_type_impl(), branch for branch."""
        ft, arch, n_expert, gqa = self.ftype, self.arch, self.n_expert, self.n_gqa
        if arch == "glm5-next" and any(
            s in name for s in ("attn_q_a", "attn_q_b", "nextn.eh_proj")
        ):
            return "Q8_0"
        if cat == OUTPUT or (self.tied and cat == TOKEN_EMBD):
            if ft == "MXFP4_MOE" or arch == "falcon" or shape[0] % _type(new).block_size:
                return "Q8_0"
            if ft in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
                return "Q5_K"
            return new if new == "Q8_0" else "Q6_K"
        if ft == "MXFP4_MOE":
            expert = len(shape) > 2 and shape[2] > 1
            if arch == "bailingmoe3":
                expert = expert and cat in (FFN_UP, FFN_GATE, FFN_DOWN)
            return "MXFP4" if expert else "Q8_0"
        if cat == TOKEN_EMBD:
            return {
                "IQ2_XXS": "Q2_K", "IQ2_XS": "Q2_K", "IQ1_S": "Q2_K", "IQ1_M": "Q2_K",
                "IQ2_S": "IQ3_S", "IQ2_M": "IQ3_S", "IQ3_XXS": "IQ3_S",
                "TQ1_0": "Q4_K", "TQ2_0": "Q4_K", "Q2_0": "Q4_K",
            }.get(ft, new)  # fmt: skip
        low = "IQ3_S" if ft in ("IQ2_S", "IQ2_M") else "Q2_K"
        if ft in _IQ2_FAMILY:
            if cat in _ATTN_V_LIKE:
                new = "Q4_K" if gqa >= 4 or n_expert >= 4 else low
                self.i_attention_wv += 1
            elif n_expert == 8 and cat == ATTN_K:
                new = "Q4_K"
            elif cat == FFN_DOWN:
                if self.i_ffn_down < _div(self.n_layer_all, 8):  # the counter, even for MoE
                    new = low
                self.i_ffn_down += 1
            elif cat == ATTN_OUT:
                if n_expert == 8:
                    new = "Q5_K"
                elif ft in ("IQ1_S", "IQ1_M"):
                    new = "IQ2_XXS"
                elif ft in ("IQ2_S", "IQ2_M"):
                    new = "IQ3_S"
            return new
        if cat in _ATTN_V_LIKE:
            i = self.i_attention_wv
            if ft == "Q2_K":
                new = "Q4_K" if gqa >= 4 else "Q3_K"
            elif ft == "Q2_K_S" and gqa >= 4:
                new = "Q4_K"
            elif ft == "IQ3_XXS":
                new = "Q4_K" if gqa >= 4 else "IQ3_S"  # without an imatrix
            elif (ft in ("IQ3_XS", "IQ3_S") and gqa >= 4) or ft == "IQ3_M":
                new = "Q4_K"
            elif ft == "Q3_K_M":
                new = "Q5_K" if i < 2 else "Q4_K"
            elif ft == "Q3_K_L" or (ft in ("IQ4_NL", "IQ4_XS") and gqa >= 4):
                new = "Q5_K"
            elif ft in ("Q4_K_M", "Q5_K_M") and _more_bits(i, self.n_attention_wv):
                new = "Q6_K"
            elif ft == "Q4_K_S" and i < 4:
                new = "Q5_K"
            if self.is_70b and new in ("Q3_K", "Q4_K"):
                new = "Q5_K"  # 8 heads share one attn_v: more bits for little memory
            if n_expert == 8:
                new = "Q8_0"
            self.i_attention_wv += 1
        elif cat in (ATTN_K, ATTN_Q):
            if cat == ATTN_K and n_expert == 8:
                new = "Q8_0"
            elif ft == "IQ3_XS":
                new = "IQ3_XXS"
            elif ft == "IQ3_XXS":
                new = "IQ2_S"
        elif cat == FFN_DOWN:
            il, n = self._layer(self.i_ffn_down, name), self.n_layer_all
            n8 = _div(n, 8)
            if ft == "Q2_K":
                new = "Q3_K"
            elif ft == "Q2_K_S":
                new = "Q4_K" if il < n8 else new
            elif ft == "IQ3_XXS":  # without an imatrix
                new = "Q4_K" if il < n8 else "Q3_K"
            elif ft == "Q3_K_M":
                if il < _div(n, 16):
                    new = "Q5_K"
                else:  # sic: every non-falcon layer
                    new = "Q4_K" if arch != "falcon" or _more_bits(il, n) else "Q3_K"
            elif ft == "IQ3_M" and (il < n8 or (n_expert == 8 and _more_bits(il, n))):
                new = "Q4_K"
            elif ft == "Q3_K_L":
                new = "Q4_K" if arch == "falcon" else "Q5_K"
            elif ft == "Q4_K_M":
                if arch == "falcon":
                    new = "Q6_K" if il < _div(n, 16) else "Q5_K" if _more_bits(il, n) else "Q4_K"
                elif _more_bits(il, n):
                    new = "Q6_K"
            elif il < n8 and ft in ("IQ4_NL", "IQ4_XS"):  # without an imatrix
                new = "Q5_K"
            elif ft == "Q5_K_M" and _more_bits(il, n):
                new = "Q6_K"
            elif ft == "Q4_K_S" and arch != "falcon" and il < n8:
                new = "Q5_K"
            self.i_ffn_down += 1
        elif cat == ATTN_OUT:
            if arch == "falcon":
                new = "Q4_K" if ft == "Q3_K_L" else new
            elif n_expert == 8:
                new = "Q5_K" if ft in _MOE8_ATTN_OUT else new
            else:
                new = {
                    "Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
                    "IQ3_M": "Q4_K",
                }.get(ft, new)  # fmt: skip
        elif cat in (FFN_GATE, FFN_UP):
            counter = self.i_ffn_gate if cat == FFN_GATE else self.i_ffn_up
            il, n = self._layer(counter, name), self.n_layer_all
            if ft == "IQ3_XS" and _div(n, 8) <= il < _div(7 * n, 8):
                new = "IQ3_XXS"
            if cat == FFN_GATE:
                self.i_ffn_gate += 1
            else:
                self.i_ffn_up += 1
        return new


@dataclass(frozen=True)
class Row:
    """What the rules read of one tensor, whatever the file type."""

    name: str
    shape: tuple[int, ...]
    current: str  # its ggml type now
    category: str
    allowed: bool  # tensor_allows_quantization
