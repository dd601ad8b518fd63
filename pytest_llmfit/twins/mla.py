"""MLA twins: DeepSeek-V3.2 (MLA plus the DSA lightning-indexer key cache) and Mistral 4.

MLA caches one compressed latent row per token and layer (``kv_lora_rank + n_rot``
elements, K only: no V tensor is allocated, src/llama-kv-cache.cpp:230-234). DeepSeek-V3.2
adds a second, K-only cache of ``indexer.key_length`` elements per token on every trunk
layer (llama_kv_cache_dsa, src/llama-model.cpp:2397-2452). Its NextN/MTP block is skipped
(TENSOR_SKIP, src/models/deepseek32.cpp:49-57) except the block's ``exp_probs_b`` bias,
which is created without the MTP flags (deepseek32.cpp:121) and so is loaded.
"""

from __future__ import annotations

from .parts import T, embeddings, experts, f32, ffn, nextn, shape, shared_expert, w
from .spec import MetaValue


def _mla_block(
    i: int,
    e: int,
    *,
    n_head: int,
    q_lora: int,
    kv_lora: int,
    nope: int,
    rope: int,
    v_head: int,
) -> T:
    p = f"blk.{i}."
    out = [f32(p + "attn_norm.weight", e), f32(p + "attn_kv_a_norm.weight", kv_lora)]
    if q_lora:
        out += [
            f32(p + "attn_q_a_norm.weight", q_lora),
            w(p + "attn_q_a.weight", e, q_lora),
            w(p + "attn_q_b.weight", q_lora, n_head * (nope + rope)),
        ]
    else:
        out.append(w(p + "attn_q.weight", e, n_head * (nope + rope)))
    out += [
        w(p + "attn_kv_a_mqa.weight", e, kv_lora + rope),
        w(p + "attn_k_b.weight", nope, kv_lora, n_head),
        w(p + "attn_v_b.weight", kv_lora, v_head, n_head),
        w(p + "attn_output.weight", n_head * v_head, e),
        f32(p + "ffn_norm.weight", e),
    ]
    return out


def _mla_meta(
    *,
    e: int,
    n_layer: int,
    n_head: int,
    q_lora: int,
    kv_lora: int,
    nope: int,
    rope: int,
    v_head: int,
    ff: int,
    ff_exp: int,
    n_exp: int,
    n_used: int,
    n_shared: int,
    n_dense: int,
    n_ctx: int,
    vocab: int,
) -> dict[str, MetaValue]:
    return {
        "vocab_size": vocab,
        "context_length": n_ctx,
        "embedding_length": e,
        "block_count": n_layer,
        "feed_forward_length": ff,
        "attention.head_count": n_head,
        "attention.head_count_kv": 1,
        "attention.key_length": kv_lora + rope,
        "attention.value_length": kv_lora,
        "attention.key_length_mla": nope + rope,
        "attention.value_length_mla": v_head,
        "attention.q_lora_rank": q_lora,
        "attention.kv_lora_rank": kv_lora,
        "rope.dimension_count": rope,
        "rope.freq_base": 10000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": n_exp,
        "expert_used_count": n_used,
        "expert_shared_count": n_shared,
        "expert_feed_forward_length": ff_exp,
        "leading_dense_block_count": n_dense,
        "expert_weights_scale": 2.5,
        "expert_weights_norm": True,
        "expert_gating_func": 2,
    }


# --- DeepSeek-V3.2 (671B): 61 layers + 1 MTP, DSA indexer ----------------------------------

_DSV32 = dict(
    e=7168, n_head=128, q_lora=1536, kv_lora=512, nope=128, rope=64, v_head=128, vocab=129280
)


def _deepseek_v32() -> T:
    e, v, n_layer = 7168, 129280, 61
    out = embeddings(e, v, tied=False)
    for i in range(n_layer + 1):
        p = f"blk.{i}."
        out += _mla_block(i, e, n_head=128, q_lora=1536, kv_lora=512, nope=128, rope=64, v_head=128)
        out += [
            f32(p + "indexer.k_norm.weight", 128),
            f32(p + "indexer.k_norm.bias", 128),
            w(p + "indexer.proj.weight", e, 64),
            w(p + "indexer.attn_k.weight", e, 128),
            w(p + "indexer.attn_q_b.weight", 1536, 64 * 128),
        ]
        if i < 3:
            out += ffn(i, e, 18432, norm=None)
        else:
            out += experts(i, e, 2048, 256, probs_bias=True)
            out += shared_expert(i, e, 2048)
        if i >= n_layer:
            out += nextn(i, e)
    return out


DEEPSEEK_V32 = shape(
    "deepseek-v3.2",
    "deepseek32",
    "DeepSeek-V3.2",
    129280,
    {
        **_mla_meta(
            e=7168,
            n_layer=62,
            n_head=128,
            q_lora=1536,
            kv_lora=512,
            nope=128,
            rope=64,
            v_head=128,
            ff=18432,
            ff_exp=2048,
            n_exp=256,
            n_used=8,
            n_shared=1,
            n_dense=3,
            n_ctx=163840,
            vocab=129280,
        ),
        "nextn_predict_layers": 1,
        "expert_group_count": 8,
        "expert_group_used_count": 4,
        "attention.indexer.head_count": 64,
        "attention.indexer.key_length": 128,
        "attention.indexer.top_k": 2048,
        "rope.scaling.type": "yarn",
        "rope.scaling.factor": 40.0,
        "rope.scaling.original_context_length": 4096,
        "rope.scaling.yarn_log_multiplier": 0.1,
    },
    build=_deepseek_v32,
    notes="deepseek-ai/DeepSeek-V3.2 config.json: hidden 7168, 61 layers + 1 MTP layer, 128 "
    "heads, q_lora 1536, kv_lora 512, qk_nope 128, qk_rope 64, v_head 128, first 3 layers "
    "dense (18432), then 256 experts of 2048 (8 used, 8 groups / 4) + 1 shared, indexer 64 "
    "heads of 128 (top-k 2048), vocab 129280, max_position 163840 (yarn 40 over 4096). "
    "Published Q4_K_M ~405 GB.",
)


# --- Mistral 4 (mistral4 = the DeepSeek-V2 class): MLA, MoE, no MTP ---------------------------


def _mistral4() -> T:
    e, v = 4096, 131072
    out = embeddings(e, v, tied=False)
    for i in range(36):
        out += _mla_block(i, e, n_head=32, q_lora=1024, kv_lora=512, nope=128, rope=64, v_head=128)
        out += experts(i, e, 2048, 128)
        out += shared_expert(i, e, 2048)
    return out


MISTRAL4 = shape(
    "mistral-small-4",
    "mistral4",
    "Mistral Small 4 (MLA MoE; shape approximate)",
    131072,
    {
        **_mla_meta(
            e=4096,
            n_layer=36,
            n_head=32,
            q_lora=1024,
            kv_lora=512,
            nope=128,
            rope=64,
            v_head=128,
            ff=12288,
            ff_exp=2048,
            n_exp=128,
            n_used=4,
            n_shared=1,
            n_dense=0,
            n_ctx=262144,
            vocab=131072,
        ),
        "expert_weights_scale": 1.0,
        "expert_gating_func": 1,
    },
    build=_mistral4,
    notes="An MLA mixture-of-experts shape on the mistral4 architecture (llama.cpp's "
    "DeepSeek-V2 class, conversion/mistral3.py Mistral4Model): hidden 4096, 36 layers, 32 "
    "heads, q_lora 1024, kv_lora 512, rope 64, nope 128, v 128, 128 experts of 2048 (4 used) "
    "+ 1 shared, vocab 131072. The published Mistral Small 4 config was not available "
    "here: the hyperparameters are approximate; the memory rule (K-only latent cache) is "
    "what the recorded case checks.",
)

SHAPES = (DEEPSEEK_V32, MISTRAL4)
