"""Hybrid family: attention layers with a KV cache beside recurrent layers with a state.

``llm_arch_is_hybrid`` (llama-arch.cpp:1085-1109) gives these a ``llama_memory_hybrid``
(``_iswa`` when a window is on): a KV cache over the attention layers and a recurrent state
(see recurrent.py for its size) over the recurrent ones, each with its own layer filter
(llama-model.cpp:2679-2774). What marks a layer recurrent differs:

- head_count_kv[il] == 0: jamba, granitehybrid, plamo2, lfm2, lfm2moe, kimi-linear
- head_count_kv[il] == 0 and feed_forward_length[il] == 0: nemotron_h (an MLP-only layer
  holds neither KV nor state)
- attention.recurrent_layers, else (il + 1) % full_attention_interval != 0 (default 4):
  qwen3next, qwen35, qwen35moe, minimax-01 (head_count_kv is a scalar there)
- every layer, with a KV cache too: falcon-h1

LFM2's short convolutions keep r = n_embd x (l_cache - 1) and no s; Kimi's delta attention
(KDA) keeps r = 3 (d_conv - 1) n_head kda and s = kda^2 n_head (llama-hparams.cpp:208-258).
"""

from __future__ import annotations

from .rules import (
    EXPERT_FF,
    EXPERT_FF_PER_USED,
    HYBRID,
    IF_WINDOW,
    INTERVAL,
    KV_AND_FF_ZERO,
    KV_HEADS_ZERO,
    ArchRule,
    SwaRule,
)

RULES: tuple[ArchRule, ...] = (
    ArchRule(
        "jamba",
        "hybrid",
        "src/models/jamba.cpp:11-13",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
        expert_width=EXPERT_FF,
    ),
    ArchRule(
        "granitehybrid",
        "hybrid",
        "src/models/granite-hybrid.cpp:22-25",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
        expert_width=EXPERT_FF,
    ),
    ArchRule(
        "plamo2", "hybrid", "src/models/plamo2.cpp:15-20", memory=HYBRID, recurrent=KV_HEADS_ZERO
    ),
    # lfm2.cpp:8-31: short convolutions where head_count_kv is 0; a window > 0 makes every
    # attention layer slide. Its output norm is named token_embd_norm (llama-arch.cpp:442,740).
    ArchRule(
        "lfm2",
        "hybrid",
        "src/models/lfm2.cpp:8-31",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
        swa=SwaRule(when=IF_WINDOW, attention_layers=True),
        output_tensors=("token_embd_norm.", "dense_2."),
    ),
    ArchRule(
        "lfm2moe",
        "hybrid",
        "src/models/lfm2moe.cpp:5-14",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
        output_tensors=("token_embd_norm.", "dense_2."),
    ),
    ArchRule(
        "falcon-h1",
        "hybrid",
        "src/models/falcon-h1.cpp:14; llama-model.cpp:2688-2690",
        memory=HYBRID,
        recurrent="all",
        attention_and_state=True,
    ),
    ArchRule(
        "nemotron_h",
        "hybrid",
        "src/models/nemotron-h.cpp:14-16; llama-model.cpp:2691-2697",
        memory=HYBRID,
        recurrent=KV_AND_FF_ZERO,
        nextn_skipped=True,
    ),
    ArchRule(
        "nemotron_h_moe",
        "hybrid",
        "src/models/nemotron-h.cpp:14-16,54; llama-model.cpp:2691-2697",
        memory=HYBRID,
        recurrent=KV_AND_FF_ZERO,
        nextn_skipped=True,
        expert_width=EXPERT_FF_PER_USED,
    ),
    ArchRule(
        "qwen3next",
        "hybrid",
        "src/models/qwen3next.cpp:17-23,40; llama-model.cpp:2698-2705",
        memory=HYBRID,
        recurrent=INTERVAL,
        nextn_skipped=True,
        expert_width=EXPERT_FF_PER_USED,
    ),
    ArchRule(
        "qwen35",
        "hybrid",
        "src/models/qwen35.cpp:17-23,38; llama-model.cpp:2698-2705",
        memory=HYBRID,
        recurrent=INTERVAL,
        nextn_skipped=True,
    ),
    ArchRule(
        "qwen35moe",
        "hybrid",
        "src/models/qwen35moe.cpp:20-26,41; llama-model.cpp:2698-2705",
        memory=HYBRID,
        recurrent=INTERVAL,
        nextn_skipped=True,
        expert_width=EXPERT_FF_PER_USED,
    ),
    # bailingmoe3.cpp:37 (Ling 3.0): KDA where head_count_kv is 0, MLA elsewhere; NextN
    # TENSOR_SKIP unless load_mtp (:74). Null filters: a NextN layer keeps its KV.
    ArchRule(
        "bailingmoe3",
        "hybrid",
        "src/models/bailingmoe3.cpp:6-37,74; llama-arch.cpp:1097",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
        nextn_skipped=True,
    ),
    # kimi-linear.cpp:6-18: KDA layers where head_count_kv is 0, MLA (K-only) elsewhere.
    ArchRule(
        "kimi-linear",
        "hybrid",
        "src/models/kimi-linear.cpp:4-32",
        memory=HYBRID,
        recurrent=KV_HEADS_ZERO,
    ),
)
