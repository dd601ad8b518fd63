"""Sliding-window twins: Gemma 3n and Gemma 4 (shared KV layers, per-layer embeddings),
Command R7B, OLMo 3, EXAONE 4.0 32B and Llama 4 Scout (chunked attention).

What each exercises in llama.cpp's memory rules (engine/arch/swa.py):

- gemma3n: SWA pattern array, layers >= 20 reuse the KV of layers 18/19
  (``n_layer_kv_from_start = 20``, src/models/gemma3n.cpp:7); per_layer_token_embd in host
  memory; altup/laurel tensors.
- gemma4: per-layer KV heads and head sizes (512 full / 256 sliding), KV sharing from
  ``attention.shared_kv_layers``, per-layer embeddings, MoE beside a dense FFN.
- cohere2, olmo2 (OLMo 3), exaone4 (64 layers only): pattern 4, three sliding and one full.
- llama4: chunked attention with a forced 8192 window (src/models/llama4.cpp:8-24).
"""

from __future__ import annotations

from .parts import T, attention, embeddings, experts, f32, ffn, shape, shared_expert, w

# --- Gemma 3n E2B -------------------------------------------------------------------------

_G3N = dict(e=2048, n_layer=30, v=262400, ff=8192, heads=8, kv=2, hd=256)


def _gemma3n_e2b() -> T:
    e, n, v, ff = _G3N["e"], _G3N["n_layer"], _G3N["v"], _G3N["ff"]
    hd = _G3N["hd"]
    out = embeddings(e, v, tied=True)
    out += [
        w("altup_proj.weight", e, e, 3),
        w("altup_unembd_proj.weight", e, e, 3),
        w("per_layer_token_embd.weight", 256 * n, v),
        w("per_layer_model_proj.weight", e, 256 * n),
        f32("per_layer_proj_norm.weight", 256),
    ]
    for i in range(n):
        p = f"blk.{i}."
        out += attention(i, e, _G3N["heads"] * hd, _G3N["kv"] * hd, _G3N["kv"] * hd, qk_norm=hd)
        out.append(f32(p + "post_attention_norm.weight", e))
        out += ffn(i, e, ff)
        out += [
            f32(p + "post_ffw_norm.weight", e),
            w(p + "inp_gate.weight", e, 256),
            w(p + "proj.weight", 256, e),
            f32(p + "post_norm.weight", e),
            f32(p + "altup_correct_coef.weight", 4, 4),
            f32(p + "altup_correct_scale.weight", e),
            f32(p + "altup_predict_coef.weight", 4, 16),
            w(p + "altup_router.weight", e, 4),
            f32(p + "altup_router_norm.weight", e),
            w(p + "laurel_l.weight", e, 64),
            w(p + "laurel_r.weight", 64, e),
            f32(p + "laurel_post_norm.weight", e),
        ]
    return out


GEMMA3N_E2B = shape(
    "gemma-3n-e2b",
    "gemma3n",
    "Gemma 3n E2B it (text)",
    262400,
    {
        "context_length": 32768,
        "embedding_length": 2048,
        "block_count": 30,
        "feed_forward_length": 8192,
        "attention.head_count": 8,
        "attention.head_count_kv": 2,
        "attention.key_length": 256,
        "attention.value_length": 256,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "rope.freq_base": 1000000.0,
        "rope.freq_base_swa": 10000.0,
        "attention.sliding_window": 512,
        "attention.sliding_window_pattern": [(i + 1) % 5 != 0 for i in range(30)],
        "attention.shared_kv_layers": 10,
        "embedding_length_per_layer_input": 256,
        "altup.active_idx": 0,
        "altup.num_inputs": 4,
        "final_logit_softcapping": 30.0,
    },
    build=_gemma3n_e2b,
    notes="google/gemma-3n-E2B-it config.json text_config: hidden 2048, 30 layers, 8/2 heads, "
    "head_dim 256, intermediate 8192, vocab 262400 (262144 + vision/audio slots, padded by "
    "the converter), sliding_window 512 on 4 of every 5 layers, num_kv_shared_layers 10 "
    "(llama.cpp hard-codes the first 20 layers as KV owners), per-layer inputs 256, altup 4, "
    "laurel rank 64, tied embeddings. Published Q4_K_M ~3.0 GB.",
)


# --- Gemma 4: 26B-A4B (the vocab file's hyperparameters) and E2B ---------------------------


def _gemma4(
    *,
    e: int,
    n: int,
    heads: int,
    kv_swa: int,
    kv_full: int,
    hd_swa: int,
    hd_full: int,
    ff: list[int],
    swa: list[bool],
    ple: int,
    shared: int,
    moe: tuple[int, int] | None,
    k_eq_v: bool,
) -> T:
    v = 262144
    out = embeddings(e, v, tied=True)
    if ple:
        out += [
            w("per_layer_token_embd.weight", ple * n, v),
            w("per_layer_model_proj.weight", e, ple * n),
            f32("per_layer_proj_norm.weight", ple),
        ]
    kv_start = n - shared
    rope_done = False
    for i in range(n):
        p = f"blk.{i}."
        hd = hd_swa if swa[i] else hd_full
        kv = kv_swa if swa[i] else kv_full
        has_kv = i < kv_start
        out.append(f32(p + "attn_norm.weight", e))
        out.append(w(p + "attn_q.weight", e, heads * hd))
        if has_kv:
            out.append(w(p + "attn_k.weight", e, kv * hd))
            if swa[i] or not k_eq_v:
                out.append(w(p + "attn_v.weight", e, kv * hd))
            out.append(f32(p + "attn_k_norm.weight", hd))
        out += [
            w(p + "attn_output.weight", heads * hd, e),
            f32(p + "attn_q_norm.weight", hd),
            f32(p + "post_attention_norm.weight", e),
            f32(p + "layer_output_scale.weight", 1),
        ]
        if not swa[i] and not rope_done:
            out.append(f32("rope_freqs.weight", hd // 2))
            rope_done = True
        out += ffn(i, e, ff[i])
        out.append(f32(p + "post_ffw_norm.weight", e))
        if moe:
            n_exp, ff_exp = moe
            out += experts(i, e, ff_exp, n_exp)
            out += [
                f32(p + "ffn_gate_inp.scale", e),
                f32(p + "ffn_down_exps.scale", n_exp),
                f32(p + "pre_ffw_norm_2.weight", e),
                f32(p + "post_ffw_norm_1.weight", e),
                f32(p + "post_ffw_norm_2.weight", e),
            ]
        if ple:
            out += [
                w(p + "inp_gate.weight", e, ple),
                w(p + "proj.weight", ple, e),
                f32(p + "post_norm.weight", e),
            ]
    return out


_G4_26B_SWA = [(i + 1) % 6 != 0 for i in range(30)]
_G4_E2B_SWA = [(i + 1) % 5 != 0 for i in range(35)]
_G4_E2B_FF = [6144 if i < 15 else 12288 for i in range(35)]

GEMMA4_26B_A4B = shape(
    "gemma-4-26b-a4b",
    "gemma4",
    "Gemma 4 26B A4B it (text)",
    262144,
    {
        "context_length": 262144,
        "embedding_length": 2816,
        "block_count": 30,
        "feed_forward_length": 2112,
        "attention.head_count": 16,
        "attention.head_count_kv": [8 if s else 2 for s in _G4_26B_SWA],
        "rope.freq_base": 1000000.0,
        "rope.freq_base_swa": 10000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": 128,
        "expert_used_count": 8,
        "attention.key_length": 512,
        "attention.value_length": 512,
        "final_logit_softcapping": 30.0,
        "attention.sliding_window": 1024,
        "attention.shared_kv_layers": 0,
        "embedding_length_per_layer_input": 0,
        "attention.sliding_window_pattern": _G4_26B_SWA,
        "attention.key_length_swa": 256,
        "attention.value_length_swa": 256,
        "expert_feed_forward_length": 704,
        "rope.dimension_count": 512,
        "rope.dimension_count_swa": 256,
    },
    build=lambda: _gemma4(
        e=2816,
        n=30,
        heads=16,
        kv_swa=8,
        kv_full=2,
        hd_swa=256,
        hd_full=512,
        ff=[2112] * 30,
        swa=_G4_26B_SWA,
        ple=0,
        shared=0,
        moe=(128, 704),
        k_eq_v=True,
    ),
    notes="Hyperparameters copied from llama.cpp's own models/ggml-vocab-gemma-4.gguf (Gemma 4 "
    "26B-A4B): hidden 2816, 30 layers, 16 heads, 8 KV heads of 256 on sliding layers and 2 "
    "of 512 on the full layers (every 6th), sliding_window 1024, dense FFN 2112 beside 128 "
    "experts of 704 (8 used), vocab 262144, tied. Assumed from the HF config: "
    "attention_k_eq_v (no attn_v on full layers), per-layer output scale.",
)

GEMMA4_E2B = shape(
    "gemma-4-e2b",
    "gemma4",
    "Gemma 4 E2B it (text)",
    262144,
    {
        "context_length": 131072,
        "embedding_length": 1536,
        "block_count": 35,
        "feed_forward_length": _G4_E2B_FF,
        "attention.head_count": 8,
        "attention.head_count_kv": 1,
        "rope.freq_base": 1000000.0,
        "rope.freq_base_swa": 10000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "attention.key_length": 512,
        "attention.value_length": 512,
        "final_logit_softcapping": 30.0,
        "attention.sliding_window": 512,
        "attention.shared_kv_layers": 20,
        "embedding_length_per_layer_input": 256,
        "attention.sliding_window_pattern": _G4_E2B_SWA,
        "attention.key_length_swa": 256,
        "attention.value_length_swa": 256,
        "rope.dimension_count": 512,
        "rope.dimension_count_swa": 256,
    },
    build=lambda: _gemma4(
        e=1536,
        n=35,
        heads=8,
        kv_swa=1,
        kv_full=1,
        hd_swa=256,
        hd_full=512,
        ff=_G4_E2B_FF,
        swa=_G4_E2B_SWA,
        ple=256,
        shared=20,
        moe=None,
        k_eq_v=False,
    ),
    notes="google/gemma-4-E2B-it text config as recalled (not checked against a published "
    "file): hidden 1536, 35 layers (every 5th full, as llama.cpp's test-llama-archs says of "
    "E2B), 8 heads, 1 KV head, head_dim 256 sliding / 512 full, intermediate 6144 doubled "
    "on the 20 KV-shared layers (use_double_wide_mlp), per-layer inputs 256, "
    "sliding_window 512, vocab 262144, tied. Exercises KV sharing (only layers 0-14 own a "
    "cache) and the per-layer embeddings.",
)


# --- Command R7B: cohere2, pattern 4, always tied ------------------------------------------


def _command_r7b() -> T:
    e, v = 4096, 256000
    out = [w("token_embd.weight", e, v), f32("output_norm.weight", e)]
    for i in range(32):
        out += attention(i, e, 4096, 1024, 1024)
        out += ffn(i, e, 14336, norm=None)
    return out


COMMAND_R7B = shape(
    "command-r7b",
    "cohere2",
    "Cohere Command R7B 12-2024",
    256000,
    {
        "context_length": 131072,
        "embedding_length": 4096,
        "block_count": 32,
        "feed_forward_length": 14336,
        "attention.head_count": 32,
        "attention.head_count_kv": 8,
        "rope.freq_base": 50000.0,
        "attention.layer_norm_epsilon": 1e-5,
        "logit_scale": 0.25,
        "attention.sliding_window": 4096,
        "rope.dimension_count": 128,
        "vocab_size": 256000,
    },
    build=_command_r7b,
    notes="CohereForAI/c4ai-command-r7b-12-2024 config.json: hidden 4096, 32 layers, 32/8 heads, "
    "intermediate 14336, vocab 256000, sliding_window 4096 on 3 of every 4 layers, "
    "logit_scale 0.25, rope_theta 50000, parallel block, tied. Published Q4_K_M ~5.1 GB.",
)


# --- OLMo 3 7B: olmo2 arch with a sliding window on 3 of every 4 layers --------------------


def _olmo3_7b() -> T:
    e, v = 4096, 100278
    out = embeddings(e, v, tied=False)
    for i in range(32):
        p = f"blk.{i}."
        out += attention(i, e, e, e, e, norm=False)
        out += [f32(p + "attn_q_norm.weight", e), f32(p + "attn_k_norm.weight", e)]
        out.append(f32(p + "post_attention_norm.weight", e))
        out += ffn(i, e, 11008, norm=None)
        out.append(f32(p + "post_ffw_norm.weight", e))
    return out


OLMO3_7B = shape(
    "olmo-3-7b",
    "olmo2",
    "AllenAI OLMo 3 7B",
    100278,
    {
        "context_length": 65536,
        "embedding_length": 4096,
        "block_count": 32,
        "feed_forward_length": 11008,
        "attention.head_count": 32,
        "attention.head_count_kv": 32,
        "rope.freq_base": 500000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "attention.sliding_window": 4096,
        "attention.sliding_window_pattern": [(i + 1) % 4 != 0 for i in range(32)],
    },
    build=_olmo3_7b,
    notes="allenai/Olmo-3-1025-7B config.json: hidden 4096, 32 layers, 32 heads (no GQA), "
    "intermediate 11008, vocab 100278, sliding_window 4096 on 3 of every 4 layers "
    "(layer_types), max_position 65536, rope_theta 5e5, q/k norms over the whole "
    "projection, untied. Published Q4_K_M ~4.5 GB.",
)


# --- EXAONE 4.0 32B: SWA only because it has 64 layers --------------------------------------


def _exaone4_32b() -> T:
    e, v = 5120, 102400
    out = embeddings(e, v, tied=False)
    for i in range(64):
        p = f"blk.{i}."
        out += attention(i, e, 40 * 128, 8 * 128, 8 * 128, norm=False, qk_norm=128)
        out.append(f32(p + "post_attention_norm.weight", e))
        out += ffn(i, e, 27392, norm=None)
        out.append(f32(p + "post_ffw_norm.weight", e))
    return out


EXAONE4_32B = shape(
    "exaone-4.0-32b",
    "exaone4",
    "LG EXAONE 4.0 32B",
    102400,
    {
        "context_length": 131072,
        "embedding_length": 5120,
        "block_count": 64,
        "feed_forward_length": 27392,
        "attention.head_count": 40,
        "attention.head_count_kv": 8,
        "attention.key_length": 128,
        "attention.value_length": 128,
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "attention.sliding_window": 4096,
    },
    build=_exaone4_32b,
    notes="LGAI-EXAONE/EXAONE-4.0-32B config.json: hidden 5120, 64 layers, 40/8 heads, head 128, "
    "intermediate 27392, vocab 102400, sliding_window 4096 with pattern LLLG, max_position "
    "131072, untied. llama.cpp turns SWA on for exaone4 only when it has 64 layers.",
)


# --- Llama 4 Scout: chunked attention (8192) on 3 of every 4 layers, MoE every layer -------


def _llama4_scout() -> T:
    e, v = 5120, 202048
    out = embeddings(e, v, tied=False)
    out.append(f32("rope_freqs.weight", 64))
    for i in range(48):
        out += attention(i, e, 40 * 128, 8 * 128, 8 * 128)
        out.append(f32(f"blk.{i}.ffn_norm.weight", e))
        out += experts(i, e, 8192, 16)
        out += shared_expert(i, e, 8192)
    return out


LLAMA4_SCOUT = shape(
    "llama-4-scout",
    "llama4",
    "Meta Llama 4 Scout 17B-16E Instruct",
    202048,
    {
        "context_length": 10485760,
        "embedding_length": 5120,
        "block_count": 48,
        "feed_forward_length": 16384,
        "attention.head_count": 40,
        "attention.head_count_kv": 8,
        "rope.dimension_count": 128,
        "rope.freq_base": 500000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 16,
        "expert_used_count": 1,
        "expert_feed_forward_length": 8192,
        "interleave_moe_layer_step": 1,
        "vocab_size": 202048,
    },
    build=_llama4_scout,
    notes="meta-llama/Llama-4-Scout-17B-16E-Instruct config.json text_config: hidden 5120, 48 "
    "layers, 40/8 heads, 16 experts of 8192 (1 used) plus a shared expert in every layer, "
    "intermediate_size_mlp 16384, vocab 202048, attention_chunk_size 8192, rope_theta 5e5 "
    "with llama3 scaling (rope_freqs[64]), untied. No sliding_window key: llama.cpp uses "
    "chunked attention with n_swa 8192 on 3 of every 4 layers. Published Q4_K_M ~65 GB.",
)

SHAPES = (
    GEMMA3N_E2B,
    GEMMA4_26B_A4B,
    GEMMA4_E2B,
    COMMAND_R7B,
    OLMO3_7B,
    EXAONE4_32B,
    LLAMA4_SCOUT,
)
