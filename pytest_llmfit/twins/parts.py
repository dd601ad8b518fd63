"""Building blocks of the newer twin tables (swa.py, mla.py, hybrid.py, encoder.py, decoders.py).

Each helper returns the tensors one ``load_arch_tensors`` call in llama.cpp asks for, with
llama.cpp's names (src/llama-arch.cpp) and shapes in ggml order (``shape[0]`` is the row
length). Tensors the converter always keeps in F32 (1-D tensors, norms, biases, routers) are
pinned to F32 so every quantization mix leaves them alone, as llama-quantize does.
"""

from __future__ import annotations

from collections.abc import Callable

from .spec import MetaValue, ModelShape, TensorSpec

T = list[TensorSpec]


def f32(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), "F32")


def w(name: str, *shape: int, type: str | None = None) -> TensorSpec:
    return TensorSpec(name, tuple(shape), type)


def embeddings(n_embd: int, n_vocab: int, *, tied: bool, norm: str = "output_norm") -> T:
    """token_embd, the output norm and (unless tied) output.weight."""
    out = [w("token_embd.weight", n_embd, n_vocab), f32(f"{norm}.weight", n_embd)]
    if not tied:
        out.append(w("output.weight", n_embd, n_vocab))
    return out


def attention(
    i: int,
    n_embd: int,
    q: int,
    k: int,
    v: int,
    *,
    o_in: int | None = None,
    bias: bool = False,
    o_bias: bool = False,
    qk_norm: int = 0,
    norm: bool = True,
    fused: bool = False,
) -> T:
    """attn_norm, q/k/v (or a fused attn_qkv) with optional biases, attn_output, q/k norms."""
    p = f"blk.{i}."
    out = [f32(p + "attn_norm.weight", n_embd)] if norm else []
    if fused:
        out.append(w(p + "attn_qkv.weight", n_embd, q + k + v))
        if bias:
            out.append(f32(p + "attn_qkv.bias", q + k + v))
    else:
        for name, dim in (("attn_q", q), ("attn_k", k), ("attn_v", v)):
            if dim:
                out.append(w(p + name + ".weight", n_embd, dim))
                if bias:
                    out.append(f32(p + name + ".bias", dim))
    out.append(w(p + "attn_output.weight", o_in if o_in is not None else q, n_embd))
    if o_bias:
        out.append(f32(p + "attn_output.bias", n_embd))
    if qk_norm:
        out += [f32(p + "attn_q_norm.weight", qk_norm), f32(p + "attn_k_norm.weight", qk_norm)]
    return out


def ffn(i: int, n_embd: int, n_ff: int, *, gated: bool = True, norm: str | None = "ffn_norm") -> T:
    p = f"blk.{i}."
    out = [f32(p + norm + ".weight", n_embd)] if norm else []
    if gated:
        out.append(w(p + "ffn_gate.weight", n_embd, n_ff))
    out += [w(p + "ffn_up.weight", n_embd, n_ff), w(p + "ffn_down.weight", n_ff, n_embd)]
    return out


def experts(
    i: int,
    n_embd: int,
    n_ff_exp: int,
    n_expert: int,
    *,
    gated: bool = True,
    probs_bias: bool = False,
    type: str | None = None,
) -> T:
    """The router and the merged expert tensors (3-D: ``(n_embd, n_ff_exp, n_expert)``)."""
    p = f"blk.{i}."
    out = [f32(p + "ffn_gate_inp.weight", n_embd, n_expert)]
    if probs_bias:
        out.append(f32(p + "exp_probs_b.bias", n_expert))
    if gated:
        out.append(w(p + "ffn_gate_exps.weight", n_embd, n_ff_exp, n_expert, type=type))
    out += [
        w(p + "ffn_up_exps.weight", n_embd, n_ff_exp, n_expert, type=type),
        w(p + "ffn_down_exps.weight", n_ff_exp, n_embd, n_expert, type=type),
    ]
    return out


def shared_expert(i: int, n_embd: int, n_ff: int, *, gate_inp: bool = False) -> T:
    p = f"blk.{i}."
    out = [
        w(p + "ffn_gate_shexp.weight", n_embd, n_ff),
        w(p + "ffn_up_shexp.weight", n_embd, n_ff),
        w(p + "ffn_down_shexp.weight", n_ff, n_embd),
    ]
    if gate_inp:
        out.append(f32(p + "ffn_gate_inp_shexp.weight", n_embd))
    return out


def nextn(i: int, n_embd: int) -> T:
    """The NextN/MTP head tensors of block i (llama.cpp skips them unless load_mtp)."""
    p = f"blk.{i}.nextn."
    return [
        w(p + "eh_proj.weight", 2 * n_embd, n_embd),
        f32(p + "enorm.weight", n_embd),
        f32(p + "hnorm.weight", n_embd),
        f32(p + "shared_head_norm.weight", n_embd),
    ]


def shape(
    id: str,
    arch: str,
    title: str,
    n_vocab: int,
    metadata: dict[str, MetaValue],
    *,
    build: Callable[[], T],
    notes: str,
    default_quant: str = "q4_k_m",
    metadata_types: dict[str, str] | None = None,
) -> ModelShape:
    """A ModelShape whose table ``build`` makes when first needed."""
    return ModelShape(
        id=id,
        arch=arch,
        title=title,
        n_vocab=n_vocab,
        metadata=metadata,
        tensors=build,
        metadata_types=metadata_types or {},
        default_quant=default_quant,
        notes=notes,
    )
