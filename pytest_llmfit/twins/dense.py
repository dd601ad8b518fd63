"""Dense transformer shape twins: true hyperparameters and convert_hf_to_gguf.py tensor tables.

Every entry carries the figures of the model's ``config.json`` on Hugging Face (named in
``notes``) and the tensor table llama.cpp's ``convert_hf_to_gguf.py`` produces for it: the
tensor names of ``src/llama-arch.cpp``, shapes in ggml order (``shape[0]`` is the row
length), biases, q/k norms, post norms, fused QKV, tied embeddings (no ``output.weight``)
and the ``rope_freqs`` tensor of Llama 3.x's rope scaling. The tables are checked against
``load_arch_tensors`` of each architecture in llama.cpp: a missing tensor or an extra one
makes llama.cpp refuse the file, so loading a twin verifies its table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .spec import MetaValue, ModelShape, TensorSpec


@dataclass(frozen=True)
class _Layout:
    """How one architecture lays out its tensors."""

    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    tied: bool = False  # no output.weight: llama.cpp reuses token_embd
    norm_bias: bool = False  # LayerNorm with bias (attn_norm/ffn_norm/output_norm)
    fused_qkv: bool = False  # one attn_qkv.weight
    qkv_bias: bool = False
    o_bias: bool = False
    ffn: str = "gated"  # "gated" (gate/up/down), "plain" (up/down), "phi3" (up is 2*n_ff)
    ffn_bias: bool = False
    ffn_norm: bool = True  # False for parallel-attention blocks (falcon, command-r)
    qk_norm: bool = False  # attn_q_norm/attn_k_norm of head_dim
    post_norms: bool = False  # gemma2/3: post_attention_norm, post_ffw_norm
    rope_freqs: int = 0  # length of rope_freqs.weight (Llama 3.x rope scaling), 0 = none


def _table(lay: _Layout) -> Callable[[], list[TensorSpec]]:
    def build() -> list[TensorSpec]:
        e, v = lay.n_embd, lay.n_vocab
        q_dim = lay.n_head * lay.head_dim
        kv_dim = lay.n_head_kv * lay.head_dim
        t = [TensorSpec("token_embd.weight", (e, v)), TensorSpec("output_norm.weight", (e,))]
        if lay.norm_bias:
            t.append(TensorSpec("output_norm.bias", (e,)))
        if not lay.tied:
            t.append(TensorSpec("output.weight", (e, v)))
        if lay.rope_freqs:
            t.append(TensorSpec("rope_freqs.weight", (lay.rope_freqs,), "F32"))
        for i in range(lay.n_layer):
            p = f"blk.{i}."
            t.append(TensorSpec(p + "attn_norm.weight", (e,)))
            if lay.norm_bias:
                t.append(TensorSpec(p + "attn_norm.bias", (e,)))
            if lay.fused_qkv:
                t.append(TensorSpec(p + "attn_qkv.weight", (e, q_dim + 2 * kv_dim)))
                if lay.qkv_bias:
                    t.append(TensorSpec(p + "attn_qkv.bias", (q_dim + 2 * kv_dim,)))
            else:
                for name, dim in (("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)):
                    t.append(TensorSpec(p + name + ".weight", (e, dim)))
                    if lay.qkv_bias:
                        t.append(TensorSpec(p + name + ".bias", (dim,)))
            if lay.qk_norm:
                t.append(TensorSpec(p + "attn_q_norm.weight", (lay.head_dim,)))
                t.append(TensorSpec(p + "attn_k_norm.weight", (lay.head_dim,)))
            t.append(TensorSpec(p + "attn_output.weight", (q_dim, e)))
            if lay.o_bias:
                t.append(TensorSpec(p + "attn_output.bias", (e,)))
            if lay.post_norms:
                t.append(TensorSpec(p + "post_attention_norm.weight", (e,)))
                t.append(TensorSpec(p + "post_ffw_norm.weight", (e,)))
            if lay.ffn_norm:
                t.append(TensorSpec(p + "ffn_norm.weight", (e,)))
                if lay.norm_bias:
                    t.append(TensorSpec(p + "ffn_norm.bias", (e,)))
            ff = lay.n_ff
            if lay.ffn == "gated":
                t.append(TensorSpec(p + "ffn_gate.weight", (e, ff)))
            up = 2 * ff if lay.ffn == "phi3" else ff
            t.append(TensorSpec(p + "ffn_up.weight", (e, up)))
            t.append(TensorSpec(p + "ffn_down.weight", (ff, e)))
            if lay.ffn_bias:
                t.append(TensorSpec(p + "ffn_up.bias", (up,)))
                t.append(TensorSpec(p + "ffn_down.bias", (e,)))
        return t

    return build


def _meta(
    lay: _Layout, n_ctx_train: int, extra: Mapping[str, MetaValue] | None = None
) -> dict[str, MetaValue]:
    md: dict[str, MetaValue] = {
        "context_length": n_ctx_train,
        "embedding_length": lay.n_embd,
        "block_count": lay.n_layer,
        "feed_forward_length": lay.n_ff,
        "attention.head_count": lay.n_head,
        "attention.head_count_kv": lay.n_head_kv,
        "attention.key_length": lay.head_dim,
        "attention.value_length": lay.head_dim,
    }
    md.update(extra or {})
    return md


def _shape(
    id: str,
    arch: str,
    title: str,
    lay: _Layout,
    meta: dict[str, MetaValue],
    notes: str,
    default_quant: str = "q4_k_m",
    **kw: object,
) -> ModelShape:
    return ModelShape(
        id=id,
        arch=arch,
        title=title,
        n_vocab=lay.n_vocab,
        metadata=meta,
        tensors=_table(lay),
        default_quant=default_quant,
        notes=notes,
        **kw,  # type: ignore[arg-type]
    )


# --- Llama family ---------------------------------------------------------------------------

_L31_8B = _Layout(128256, 4096, 32, 32, 8, 128, 14336, rope_freqs=64)
_L31_405B = _Layout(128256, 16384, 126, 128, 8, 128, 53248, rope_freqs=64)
_L31_70B = _Layout(128256, 8192, 80, 64, 8, 128, 28672, rope_freqs=64)
_L32_1B = _Layout(128256, 2048, 16, 32, 8, 64, 8192, tied=True, rope_freqs=32)
_L32_3B = _Layout(128256, 3072, 28, 24, 8, 128, 8192, tied=True, rope_freqs=64)


def _llama3_meta(lay: _Layout) -> dict[str, MetaValue]:
    return _meta(
        lay,
        131072,
        {
            "rope.freq_base": 500000.0,
            "attention.layer_norm_rms_epsilon": 1e-5,
            "rope.dimension_count": lay.head_dim,
            "vocab_size": lay.n_vocab,
        },
    )


_MISTRAL_7B_V03 = _Layout(32768, 4096, 32, 32, 8, 128, 14336)

LLAMA = (
    _shape(
        "llama-3.1-8b",
        "llama",
        "Meta Llama 3.1 8B Instruct",
        _L31_8B,
        _llama3_meta(_L31_8B),
        "meta-llama/Llama-3.1-8B-Instruct config.json (hidden 4096, 32 layers, 32/8 heads, "
        "ffn 14336, vocab 128256, rope_theta 5e5, llama3 rope scaling -> rope_freqs[64]); "
        "Q4_K_M checked against the published 4.92 GB",
    ),
    _shape(
        "llama-3.1-70b",
        "llama",
        "Meta Llama 3.1 70B Instruct",
        _L31_70B,
        _llama3_meta(_L31_70B),
        "meta-llama/Llama-3.1-70B-Instruct config.json (hidden 8192, 80 layers, 64/8 heads, "
        "ffn 28672, vocab 128256); LLM_TYPE_70B gets the attn_v bump",
    ),
    _shape(
        "llama-3.1-405b",
        "llama",
        "Meta Llama 3.1 405B Instruct",
        _L31_405B,
        _llama3_meta(_L31_405B),
        "meta-llama/Llama-3.1-405B-Instruct config.json (hidden 16384, 126 layers, 128/8 "
        "heads, ffn 53248, vocab 128256, rope_theta 5e5); Q3_K_M checked against the "
        "published ~191-195 GB",
        default_quant="q3_k_m",
    ),
    _shape(
        "llama-3.2-1b",
        "llama",
        "Meta Llama 3.2 1B Instruct",
        _L32_1B,
        _llama3_meta(_L32_1B),
        "meta-llama/Llama-3.2-1B-Instruct config.json (hidden 2048, 16 layers, 32/8 heads, "
        "head_dim 64, ffn 8192, tie_word_embeddings true, rope factor 32 -> rope_freqs[32])",
    ),
    _shape(
        "llama-3.2-3b",
        "llama",
        "Meta Llama 3.2 3B Instruct",
        _L32_3B,
        _llama3_meta(_L32_3B),
        "meta-llama/Llama-3.2-3B-Instruct config.json (hidden 3072, 28 layers, 24/8 heads, "
        "ffn 8192, tie_word_embeddings true)",
    ),
    _shape(
        "mistral-7b-v0.3",
        "llama",
        "Mistral 7B Instruct v0.3",
        _MISTRAL_7B_V03,
        _meta(
            _MISTRAL_7B_V03,
            32768,
            {
                "rope.freq_base": 1000000.0,
                "attention.layer_norm_rms_epsilon": 1e-5,
                "rope.dimension_count": 128,
                "vocab_size": 32768,
            },
        ),
        "mistralai/Mistral-7B-Instruct-v0.3 config.json (hidden 4096, 32 layers, 32/8 heads, "
        "ffn 14336, vocab 32768, rope_theta 1e6, no sliding window)",
    ),
)


# --- Qwen ----------------------------------------------------------------------------------

_Q25_05B = _Layout(151936, 896, 24, 14, 2, 64, 4864, tied=True, qkv_bias=True)
_Q25_7B = _Layout(152064, 3584, 28, 28, 4, 128, 18944, qkv_bias=True)
_Q3_06B = _Layout(151936, 1024, 28, 16, 8, 128, 3072, tied=True, qk_norm=True)
_Q3_8B = _Layout(151936, 4096, 36, 32, 8, 128, 12288, qk_norm=True)


def _qwen_meta(lay: _Layout, n_ctx: int) -> dict[str, MetaValue]:
    md = _meta(lay, n_ctx, {"rope.freq_base": 1000000.0, "attention.layer_norm_rms_epsilon": 1e-6})
    return md


QWEN = (
    _shape(
        "qwen2.5-0.5b",
        "qwen2",
        "Qwen2.5 0.5B Instruct",
        _Q25_05B,
        _qwen_meta(_Q25_05B, 32768),
        "Qwen/Qwen2.5-0.5B-Instruct config.json (hidden 896, 24 layers, 14/2 heads, ffn 4864, "
        "vocab 151936, tied, q/k/v biases); 896-wide rows are not a multiple of 256, so the "
        "K-quant mixes fall back to Q5_0/Q8_0 there as llama-quantize does",
    ),
    _shape(
        "qwen2.5-7b",
        "qwen2",
        "Qwen2.5 7B Instruct",
        _Q25_7B,
        _qwen_meta(_Q25_7B, 32768),
        "Qwen/Qwen2.5-7B-Instruct config.json (hidden 3584, 28 layers, 28/4 heads, ffn 18944, "
        "vocab 152064, untied, q/k/v biases)",
    ),
    _shape(
        "qwen3-0.6b",
        "qwen3",
        "Qwen3 0.6B",
        _Q3_06B,
        _qwen_meta(_Q3_06B, 40960),
        "Qwen/Qwen3-0.6B config.json (hidden 1024, 28 layers, 16/8 heads, head_dim 128, "
        "ffn 3072, vocab 151936, tied, q/k norms)",
    ),
    _shape(
        "qwen3-8b",
        "qwen3",
        "Qwen3 8B",
        _Q3_8B,
        _qwen_meta(_Q3_8B, 40960),
        "Qwen/Qwen3-8B config.json (hidden 4096, 36 layers, 32/8 heads, head_dim 128, "
        "ffn 12288, vocab 151936, untied, q/k norms)",
    ),
)


# --- Gemma ---------------------------------------------------------------------------------

_GEMMA_2B = _Layout(256000, 2048, 18, 8, 1, 256, 16384, tied=True)
_GEMMA2_2B = _Layout(256000, 2304, 26, 8, 4, 256, 9216, tied=True, post_norms=True)
_GEMMA2_9B = _Layout(256000, 3584, 42, 16, 8, 256, 14336, tied=True, post_norms=True)
_GEMMA3_1B = _Layout(262144, 1152, 26, 4, 1, 256, 6912, tied=True, post_norms=True, qk_norm=True)
_GEMMA3_4B = _Layout(262144, 2560, 34, 8, 4, 256, 10240, tied=True, post_norms=True, qk_norm=True)


def _gemma2_meta(lay: _Layout) -> dict[str, MetaValue]:
    return _meta(
        lay,
        8192,
        {
            "attention.layer_norm_rms_epsilon": 1e-6,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "attention.sliding_window": 4096,
        },
    )


def _gemma3_meta(
    lay: _Layout, n_ctx: int, window: int, extra: Mapping[str, MetaValue] | None = None
) -> dict[str, MetaValue]:
    return _meta(
        lay,
        n_ctx,
        {
            "attention.layer_norm_rms_epsilon": 1e-6,
            "rope.freq_base": 1000000.0,
            "rope.freq_base_swa": 10000.0,
            "attention.sliding_window": window,
            **(extra or {}),
        },
    )


GEMMA = (
    _shape(
        "gemma-2b",
        "gemma",
        "Gemma 2B",
        _GEMMA_2B,
        _meta(_GEMMA_2B, 8192, {"attention.layer_norm_rms_epsilon": 1e-6}),
        "google/gemma-2b config.json (hidden 2048, 18 layers, 8 heads, 1 kv head (MQA), "
        "head_dim 256, ffn 16384, vocab 256000, embeddings shared with the output)",
    ),
    _shape(
        "gemma-2-2b",
        "gemma2",
        "Gemma 2 2B it",
        _GEMMA2_2B,
        _gemma2_meta(_GEMMA2_2B),
        "google/gemma-2-2b-it config.json (hidden 2304, 26 layers, 8/4 heads, head_dim 256, "
        "ffn 9216, vocab 256000, sliding_window 4096 on every other layer, softcaps 50/30)",
    ),
    _shape(
        "gemma-2-9b",
        "gemma2",
        "Gemma 2 9B it",
        _GEMMA2_9B,
        _gemma2_meta(_GEMMA2_9B),
        "google/gemma-2-9b-it config.json (hidden 3584, 42 layers, 16/8 heads, head_dim 256, "
        "ffn 14336, vocab 256000, sliding_window 4096 on every other layer)",
    ),
    _shape(
        "gemma-3-1b",
        "gemma3",
        "Gemma 3 1B it",
        _GEMMA3_1B,
        _gemma3_meta(_GEMMA3_1B, 32768, 512),
        "google/gemma-3-1b-it config.json (hidden 1152, 26 layers, 4/1 heads, head_dim 256, "
        "ffn 6912, vocab 262144, sliding_window 512, 5 local : 1 global layers)",
    ),
    _shape(
        "gemma-3-4b",
        "gemma3",
        "Gemma 3 4B it (text only)",
        _GEMMA3_4B,
        _gemma3_meta(
            _GEMMA3_4B,
            131072,
            1024,
            {"rope.scaling.type": "linear", "rope.scaling.factor": 8.0},
        ),
        "google/gemma-3-4b-it config.json text_config (hidden 2560, 34 layers, 8/4 heads, "
        "head_dim 256, ffn 10240, sliding_window 1024, linear rope factor 8); the converter "
        "trims token_embd to the 262144 tokenizer pieces (config says 262208)",
    ),
)


# --- Others --------------------------------------------------------------------------------

_PHI3_MINI = _Layout(32064, 3072, 32, 32, 32, 96, 8192, fused_qkv=True, ffn="phi3")
_COMMAND_R = _Layout(256000, 8192, 40, 64, 64, 128, 22528, tied=True, ffn_norm=False)
_AYA_8B = _Layout(256000, 4096, 32, 32, 8, 128, 14336, tied=True, ffn_norm=False)
_GRANITE_2B = _Layout(49155, 2048, 40, 32, 8, 64, 8192, tied=True)
_GRANITE_8B = _Layout(49155, 4096, 40, 32, 8, 128, 12800, tied=True)
_STARCODER2_3B = _Layout(
    49152,
    3072,
    30,
    24,
    2,
    128,
    12288,
    tied=True,
    norm_bias=True,
    qkv_bias=True,
    o_bias=True,
    ffn="plain",
    ffn_bias=True,
)
_FALCON_7B = _Layout(
    65024,
    4544,
    32,
    71,
    1,
    64,
    18176,
    norm_bias=True,
    fused_qkv=True,
    ffn="plain",
    ffn_norm=False,
)


def _granite_meta(
    lay: _Layout, logit_scale: float, attn_scale: float, rope_base: float
) -> dict[str, MetaValue]:
    return _meta(
        lay,
        131072,
        {
            "rope.freq_base": rope_base,
            "attention.layer_norm_rms_epsilon": 1e-5,
            "vocab_size": lay.n_vocab,
            "rope.dimension_count": lay.head_dim,
            "attention.scale": attn_scale,
            "embedding_scale": 12.0,
            "residual_scale": 0.22,
            "logit_scale": logit_scale,
        },
    )


OTHERS = (
    _shape(
        "phi-3-mini-4k",
        "phi3",
        "Phi 3 Mini 4K Instruct",
        _PHI3_MINI,
        _meta(
            _PHI3_MINI,
            4096,
            {
                "rope.freq_base": 10000.0,
                "attention.layer_norm_rms_epsilon": 1e-5,
                "rope.dimension_count": 96,
                "rope.scaling.original_context_length": 4096,
                "attention.sliding_window": 2047,
            },
        ),
        "microsoft/Phi-3-mini-4k-instruct config.json (hidden 3072, 32 layers, 32 heads, "
        "no GQA, ffn 8192, vocab 32064, fused qkv and gate_up -> ffn_up 16384); "
        "llama.cpp disables Phi-3's sliding window",
        default_quant="q4_k_m",
    ),
    _shape(
        "command-r-v01",
        "command-r",
        "Cohere Command-R v01 (35B)",
        _COMMAND_R,
        _meta(
            _COMMAND_R,
            131072,
            {
                "rope.freq_base": 8000000.0,
                "attention.layer_norm_epsilon": 1e-5,
                "logit_scale": 0.0625,
                "rope.scaling.type": "none",
            },
        ),
        "CohereForAI/c4ai-command-r-v01 config.json (hidden 8192, 40 layers, 64 heads and 64 "
        "kv heads (no GQA), ffn 22528, vocab 256000, logit_scale 0.0625, rope_theta 8e6, "
        "model_max_length 131072), parallel attention/FFN block (no ffn_norm), tied output",
    ),
    _shape(
        "aya-expanse-8b",
        "command-r",
        "Cohere Aya Expanse 8B",
        _AYA_8B,
        _meta(
            _AYA_8B,
            8192,
            {
                "rope.freq_base": 10000.0,
                "attention.layer_norm_epsilon": 1e-5,
                "logit_scale": 0.125,
                "rope.scaling.type": "none",
            },
        ),
        "CohereForAI/aya-expanse-8b config.json (CohereForCausalLM: hidden 4096, 32 layers, "
        "32/8 heads, ffn 14336, vocab 256000, logit_scale 0.125, max_position_embeddings 8192)",
    ),
    _shape(
        "granite-3.1-2b",
        "granite",
        "IBM Granite 3.1 2B Instruct",
        _GRANITE_2B,
        _granite_meta(_GRANITE_2B, 8.0, 0.015625, 5000000.0),
        "ibm-granite/granite-3.1-2b-instruct config.json (hidden 2048, 40 layers, 32/8 heads, "
        "ffn 8192, vocab 49155, tied, logits_scaling 8, embedding_multiplier 12, "
        "residual_multiplier 0.22, attention_multiplier 0.015625, rope_theta 5e6)",
    ),
    _shape(
        "granite-3.1-8b",
        "granite",
        "IBM Granite 3.1 8B Instruct",
        _GRANITE_8B,
        _granite_meta(_GRANITE_8B, 16.0, 0.0078125, 10000000.0),
        "ibm-granite/granite-3.1-8b-instruct config.json (hidden 4096, 40 layers, 32/8 heads, "
        "ffn 12800, vocab 49155, tied, logits_scaling 16, embedding_multiplier 12, "
        "residual_multiplier 0.22, attention_multiplier 0.0078125, rope_theta 1e7)",
    ),
    _shape(
        "starcoder2-3b",
        "starcoder2",
        "StarCoder2 3B",
        _STARCODER2_3B,
        _meta(
            _STARCODER2_3B,
            16384,
            {"rope.freq_base": 999999.4420358813, "attention.layer_norm_epsilon": 1e-5},
        ),
        "bigcode/starcoder2-3b config.json (hidden 3072, 30 layers, 24/2 heads, ffn 12288, "
        "vocab 49152, LayerNorm with biases, biases on every projection, tied output; "
        "llama.cpp ignores its 4096 sliding window)",
    ),
    _shape(
        "falcon-7b",
        "falcon",
        "Falcon 7B Instruct",
        _FALCON_7B,
        _meta(
            _FALCON_7B,
            2048,
            {"attention.layer_norm_epsilon": 1e-5},
        ),
        "tiiuae/falcon-7b-instruct config.json (hidden 4544, 32 layers, 71 heads, multi-query "
        "(1 kv head), head_dim 64, ffn 4x4544, vocab 65024, parallel attention, fused qkv, "
        "separate lm_head); 4544-wide rows are not a multiple of 256: K-quants fall back",
    ),
)


# --- Models of published llama-bench tables (tests/data/llama_bench/) -----------------------

_L2_7B = _Layout(32000, 4096, 32, 32, 32, 128, 11008)
_TINYLLAMA = _Layout(32000, 2048, 22, 32, 4, 64, 5632)
_Q25_3B = _Layout(151936, 2048, 36, 16, 2, 128, 11008, tied=True, qkv_bias=True)


def _llama2_meta(lay: _Layout, n_ctx_train: int) -> dict[str, MetaValue]:
    return _meta(
        lay,
        n_ctx_train,
        {
            "rope.freq_base": 10000.0,
            "attention.layer_norm_rms_epsilon": 1e-5,
            "rope.dimension_count": lay.head_dim,
            "vocab_size": lay.n_vocab,
        },
    )


BENCH = (
    _shape(
        "llama-2-7b",
        "llama",
        "Meta Llama 2 7B",
        _L2_7B,
        _llama2_meta(_L2_7B, 4096),
        "meta-llama/Llama-2-7b-hf config.json (hidden 4096, 32 layers, 32 heads, no GQA, "
        "ffn 11008, vocab 32000, max_position 4096, rms_norm_eps 1e-5): llama-bench's "
        "'llama 7B' (Q4_0 3.56 GiB, 6.74 B parameters)",
        default_quant="q4_0",
    ),
    _shape(
        "tinyllama-1.1b",
        "llama",
        "TinyLlama 1.1B",
        _TINYLLAMA,
        _llama2_meta(_TINYLLAMA, 2048),
        "TinyLlama/TinyLlama-1.1B-intermediate-step-480k-1T config.json (hidden 2048, "
        "22 layers, 32/4 heads, ffn 5632, vocab 32000, max_position 2048): llama-bench's "
        "'llama 1B' (Q4_K_M 636.18 MiB, 1.10 B parameters)",
    ),
    _shape(
        "qwen2.5-3b",
        "qwen2",
        "Qwen2.5 3B Instruct",
        _Q25_3B,
        _qwen_meta(_Q25_3B, 32768),
        "Qwen/Qwen2.5-3B-Instruct config.json (hidden 2048, 36 layers, 16/2 heads, ffn 11008, "
        "vocab 151936, tied, q/k/v biases): llama-bench's 'qwen2 3B' (Q4_0 1.70 GiB, 3.09 B)",
    ),
)

SHAPES: tuple[ModelShape, ...] = LLAMA + QWEN + GEMMA + OTHERS + BENCH
