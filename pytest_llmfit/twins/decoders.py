"""2025-26 decoder twins with a plain KV cache: SmolLM3, Seed-OSS, ERNIE 4.5 MoE, GLM-4.5-Air.

Their memory rule is the dense one (one K and one V row per layer and cell); what the twins
check is everything around it: NoPE layers that still cache K (SmolLM3), q/k/v biases
(Seed-OSS), leading dense blocks and shared experts (ERNIE, GLM), and GLM-4.5's NextN/MTP
block, which llama.cpp does not load under llama-cpp-python (``load_mtp`` is false: the
tensors are TENSOR_SKIP, src/models/glm4-moe.cpp:32-40) and which holds no KV cache
(src/llama-model.cpp:2796-2804). Tables follow src/models/<arch>.cpp ``load_arch_tensors``.
Hyperparameters are those of each model's config.json as published on Hugging Face.
"""

from __future__ import annotations

from .parts import T, attention, embeddings, experts, f32, ffn, nextn, shape, shared_expert

# --- SmolLM3-3B: llama-like, every 4th layer without RoPE (no memory effect) ---------------


def _smollm3() -> T:
    e, v = 2048, 128256
    out = embeddings(e, v, tied=True)
    for i in range(36):
        out += attention(i, e, 16 * 128, 4 * 128, 4 * 128)
        out += ffn(i, e, 11008)
    return out


SMOLLM3_3B = shape(
    "smollm3-3b",
    "smollm3",
    "HuggingFaceTB SmolLM3 3B",
    128256,
    {
        "context_length": 65536,
        "embedding_length": 2048,
        "block_count": 36,
        "feed_forward_length": 11008,
        "attention.head_count": 16,
        "attention.head_count_kv": 4,
        "rope.freq_base": 5000000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "vocab_size": 128256,
    },
    build=_smollm3,
    notes="HuggingFaceTB/SmolLM3-3B config.json: hidden 2048, 36 layers, 16/4 heads (head 128), "
    "intermediate 11008, vocab 128256, max_position 65536, rope_theta 5e6, tied embeddings, "
    "no_rope_layer_interval 4 (llama.cpp hard-codes it; the NoPE layers still cache K). "
    "Published Q4_K_M ~1.9 GB.",
)


# --- Seed-OSS-36B: q/k/v biases, post-attention norm in place of ffn_norm -------------------


def _seed_oss() -> T:
    e, v = 5120, 155136
    out = embeddings(e, v, tied=False)
    for i in range(64):
        out += attention(i, e, 80 * 128, 8 * 128, 8 * 128, bias=True)
        out.append(f32(f"blk.{i}.post_attention_norm.weight", e))
        out += ffn(i, e, 27648, norm=None)
    return out


SEED_OSS_36B = shape(
    "seed-oss-36b",
    "seed_oss",
    "ByteDance Seed-OSS 36B Instruct",
    155136,
    {
        "context_length": 524288,
        "embedding_length": 5120,
        "block_count": 64,
        "feed_forward_length": 27648,
        "attention.head_count": 80,
        "attention.head_count_kv": 8,
        "attention.key_length": 128,
        "attention.value_length": 128,
        "rope.freq_base": 10000000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
    },
    build=_seed_oss,
    notes="ByteDance-Seed/Seed-OSS-36B-Instruct config.json: hidden 5120, 64 layers, 80/8 heads, "
    "head_dim 128, intermediate 27648, vocab 155136, max_position 524288, rope_theta 1e7, "
    "attention_bias (q/k/v), untied. Published Q4_K_M ~21.8 GB.",
)


# --- ERNIE-4.5-21B-A3B: 64 experts (6 used) + 2 shared, first layer dense -------------------


def _ernie45_moe() -> T:
    e, v = 2560, 103424
    out = embeddings(e, v, tied=True)
    for i in range(28):
        out += attention(i, e, 20 * 128, 4 * 128, 4 * 128)
        if i < 1:
            out += ffn(i, e, 12288)
        else:
            out.append(f32(f"blk.{i}.ffn_norm.weight", e))
            out += experts(i, e, 1536, 64, probs_bias=True)
            out += shared_expert(i, e, 3072)
    return out


ERNIE45_21B_A3B = shape(
    "ernie-4.5-21b-a3b",
    "ernie4_5-moe",
    "Baidu ERNIE 4.5 21B A3B",
    103424,
    {
        "context_length": 131072,
        "embedding_length": 2560,
        "block_count": 28,
        "feed_forward_length": 12288,
        "attention.head_count": 20,
        "attention.head_count_kv": 4,
        "rope.freq_base": 500000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 64,
        "expert_used_count": 6,
        "expert_feed_forward_length": 1536,
        "expert_shared_feed_forward_length": 3072,
        "interleave_moe_layer_step": 1,
        "leading_dense_block_count": 1,
    },
    build=_ernie45_moe,
    notes="baidu/ERNIE-4.5-21B-A3B-PT config.json: hidden 2560, 28 layers, 20/4 heads, "
    "intermediate 12288 (layer 0), moe_intermediate 1536, 64 experts, k 6, 2 shared experts "
    "(3072 wide), moe_layer_start_index 1, vocab 103424, max_position 131072, rope_theta "
    "5e5, tied embeddings. Published Q4_K_M ~13.3 GB.",
)


# --- GLM-4.5-Air: 128 experts (8 used) + 1 shared, 1 dense layer, 1 NextN layer --------------


def _glm45_air() -> T:
    e, v, n_layer = 4096, 151552, 46
    out = embeddings(e, v, tied=False)
    for i in range(n_layer + 1):
        out += attention(i, e, 96 * 128, 8 * 128, 8 * 128, bias=True)
        out.append(f32(f"blk.{i}.post_attention_norm.weight", e))
        if i < 1:
            out += ffn(i, e, 10944, norm=None)
        else:
            out += experts(i, e, 1408, 128, probs_bias=True)
            out += shared_expert(i, e, 1408)
        if i >= n_layer:
            out += nextn(i, e)
    return out


GLM45_AIR = shape(
    "glm-4.5-air",
    "glm4moe",
    "Z.ai GLM-4.5-Air",
    151552,
    {
        "context_length": 131072,
        "embedding_length": 4096,
        "block_count": 47,
        "nextn_predict_layers": 1,
        "feed_forward_length": 10944,
        "attention.head_count": 96,
        "attention.head_count_kv": 8,
        "attention.key_length": 128,
        "attention.value_length": 128,
        "rope.dimension_count": 64,
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 128,
        "expert_used_count": 8,
        "expert_shared_count": 1,
        "expert_feed_forward_length": 1408,
        "leading_dense_block_count": 1,
        "expert_weights_scale": 1.0,
        "expert_weights_norm": True,
        "expert_gating_func": 2,
    },
    build=_glm45_air,
    notes="zai-org/GLM-4.5-Air config.json: hidden 4096, 46 layers + 1 NextN layer, 96/8 heads "
    "(head 128, attention bias, partial rotary 0.5), intermediate 10944 (first_k_dense_replace "
    "1), moe_intermediate 1408, 128 routed experts, 8 per token, 1 shared, sigmoid routing "
    "with a correction bias, vocab 151552, max_position 131072. Published Q4_K_M ~72.9 GB "
    "(with the NextN block, which llama.cpp skips).",
)

SHAPES = (SMOLLM3_3B, SEED_OSS_36B, ERNIE45_21B_A3B, GLM45_AIR)
