"""Hybrid twins: attention layers with a KV cache beside recurrent layers with a fixed state.

- qwen35 / qwen35moe / qwen3next: gated-delta-net layers marked by
  ``attention.recurrent_layers`` or ``full_attention_interval`` (not by head_count_kv), a
  gated query (Q projection twice as wide), MTP blocks llama.cpp skips.
- lfm2 / lfm2moe: short-convolution layers (head_count_kv 0) whose state is
  ``n_embd x (l_cache - 1)`` (src/llama-hparams.cpp:214-217).
- kimi-linear: KDA recurrent layers beside MLA attention layers (K-only cache).

The Mamba-2 hybrids (Granite 4.0-H, Falcon-H1, Nemotron-H) are in recurrent.py.

Tables follow ``load_arch_tensors`` of src/models/<arch>.cpp in the vendored llama.cpp.
"""

from __future__ import annotations

from .parts import T, attention, embeddings, experts, f32, ffn, nextn, shape, shared_expert, w
from .spec import MetaValue

# --- Qwen3.5 / Qwen3-Next: gated delta net ---------------------------------------------------


def _gdn(i: int, e: int, *, k_heads: int, v_heads: int, d: int, conv: int, legacy: bool) -> T:
    """A gated-delta-net layer (qwen35.cpp:77-85; qwen3next.cpp's ssm_ba variant)."""
    p = f"blk.{i}."
    key, value = k_heads * d, v_heads * d
    out = [
        w(p + "attn_qkv.weight", e, 2 * key + value),
        w(p + "attn_gate.weight", e, value),
        f32(p + "ssm_conv1d.weight", conv, 2 * key + value),
        f32(p + "ssm_dt.bias", v_heads),
        f32(p + "ssm_a", v_heads),
        f32(p + "ssm_norm.weight", d),
        w(p + "ssm_out.weight", value, e),
    ]
    if legacy:
        out.append(w(p + "ssm_ba.weight", e, 2 * v_heads))
    else:
        out += [w(p + "ssm_beta.weight", e, v_heads), w(p + "ssm_alpha.weight", e, v_heads)]
    return out


def _qwen_hybrid(
    *,
    e: int,
    n_layer: int,
    n_mtp: int,
    v: int,
    tied: bool,
    heads: int,
    kv: int,
    hd: int,
    k_heads: int,
    v_heads: int,
    ff: int,
    moe: tuple[int, int, int] | None,
    legacy: bool,
) -> T:
    out = embeddings(e, v, tied=tied)
    for i in range(n_layer + n_mtp):
        p = f"blk.{i}."
        recurrent = i < n_layer and (i + 1) % 4 != 0
        if recurrent:
            out.append(f32(p + "attn_norm.weight", e))
            out += _gdn(i, e, k_heads=k_heads, v_heads=v_heads, d=128, conv=4, legacy=legacy)
        else:
            out += attention(i, e, 2 * heads * hd, kv * hd, kv * hd, o_in=heads * hd, qk_norm=hd)
        out.append(f32(p + "post_attention_norm.weight", e))
        if moe:
            n_exp, ff_exp, ff_sh = moe
            out += experts(i, e, ff_exp, n_exp)
            out += shared_expert(i, e, ff_sh, gate_inp=True)
        else:
            out += ffn(i, e, ff, norm=None)
        if i >= n_layer:
            out += nextn(i, e)
    return out


def _qwen_meta(
    *, e: int, n_layer: int, n_mtp: int, heads: int, kv: int, k_heads: int, v_heads: int, ff: int
) -> dict[str, MetaValue]:
    md: dict[str, MetaValue] = {
        "context_length": 262144,
        "embedding_length": e,
        "block_count": n_layer + n_mtp,
        "feed_forward_length": ff,
        "attention.head_count": heads,
        "attention.head_count_kv": kv,
        "attention.key_length": 256,
        "attention.value_length": 256,
        "rope.dimension_count": 64,
        "rope.freq_base": 10000000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "ssm.conv_kernel": 4,
        "ssm.state_size": 128,
        "ssm.group_count": k_heads,
        "ssm.time_step_rank": v_heads,
        "ssm.inner_size": 128 * v_heads,
        "full_attention_interval": 4,
    }
    if n_mtp:
        md["nextn_predict_layers"] = n_mtp
    return md


_Q35_08B = dict(e=1024, n_layer=24, n_mtp=0, heads=8, kv=2, k_heads=16, v_heads=16, ff=3584)
QWEN35_08B = shape(
    "qwen3.5-0.8b",
    "qwen35",
    "Qwen3.5 0.8B",
    248320,
    {
        **_qwen_meta(**_Q35_08B),
        "rope.dimension_sections": [11, 11, 10, 0],
        "attention.recurrent_layers": [(i + 1) % 4 != 0 for i in range(24)],
    },
    build=lambda: _qwen_hybrid(
        **_Q35_08B,
        v=248320,
        tied=True,
        hd=256,
        moe=None,
        legacy=False,
    ),
    notes="Qwen/Qwen3.5-0.8B text config as recalled (llama.cpp's qwen35.cpp names the 24-layer "
    "1024-wide model 0.8B): hidden 1024, 24 layers, every 4th full attention (8 heads, 2 KV "
    "heads of 256, gated query), the others gated delta net (16 key / 16 value heads of "
    "128, conv 4), intermediate 3584, vocab 248320, tied. Hyperparameters not checked "
    "against a published file; written with attention.recurrent_layers.",
)

_Q35_9B = dict(e=4096, n_layer=32, n_mtp=0, heads=16, kv=4, k_heads=16, v_heads=32, ff=12288)
QWEN35_9B = shape(
    "qwen3.5-9b",
    "qwen35",
    "Qwen3.5 9B",
    248320,
    {
        **_qwen_meta(**_Q35_9B),
        "rope.dimension_sections": [11, 11, 10, 0],
    },
    build=lambda: _qwen_hybrid(**_Q35_9B, v=248320, tied=False, hd=256, moe=None, legacy=False),
    notes="Qwen/Qwen3.5-9B text config: hidden 4096, 32 layers, every 4th full attention (16 "
    "heads, 4 KV heads of 256, gated query), gated delta net (16 key / 32 value heads of "
    "128, conv 4), intermediate 12288, vocab 248320, untied. The KV heads, the linear "
    "heads and the vocabulary are confirmed by a public llama.cpp log of the real file "
    "(tests/data/logs/20-...: KV 256.00 MiB and RS 50.25 MiB at n_ctx 8192, output "
    "buffer 0.95 MiB).",
)

_Q35_35B = dict(e=2048, n_layer=40, n_mtp=1, heads=16, kv=2, k_heads=16, v_heads=32, ff=512)
QWEN35_35B_A3B = shape(
    "qwen3.5-35b-a3b",
    "qwen35moe",
    "Qwen3.5 35B A3B",
    248320,
    {
        **_qwen_meta(**_Q35_35B),
        "rope.dimension_sections": [11, 11, 10, 0],
        "expert_count": 256,
        "expert_used_count": 8,
        "expert_feed_forward_length": 512,
        "expert_shared_feed_forward_length": 512,
    },
    build=lambda: _qwen_hybrid(
        **_Q35_35B,
        v=248320,
        tied=False,
        hd=256,
        moe=(256, 512, 512),
        legacy=False,
    ),
    notes="Qwen/Qwen3.5-35B-A3B text config as recalled (qwen35moe.cpp: 40 layers = 35B-A3B): "
    "hidden 2048, 40 layers + 1 MTP layer, every 4th full attention (16 heads, 2 KV heads "
    "of 256), gated delta net (16 key / 32 value heads of 128), 256 experts of 512 (8 used) "
    "and a gated shared expert of 512, vocab 248320, untied. Not checked against a "
    "published file.",
)

_Q3N_80B = dict(e=2048, n_layer=48, n_mtp=1, heads=16, kv=2, k_heads=16, v_heads=32, ff=5120)
QWEN3_NEXT_80B_A3B = shape(
    "qwen3-next-80b-a3b",
    "qwen3next",
    "Qwen3-Next 80B A3B Instruct",
    151936,
    {
        **_qwen_meta(**_Q3N_80B),
        "expert_count": 512,
        "expert_used_count": 10,
        "expert_feed_forward_length": 512,
        "expert_shared_feed_forward_length": 512,
    },
    build=lambda: _qwen_hybrid(
        **_Q3N_80B,
        v=151936,
        tied=False,
        hd=256,
        moe=(512, 512, 512),
        legacy=True,
    ),
    notes="Qwen/Qwen3-Next-80B-A3B-Instruct config.json: hidden 2048, 48 layers (+1 MTP), "
    "full_attention_interval 4 (16 heads, 2 KV heads, head_dim 256, partial rotary 0.25), "
    "linear attention 16 key / 32 value heads of 128, conv 4, 512 experts of 512 (10 used) "
    "+ shared 512, vocab 151936, max_position 262144, untied. head_count_kv is a scalar: "
    "the recurrent layers come from full_attention_interval. Published Q4_K_M ~48.5 GB.",
)


# --- LFM2: short convolutions -------------------------------------------------------------


def _lfm2(
    *, e: int, n_layer: int, attn: tuple[int, ...], kv: int, ff: int, moe: tuple[int, int, int]
) -> T:
    n_exp, ff_exp, n_dense = moe
    out = embeddings(e, 65536, tied=True, norm="token_embd_norm")
    for i in range(n_layer):
        p = f"blk.{i}."
        if i in attn:
            out += attention(i, e, e, kv * 64, kv * 64, qk_norm=64)
        else:
            out += [
                f32(p + "attn_norm.weight", e),
                f32(p + "shortconv.conv.weight", 3, e),
                w(p + "shortconv.in_proj.weight", e, 3 * e),
                w(p + "shortconv.out_proj.weight", e, e),
            ]
        if i < n_dense:
            out += ffn(i, e, ff)
        else:
            out.append(f32(p + "ffn_norm.weight", e))
            out += experts(i, e, ff_exp, n_exp, probs_bias=True)
    return out


_LFM2_12B_ATTN = (2, 5, 8, 10, 12, 14)
LFM2_12B = shape(
    "lfm2-1.2b",
    "lfm2",
    "Liquid LFM2 1.2B",
    65536,
    {
        "context_length": 128000,
        "embedding_length": 2048,
        "block_count": 16,
        "feed_forward_length": 8192,
        "attention.head_count": 32,
        "attention.head_count_kv": [8 if i in _LFM2_12B_ATTN else 0 for i in range(16)],
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "shortconv.l_cache": 3,
        "vocab_size": 65536,
    },
    build=lambda: _lfm2(e=2048, n_layer=16, attn=_LFM2_12B_ATTN, kv=8, ff=8192, moe=(0, 0, 16)),
    metadata_types={"attention.head_count_kv": "INT32"},
    notes="LiquidAI/LFM2-1.2B config.json: hidden 2048, 16 layers of which 2, 5, 8, 10, 12, 14 "
    "are GQA attention (32 heads, 8 KV heads of 64) and the rest short convolutions "
    "(conv_L_cache 3), block_ff_dim 12288 auto-adjusted to 8192, vocab 65536, tied. "
    "Published Q4_K_M ~0.73 GB.",
)

_LFM2_8B_ATTN = (2, 6, 10, 14, 18, 21)
LFM2_8B_A1B = shape(
    "lfm2-8b-a1b",
    "lfm2moe",
    "Liquid LFM2 8B A1B",
    65536,
    {
        "context_length": 128000,
        "embedding_length": 2048,
        "block_count": 24,
        "feed_forward_length": 7168,
        "attention.head_count": 32,
        "attention.head_count_kv": [8 if i in _LFM2_8B_ATTN else 0 for i in range(24)],
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "shortconv.l_cache": 3,
        "vocab_size": 65536,
        "expert_count": 32,
        "expert_used_count": 4,
        "expert_feed_forward_length": 1792,
        "leading_dense_block_count": 2,
        "expert_gating_func": 2,
    },
    build=lambda: _lfm2(e=2048, n_layer=24, attn=_LFM2_8B_ATTN, kv=8, ff=7168, moe=(32, 1792, 2)),
    metadata_types={"attention.head_count_kv": "INT32"},
    notes="LiquidAI/LFM2-8B-A1B config.json as recalled: hidden 2048, 24 layers (6 attention, "
    "32/8 heads of 64; the rest short convolutions, L_cache 3), first 2 layers dense "
    "(7168), then 32 experts of 1792 (4 used, sigmoid with bias), vocab 65536, tied. The "
    "attention layer indices are approximate. Published Q4_K_M ~5.0 GB.",
)


# --- Kimi-Linear 48B A3B: KDA recurrent layers + MLA attention -------------------------------

_KIMI_MLA = (3, 7, 11, 15, 19, 23, 26)


def _kimi_linear() -> T:
    e, v, n_head, kda, kv_lora, rope, nope, v_head = 2304, 163840, 32, 128, 512, 64, 128, 128
    out = embeddings(e, v, tied=False)
    for i in range(27):
        p = f"blk.{i}."
        out.append(f32(p + "attn_norm.weight", e))
        if i in _KIMI_MLA:
            out += [
                f32(p + "attn_kv_a_norm.weight", kv_lora),
                w(p + "attn_q.weight", e, n_head * (nope + rope)),
                w(p + "attn_kv_a_mqa.weight", e, kv_lora + rope),
                w(p + "attn_k_b.weight", nope, kv_lora, n_head),
                w(p + "attn_v_b.weight", kv_lora, v_head, n_head),
                w(p + "attn_output.weight", n_head * v_head, e),
            ]
        else:
            out += [
                f32(p + "ssm_conv1d_q.weight", 4, 1, kda * n_head),
                f32(p + "ssm_conv1d_k.weight", 4, 1, kda * n_head),
                f32(p + "ssm_conv1d_v.weight", 4, 1, kda * n_head),
                w(p + "attn_q.weight", e, kda * n_head),
                w(p + "attn_k.weight", e, kda * n_head),
                w(p + "attn_v.weight", e, kda * n_head),
                w(p + "ssm_f_a.weight", e, kda),
                w(p + "ssm_f_b.weight", kda, kda * n_head),
                w(p + "ssm_beta.weight", e, n_head),
                f32(p + "ssm_a", 1, n_head),
                f32(p + "ssm_dt.bias", kda * n_head),
                w(p + "ssm_g_a.weight", e, kda),
                w(p + "ssm_g_b.weight", kda, kda * n_head),
                f32(p + "ssm_norm.weight", kda),
                w(p + "attn_output.weight", kda * n_head, e),
            ]
        out.append(f32(p + "ffn_norm.weight", e))
        if i < 1:
            out += ffn(i, e, 9216, norm=None)
        else:
            out += experts(i, e, 1024, 256, probs_bias=True)
            out += shared_expert(i, e, 1024)
    return out


KIMI_LINEAR_48B = shape(
    "kimi-linear-48b-a3b",
    "kimi-linear",
    "Moonshot Kimi-Linear 48B A3B Instruct",
    163840,
    {
        "context_length": 1048576,
        "embedding_length": 2304,
        "block_count": 27,
        "feed_forward_length": 9216,
        "attention.head_count": 32,
        "attention.head_count_kv": [1 if i in _KIMI_MLA else 0 for i in range(27)],
        "attention.key_length": 576,
        "attention.value_length": 512,
        "attention.key_length_mla": 192,
        "attention.value_length_mla": 128,
        "attention.kv_lora_rank": 512,
        "rope.dimension_count": 64,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "ssm.conv_kernel": 4,
        "kda.head_dim": 128,
        "expert_count": 256,
        "expert_used_count": 8,
        "expert_feed_forward_length": 1024,
        "expert_shared_count": 1,
        "leading_dense_block_count": 1,
        "expert_weights_scale": 2.446,
        "expert_gating_func": 2,
    },
    build=_kimi_linear,
    metadata_types={"attention.head_count_kv": "INT32"},
    notes="moonshotai/Kimi-Linear-48B-A3B-Instruct config.json: hidden 2304, 27 layers, MLA on "
    "layers 4, 8, 12, 16, 20, 24, 27 (1-based; kv_lora 512, rope 64, nope 128, v 128, no q "
    "compression), KDA elsewhere (32 heads of 128, conv 4), first layer dense (9216), then "
    "256 experts of 1024 (8 used) + 1 shared, vocab 163840, untied.",
)

SHAPES = (
    QWEN35_08B,
    QWEN35_9B,
    QWEN35_35B_A3B,
    QWEN3_NEXT_80B_A3B,
    LFM2_12B,
    LFM2_8B_A1B,
    KIMI_LINEAR_48B,
)
