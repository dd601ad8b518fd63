"""Sliding-window family: some layers attend only to the last ``n_swa`` tokens.

With a window (``swa_type != NONE``) ``create_memory`` builds a ``llama_kv_cache_iswa``
(src/llama-model.cpp:2806-2855, llama-kv-cache-iswa.cpp:34-106): full layers in a base cache
of ``n_ctx_seq`` cells, window layers in a second cache of
``pad256(min(n_ctx_seq, n_swa * (unified ? n_seq : 1) + n_ubatch))`` cells, or full size
when ``swa_full`` (llama-cpp-python's default). Which layers slide comes from
``load_swa_pattern`` (llama-model.cpp:3434-3441): a per-layer array
``attention.sliding_window_pattern`` wins; else a period (scalar key or the arch default):
layer il slides when ``il % n < n - 1`` (``dense_first``: ``il % n != 0``); NextN layers never
do (llama-hparams.cpp:8-22).

Gemma 3n and Gemma 4 also share KV: layers from ``n_layer_kv_from_start`` on own no cache and
read the last window/full layer before it (llama-model.cpp:2780-2790).
"""

from __future__ import annotations

from .rules import IF_64_LAYERS, IF_WINDOW, UNLESS_ZERO, ArchRule, SwaRule

RULES: tuple[ArchRule, ...] = (
    # gemma2.cpp:4-12: window 4096 unless the key says otherwise, even layers slide.
    ArchRule(
        "gemma2",
        "swa",
        "src/models/gemma2.cpp:4-12",
        swa=SwaRule(pattern=2, window=4096),
        attn_softcap=True,
    ),
    # gemma3.cpp:4-12: only with a window > 0; five window layers per full one.
    ArchRule("gemma3", "swa", "src/models/gemma3.cpp:4-12", swa=SwaRule(pattern=6, when=IF_WINDOW)),
    # gemma3n.cpp:4-11: pattern 5; layers >= 20 reuse layer 18 (window) or 19 (full).
    # per_layer_model_proj/per_layer_proj_norm are created with layer 0 (bid 0, :40-41);
    # altup_proj/altup_unembd_proj are output-layer tensors (llama-arch.cpp:924-925).
    ArchRule(
        "gemma3n",
        "swa",
        "src/models/gemma3n.cpp:4-11; llama-model.cpp:2780-2790",
        swa=SwaRule(pattern=5),
        kv_from_start=20,
        layer0_tensors=("per_layer_model_proj.", "per_layer_proj_norm."),
        output_tensors=("altup_proj.", "altup_unembd_proj."),
    ),
    # gemma4.cpp:4-21: the pattern is an array; full and window layers have their own head
    # sizes (key_length / key_length_swa) and KV heads; the last shared_kv_layers reuse.
    ArchRule(
        "gemma4",
        "swa",
        "src/models/gemma4.cpp:4-21; llama-model.cpp:2780-2790",
        swa=SwaRule(array=True),
        kv_shared_key="attention.shared_kv_layers",
        layer0_tensors=("per_layer_model_proj.", "per_layer_proj_norm."),
    ),
    # openai-moe.cpp:6-9: window required, even layers slide.
    ArchRule("gpt-oss", "swa", "src/models/openai-moe.cpp:6-9", swa=SwaRule(pattern=2)),
    # cohere2.cpp:4-11: window required, three window layers per full one.
    ArchRule("cohere2", "swa", "src/models/cohere2.cpp:4-11", swa=SwaRule(pattern=4)),
    # cohere2moe.cpp:13-28: as cohere2 with the full layer first; NextN skipped (:53).
    ArchRule(
        "cohere2moe",
        "swa",
        "src/models/cohere2moe.cpp:13-28,53",
        swa=SwaRule(pattern=4, dense_first=True),
        nextn_skipped=True,
    ),
    # llama4.cpp:8-24: chunked attention with n_swa forced to 8192 on 3 of every 4 layers,
    # unless the file says sliding_window = 0 (MobileLLM-style all-full models).
    ArchRule(
        "llama4",
        "swa",
        "src/models/llama4.cpp:8-24",
        swa=SwaRule(pattern=4, forced_window=8192, when=UNLESS_ZERO, kind="chunked"),
    ),
    # olmo2.cpp:6-15 (OLMo 3): a window > 0 turns on pattern 4.
    ArchRule("olmo2", "swa", "src/models/olmo2.cpp:6-15", swa=SwaRule(pattern=4, when=IF_WINDOW)),
    # exaone4.cpp:4-14: SWA (default 4096, pattern 4) only for the 64-layer model;
    # NextN layers TENSOR_SKIP unconditionally (:38-44).
    ArchRule(
        "exaone4",
        "swa",
        "src/models/exaone4.cpp:4-14,38-44",
        swa=SwaRule(pattern=4, window=4096, when=IF_64_LAYERS),
        nextn_skipped=True,
    ),
    # exaone-moe.cpp:4-11: window 128 by default, pattern 4; NextN skipped (:51).
    ArchRule(
        "exaone-moe",
        "swa",
        "src/models/exaone-moe.cpp:4-11,51",
        swa=SwaRule(pattern=4, window=128),
        nextn_skipped=True,
    ),
    ArchRule("afmoe", "swa", "src/models/afmoe.cpp:11-23", swa=SwaRule(pattern=4, when=IF_WINDOW)),
    ArchRule("plamo3", "swa", "src/models/plamo3.cpp:5-11", swa=SwaRule(pattern=8, when=IF_WINDOW)),
    ArchRule("mellum", "swa", "src/models/mellum.cpp:6-18", swa=SwaRule(pattern=4, when=IF_WINDOW)),
    # smallthinker.cpp:4-15: a window > 0 means 4096, pattern 4 with the full layer first.
    ArchRule(
        "smallthinker",
        "swa",
        "src/models/smallthinker.cpp:4-15",
        swa=SwaRule(pattern=4, dense_first=True, forced_window=4096, when=IF_WINDOW),
    ),
    ArchRule(
        "laguna",
        "swa",
        "src/models/laguna.cpp:34-48",
        swa=SwaRule(pattern=4, dense_first=True, when=IF_WINDOW),
    ),
    ArchRule("muse-glimmer", "swa", "src/models/muse-glimmer.cpp:5-13", swa=SwaRule(pattern=4)),
    # Per-layer pattern arrays (get_arr, required) and a required window.
    ArchRule("maple", "swa", "src/models/maple.cpp:4-14", swa=SwaRule(array=True)),
    ArchRule("granite_swa", "swa", "src/models/granite-swa.cpp:17-19", swa=SwaRule(array=True)),
    ArchRule("spark2_5", "swa", "src/models/spark2-5.cpp:5-12", swa=SwaRule(array=True)),
    ArchRule(
        "mimo2",
        "swa",
        "src/models/mimo2.cpp:6-12,35",
        swa=SwaRule(array=True),
        nextn_skipped=True,
    ),
    ArchRule(
        "step35",
        "swa",
        "src/models/step35.cpp:6-26,50",
        swa=SwaRule(array=True),
        nextn_skipped=True,
    ),
)
