"""Encoder / embedding twins: BERT (bge), nomic-bert (v1.5 and v2 MoE), Jina v2 and v3,
ModernBERT and EmbeddingGemma.

llama.cpp creates no memory at all for these (``create_memory`` returns nullptr,
src/llama-model.cpp:2358-2374): no KV cache, no recurrent state, whatever the context
size. They still reserve an ``n_vocab``-wide logits buffer and a compute buffer for one
ubatch of bidirectional attention. Tables follow src/models/<arch>.cpp; token_embd_norm
(bert family) is created with layer 0's buffer, not the input layer's.
"""

from __future__ import annotations

from .parts import T, embeddings, f32, ffn, shape, w
from .spec import MetaValue

# --- the BERT family (bert, nomic-bert, nomic-bert-moe, jina-bert-v2, jina-bert-v3) --------


def _bert_like(
    *,
    e: int,
    n_layer: int,
    v: int,
    ff: int,
    n_types: int,
    positions: int = 0,
    fused: bool = False,
    bias: bool = True,
    gate: bool = False,
    up_width: int = 0,
    moe: tuple[int, int] | None = None,
) -> T:
    out = [w("token_embd.weight", e, v)]
    if n_types:
        out.append(w("token_types.weight", e, n_types))
    if positions:
        out.append(w("position_embd.weight", e, positions))
    out += [f32("token_embd_norm.weight", e), f32("token_embd_norm.bias", e)]
    for i in range(n_layer):
        p = f"blk.{i}."
        if fused:
            out.append(w(p + "attn_qkv.weight", e, 3 * e))
            if bias:
                out.append(f32(p + "attn_qkv.bias", 3 * e))
        else:
            for name in ("attn_q", "attn_k", "attn_v"):
                out.append(w(p + name + ".weight", e, e))
                if bias:
                    out.append(f32(p + name + ".bias", e))
        out.append(w(p + "attn_output.weight", e, e))
        if bias:
            out.append(f32(p + "attn_output.bias", e))
        out += [f32(p + "attn_output_norm.weight", e), f32(p + "attn_output_norm.bias", e)]
        if moe and i % moe[0] == 1:
            n_exp = moe[1]
            out += [
                f32(p + "ffn_gate_inp.weight", e, n_exp),
                w(p + "ffn_up_exps.weight", e, ff, n_exp),
                w(p + "ffn_down_exps.weight", ff, e, n_exp),
            ]
        else:
            up = up_width or ff
            if gate:
                out.append(w(p + "ffn_gate.weight", e, ff))
            out.append(w(p + "ffn_up.weight", e, up))
            out.append(w(p + "ffn_down.weight", ff, e))
            if bias:
                out += [f32(p + "ffn_up.bias", up), f32(p + "ffn_down.bias", e)]
        out += [f32(p + "layer_output_norm.weight", e), f32(p + "layer_output_norm.bias", e)]
    return out


def _bert_meta(
    e: int, n_layer: int, heads: int, ff: int, n_ctx: int, n_types: int, pooling: int
) -> dict[str, MetaValue]:
    return {
        "context_length": n_ctx,
        "embedding_length": e,
        "block_count": n_layer,
        "feed_forward_length": ff,
        "attention.head_count": heads,
        "attention.layer_norm_epsilon": 1e-12,
        "attention.causal": False,
        "pooling_type": pooling,
        "tokenizer.ggml.token_type_count": n_types,
    }


BGE_SMALL = shape(
    "bge-small-en-v1.5",
    "bert",
    "BAAI bge-small-en v1.5",
    30522,
    _bert_meta(384, 12, 12, 1536, 512, 2, 2),
    build=lambda: _bert_like(e=384, n_layer=12, v=30522, ff=1536, n_types=2, positions=512),
    default_quant="f16",
    notes="Hyperparameters of llama.cpp's models/ggml-vocab-bert-bge.gguf (bge-small): hidden "
    "384, 12 layers, 12 heads, intermediate 1536, vocab 30522, 512 positions, 2 token "
    "types, biases everywhere, CLS pooling. Published F16 ~67 MB.",
)

NOMIC_EMBED_V15 = shape(
    "nomic-embed-text-v1.5",
    "nomic-bert",
    "Nomic Embed Text v1.5",
    30528,
    {
        **_bert_meta(768, 12, 12, 3072, 2048, 2, 1),
        "attention.layer_norm_epsilon": 1e-12,
        "rope.freq_base": 1000.0,
    },
    build=lambda: _bert_like(
        e=768, n_layer=12, v=30528, ff=3072, n_types=2, fused=True, bias=False, gate=True
    ),
    default_quant="f16",
    notes="nomic-ai/nomic-embed-text-v1.5 config.json: hidden 768, 12 layers, 12 heads, SwiGLU "
    "3072, vocab 30528, 2048 positions (rotary, base 1000), fused qkv without biases, mean "
    "pooling. Published F16 ~274 MB.",
)

NOMIC_EMBED_V2_MOE = shape(
    "nomic-embed-text-v2-moe",
    "nomic-bert-moe",
    "Nomic Embed Text v2 MoE",
    250048,
    {
        **_bert_meta(768, 12, 12, 3072, 512, 1, 1),
        "attention.layer_norm_epsilon": 1e-5,
        "rope.freq_base": 10000.0,
        "moe_every_n_layers": 2,
        "expert_count": 8,
        "expert_used_count": 2,
    },
    build=lambda: _bert_like(
        e=768, n_layer=12, v=250048, ff=3072, n_types=1, fused=True, moe=(2, 8)
    ),
    default_quant="f16",
    notes="Hyperparameters of llama.cpp's models/ggml-vocab-nomic-bert-moe.gguf: hidden 768, 12 "
    "layers, 12 heads, intermediate 3072, every second layer (odd ones) 8 GELU experts (2 "
    "used), vocab 250048 (XLM-R), 512 positions, 1 token type, mean pooling. Published F16 "
    "~0.9 GB.",
)

JINA_V2_SMALL = shape(
    "jina-embeddings-v2-small-en",
    "jina-bert-v2",
    "Jina Embeddings v2 small (en)",
    30528,
    _bert_meta(512, 4, 8, 2048, 8192, 2, 1),
    build=lambda: [
        t
        for t in _bert_like(e=512, n_layer=4, v=30528, ff=2048, n_types=2, up_width=4096)
        if not t.name.endswith("ffn_up.bias")
    ],
    default_quant="f16",
    notes="jinaai/jina-embeddings-v2-small-en config.json: hidden 512, 4 layers, 8 heads, "
    "GEGLU 2048 (gate and up packed in one 4096-wide ffn_up), vocab 30528, ALiBi (8192 "
    "context), 2 token types, mean pooling. Published F16 ~65 MB.",
)

JINA_V3 = shape(
    "jina-embeddings-v3",
    "jina-bert-v3",
    "Jina Embeddings v3",
    250002,
    {**_bert_meta(1024, 24, 16, 4096, 8194, 1, 1), "attention.layer_norm_epsilon": 1e-5},
    build=lambda: _bert_like(e=1024, n_layer=24, v=250002, ff=4096, n_types=1, fused=True),
    default_quant="f16",
    notes="jinaai/jina-embeddings-v3 config.json (XLM-RoBERTa large with rotary): hidden 1024, "
    "24 layers, 16 heads, intermediate 4096, vocab 250002, 8194 positions, 1 token type, "
    "fused qkv with biases, mean pooling (LoRA adapters not included). Published F16 "
    "~1.1 GB.",
)


# --- ModernBERT base: fused qkv, GeGLU, local attention on 2 of every 3 layers --------------


def _modernbert_base() -> T:
    e, v, ff = 768, 50368, 1152
    out = [w("token_embd.weight", e, v), f32("token_embd_norm.weight", e)]
    out.append(f32("output_norm.weight", e))
    for i in range(22):
        p = f"blk.{i}."
        if i:
            out.append(f32(p + "attn_norm.weight", e))
        out += [
            w(p + "attn_qkv.weight", e, 3 * e),
            w(p + "attn_output.weight", e, e),
            w(p + "ffn_up.weight", e, 2 * ff),
            w(p + "ffn_down.weight", ff, e),
            f32(p + "ffn_norm.weight", e),
        ]
    return out


MODERNBERT_BASE = shape(
    "modernbert-base",
    "modern-bert",
    "Answer.AI ModernBERT base",
    50368,
    {
        "context_length": 8192,
        "embedding_length": 768,
        "block_count": 22,
        "feed_forward_length": 1152,
        "attention.head_count": 12,
        "attention.layer_norm_epsilon": 1e-5,
        "attention.causal": False,
        "attention.sliding_window": 128,
        "rope.freq_base": 160000.0,
        "rope.freq_base_swa": 10000.0,
        "pooling_type": 1,
    },
    build=_modernbert_base,
    default_quant="f16",
    notes="answerdotai/ModernBERT-base config.json: hidden 768, 22 layers, 12 heads, GeGLU "
    "1152, vocab 50368, 8192 positions, global attention every third layer and a 128-token "
    "local window elsewhere, no biases. Published F16 ~300 MB.",
)


# --- EmbeddingGemma 300M: gemma3 layers, bidirectional, dense projections after pooling -----


def _embeddinggemma() -> T:
    e, v, hd = 768, 262144, 256
    out = embeddings(e, v, tied=True)
    out += [w("dense_2.weight", e, 3072), w("dense_3.weight", 3072, e)]
    for i in range(24):
        p = f"blk.{i}."
        out += [
            f32(p + "attn_norm.weight", e),
            w(p + "attn_q.weight", e, 3 * hd),
            w(p + "attn_k.weight", e, hd),
            w(p + "attn_v.weight", e, hd),
            w(p + "attn_output.weight", 3 * hd, e),
            f32(p + "post_attention_norm.weight", e),
            f32(p + "attn_k_norm.weight", hd),
            f32(p + "attn_q_norm.weight", hd),
        ]
        out += ffn(i, e, 1152)
        out.append(f32(p + "post_ffw_norm.weight", e))
    return out


EMBEDDINGGEMMA_300M = shape(
    "embeddinggemma-300m",
    "gemma-embedding",
    "Google EmbeddingGemma 300M",
    262144,
    {
        "context_length": 2048,
        "embedding_length": 768,
        "block_count": 24,
        "feed_forward_length": 1152,
        "attention.head_count": 3,
        "attention.head_count_kv": 1,
        "attention.key_length": 256,
        "attention.value_length": 256,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "attention.sliding_window": 512,
        "rope.freq_base": 1000000.0,
        "rope.freq_base_swa": 10000.0,
        "pooling_type": 1,
        "dense_2_feat_in": 768,
        "dense_2_feat_out": 3072,
        "dense_3_feat_in": 3072,
        "dense_3_feat_out": 768,
    },
    build=_embeddinggemma,
    default_quant="q8_0",
    notes="google/embeddinggemma-300m config.json: hidden 768, 24 layers, 3 heads, 1 KV head, "
    "head_dim 256, intermediate 1152, vocab 262144, 2048 positions, sliding window 512 on 5 "
    "of every 6 layers (bidirectional), dense 768->3072->768 after mean pooling, tied. "
    "Published Q8_0 ~0.33 GB.",
)

SHAPES = (
    BGE_SMALL,
    NOMIC_EMBED_V15,
    NOMIC_EMBED_V2_MOE,
    JINA_V2_SMALL,
    JINA_V3,
    MODERNBERT_BASE,
    EMBEDDINGGEMMA_300M,
)
