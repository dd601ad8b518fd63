"""Mixture-of-experts shape twins: Mixtral, Qwen MoE, DeepSeek-V2 (MLA) and gpt-oss.

Each shape carries the hyperparameters of the published ``config.json`` turned into GGUF
metadata the way the vendored ``convert_hf_to_gguf.py`` (``conversion/*.py``) does it, and the
tensor table that llama.cpp's loader (``src/models/<arch>.cpp``, ``load_arch_tensors``) asks
for: names from ``src/llama-arch.cpp``, shapes in ggml order (``shape[0]`` is the row).

Merged experts are 3-D: ``ffn_gate_exps``/``ffn_up_exps`` are ``(n_embd, n_ff_exp, n_expert)``
and ``ffn_down_exps`` is ``(n_ff_exp, n_embd, n_expert)``.

Types: tensors the converter always stores as F32 (1-D tensors, norms, biases, routers
``ffn_gate_inp``/``ffn_gate_inp_shexp``) are pinned to F32 here, and llama-quantize leaves them
alone too, so every quantization mix keeps them F32. gpt-oss's expert tensors are pinned to
MXFP4, as OpenAI ships them.
"""

from __future__ import annotations

from .spec import ModelShape, TensorSpec


def _f32(name: str, *shape: int) -> TensorSpec:
    return TensorSpec(name, tuple(shape), "F32")


def _w(name: str, *shape: int, type: str | None = None) -> TensorSpec:
    return TensorSpec(name, tuple(shape), type)


def _embeddings(n_embd: int, n_vocab: int, *, tied: bool = False) -> list[TensorSpec]:
    out = [_w("token_embd.weight", n_embd, n_vocab), _f32("output_norm.weight", n_embd)]
    if not tied:
        out.append(_w("output.weight", n_embd, n_vocab))
    return out


def _experts(
    i: int, n_embd: int, n_ff_exp: int, n_expert: int, *, type: str | None = None
) -> list[TensorSpec]:
    return [
        _f32(f"blk.{i}.ffn_gate_inp.weight", n_embd, n_expert),
        _w(f"blk.{i}.ffn_gate_exps.weight", n_embd, n_ff_exp, n_expert, type=type),
        _w(f"blk.{i}.ffn_down_exps.weight", n_ff_exp, n_embd, n_expert, type=type),
        _w(f"blk.{i}.ffn_up_exps.weight", n_embd, n_ff_exp, n_expert, type=type),
    ]


def _gqa(
    i: int, n_embd: int, n_head: int, n_head_kv: int, head_dim: int, *, qkv_bias: bool = False
) -> list[TensorSpec]:
    q, kv = n_head * head_dim, n_head_kv * head_dim
    out = [
        _w(f"blk.{i}.attn_q.weight", n_embd, q),
        _w(f"blk.{i}.attn_k.weight", n_embd, kv),
        _w(f"blk.{i}.attn_v.weight", n_embd, kv),
    ]
    if qkv_bias:
        out += [
            _f32(f"blk.{i}.attn_q.bias", q),
            _f32(f"blk.{i}.attn_k.bias", kv),
            _f32(f"blk.{i}.attn_v.bias", kv),
        ]
    out.append(_w(f"blk.{i}.attn_output.weight", q, n_embd))
    return out


# --- Mixtral 8x7B: arch "llama" with experts ------------------------------------------------

_MIXTRAL: dict[str, int] = dict(
    n_embd=4096, n_layer=32, n_head=32, n_head_kv=8, n_ff=14336, n_expert=8
)


def _mixtral_tensors() -> list[TensorSpec]:
    c = _MIXTRAL
    out = _embeddings(c["n_embd"], 32000)
    for i in range(c["n_layer"]):
        out.append(_f32(f"blk.{i}.attn_norm.weight", c["n_embd"]))
        out += _gqa(i, c["n_embd"], c["n_head"], c["n_head_kv"], 128)
        out.append(_f32(f"blk.{i}.ffn_norm.weight", c["n_embd"]))
        out += _experts(i, c["n_embd"], c["n_ff"], c["n_expert"])
    return out


MIXTRAL_8X7B = ModelShape(
    id="mixtral-8x7b",
    arch="llama",
    title="Mistral AI Mixtral 8x7B Instruct v0.1",
    n_vocab=32000,
    metadata={
        "vocab_size": 32000,
        "context_length": 32768,
        "embedding_length": 4096,
        "block_count": 32,
        "feed_forward_length": 14336,
        "attention.head_count": 32,
        "attention.head_count_kv": 8,
        "rope.dimension_count": 128,
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 8,
        "expert_used_count": 2,
    },
    tensors=_mixtral_tensors,
    default_quant="q4_k_m",
    notes=(
        "mistralai/Mixtral-8x7B-Instruct-v0.1 config.json: hidden 4096, 32 layers, 32 heads, "
        "8 KV heads, intermediate 14336, 8 local experts, 2 per token, vocab 32000, "
        "max_position 32768, rope_theta 1e6, rms_norm_eps 1e-5, untied output. Converted as "
        "conversion/llama.py does (arch llama, experts merged). Published Q4_K_M: ~26.4 GB."
    ),
)


# --- Qwen1.5-MoE-A2.7B: qwen2moe, 60 experts + gated shared expert --------------------------


def _qwen15_moe_tensors() -> list[TensorSpec]:
    n_embd, n_layer, n_vocab = 2048, 24, 151936
    out = _embeddings(n_embd, n_vocab)
    for i in range(n_layer):
        out.append(_f32(f"blk.{i}.attn_norm.weight", n_embd))
        out += _gqa(i, n_embd, 16, 16, 128, qkv_bias=True)
        out.append(_f32(f"blk.{i}.ffn_norm.weight", n_embd))
        out += _experts(i, n_embd, 1408, 60)
        # shared_expert_gate is nn.Linear(2048, 1): stored 2-D (2048, 1), loaded as {n_embd}
        out.append(_f32(f"blk.{i}.ffn_gate_inp_shexp.weight", n_embd, 1))
        out += [
            _w(f"blk.{i}.ffn_gate_shexp.weight", n_embd, 5632),
            _w(f"blk.{i}.ffn_down_shexp.weight", 5632, n_embd),
            _w(f"blk.{i}.ffn_up_shexp.weight", n_embd, 5632),
        ]
    return out


QWEN15_MOE_A27B = ModelShape(
    id="qwen1.5-moe-a2.7b",
    arch="qwen2moe",
    title="Qwen1.5-MoE-A2.7B Chat",
    n_vocab=151936,
    metadata={
        "context_length": 32768,
        "embedding_length": 2048,
        "block_count": 24,
        "feed_forward_length": 5632,
        "attention.head_count": 16,
        "attention.head_count_kv": 16,
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": 60,
        "expert_used_count": 4,
        "expert_feed_forward_length": 1408,
        "expert_shared_feed_forward_length": 5632,
    },
    tensors=_qwen15_moe_tensors,
    default_quant="q4_k_m",
    notes=(
        "Qwen/Qwen1.5-MoE-A2.7B-Chat config.json: hidden 2048, 24 layers, 16 heads (16 KV, "
        "head 128, q/k/v bias), intermediate 5632, moe_intermediate 1408, 60 experts, 4 per "
        "token, shared_expert_intermediate 5632 with a sigmoid gate, vocab 151936, "
        "max_position 32768, rope_theta 1e6, untied. Converted as conversion/qwen.py "
        "Qwen2MoeModel. 14.3B parameters; published Q4_K_M ~8.8 GB."
    ),
)


# --- Qwen3-30B-A3B: qwen3moe, 128 experts, QK norm ------------------------------------------


def _qwen3_30b_a3b_tensors() -> list[TensorSpec]:
    n_embd, n_layer, n_vocab, head_dim = 2048, 48, 151936, 128
    out = _embeddings(n_embd, n_vocab)
    for i in range(n_layer):
        out.append(_f32(f"blk.{i}.attn_norm.weight", n_embd))
        out += _gqa(i, n_embd, 32, 4, head_dim)
        out.append(_f32(f"blk.{i}.attn_k_norm.weight", head_dim))
        out.append(_f32(f"blk.{i}.attn_q_norm.weight", head_dim))
        out.append(_f32(f"blk.{i}.ffn_norm.weight", n_embd))
        out += _experts(i, n_embd, 768, 128)
    return out


QWEN3_30B_A3B = ModelShape(
    id="qwen3-30b-a3b",
    arch="qwen3moe",
    title="Qwen3-30B-A3B",
    n_vocab=151936,
    metadata={
        "context_length": 40960,
        "embedding_length": 2048,
        "block_count": 48,
        "feed_forward_length": 6144,
        "attention.head_count": 32,
        "attention.head_count_kv": 4,
        "attention.key_length": 128,
        "attention.value_length": 128,
        "rope.freq_base": 1000000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": 128,
        "expert_used_count": 8,
        "expert_feed_forward_length": 768,
    },
    tensors=_qwen3_30b_a3b_tensors,
    default_quant="q4_k_m",
    notes=(
        "Qwen/Qwen3-30B-A3B config.json: hidden 2048, 48 layers, 32 heads, 4 KV heads, "
        "head_dim 128 (q_proj 2048->4096), q/k RMS norms, 128 experts, 8 per token, "
        "moe_intermediate 768, vocab 151936, max_position 40960, rope_theta 1e6, untied. "
        "Converted as conversion/qwen.py Qwen3MoeModel. Published Q4_K_M ~18.6 GB."
    ),
)


# --- DeepSeek-V2-Lite: deepseek2, MLA, 64 routed + 2 shared experts, first layer dense -----

_DSV2L: dict[str, int] = dict(
    n_embd=2048,
    n_layer=27,
    n_head=16,
    n_ff=10944,
    n_ff_exp=1408,
    n_expert=64,
    n_shared=2,
    kv_lora=512,
    qk_nope=128,
    qk_rope=64,
    v_head=128,
    n_vocab=102400,
)


def _dsv2_lite_tensors(*, legacy: bool = False) -> list[TensorSpec]:
    c = _DSV2L
    n_embd, n_head, kv_lora, rope = c["n_embd"], c["n_head"], c["kv_lora"], c["qk_rope"]
    k_mla = c["qk_nope"] + rope  # 192
    out = _embeddings(n_embd, c["n_vocab"])
    for i in range(c["n_layer"]):
        out.append(_f32(f"blk.{i}.attn_norm.weight", n_embd))
        out.append(_f32(f"blk.{i}.attn_kv_a_norm.weight", kv_lora))
        # q_lora_rank is null for Lite: a plain q projection
        out.append(_w(f"blk.{i}.attn_q.weight", n_embd, n_head * k_mla))
        out.append(_w(f"blk.{i}.attn_kv_a_mqa.weight", n_embd, kv_lora + rope))
        if legacy:
            out.append(
                _w(f"blk.{i}.attn_kv_b.weight", kv_lora, n_head * (c["qk_nope"] + c["v_head"]))
            )
        else:
            # kv_b_proj split by the converter; k_b transposed per head
            out.append(_w(f"blk.{i}.attn_k_b.weight", c["qk_nope"], kv_lora, n_head))
            out.append(_w(f"blk.{i}.attn_v_b.weight", kv_lora, c["v_head"], n_head))
        out.append(_w(f"blk.{i}.attn_output.weight", n_head * c["v_head"], n_embd))
        out.append(_f32(f"blk.{i}.ffn_norm.weight", n_embd))
        if i < 1:  # first_k_dense_replace = 1
            out += [
                _w(f"blk.{i}.ffn_gate.weight", n_embd, c["n_ff"]),
                _w(f"blk.{i}.ffn_down.weight", c["n_ff"], n_embd),
                _w(f"blk.{i}.ffn_up.weight", n_embd, c["n_ff"]),
            ]
        else:
            out += _experts(i, n_embd, c["n_ff_exp"], c["n_expert"])
            n_sh = c["n_ff_exp"] * c["n_shared"]
            out += [
                _w(f"blk.{i}.ffn_gate_shexp.weight", n_embd, n_sh),
                _w(f"blk.{i}.ffn_down_shexp.weight", n_sh, n_embd),
                _w(f"blk.{i}.ffn_up_shexp.weight", n_embd, n_sh),
            ]
    return out


def _dsv2_lite_metadata(*, legacy: bool) -> dict[str, int | float | bool | str]:
    c = _DSV2L
    meta: dict[str, int | float | bool | str] = {
        "vocab_size": c["n_vocab"],
        "context_length": 163840,
        "embedding_length": c["n_embd"],
        "block_count": c["n_layer"],
        "feed_forward_length": c["n_ff"],
        "attention.head_count": c["n_head"],
        "rope.freq_base": 10000.0,
        "attention.layer_norm_rms_epsilon": 1e-6,
        "expert_count": c["n_expert"],
        "expert_used_count": 6,
        "expert_group_count": 1,
        "expert_group_used_count": 1,
        "leading_dense_block_count": 1,
        "attention.kv_lora_rank": c["kv_lora"],
        "expert_feed_forward_length": c["n_ff_exp"],
        "expert_shared_count": c["n_shared"],
        "expert_weights_scale": 1.0,
        "expert_gating_func": 1,  # scoring_func softmax
        "rope.dimension_count": c["qk_rope"],
        "rope.scaling.type": "yarn",
        "rope.scaling.factor": 40.0,
        "rope.scaling.original_context_length": 4096,
        "rope.scaling.yarn_beta_fast": 32.0,
        "rope.scaling.yarn_beta_slow": 1.0,
        "rope.scaling.yarn_log_multiplier": 0.0707,
    }
    if legacy:
        # before the MLA conversion (llama.cpp PR 12801, 2025-04): plain MHA metadata
        meta["attention.head_count_kv"] = c["n_head"]
        meta["attention.key_length"] = c["qk_nope"] + c["qk_rope"]
        meta["attention.value_length"] = c["v_head"]
    else:
        # MLA as MQA over the compressed latent: one KV head of 512 + 64
        meta["attention.head_count_kv"] = 1
        meta["attention.key_length"] = c["kv_lora"] + c["qk_rope"]
        meta["attention.value_length"] = c["kv_lora"]
        meta["attention.key_length_mla"] = c["qk_nope"] + c["qk_rope"]
        meta["attention.value_length_mla"] = c["v_head"]
    return meta


_DSV2L_NOTES = (
    "deepseek-ai/DeepSeek-V2-Lite-Chat config.json: hidden 2048, 27 layers, 16 heads, "
    "q_lora_rank null, kv_lora_rank 512, qk_nope 128, qk_rope 64, v_head 128, intermediate "
    "10944 (first_k_dense_replace 1), moe_intermediate 1408, 64 routed experts, 6 per token, "
    "2 shared, vocab 102400, max_position 163840, yarn factor 40 over 4096, "
    "routed_scaling_factor 1.0, norm_topk_prob false. 15.7B parameters; published Q4_K_M "
    "~10.4 GB. "
)

DEEPSEEK_V2_LITE = ModelShape(
    id="deepseek-v2-lite",
    arch="deepseek2",
    title="DeepSeek-V2-Lite Chat",
    n_vocab=_DSV2L["n_vocab"],
    metadata=_dsv2_lite_metadata(legacy=False),
    tensors=_dsv2_lite_tensors,
    default_quant="q4_k_m",
    notes=_DSV2L_NOTES
    + "Converted as the current conversion/deepseek.py: MLA, kv_b_proj split into "
    "attn_k_b (128, 512, 16) and attn_v_b (512, 128, 16), head_count_kv 1, key_length 576, "
    "value_length 512, key_length_mla 192, value_length_mla 128.",
)

DEEPSEEK_V2_LITE_LEGACY = ModelShape(
    id="deepseek-v2-lite-legacy",
    arch="deepseek2",
    title="DeepSeek-V2-Lite Chat (pre-MLA GGUF)",
    n_vocab=_DSV2L["n_vocab"],
    metadata=_dsv2_lite_metadata(legacy=True),
    tensors=lambda: _dsv2_lite_tensors(legacy=True),
    default_quant="q4_k_m",
    notes=_DSV2L_NOTES
    + "As GGUFs converted before llama.cpp PR 12801 (most published ones): one attn_kv_b "
    "(512, 4096), head_count_kv 16, key_length 192, value_length 128, no *_mla keys; "
    "llama.cpp then caches full per-head K and V (MHA), not the latent.",
)


# --- gpt-oss-20b: MXFP4 experts, attention sinks, SWA 128 on even layers --------------------


def _gpt_oss_20b_tensors() -> list[TensorSpec]:
    return _gpt_oss_tensors(n_layer=24, n_expert=32)


def _gpt_oss_tensors(*, n_layer: int, n_expert: int) -> list[TensorSpec]:
    n_embd, n_vocab, n_head, n_head_kv, head_dim = 2880, 201088, 64, 8, 64
    n_ff_exp = 2880
    out = _embeddings(n_embd, n_vocab)
    for i in range(n_layer):
        out.append(_f32(f"blk.{i}.attn_norm.weight", n_embd))
        out.append(_f32(f"blk.{i}.post_attention_norm.weight", n_embd))
        out += _gqa(i, n_embd, n_head, n_head_kv, head_dim, qkv_bias=True)
        out.append(_f32(f"blk.{i}.attn_output.bias", n_embd))
        out.append(_f32(f"blk.{i}.attn_sinks.weight", n_head))
        out += _experts(i, n_embd, n_ff_exp, n_expert, type="MXFP4")
        out += [
            _f32(f"blk.{i}.ffn_gate_inp.bias", n_expert),
            _f32(f"blk.{i}.ffn_gate_exps.bias", n_ff_exp, n_expert),
            _f32(f"blk.{i}.ffn_down_exps.bias", n_embd, n_expert),
            _f32(f"blk.{i}.ffn_up_exps.bias", n_ff_exp, n_expert),
        ]
    return out


GPT_OSS_20B = ModelShape(
    id="gpt-oss-20b",
    arch="gpt-oss",
    title="OpenAI gpt-oss-20b",
    n_vocab=201088,
    metadata={
        "context_length": 131072,
        "embedding_length": 2880,
        "block_count": 24,
        "feed_forward_length": 2880,
        "attention.head_count": 64,
        "attention.head_count_kv": 8,
        "attention.key_length": 64,
        "attention.value_length": 64,
        "attention.sliding_window": 128,
        "rope.freq_base": 150000.0,
        "rope.scaling.type": "yarn",
        "rope.scaling.factor": 32.0,
        "rope.scaling.original_context_length": 4096,
        "rope.scaling.yarn_beta_fast": 32.0,
        "rope.scaling.yarn_beta_slow": 1.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
        "expert_count": 32,
        "expert_used_count": 4,
        "expert_feed_forward_length": 2880,
    },
    tensors=_gpt_oss_20b_tensors,
    # Experts are MXFP4 whatever the mix. llama-quantize's MXFP4_MOE mix puts every other
    # quantizable tensor in Q8_0, which reproduces ggml-org's gpt-oss-20b-mxfp4.gguf (12.1 GB);
    # "f16" for the rest gives the 13.8 GB "F16" uploads.
    default_quant="mxfp4_moe",
    notes=(
        "openai/gpt-oss-20b config.json: hidden 2880, 24 layers, 64 heads, 8 KV heads, "
        "head_dim 64, attention bias, attention sinks, intermediate 2880, 32 local experts, "
        "4 per token, sliding_window 128 on even layers (llama.cpp's swa pattern 2, no key), "
        "vocab 201088, max_position 131072 (yarn 32 over 4096), rope_theta 150000. Converted "
        "as conversion/gpt_oss.py: gate_up split into gate/up, experts kept MXFP4, expert "
        "biases F32. Published ggml-org gpt-oss-20b-mxfp4.gguf ~12.1 GB."
    ),
)

# gpt-oss-120b: gpt-oss-20b's layer with 36 layers of 128 experts (4 used). Kept out of
# SHAPES (whose tests pin published file sizes); the registry still finds it by id. Used for
# the published llama-bench rows of tests/data/llama_bench/.
GPT_OSS_120B = ModelShape(
    id="gpt-oss-120b",
    arch="gpt-oss",
    title="OpenAI gpt-oss-120b",
    n_vocab=201088,
    metadata={**GPT_OSS_20B.metadata, "block_count": 36, "expert_count": 128},
    tensors=lambda: _gpt_oss_tensors(n_layer=36, n_expert=128),
    default_quant="mxfp4_moe",
    notes=(
        "openai/gpt-oss-120b config.json: as gpt-oss-20b (hidden 2880, 64/8 heads, head_dim "
        "64, sinks, SWA 128 on even layers, vocab 201088) with 36 layers and 128 local "
        "experts, 4 per token; llama-bench prints ggml-org's gpt-oss-120b-mxfp4 as "
        "'gpt-oss 120B Q8_0', 60.03 GiB, 116.83 B."
    ),
)

SHAPES: tuple[ModelShape, ...] = (
    MIXTRAL_8X7B,
    QWEN15_MOE_A27B,
    QWEN3_30B_A3B,
    DEEPSEEK_V2_LITE,
    DEEPSEEK_V2_LITE_LEGACY,
    GPT_OSS_20B,
)
