"""Write a shape twin: a GGUF file with a real model's metadata and tensor table, no weights.

The header (metadata, a tokenizer llama.cpp accepts, the tensor infos) is written with the
``gguf`` package's :class:`GGUFWriter`; the data section is then left as a sparse hole by
extending the file with :func:`os.truncate`. llama.cpp maps such a file and sizes every
buffer exactly as it would the real one, at no disk cost.

The tensor types come from a quantization mix that mirrors llama.cpp's
``llama_tensor_get_type`` (``src/llama-quant.cpp``) for the source tree inside
llama-cpp-python 0.3.36: which tensors may be quantized at all, the output/token-embedding
rules, the attn_v / ffn_down bumps of the ``*_K_M`` mixes and the fallbacks for rows that
are not a multiple of the block size.

``gguf`` and ``numpy`` are optional dependencies: they are imported inside the functions.
"""

from __future__ import annotations

import os
import pathlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.ggml import GGML_TYPES_BY_NAME, GGMLType
from ..errors import ConfigError
from .spec import MetaValue, ModelShape, TensorSpec

GGUF_ALIGNMENT = 32  # GGUF_DEFAULT_ALIGNMENT; the writer never sets general.alignment


@dataclass(frozen=True)
class Quant:
    """A llama-quantize file type: its ``llama_ftype`` id and its default tensor type."""

    name: str  # "q4_k_m"
    ftype: int  # enum llama_ftype, written as general.file_type
    default_type: str  # ggml type name of llama_ftype_get_default_type()


_QUANT_LIST = (
    Quant("f32", 0, "F32"),
    Quant("f16", 1, "F16"),
    Quant("q4_0", 2, "Q4_0"),
    Quant("q4_1", 3, "Q4_1"),
    Quant("q8_0", 7, "Q8_0"),
    Quant("q5_0", 8, "Q5_0"),
    Quant("q5_1", 9, "Q5_1"),
    Quant("q2_k", 10, "Q2_K"),
    Quant("q3_k_s", 11, "Q3_K"),
    Quant("q3_k_m", 12, "Q3_K"),
    Quant("q3_k_l", 13, "Q3_K"),
    Quant("q4_k_s", 14, "Q4_K"),
    Quant("q4_k_m", 15, "Q4_K"),
    Quant("q5_k_s", 16, "Q5_K"),
    Quant("q5_k_m", 17, "Q5_K"),
    Quant("q6_k", 18, "Q6_K"),
    Quant("q2_k_s", 21, "Q2_K"),
    Quant("bf16", 32, "BF16"),
    Quant("mxfp4_moe", 38, "MXFP4"),
)
QUANTS: dict[str, Quant] = {q.name: q for q in _QUANT_LIST}


def get_quant(name: str, *, source: str | None = None) -> Quant:
    """Resolve a quantization name (``"Q4_K_M"``, ``"q8_0"``) or raise a one-line ConfigError."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in QUANTS:
        raise ConfigError(name, f"a quantization mix ({', '.join(QUANTS)})", source=source)
    return QUANTS[key]


def _ggml(name: str) -> GGMLType:
    return GGML_TYPES_BY_NAME[name.lower()]


def tensor_nbytes(shape: Sequence[int], type_name: str) -> int:
    """Bytes of a tensor of this ggml shape and type (ggml_nbytes for contiguous tensors)."""
    t = _ggml(type_name)
    rows = 1
    for n in shape[1:]:
        rows *= n
    return t.row_bytes(shape[0]) * rows


# --- the quantization mix: a transcription of llama-quant.cpp ---------------------------------

_CAT_TOKEN_EMBD = "token_embd"
_CAT_OUTPUT = "output"
_CAT_ATTN_QKV = "attn_qkv"
_CAT_ATTN_KV_B = "attn_kv_b"
_CAT_ATTN_V = "attn_v"
_CAT_ATTN_K = "attn_k"
_CAT_ATTN_Q = "attn_q"
_CAT_ATTN_OUT = "attn_output"
_CAT_FFN_UP = "ffn_up"
_CAT_FFN_GATE = "ffn_gate"
_CAT_FFN_DOWN = "ffn_down"
_CAT_OTHER = "other"


def _category(name: str) -> str:
    """tensor_get_category(): substring tests in llama.cpp's order."""
    if name == "output.weight":
        return _CAT_OUTPUT
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return _CAT_TOKEN_EMBD
    for needle, cat in (
        ("attn_qkv.weight", _CAT_ATTN_QKV),
        ("attn_kv_b.weight", _CAT_ATTN_KV_B),
        ("attn_v.weight", _CAT_ATTN_V),
        ("attn_k.weight", _CAT_ATTN_K),
        ("attn_q.weight", _CAT_ATTN_Q),
        ("attn_output.weight", _CAT_ATTN_OUT),
        ("ffn_up", _CAT_FFN_UP),
        ("ffn_gate", _CAT_FFN_GATE),
        ("ffn_down", _CAT_FFN_DOWN),
    ):
        if needle in name:
            return cat
    return _CAT_OTHER


def _is_attn_v(cat: str) -> bool:
    return cat in (_CAT_ATTN_V, _CAT_ATTN_QKV, _CAT_ATTN_KV_B)


_NO_QUANT_SUBSTRINGS = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    ".patch_embd",
    ".rel_pos",
)


def _allows_quantization(name: str, shape: Sequence[int]) -> bool:
    """tensor_allows_quantization(): 2-D or more, a weight, not a norm/gate-inp/conv/..."""
    n_dims = len(shape)
    while n_dims > 1 and shape[n_dims - 1] == 1:  # ggml_n_dims ignores trailing 1s
        n_dims -= 1
    if n_dims < 2 or not name.endswith("weight"):
        return False
    if any(s in name for s in _NO_QUANT_SUBSTRINGS):
        return False
    return name not in ("position_embd.weight", "token_types.weight")


def source_type(spec: TensorSpec, *, half: str = "F16") -> str:
    """The type convert_hf_to_gguf.py gives a tensor: F32 for 1-D tensors and norms, else F16."""
    if spec.type is not None:
        return spec.type.upper()
    n_dims = sum(1 for n in spec.shape if n != 1) or 1
    if n_dims <= 1 or spec.name.endswith("_norm.weight") or "ssm_conv1d" in spec.name:
        return "F32"
    return half


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


def _fallback(ncols: int, target: str) -> str:
    """tensor_type_fallback(): rows that are not a multiple of the block size."""
    if ncols % _ggml(target).block_size == 0:
        return target
    table = {
        "IQ1_S": "IQ4_NL",
        "IQ1_M": "IQ4_NL",
        "IQ2_XXS": "IQ4_NL",
        "IQ2_XS": "IQ4_NL",
        "IQ2_S": "IQ4_NL",
        "IQ3_XXS": "IQ4_NL",
        "IQ3_S": "IQ4_NL",
        "IQ4_XS": "IQ4_NL",
        "Q2_K": "Q4_0",
        "Q3_K": "Q4_0",
        "TQ1_0": "Q4_0",
        "TQ2_0": "Q4_0",
        "Q4_K": "Q5_0",
        "Q5_K": "Q5_1",
        "Q6_K": "Q8_0",
    }
    out = table.get(target, target)
    if ncols % _ggml(out).block_size != 0:
        out = "F16"
    return out


def _model_is_70b(model: ModelShape) -> bool:
    """LLM_TYPE_70B as the architectures' load_arch_hparams() derive it."""
    n_layer = model.metadata.get("block_count")
    if model.arch == "llama" and n_layer == 80:
        return model.metadata.get("attention.head_count") != model.metadata.get(
            "attention.head_count_kv"
        )
    return (model.arch in ("qwen2", "olmo", "deci") and n_layer == 80) or (
        model.arch == "jais2" and n_layer == 68
    )


def _first(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else 0
    return int(value or 0)


class _MixState:
    """quantize_state_impl: the counters llama_tensor_get_type() advances."""

    def __init__(self, model: ModelShape, names: list[str]) -> None:
        md = model.metadata
        self.arch = model.arch
        n_head = _first(md.get("attention.head_count", 0))
        n_head_kv = _first(md.get("attention.head_count_kv", n_head)) or n_head
        self.n_gqa = n_head // n_head_kv if n_head_kv else 0
        self.n_expert = int(md.get("expert_count", 0) or 0)  # type: ignore[arg-type]
        self.is_70b = _model_is_70b(model)
        self.n_layer = int(md.get("block_count", 0))  # type: ignore[arg-type]
        self.n_attention_wv = sum(1 for n in names if _is_attn_v(_category(n)))
        self.has_tied = "output.weight" not in names
        self.i_attention_wv = 0
        self.i_ffn_down = 0
        self.i_ffn_gate = 0
        self.i_ffn_up = 0

    def layer_of(self, counter: int, name: str) -> tuple[int, int]:
        if max(1, self.n_expert) > 1:
            m = re.match(r"blk\.(\d+)\.", name)
            if not m:
                raise ValueError(f"Failed to determine layer for tensor {name}")
            return int(m.group(1)), self.n_layer
        return counter, self.n_layer


def _get_type_impl(
    st: _MixState, new_type: str, name: str, ncols: int, ne2: int, ftype: str, cat: str
) -> str:
    """llama_tensor_get_type_impl() for the non-IQ file types."""
    arch = st.arch
    if cat == _CAT_OUTPUT or (st.has_tied and cat == _CAT_TOKEN_EMBD):
        qk_k = _ggml(new_type).block_size
        if ftype == "mxfp4_moe" or arch == "falcon" or ncols % qk_k != 0:
            new_type = "Q8_0"
        elif new_type != "Q8_0":
            new_type = "Q6_K"
    elif ftype == "mxfp4_moe":
        new_type = "MXFP4" if ne2 > 1 else "Q8_0"
    elif cat == _CAT_TOKEN_EMBD:
        pass
    elif _is_attn_v(cat):
        if ftype == "q2_k":
            new_type = "Q4_K" if st.n_gqa >= 4 else "Q3_K"
        elif ftype == "q2_k_s" and st.n_gqa >= 4:
            new_type = "Q4_K"
        elif ftype == "q3_k_m":
            new_type = "Q5_K" if st.i_attention_wv < 2 else "Q4_K"
        elif ftype == "q3_k_l":
            new_type = "Q5_K"
        elif ftype in ("q4_k_m", "q5_k_m") and _use_more_bits(st.i_attention_wv, st.n_attention_wv):
            new_type = "Q6_K"
        elif ftype == "q4_k_s" and st.i_attention_wv < 4:
            new_type = "Q5_K"
        if st.is_70b and new_type in ("Q3_K", "Q4_K"):
            new_type = "Q5_K"
        if st.n_expert == 8:
            new_type = "Q8_0"
        st.i_attention_wv += 1
    elif cat == _CAT_ATTN_K:
        if st.n_expert == 8:
            new_type = "Q8_0"
    elif cat == _CAT_ATTN_Q:
        pass
    elif cat == _CAT_FFN_DOWN:
        i_layer, n_layer = st.layer_of(st.i_ffn_down, name)
        if ftype == "q2_k":
            new_type = "Q3_K"
        elif ftype == "q2_k_s":
            if i_layer < n_layer // 8:
                new_type = "Q4_K"
        elif ftype == "q3_k_m":
            if i_layer < n_layer // 16:
                new_type = "Q5_K"
            elif arch != "falcon" or _use_more_bits(i_layer, n_layer):
                new_type = "Q4_K"
            else:
                new_type = "Q3_K"
        elif ftype == "q3_k_l":
            new_type = "Q4_K" if arch == "falcon" else "Q5_K"
        elif ftype == "q4_k_m":
            if arch == "falcon":
                new_type = (
                    "Q6_K"
                    if i_layer < n_layer // 16
                    else "Q5_K"
                    if _use_more_bits(i_layer, n_layer)
                    else "Q4_K"
                )
            elif _use_more_bits(i_layer, n_layer):
                new_type = "Q6_K"
        elif ftype == "q5_k_m" and _use_more_bits(i_layer, n_layer):
            new_type = "Q6_K"
        elif ftype == "q4_k_s" and arch != "falcon" and i_layer < n_layer // 8:
            new_type = "Q5_K"
        st.i_ffn_down += 1
    elif cat == _CAT_ATTN_OUT:
        if arch != "falcon":
            if st.n_expert == 8:
                if ftype in ("q2_k", "q3_k_s", "q3_k_m", "q4_k_s", "q4_k_m"):
                    new_type = "Q5_K"
            elif ftype == "q2_k":
                new_type = "Q3_K"
            elif ftype == "q3_k_m":
                new_type = "Q4_K"
            elif ftype == "q3_k_l":
                new_type = "Q5_K"
        elif ftype == "q3_k_l":
            new_type = "Q4_K"
    elif cat == _CAT_FFN_GATE:
        st.i_ffn_gate += 1
    elif cat == _CAT_FFN_UP:
        st.i_ffn_up += 1
    return new_type


def _sort_key(name: str) -> tuple[int, str]:
    """llama_model_loader::weight_name_comparer: by block number (-1 first), then name."""
    m = re.match(r"blk\.(\d+)\.", name)
    return (int(m.group(1)) if m else -1, name)


def tensor_types(model: str | ModelShape, quant: str | None = None) -> list[tuple[TensorSpec, str]]:
    """Every tensor of the model with the ggml type the mix gives it, in llama-quantize's order.

    The order is llama.cpp's weights_map order (block number, then name), which is also the
    order llama-quantize writes the tensors in.
    """
    shape = _resolve(model)
    q = get_quant(quant or shape.default_quant, source=f"quantization of {shape.id}")
    specs = sorted(shape.tensors(), key=lambda t: _sort_key(t.name))
    names = [t.name for t in specs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{shape.id}: duplicated tensor names {dup[:5]}")
    half = "BF16" if q.name == "bf16" else "F16"
    st = _MixState(shape, names)
    out: list[tuple[TensorSpec, str]] = []
    for spec in specs:
        src = source_type(spec, half=half)
        if spec.type is not None or not _allows_quantization(spec.name, spec.shape):
            out.append((spec, src))
            continue
        if q.name == "f32":
            out.append((spec, "F32"))
            continue
        new_type = q.default_type
        if _ggml(new_type).block_size > 1:  # ggml_is_quantized(default_type)
            ne2 = spec.shape[2] if len(spec.shape) > 2 else 1
            new_type = _get_type_impl(
                st, new_type, spec.name, spec.shape[0], ne2, q.name, _category(spec.name)
            )
            new_type = _fallback(spec.shape[0], new_type)
        out.append((spec, new_type))
    return out


def data_size(model: str | ModelShape, quant: str | None = None) -> int:
    """Bytes of the data section: every tensor padded to the GGUF alignment."""
    return sum(
        _pad(tensor_nbytes(spec.shape, t), GGUF_ALIGNMENT) for spec, t in tensor_types(model, quant)
    )


def _pad(n: int, align: int) -> int:
    return (n + align - 1) // align * align


# --- the header --------------------------------------------------------------------------------

_PASSTHROUGH_PREFIXES = ("general.", "tokenizer.", "split.")


def _value_type(gguf: Any, name: str) -> Any:
    try:
        return gguf.GGUFValueType[name.upper()]
    except KeyError:
        raise ValueError(f"unknown GGUF value type {name!r}") from None


def _scalar_type(gguf: Any, value: Any) -> Any:
    vt = gguf.GGUFValueType
    if isinstance(value, bool):
        return vt.BOOL
    if isinstance(value, int):
        return vt.UINT32
    if isinstance(value, float):
        return vt.FLOAT32
    if isinstance(value, str):
        return vt.STRING
    raise ValueError(f"unsupported metadata value {value!r}")


def _add_metadata(
    writer: Any, gguf: Any, key: str, value: MetaValue, type_name: str | None
) -> None:
    vt = gguf.GGUFValueType
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"metadata {key}: empty array")
        sub = _value_type(gguf, type_name) if type_name else _scalar_type(gguf, value[0])
        if sub == vt.BOOL:
            items: list[Any] = [bool(v) for v in value]
        elif sub in (vt.FLOAT32, vt.FLOAT64):
            items = [float(v) for v in value]
        else:
            items = list(value)
        writer.add_key_value(key, items, vt.ARRAY, sub_type=sub)
        return
    t = _value_type(gguf, type_name) if type_name else _scalar_type(gguf, value)
    if t in (vt.FLOAT32, vt.FLOAT64):
        value = float(value)
    writer.add_key_value(key, value, t)


def add_spm_vocab(writer: Any, gguf: Any, n_vocab: int) -> None:
    """An SPM ("llama") vocabulary of n_vocab tokens that llama_vocab::load() accepts and
    that round-trips any text: ids 0..2 are <unk>, <s>, </s>; ids 3..258 the 256 byte
    tokens <0x00>..<0xFF> (every character falls back to its UTF-8 bytes; the linefeed
    token is looked up as <0x0A>); id 259 the space piece "▁"; the rest are distinct
    normal pieces. For sizing only the count matters: it sets n_vocab (embedding rows,
    logits, output buffer). Shared by shape twins and the tiny real models.
    """
    if n_vocab < 260:
        raise ValueError(f"n_vocab {n_vocab} is too small for an SPM vocabulary (needs 260)")
    tokens = ["<unk>", "<s>", "</s>"]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    tokens.append("\u2581")
    tokens += [f"\u2581t{i}" for i in range(len(tokens), n_vocab)]
    scores = [0.0] * 259 + [-float(i) for i in range(259, n_vocab)]
    # llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte
    types = [2, 3, 3] + [6] * 256 + [1] * (n_vocab - 259)
    vt = gguf.GGUFValueType
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_key_value(gguf.Keys.Tokenizer.LIST, tokens, vt.ARRAY, sub_type=vt.STRING)
    writer.add_key_value(gguf.Keys.Tokenizer.SCORES, scores, vt.ARRAY, sub_type=vt.FLOAT32)
    writer.add_key_value(gguf.Keys.Tokenizer.TOKEN_TYPE, types, vt.ARRAY, sub_type=vt.INT32)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def _fast_writer_class(base: Any, gguf: Any, np: Any) -> Any:
    """GGUFWriter packing long numeric/string arrays in bulk (a 262k-token vocabulary
    otherwise costs seconds of per-item struct.pack calls). Same bytes as the base class."""
    vt = gguf.GGUFValueType
    np_types = {vt.FLOAT32: "<f4", vt.INT32: "<i4", vt.UINT32: "<u4"}
    little = gguf.GGUFEndian.LITTLE

    class _FastGGUFWriter(base):  # type: ignore[misc]
        def _pack_val(self, val: Any, vtype: Any, add_vtype: bool, sub_type: Any = None) -> bytes:
            if (
                vtype == vt.ARRAY
                and self.endianess == little
                and isinstance(val, (list, tuple))
                and len(val) > 64
                and (sub_type in np_types or sub_type == vt.STRING)
            ):
                head = struct.pack("<I", int(vtype)) if add_vtype else b""
                head += struct.pack("<IQ", int(sub_type), len(val))
                if sub_type == vt.STRING:
                    enc = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in val]
                    body = b"".join(struct.pack("<Q", len(e)) + e for e in enc)
                else:
                    body = np.asarray(val, dtype=np_types[sub_type]).tobytes()
                return head + body
            return bytes(super()._pack_val(val, vtype, add_vtype, sub_type=sub_type))

    return _FastGGUFWriter


def _resolve(model: str | ModelShape) -> ModelShape:
    if isinstance(model, ModelShape):
        return model
    from .registry import get_model

    return get_model(model)


def write_twin(
    model: str | ModelShape,
    path: str | os.PathLike[str],
    *,
    quant: str | None = None,
    header_only: bool = False,
) -> pathlib.Path:
    """Write the shape twin of ``model`` (an id from the registry or a ModelShape) to ``path``.

    ``quant`` names the quantization mix (default: the model's ``default_quant``). The file
    is extended to its full size as a sparse hole unless ``header_only``, in which case it
    ends after the tensor table and the alignment padding. Returns the path.
    """
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter

    shape = _resolve(model)
    q = get_quant(quant or shape.default_quant, source=f"quantization of {shape.id}")
    typed = tensor_types(shape, q.name)
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")

    writer = _fast_writer_class(GGUFWriter, gguf, np)(tmp, shape.arch)
    try:
        writer.add_type("model")
        writer.add_name(shape.title)
        writer.add_string("general.source.llmfit", "shape twin (no weights)")
        for key, value in shape.metadata.items():
            full = key if key.startswith(_PASSTHROUGH_PREFIXES) else f"{shape.arch}.{key}"
            _add_metadata(writer, gguf, full, value, shape.metadata_types.get(key))
        writer.add_file_type(q.ftype)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        if not any(k.startswith("tokenizer.ggml.model") for k in shape.metadata):
            add_spm_vocab(writer, gguf, shape.n_vocab)

        data_bytes = 0
        for spec, type_name in typed:
            nbytes = tensor_nbytes(spec.shape, type_name)
            writer.add_tensor_info(
                spec.name,
                tuple(reversed(spec.shape)),  # GGUFWriter takes the numpy order
                np.dtype(np.float32),
                nbytes,
                raw_dtype=GGMLQuantizationType[type_name.upper()],
            )
            data_bytes += _pad(nbytes, GGUF_ALIGNMENT)

        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        assert writer.fout is not None
        fout = writer.fout[0]
        fout.flush()
        header_end = fout.tell()
        writer.close()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise

    data_start = _pad(header_end, GGUF_ALIGNMENT)
    os.truncate(tmp, data_start if header_only else data_start + data_bytes)
    os.replace(tmp, out)
    return out
