"""What an architecture means for memory: per-layer attention shape, SWA, MLA, recurrent state.

This mirrors the parts of llama.cpp's ``load_hparams`` (src/llama-model.cpp and
src/models/*.cpp) that decide how big the KV cache and the recurrent state are. The rules
are read from the GGUF metadata exactly as llama.cpp reads them, with llama.cpp's own
defaults where a key is absent. Architectures not listed here still get a shape from the
generic keys, and :attr:`ModelParams.known` is False so callers can warn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import GGUFError
from .gguf import GGUFFile, MetadataValue

UNKNOWN_ARCH = "unknown architecture"  # how the note about one starts (plans, reasons)
# Architectures whose memory rules this module knows (GGUF general.architecture names).
DENSE_ARCHS = frozenset(
    {
        "llama",
        "mistral",
        "mistral3",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3",
        "phi3",
        "command-r",
        "cohere2",
        "granite",
        "starcoder2",
        "falcon",
        "qwen2moe",
        "qwen3moe",
        "deepseek2",
        "gpt-oss",
        "llama4",
        "olmo2",
        "exaone4",
        "phi2",
        "gpt2",
        "stablelm",
        "internlm2",
        "baichuan",
        "granitemoe",
        "mixtral",
        "deepseek",
        "minicpm",
        "bitnet",
    }
)
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv7", "rwkv6qwen2", "arwkv7"})
HYBRID_ARCHS = frozenset(
    {"jamba", "granitehybrid", "falcon-h1", "plamo2", "nemotron_h", "lfm2", "qwen3next"}
)

# Default sliding-window pattern (llama.cpp's load_swa_pattern(ml, n)) per architecture, and
# the default window where llama.cpp hard-codes one. A layer il is SWA when
# il % pattern < pattern - 1 (pattern 0 means every layer).
_SWA_DEFAULTS: dict[str, tuple[int, int | None]] = {
    "gemma2": (2, 4096),
    "gemma3": (6, None),
    "gpt-oss": (2, None),
    "cohere2": (4, None),
    "exaone4": (4, None),
}


@dataclass(frozen=True)
class LayerShape:
    """Attention and cache shape of one block, as llama.cpp's hparams see it."""

    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    swa: bool = False  # a sliding-window layer
    recurrent: bool = False  # holds recurrent state instead of a KV cache

    @property
    def n_embd_k_gqa(self) -> int:
        return self.head_dim_k * self.n_head_kv

    @property
    def n_embd_v_gqa(self) -> int:
        return self.head_dim_v * self.n_head_kv


@dataclass(frozen=True)
class ModelParams:
    """Everything the estimator needs from a model's header, architecture rules applied."""

    arch: str
    known: bool
    n_layer: int  # transformer blocks that take part in the forward pass
    n_layer_all: int  # blocks in the file, including MTP/NextN ones
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    layers: tuple[LayerShape, ...]
    n_swa: int
    mla: bool
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_ff_shexp: int
    n_expert_shared: int
    recurrent_r: int  # elements of conv/shift state per sequence per recurrent layer
    recurrent_s: int  # elements of ssm/wkv state per sequence per recurrent layer
    logit_softcap: bool
    gated_ffn: bool  # SwiGLU/GeGLU (gate and up) rather than a plain up-activation-down FFN
    notes: tuple[str, ...] = ()

    @property
    def hybrid(self) -> bool:
        return any(layer.recurrent for layer in self.layers) and any(
            not layer.recurrent for layer in self.layers
        )

    @property
    def n_head_max(self) -> int:
        return max((layer.n_head for layer in self.layers), default=0)


def _int(value: MetadataValue | None, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _per_layer(value: MetadataValue | None, n: int, default: int) -> list[int]:
    """A key that may be a scalar or a per-layer array (llama.cpp's get_key_or_arr)."""
    if isinstance(value, tuple):
        items = [_int(v, default) for v in value]
        if len(items) >= n:
            return items[:n]
        return items + [items[-1] if items else default] * (n - len(items))
    return [_int(value, default)] * n


def model_params(model: GGUFFile) -> ModelParams:
    """Read the memory-relevant hyperparameters of ``model`` the way llama.cpp does."""
    arch = model.architecture
    get = model.arch_value
    notes: list[str] = []

    if not model.tensors:
        raise GGUFError(
            model.path,
            f"has no tensors ({arch} metadata only, e.g. a vocabulary-only file): "
            "not a model llama.cpp can load",
        )
    n_layer_all = _int(get("block_count"), -1)
    n_embd = _int(get("embedding_length"), -1)
    if n_layer_all < 0 or n_embd <= 0:
        raise GGUFError(
            model.path,
            f"metadata lacks {arch}.block_count or {arch}.embedding_length "
            "(not a language model llama.cpp can load)",
        )
    n_nextn = _int(get("nextn_predict_layers"), 0)
    n_layer = max(n_layer_all - n_nextn, 0)
    _require_model_tensors(model, n_layer)

    n_vocab = model.vocab_size or _int(get("vocab_size"), 0)
    if not n_vocab:
        embd = model.tensor("token_embd.weight")
        n_vocab = embd.shape[1] if embd is not None and len(embd.shape) > 1 else 0

    n_head = _per_layer(get("attention.head_count"), n_layer_all, 0)
    n_head_kv = _per_layer(get("attention.head_count_kv"), n_layer_all, -1)
    n_head_kv = [h if kv < 0 else kv for h, kv in zip(n_head, n_head_kv, strict=True)]
    head0 = next((h for h in n_head if h), 0)
    default_head_dim = n_embd // head0 if head0 else 0
    head_k = _int(get("attention.key_length"), default_head_dim)
    head_v = _int(get("attention.value_length"), default_head_dim)
    head_k_swa = _int(get("attention.key_length_swa"), head_k)
    head_v_swa = _int(get("attention.value_length_swa"), head_v)
    n_ff = _per_layer(get("feed_forward_length"), n_layer_all, 0)

    mla = bool(
        _int(get("attention.key_length_mla"), 0) and _int(get("attention.value_length_mla"), 0)
    )
    if arch == "deepseek2" and not mla and _int(get("attention.kv_lora_rank"), 0):
        # Older conversions lack *_mla keys: llama.cpp then runs MHA over the decompressed
        # heads and caches full K and V (n_head_kv = n_head).
        notes.append("deepseek2 without key_length_mla: MLA cache not used")

    swa_flags = _swa_flags(model, arch, n_layer, n_layer_all)
    n_swa = _swa_window(model, arch) if any(swa_flags) else 0
    if not n_swa:
        swa_flags = [False] * n_layer_all

    recurrent_flags = _recurrent_flags(arch, n_head_kv, n_layer, n_layer_all)

    layers = tuple(
        LayerShape(
            n_head=n_head[il],
            n_head_kv=n_head_kv[il],
            head_dim_k=head_k_swa if swa_flags[il] else head_k,
            head_dim_v=head_v_swa if swa_flags[il] else head_v,
            n_ff=n_ff[il],
            swa=swa_flags[il],
            recurrent=recurrent_flags[il],
        )
        for il in range(n_layer_all)
    )

    recurrent_r, recurrent_s = _recurrent_state(model) if any(recurrent_flags) else (0, 0)
    known = arch in DENSE_ARCHS or arch in RECURRENT_ARCHS or arch in HYBRID_ARCHS
    if not known:
        notes.append(
            f"{UNKNOWN_ARCH} {arch!r} (no memory rules in pytest-llmfit): "
            "estimate uses the generic attention keys and the tensor table"
        )
    return ModelParams(
        arch=arch,
        known=known,
        n_layer=n_layer,
        n_layer_all=n_layer_all,
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=_int(get("context_length"), 0),
        layers=layers,
        n_swa=n_swa,
        mla=mla,
        n_expert=_int(get("expert_count"), 0),
        n_expert_used=_int(get("expert_used_count"), 0),
        # Mixtral-style files give the expert width only as feed_forward_length.
        n_ff_exp=_int(
            get("expert_feed_forward_length"), n_ff[0] if _int(get("expert_count"), 0) else 0
        ),
        n_ff_shexp=_int(get("expert_shared_feed_forward_length"), 0),
        n_expert_shared=_int(get("expert_shared_count"), 1 if _has_shared_expert(model) else 0),
        recurrent_r=recurrent_r,
        recurrent_s=recurrent_s,
        logit_softcap=bool(get("attn_logit_softcapping")) and arch == "gemma2",
        gated_ffn=arch == "phi3" or any(".ffn_gate." in t.name for t in model.tensors),
        notes=tuple(notes),
    )


def _require_model_tensors(model: GGUFFile, n_layer: int) -> None:
    """A file llama.cpp cannot load as a model (its vocab-only GGUFs, a truncated
    conversion) is refused here, naming what is missing, instead of planning as 0 bytes."""
    names = {t.name for t in model.tensors}
    missing: list[str] = []
    if not any(name.startswith("token_embd.") for name in names):
        missing.append("token_embd.weight")
    present = {
        int(name.split(".", 2)[1])
        for name in names
        if name.startswith("blk.") and name.split(".", 2)[1].isdigit()
    }
    absent = [il for il in range(n_layer) if il not in present]
    if absent:
        shown = ", ".join(f"blk.{il}" for il in absent[:3]) + (", ..." if len(absent) > 3 else "")
        missing.append(f"{len(absent)} of {n_layer} blocks ({shown})")
    if missing:
        raise GGUFError(
            model.path,
            f"lacks the tensors a {model.architecture} model needs: {'; '.join(missing)}",
        )


def _has_shared_expert(model: GGUFFile) -> bool:
    # qwen2moe-style models carry one gated shared expert without an expert_shared_count key.
    return any(t.name.endswith(".ffn_up_shexp.weight") for t in model.tensors)


def _swa_flags(model: GGUFFile, arch: str, n_layer: int, n_layer_all: int) -> list[bool]:
    pattern_value = model.arch_value("attention.sliding_window_pattern")
    if isinstance(pattern_value, tuple):  # per-layer bool array wins, as in load_swa_pattern
        flags = [bool(v) for v in pattern_value][:n_layer_all]
        return flags + [False] * (n_layer_all - len(flags))
    if arch == "phi3":  # llama.cpp disables Phi-3's SWA (PR 13676)
        return [False] * n_layer_all
    default = _SWA_DEFAULTS.get(arch)
    if default is None:
        return [False] * n_layer_all
    pattern = _int(pattern_value, default[0])
    return [
        il < n_layer and (pattern == 0 or il % pattern < pattern - 1) for il in range(n_layer_all)
    ]


def _swa_window(model: GGUFFile, arch: str) -> int:
    default = _SWA_DEFAULTS.get(arch, (0, None))[1]
    return _int(model.arch_value("attention.sliding_window"), default or 0)


def _recurrent_flags(
    arch: str, n_head_kv: Sequence[int], n_layer: int, n_layer_all: int
) -> list[bool]:
    if arch in RECURRENT_ARCHS:
        return [True] * n_layer_all
    if arch in HYBRID_ARCHS and arch != "falcon-h1":
        return [il < n_layer and n_head_kv[il] == 0 for il in range(n_layer_all)]
    return [False] * n_layer_all


def _recurrent_state(model: GGUFFile) -> tuple[int, int]:
    """Elements per sequence of llama.cpp's r (conv/shift) and s (ssm/wkv) state per layer."""
    get = model.arch_value
    n_embd = _int(get("embedding_length"), 0)
    wkv_head = _int(get("wkv.head_size"), 0)
    if wkv_head:  # RWKV: token shift and wkv state (llama_hparams::n_embd_r/n_embd_s)
        return _int(get("token_shift_count"), 2) * n_embd, n_embd * wkv_head
    d_conv = _int(get("ssm.conv_kernel"), 0)
    d_inner = _int(get("ssm.inner_size"), 0)
    d_state = _int(get("ssm.state_size"), 0)
    n_group = _int(get("ssm.group_count"), 0)
    n_conv = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    return n_conv, d_state * d_inner
