"""Recurrent and Mamba-2 hybrid twins: Mamba, Granite 4.0-H, Falcon-H1 and Nemotron Nano v2.

Recurrent layers hold a fixed state per sequence instead of a KV cache: for Mamba-1 a conv
state of ``(d_conv - 1) x d_inner`` and an SSM state of ``d_state x d_inner`` per layer; for
Mamba-2 a conv state of ``(d_conv - 1) x (d_inner + 2 n_group d_state)`` and an SSM state of
``d_state x d_inner``. Hybrids keep a KV cache only for their attention layers (a layer is
recurrent where ``attention.head_count_kv`` is 0).

Metadata and tensor tables follow the vendored ``conversion/mamba.py`` and
``conversion/granite.py`` and llama.cpp's ``src/models/mamba.cpp`` and
``src/models/granite-hybrid.cpp``; shapes in ggml order (``shape[0]`` is the row).
Tensors the converter keeps in F32 (1-D, norms, ``ssm_conv1d``, ``ssm_a``/``ssm_d`` which have
no ``.weight`` suffix, routers) are pinned to F32.
"""

from __future__ import annotations

from .parts import T, attention, embeddings, f32, ffn, w
from .parts import shape as _shape
from .spec import MetaValue, ModelShape, TensorSpec


def _f32(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), "F32")


def _w(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), None)


# --- Mamba 2.8B: arch "mamba" (Mamba-1), tied embeddings ------------------------------------

_MAMBA: dict[str, int] = dict(
    n_embd=2560, n_layer=64, n_vocab=50280, d_conv=4, d_state=16, dt_rank=160
)


def _mamba_28b_tensors() -> list[TensorSpec]:
    c = _MAMBA
    n_embd = c["n_embd"]
    d_inner = 2 * n_embd
    out = [_w("token_embd.weight", n_embd, c["n_vocab"]), _f32("output_norm.weight", n_embd)]
    for i in range(c["n_layer"]):
        out += [
            _f32(f"blk.{i}.attn_norm.weight", n_embd),
            _w(f"blk.{i}.ssm_in.weight", n_embd, 2 * d_inner),
            _f32(f"blk.{i}.ssm_conv1d.weight", c["d_conv"], d_inner),
            _f32(f"blk.{i}.ssm_conv1d.bias", d_inner),
            _w(f"blk.{i}.ssm_x.weight", d_inner, c["dt_rank"] + 2 * c["d_state"]),
            _w(f"blk.{i}.ssm_dt.weight", c["dt_rank"], d_inner),
            _f32(f"blk.{i}.ssm_dt.bias", d_inner),
            _f32(f"blk.{i}.ssm_a", c["d_state"], d_inner),
            _f32(f"blk.{i}.ssm_d", d_inner),
            _w(f"blk.{i}.ssm_out.weight", d_inner, n_embd),
        ]
    return out


MAMBA_28B = ModelShape(
    id="mamba-2.8b",
    arch="mamba",
    title="state-spaces Mamba 2.8B",
    n_vocab=_MAMBA["n_vocab"],
    metadata={
        "context_length": 2**20,
        "embedding_length": 2560,
        "feed_forward_length": 0,
        "attention.head_count": 0,
        "block_count": 64,
        "ssm.conv_kernel": 4,
        "ssm.inner_size": 5120,
        "ssm.state_size": 16,
        "ssm.time_step_rank": 160,
        "ssm.dt_b_c_rms": False,
        "attention.layer_norm_rms_epsilon": 1e-5,
    },
    tensors=_mamba_28b_tensors,
    # ssm_dt rows are 160 wide: k-quants (256-blocks) do not fit them; Q8_0 does, and Q8_0
    # and F16 are what is published for Mamba.
    default_quant="q8_0",
    notes=(
        "state-spaces/mamba-2.8b-hf config.json: hidden 2560, 64 layers, vocab 50280 (50277 "
        "padded to a multiple of 8), state_size 16, conv_kernel 4, expand 2 (inner 5120), "
        "time_step_rank 160, layer_norm_epsilon 1e-5, lm_head tied to the embeddings. "
        "Converted as conversion/mamba.py MambaModel (context_length 2**20, head_count 0, "
        "feed_forward_length 0). 2.77B parameters; Q8_0 ~2.9 GB."
    ),
)


# --- Granite 4.0-H-Tiny: arch "granitehybrid" (Mamba-2 + 4 attention layers, MoE + shared) --

_GRANITE_ATTN_LAYERS = (5, 15, 25, 35)
_GRANITE_H_TINY: dict[str, int] = dict(
    n_embd=1536,
    n_layer=40,
    n_vocab=100352,
    n_head=12,
    n_head_kv=4,
    n_ff_exp=512,
    n_expert=64,
    n_ff_shexp=1024,
    d_conv=4,
    d_state=128,
    n_group=1,
    n_ssm_head=48,
)


def _granite_h_tiny_tensors() -> list[TensorSpec]:
    c = _GRANITE_H_TINY
    n_embd = c["n_embd"]
    d_inner = 2 * n_embd
    n_group, d_state, n_ssm_head = c["n_group"], c["d_state"], c["n_ssm_head"]
    d_in_proj = 2 * d_inner + 2 * n_group * d_state + n_ssm_head
    d_conv_ch = d_inner + 2 * n_group * d_state
    head_dim = n_embd // c["n_head"]
    out = [_w("token_embd.weight", n_embd, c["n_vocab"]), _f32("output_norm.weight", n_embd)]
    for i in range(c["n_layer"]):
        out.append(_f32(f"blk.{i}.attn_norm.weight", n_embd))
        if i in _GRANITE_ATTN_LAYERS:
            out += [
                _w(f"blk.{i}.attn_q.weight", n_embd, c["n_head"] * head_dim),
                _w(f"blk.{i}.attn_k.weight", n_embd, c["n_head_kv"] * head_dim),
                _w(f"blk.{i}.attn_v.weight", n_embd, c["n_head_kv"] * head_dim),
                _w(f"blk.{i}.attn_output.weight", c["n_head"] * head_dim, n_embd),
            ]
        else:
            out += [
                _w(f"blk.{i}.ssm_in.weight", n_embd, d_in_proj),
                _f32(f"blk.{i}.ssm_conv1d.weight", c["d_conv"], d_conv_ch),
                _f32(f"blk.{i}.ssm_conv1d.bias", d_conv_ch),
                _f32(f"blk.{i}.ssm_dt.bias", n_ssm_head),
                _f32(f"blk.{i}.ssm_a", 1, n_ssm_head),
                _f32(f"blk.{i}.ssm_d", 1, n_ssm_head),
                _f32(f"blk.{i}.ssm_norm.weight", d_inner // n_group, n_group),
                _w(f"blk.{i}.ssm_out.weight", d_inner, n_embd),
            ]
        out += [
            _f32(f"blk.{i}.ffn_norm.weight", n_embd),
            _f32(f"blk.{i}.ffn_gate_inp.weight", n_embd, c["n_expert"]),
            _w(f"blk.{i}.ffn_gate_exps.weight", n_embd, c["n_ff_exp"], c["n_expert"]),
            _w(f"blk.{i}.ffn_down_exps.weight", c["n_ff_exp"], n_embd, c["n_expert"]),
            _w(f"blk.{i}.ffn_up_exps.weight", n_embd, c["n_ff_exp"], c["n_expert"]),
            _w(f"blk.{i}.ffn_gate_shexp.weight", n_embd, c["n_ff_shexp"]),
            _w(f"blk.{i}.ffn_up_shexp.weight", n_embd, c["n_ff_shexp"]),
            _w(f"blk.{i}.ffn_down_shexp.weight", c["n_ff_shexp"], n_embd),
        ]
    return out


GRANITE_4_H_TINY = ModelShape(
    id="granite-4.0-h-tiny",
    arch="granitehybrid",
    title="IBM Granite 4.0 H Tiny",
    n_vocab=_GRANITE_H_TINY["n_vocab"],
    metadata={
        "vocab_size": 100352,
        # no RoPE in the hybrid (position_embedding_type "nope"): the converter writes 2**20
        "context_length": 2**20,
        "embedding_length": 1536,
        "block_count": 40,
        "feed_forward_length": 512,
        "attention.head_count": 12,
        # per layer: 4 on the attention layers, 0 marks a recurrent (Mamba-2) layer
        "attention.head_count_kv": [4 if i in _GRANITE_ATTN_LAYERS else 0 for i in range(40)],
        "rope.dimension_count": 128,
        "rope.freq_base": 10000.0,
        "rope.scaling.finetuned": False,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 64,
        "expert_used_count": 6,
        "expert_shared_feed_forward_length": 1024,
        "attention.scale": 0.0078125,
        "embedding_scale": 12.0,
        "residual_scale": 0.22,
        "logit_scale": 6.0,
        "ssm.conv_kernel": 4,
        "ssm.state_size": 128,
        "ssm.group_count": 1,
        "ssm.inner_size": 3072,
        "ssm.time_step_rank": 48,
    },
    tensors=_granite_h_tiny_tensors,
    metadata_types={"attention.head_count_kv": "INT32"},
    default_quant="q4_k_m",
    notes=(
        "ibm-granite/granite-4.0-h-tiny config.json: hidden 1536, 40 layers of which 5, 15, "
        "25, 35 are attention (12 heads, 4 KV heads, head 128, no RoPE) and the rest Mamba-2 "
        "(48 heads of 64, d_state 128, 1 group, conv 4, expand 2), MoE in every layer (64 "
        "experts of 512, 6 per token, shared expert 1024), vocab 100352, tied embeddings, "
        "multipliers attention 0.0078125, embedding 12, residual 0.22, logits 6. Converted as "
        "conversion/granite.py GraniteHybridModel. 6.9B parameters; published Q4_K_M ~4.2 GB."
    ),
)


# --- Falcon-H1 0.5B: every layer attention + Mamba-2 ---------------------------------------


def _falcon_h1_05b() -> T:
    e, v, d_inner, n_heads, d_state, n_group = 1024, 32784, 1536, 24, 128, 1
    conv_dim = d_inner + 2 * n_group * d_state
    out = embeddings(e, v, tied=False)
    for i in range(36):
        p = f"blk.{i}."
        out += [
            w(p + "ssm_in.weight", e, d_inner + conv_dim + n_heads),
            f32(p + "ssm_conv1d.weight", 4, conv_dim),
            f32(p + "ssm_conv1d.bias", conv_dim),
            f32(p + "ssm_dt.bias", n_heads),
            f32(p + "ssm_a", 1, n_heads),
            f32(p + "ssm_d", 1, n_heads),
            f32(p + "ssm_norm.weight", d_inner // n_group, n_group),
            w(p + "ssm_out.weight", d_inner, e),
        ]
        out += attention(i, e, 8 * 64, 2 * 64, 2 * 64)
        out.append(f32(p + "ffn_norm", e))
        out += ffn(i, e, 2048, norm=None)
    return out


FALCON_H1_05B = _shape(
    "falcon-h1-0.5b",
    "falcon-h1",
    "TII Falcon-H1 0.5B Instruct",
    32784,
    {
        "context_length": 16384,
        "embedding_length": 1024,
        "block_count": 36,
        "feed_forward_length": 2048,
        "attention.head_count": 8,
        "attention.head_count_kv": 2,
        "attention.key_length": 64,
        "attention.value_length": 64,
        "rope.freq_base": 100000000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "ssm.conv_kernel": 4,
        "ssm.inner_size": 1536,
        "ssm.state_size": 128,
        "ssm.time_step_rank": 24,
        "ssm.group_count": 1,
    },
    build=_falcon_h1_05b,
    notes="tiiuae/Falcon-H1-0.5B-Instruct config.json as recalled: hidden 1024, 36 layers, "
    "each with attention (8 heads, 2 KV heads of 64) AND a Mamba-2 mixer (d_ssm 1536, 24 "
    "heads, d_state 128, 1 group, conv 4) in parallel, intermediate 2048, vocab 32784, "
    "untied. llama.cpp gives every layer a KV cache and a recurrent state.",
)


# --- NVIDIA Nemotron Nano 9B v2: Mamba-2 (M), attention (*) and MLP-only (-) layers ---------

_NEMOTRON_PATTERN = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-"[:56]


def _nemotron_nano_9b() -> T:
    e, v, d_inner, n_heads, d_state, n_group = 4480, 131072, 10240, 128, 128, 8
    conv_dim = d_inner + 2 * n_group * d_state
    out = embeddings(e, v, tied=False)
    for i, kind in enumerate(_NEMOTRON_PATTERN):
        p = f"blk.{i}."
        out.append(f32(p + "attn_norm.weight", e))
        if kind == "M":
            out += [
                w(p + "ssm_in.weight", e, 2 * d_inner + 2 * n_group * d_state + n_heads),
                f32(p + "ssm_conv1d.weight", 4, conv_dim),
                f32(p + "ssm_conv1d.bias", conv_dim),
                f32(p + "ssm_dt.bias", n_heads),
                f32(p + "ssm_a", 1, n_heads),
                f32(p + "ssm_d", 1, n_heads),
                f32(p + "ssm_norm.weight", d_inner // n_group, n_group),
                w(p + "ssm_out.weight", d_inner, e),
            ]
        elif kind == "*":
            out += attention(i, e, 40 * 128, 8 * 128, 8 * 128, norm=False)
        else:
            out += ffn(i, e, 15680, gated=False, norm=None)
    return out


def _nemotron_meta() -> dict[str, MetaValue]:
    kinds = _NEMOTRON_PATTERN
    return {
        "context_length": 131072,
        "embedding_length": 4480,
        "block_count": len(kinds),
        "feed_forward_length": [15680 if k == "-" else 0 for k in kinds],
        "attention.head_count": 40,
        "attention.head_count_kv": [8 if k == "*" else 0 for k in kinds],
        "attention.key_length": 128,
        "attention.value_length": 128,
        "attention.layer_norm_epsilon": 1e-5,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "ssm.conv_kernel": 4,
        "ssm.inner_size": 10240,
        "ssm.state_size": 128,
        "ssm.time_step_rank": 128,
        "ssm.group_count": 8,
    }


NEMOTRON_NANO_9B_V2 = _shape(
    "nemotron-nano-9b-v2",
    "nemotron_h",
    "NVIDIA Nemotron Nano 9B v2",
    131072,
    _nemotron_meta(),
    build=_nemotron_nano_9b,
    metadata_types={"attention.head_count_kv": "INT32", "feed_forward_length": "INT32"},
    notes="nvidia/NVIDIA-Nemotron-Nano-9B-v2 config.json as recalled: hidden 4480, 56 layers "
    "of Mamba-2 (128 heads of 80, d_state 128, 8 groups, conv 4), GQA attention (40 heads, "
    "8 KV heads of 128) and squared-ReLU MLP-only layers (15680), vocab 131072, untied. "
    "The layer pattern string is approximate (27 Mamba, 4 attention, 25 MLP layers). "
    "An MLP-only layer holds neither KV nor recurrent state (nemotron-h.cpp:14-16).",
)


SHAPES: tuple[ModelShape, ...] = (MAMBA_28B, GRANITE_4_H_TINY)
# The 2026 additions, checked by tests/test_twins_families.py (the registry finds them too).
HYBRID_SHAPES: tuple[ModelShape, ...] = (FALCON_H1_05B, NEMOTRON_NANO_9B_V2)
