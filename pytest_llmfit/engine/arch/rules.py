"""The vocabulary of architecture rules: one declarative :class:`ArchRule` per architecture.

A rule states, for one ``general.architecture``, what llama.cpp's ``load_arch_hparams``
(src/models/<arch>.cpp) and ``llama_model::create_memory`` (src/llama-model.cpp:2352-2882)
decide about memory: which memory object the model gets, which layers slide a window, which
hold recurrent state or their own KV cache, which tensors are not loaded. The family modules
(dense.py, swa.py, mla.py, recurrent.py, hybrid.py, encoder.py) each hold a table of these;
base.py reads a GGUF header through them. Line numbers refer to the llama.cpp vendored in
llama-cpp-python 0.3.36.
"""

from __future__ import annotations

from dataclasses import dataclass

# Memory objects create_memory builds (src/llama-model.cpp:2352-2882).
KV = "kv"  # llama_kv_cache (unified) or llama_kv_cache_iswa when SWA is on
NONE = "none"  # nullptr: encoders and diffusion models hold no KV cache and no state
RECURRENT = "recurrent"  # llama_memory_recurrent (llm_arch_is_recurrent)
HYBRID = "hybrid"  # llama_memory_hybrid(_iswa): a KV cache beside a recurrent state

# When a sliding window applies (the arch's load_arch_hparams decides).
ALWAYS = "always"  # swa_type set unconditionally (gemma2, gpt-oss, cohere2 ...)
IF_WINDOW = "if_window"  # only if attention.sliding_window is present and > 0 (gemma3, olmo2)
UNLESS_ZERO = "unless_zero"  # unless the key is present and 0 (llama4)
IF_64_LAYERS = "if_64_layers"  # exaone4: only the 64-layer (32B) model

# Which layers hold recurrent state (hparams.is_recr_impl).
ALL_LAYERS = "all"  # llm_arch_is_recurrent: every layer below n_layer()
KV_HEADS_ZERO = "kv_heads_zero"  # head_count_kv[il] == 0 (jamba, granitehybrid, lfm2 ...)
KV_AND_FF_ZERO = "kv_and_ff_zero"  # head_count_kv[il] == 0 and feed_forward_length[il] == 0
INTERVAL = "interval"  # attention.recurrent_layers, else (il + 1) % full_attention_interval

# Expert width, for the compute buffer (n_ff_exp).
EXPERT_KEY = "key"  # expert_feed_forward_length, else feed_forward_length
EXPERT_FF = "ff"  # experts are feed_forward_length wide whatever the key says
EXPERT_FF_PER_USED = "ff_per_used"  # expert_feed_forward_length, else n_ff / n_expert_used


@dataclass(frozen=True)
class SwaRule:
    """Which layers slide a window, and how wide it is (load_swa_pattern and friends)."""

    pattern: int = 0  # default period of load_swa_pattern (0: every layer; 1: none)
    dense_first: bool = False  # set_swa_pattern(n, dense_first): full layer at il % n == 0
    window: int = 0  # n_swa when attention.sliding_window is absent (0: the key is required)
    forced_window: int = 0  # llama4: n_swa = 8192 whatever the key says
    when: str = ALWAYS
    array: bool = False  # the pattern is a per-layer array in the file (gemma4, mimo2 ...)
    attention_layers: bool = False  # lfm2: every non-recurrent layer slides
    kind: str = "standard"  # standard, chunked (llama4) or symmetric (encoders)


@dataclass(frozen=True)
class ArchRule:
    """Everything about one architecture that decides what llama.cpp allocates."""

    arch: str
    family: str  # dense, swa, mla, recurrent, hybrid, encoder: the module that holds it
    source: str  # where llama.cpp says so (file:lines)
    memory: str = KV
    swa: SwaRule | None = None
    recurrent: str = ""  # which layers hold recurrent state (ALL_LAYERS, KV_HEADS_ZERO ...)
    # falcon-h1: every layer has a KV cache *and* a recurrent state (llama-model.cpp:2688-2690)
    attention_and_state: bool = False
    # Layers >= this own no KV: they reuse an earlier layer's (gemma3n: 20). -1: none shared.
    kv_from_start: int = -1
    kv_shared_key: str = ""  # gemma4: n_layer_all - <arch>.<key> gives kv_from_start
    indexer: str = ""  # DSA lightning-indexer K cache: "all" trunk layers, or "types" (glm-dsa)
    # NextN/MTP blocks created with TENSOR_SKIP under llama-cpp-python (load_mtp is false)
    nextn_skipped: bool = False
    nextn_kept: tuple[str, ...] = ()  # tensor name endings of those blocks loaded anyway
    expert_width: str = EXPERT_KEY
    output_tensors: tuple[str, ...] = ()  # non-"output*" names in the output layer's buffer
    layer0_tensors: tuple[str, ...] = ()  # names outside blk.N that live with layer 0
    # False where the model has no output matrix at all (BERT-style encoders): no tied copy
    output_matrix: bool = True
    swa_disabled: bool = False  # phi3: a window in the file that llama.cpp ignores
    attn_softcap: bool = False  # gemma2's attention logit soft-capping
    note: str = ""  # what a plan should say about this architecture, if anything

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.arch}: unknown family {self.family!r}")
        if self.memory not in (KV, NONE, RECURRENT, HYBRID):
            raise ValueError(f"{self.arch}: unknown memory {self.memory!r}")


FAMILIES = ("dense", "swa", "mla", "recurrent", "hybrid", "encoder")


def plain(family: str, source: str, *archs: str, **kw: object) -> tuple[ArchRule, ...]:
    """The same rule for several architectures (e.g. the plain dense KV ones)."""
    return tuple(ArchRule(arch, family, source, **kw) for arch in archs)  # type: ignore[arg-type]
