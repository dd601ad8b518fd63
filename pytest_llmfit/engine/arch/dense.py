"""Dense family: one K and one V row per layer and cache cell, every layer, no window.

These architectures reach the default branch of ``create_memory`` and get a unified
``llama_kv_cache`` (src/llama-model.cpp:2856-2876): per layer ``head_count_kv x key_length``
K elements and ``head_count_kv x value_length`` V elements per cell (llama-kv-cache.cpp:
209-234), V rows as wide as the widest layer's when V is stored transposed (no flash
attention). Their ``load_arch_hparams`` sets no ``swa_type``, no recurrent layers and no MLA
keys. NextN/MTP layers (``nextn_predict_layers``) hold no KV in the main context
(llama-model.cpp:2796-2804); where llama.cpp also skips their tensors it says so below.

Adding one: a plain architecture goes into ``_PLAIN`` below (after reading its
src/models/<arch>.cpp); one with a quirk gets its own ArchRule with the quirk and the
source line. Its twin goes in pytest_llmfit/twins/ and its recorded truth in
tests/data/llamacpp/.
"""

from __future__ import annotations

from .rules import EXPERT_FF, EXPERT_FF_PER_USED, ArchRule, plain

_DEFAULT = "src/llama-model.cpp:2856-2876 (unified llama_kv_cache)"

# Plain dense KV architectures (src/models/<arch>.cpp sets nothing memory-related).
_PLAIN = (
    "llama",
    "llama-embed",  # llama.cpp:113-117: no-cache graph, but the KV cache is still allocated
    "deci",  # per-layer head_count_kv (0: a K row of width 0, a V row still when transposed)
    "baichuan",
    "falcon",
    "grok",
    "gpt2",
    "gptneox",
    "mpt",
    "starcoder",
    "starcoder2",  # its 4096 sliding_window is not read
    "refact",
    "bloom",
    "stablelm",
    "qwen",
    "qwen2",
    "qwen2vl",
    "qwen3",
    "qwen3vl",
    "phi2",
    "plamo",
    "codeshell",
    "orion",
    "internlm2",
    "minicpm",
    "minicpm3",  # minicpm3.cpp:5-6: kv-lora decompressed, plain MHA cache (not MLA)
    "gemma",
    "command-r",  # command-r.cpp:21: output always tied
    "xverse",
    "olmo",
    "openelm",
    "chatglm",
    "bitnet",
    "jais",
    "jais2",
    "nemotron",
    "exaone",
    "granite",
    "chameleon",
    "plm",  # plm.cpp:5: kv-lora decompressed, not MLA
    "arcee",
    "ernie4_5",
    "hunyuan-dense",
    "hunyuan_vl",
    "paddleocr",  # the ernie4_5 class (src/llama-model.cpp:283)
    "talkie",
    "smollm3",  # smollm3.cpp:5: every 4th layer without RoPE, KV cached all the same
    "seed_oss",
    "apertus",
    "cogvlm",
    "pangu-embedded",
    "maincoder",
)

# Dense KV with experts whose tensors are feed_forward_length wide (the expert key, if
# present, is not what the loader uses): llama.cpp's create_tensor calls, cited.
_EXPERTS_BY_FF = (
    ("mistral3", "src/models/mistral3.cpp:73-85"),
    ("phimoe", "src/models/phimoe.cpp:12-46"),
    ("olmoe", "src/models/olmoe.cpp:43-45"),
    ("dbrx", "src/models/dbrx.cpp:37"),
    ("arctic", "src/models/arctic.cpp:46"),
    ("hunyuan-moe", "src/models/hunyuan-moe.cpp:42-44"),
    ("minimax-m2", "src/models/minimax-m2.cpp:36-38"),
    ("granitemoe", "src/models/granite-moe.cpp:67"),
)

RULES: tuple[ArchRule, ...] = (
    *plain("dense", _DEFAULT, *_PLAIN),
    *(ArchRule(a, "dense", src, expert_width=EXPERT_FF) for a, src in _EXPERTS_BY_FF),
    # Mixture-of-experts with expert_feed_forward_length (else n_ff / n_expert_used).
    ArchRule("qwen2moe", "dense", _DEFAULT),
    ArchRule("qwen3moe", "dense", "src/models/qwen3moe.cpp:50-54", expert_width=EXPERT_FF_PER_USED),
    ArchRule("qwen3vlmoe", "dense", _DEFAULT, expert_width=EXPERT_FF_PER_USED),
    ArchRule("deepseek", "dense", _DEFAULT),
    ArchRule("bailingmoe", "dense", _DEFAULT),
    ArchRule("dots1", "dense", "src/models/dots1.cpp:18-68"),
    ArchRule("grovemoe", "dense", "src/models/grovemoe.cpp:49", expert_width=EXPERT_FF_PER_USED),
    ArchRule("ernie4_5-moe", "dense", "src/models/ernie4-5.cpp:3-70"),
    # phi3.cpp:13-24: a sliding_window in the file is read and then switched off.
    ArchRule("phi3", "dense", "src/models/phi3.cpp:13-24", swa_disabled=True),
    # NextN/MTP blocks whose tensors are never loaded under llama-cpp-python.
    ArchRule(
        "glm4",
        "dense",
        "src/models/glm4.cpp:29-33 (NextN layers TENSOR_SKIP unconditionally)",
        nextn_skipped=True,
    ),
    ArchRule(
        "glm4moe",
        "dense",
        "src/models/glm4-moe.cpp:32-40 (NextN layers TENSOR_SKIP unless load_mtp)",
        nextn_skipped=True,
        expert_width=EXPERT_FF_PER_USED,
    ),
    ArchRule(
        "bailingmoe2",
        "dense",
        "src/models/bailingmoe2.cpp:35-40 (NextN layers TENSOR_SKIP unconditionally)",
        nextn_skipped=True,
    ),
    ArchRule(
        "hy_v3",
        "dense",
        "src/models/hy-v3.cpp:35 (NextN layers TENSOR_SKIP unless load_mtp)",
        nextn_skipped=True,
    ),
)
