"""MLA family: multi-head latent attention caches one compressed row per token, K only.

DeepSeek-V2-style GGUFs with both ``attention.key_length_mla`` and
``attention.value_length_mla`` are MLA (``is_mla()``, llama-hparams.cpp:298-303): the
converter writes ``head_count_kv = 1``, ``key_length = kv_lora_rank + n_rot`` and
``value_length = kv_lora_rank``, and the KV cache allocates no V tensor at all
(llama-kv-cache.cpp:230-234): ``kv_lora_rank + n_rot`` elements per token and layer (576 for
V2/V3). Without the ``*_mla`` keys (conversions before llama.cpp PR 12801) the same models
cache full per-head K and V.

DeepSeek-V3.2 and GLM-5 (DSA) add a lightning-indexer key cache of
``attention.indexer.key_length`` elements per token (type_k, K only) beside the MLA cache
(``llama_kv_cache_dsa``, llama-model.cpp:2397-2452). Their NextN/MTP blocks are not loaded
under llama-cpp-python except the block's ``exp_probs_b`` bias, created without the MTP
flags (deepseek32.cpp:121, glm-dsa.cpp:155).
"""

from __future__ import annotations

from .rules import ArchRule

RULES: tuple[ArchRule, ...] = (
    ArchRule(
        "deepseek2",
        "mla",
        "src/models/deepseek2.cpp:3-67 (MLA keys :16-17, NextN TENSOR_SKIP :65-67)",
        nextn_skipped=True,
    ),
    # mistral4 is the deepseek2 class with its own graph (models/models.h:1399-1406).
    ArchRule(
        "mistral4",
        "mla",
        "src/models/models.h:1399-1406 (= deepseek2.cpp:3-67)",
        nextn_skipped=True,
    ),
    ArchRule(
        "deepseek2-ocr",
        "mla",
        "src/models/deepseek2ocr.cpp:3-4 (deepseek2 without MLA keys: MHA cache)",
    ),
    ArchRule(
        "deepseek32",
        "mla",
        "src/models/deepseek32.cpp:6-57,121; llama-model.cpp:2397-2452",
        indexer="all",
        nextn_skipped=True,
        nextn_kept=(".exp_probs_b.bias",),
    ),
    ArchRule(
        "glm-dsa",
        "mla",
        "src/models/glm-dsa.cpp:29-90,155; llama-model.cpp:2397-2452",
        indexer="types",
        nextn_skipped=True,
        nextn_kept=(".exp_probs_b.bias",),
    ),
)
