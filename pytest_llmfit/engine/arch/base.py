"""Read a GGUF header the way llama.cpp does and apply the architecture's memory rules.

:func:`model_params` mirrors the generic part of ``llama_model_base::load_hparams``
(src/llama-model.cpp:1298-1492), then the architecture's :class:`~.rules.ArchRule` from
the registry (filled by the family modules, see the package docstring), then the layer
filters of ``create_memory`` (src/llama-model.cpp:2352-2882). The result,
:class:`ModelParams` with one :class:`LayerShape` per block, is all the estimator needs:
which layers own a KV cache and how wide it is, which hold recurrent state and how big it
is, the sliding window, MLA, the DSA indexer cache, which tensors are not loaded.
Architectures without a rule get the generic keys and ``known = False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ...errors import GGUFError
from ..gguf import GGUFFile, MetadataValue
from . import rules as r
from .rules import ArchRule

UNKNOWN_ARCH = "unknown architecture"  # how the note about one starts (plans, reasons)

REGISTRY: dict[str, ArchRule] = {}


def register(*arch_rules: ArchRule) -> None:
    """Add rules to the registry (each architecture once)."""
    for rule in arch_rules:
        if rule.arch in REGISTRY:
            raise ValueError(f"architecture {rule.arch!r} has two rules")
        REGISTRY[rule.arch] = rule


def archs_of(family: str) -> frozenset[str]:
    return frozenset(a for a, rule in REGISTRY.items() if rule.family == family)


@dataclass(frozen=True)
class LayerShape:
    """Attention and cache shape of one block, as llama.cpp's hparams see it."""

    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_ff: int
    swa: bool = False  # a sliding-window layer
    recurrent: bool = False  # holds a recurrent state (conv/ssm/wkv)
    kv: bool = True  # owns a KV cache (not shared, not filtered, not an encoder)
    attention: bool = True  # runs attention (over its own or a shared cache, or none)
    moe: bool = False  # its FFN is a mixture of experts (has a router)
    indexer_k: int = 0  # elements per cell of the DSA lightning-indexer K cache (K only)

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
    family: str = "dense"  # the rule's memory family ("" when unknown)
    memory: str = r.KV  # rules.KV / NONE / RECURRENT / HYBRID
    causal: bool = True
    # Tensors llama.cpp does not load (NextN/MTP blocks under llama-cpp-python)
    skipped_tensors: frozenset[str] = field(default_factory=frozenset)
    output_tensors: tuple[str, ...] = ()  # names (prefixes) placed with the output layer
    layer0_tensors: tuple[str, ...] = ()  # names (prefixes) placed with layer 0
    output_matrix: bool = True  # an output matrix exists (else no tied copy of token_embd)

    @property
    def hybrid(self) -> bool:
        return any(layer.recurrent for layer in self.layers) and any(
            layer.kv for layer in self.layers
        )

    @property
    def n_head_max(self) -> int:
        return max((layer.n_head for layer in self.layers), default=0)

    @property
    def n_embd_v_gqa_max(self) -> int:
        """Widest V row over every block (llama-hparams.cpp:199-206): the width of every
        layer's V cache when V is stored transposed (no flash attention)."""
        return max((layer.n_embd_v_gqa for layer in self.layers), default=0)


def _int(value: MetadataValue | None, default: int) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _per_layer(value: MetadataValue | None, n: int, default: int) -> list[int]:
    """A key that may be a scalar or a per-layer array (llama.cpp's get_key_or_arr; it
    refuses an array of another length, which is padded or cut here)."""
    if isinstance(value, tuple):
        items = [_int(v, default) for v in value]
        if len(items) >= n:
            return items[:n]
        return items + [items[-1] if items else default] * (n - len(items))
    return [_int(value, default)] * n


def _flags(value: MetadataValue | None, n: int) -> list[bool] | None:
    """A per-layer bool/int array (get_arr: copied as far as it goes, the rest false)."""
    if not isinstance(value, tuple):
        return None
    flags = [bool(v) for v in value][:n]
    return flags + [False] * (n - len(flags))


def model_params(model: GGUFFile) -> ModelParams:
    """Read the memory-relevant hyperparameters of ``model`` the way llama.cpp does."""
    arch = model.architecture
    get = model.arch_value
    rule = REGISTRY.get(arch)
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

    # Generic keys (llama-model.cpp:1395-1466): per-layer heads, head sizes, FFN widths.
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
    if rule is not None and rule.family == "mla" and not mla:
        # Older conversions lack *_mla keys: llama.cpp then runs MHA over the decompressed
        # heads and caches full K and V (n_head_kv = n_head).
        notes.append(f"{arch} without key_length_mla: MLA cache not used")

    recurrent = _recurrent(model, rule, n_head_kv, n_ff, n_layer, n_layer_all)
    swa, n_swa = _swa(model, rule, recurrent, n_layer)
    moe = [_has_router(model, il) for il in range(n_layer_all)]
    kv, attention = _kv_layers(model, rule, recurrent, n_head_kv, n_ff, n_layer, n_nextn)
    indexer = _indexer(model, rule, n_layer, n_layer_all)

    layers = tuple(
        LayerShape(
            n_head=n_head[il],
            n_head_kv=n_head_kv[il],
            head_dim_k=head_k_swa if swa[il] else head_k,
            head_dim_v=head_v_swa if swa[il] else head_v,
            n_ff=n_ff[il],
            swa=swa[il],
            recurrent=recurrent[il],
            kv=kv[il],
            attention=attention[il],
            moe=moe[il],
            indexer_k=indexer[il],
        )
        for il in range(n_layer_all)
    )

    recurrent_r, recurrent_s = _recurrent_state(model, n_head) if any(recurrent) else (0, 0)
    if rule is None:
        notes.append(
            f"{UNKNOWN_ARCH} {arch!r} (no memory rules in pytest-llmfit): "
            "estimate uses the generic attention keys and the tensor table"
        )
    elif rule.note:
        notes.append(rule.note)
    n_expert = _int(get("expert_count"), 0)
    n_expert_used = _int(get("expert_used_count"), 0)
    return ModelParams(
        arch=arch,
        known=rule is not None,
        n_layer=n_layer,
        n_layer_all=n_layer_all,
        n_embd=n_embd,
        n_vocab=n_vocab,
        n_ctx_train=_int(get("context_length"), 0),
        layers=layers,
        n_swa=n_swa,
        mla=mla,
        n_expert=n_expert,
        n_expert_used=n_expert_used,
        n_ff_exp=_expert_width(model, rule, n_ff, n_expert, n_expert_used),
        n_ff_shexp=_int(get("expert_shared_feed_forward_length"), 0),
        n_expert_shared=_int(get("expert_shared_count"), 1 if _has_shared_expert(model) else 0),
        recurrent_r=recurrent_r,
        recurrent_s=recurrent_s,
        logit_softcap=bool(get("attn_logit_softcapping")) and bool(rule and rule.attn_softcap),
        gated_ffn=arch == "phi3" or any(".ffn_gate." in t.name for t in model.tensors),
        notes=tuple(notes),
        family=rule.family if rule else "",
        memory=rule.memory if rule else r.KV,
        causal=rule.memory != r.NONE if rule else get("attention.causal") is not False,
        skipped_tensors=_skipped(model, rule, n_layer),
        output_tensors=rule.output_tensors if rule else (),
        layer0_tensors=rule.layer0_tensors if rule else (),
        output_matrix=rule.output_matrix if rule else True,
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


def _has_router(model: GGUFFile, il: int) -> bool:
    return model.tensor(f"blk.{il}.ffn_gate_inp.weight") is not None


def _swa(
    model: GGUFFile, rule: ArchRule | None, recurrent: list[bool], n_layer: int
) -> tuple[list[bool], int]:
    """Sliding-window layers and n_swa (load_swa_pattern, llama-model.cpp:3434-3441, and
    set_swa_pattern, llama-hparams.cpp:8-22). No window: every flag false, n_swa 0."""
    n_layer_all = len(recurrent)
    off = [False] * n_layer_all, 0
    rule_swa = rule.swa if rule else None
    if rule_swa is None or (rule is not None and rule.swa_disabled):
        return off
    window_value = model.arch_value("attention.sliding_window")
    window = _int(window_value, 0)
    if rule_swa.when == r.IF_WINDOW and window <= 0:
        return off
    if rule_swa.when == r.UNLESS_ZERO and window_value is not None and window == 0:
        return off
    if rule_swa.when == r.IF_64_LAYERS and n_layer != 64:
        return off
    n_swa = rule_swa.forced_window or window or rule_swa.window
    if rule_swa.attention_layers:  # lfm2: every attention layer (lfm2.cpp:26-31)
        return [il < n_layer and not rec for il, rec in enumerate(recurrent)], n_swa
    pattern_value = model.arch_value("attention.sliding_window_pattern")
    flags = _flags(pattern_value, n_layer_all)
    if flags is None and rule_swa.array:  # llama.cpp requires the array (get_arr)
        return off
    if flags is None:
        period = _int(pattern_value, rule_swa.pattern)
        flags = [
            il < n_layer
            and (
                period == 0
                or (il % period != 0 if rule_swa.dense_first else il % period < period - 1)
            )
            for il in range(n_layer_all)
        ]
    return (flags, n_swa) if any(flags) and n_swa else off


def _recurrent(
    model: GGUFFile,
    rule: ArchRule | None,
    n_head_kv: list[int],
    n_ff: list[int],
    n_layer: int,
    n_layer_all: int,
) -> list[bool]:
    """hparams.is_recr_impl, as the architecture's load_arch_hparams sets it."""
    kind = rule.recurrent if rule else ""
    below = [il < n_layer for il in range(n_layer_all)]
    if kind == r.ALL_LAYERS:
        return below
    if kind == r.KV_HEADS_ZERO:
        return [b and kv == 0 for b, kv in zip(below, n_head_kv, strict=True)]
    if kind == r.KV_AND_FF_ZERO:
        return [b and kv == 0 and ff == 0 for b, kv, ff in zip(below, n_head_kv, n_ff, strict=True)]
    if kind == r.INTERVAL:
        flags = _flags(model.arch_value("attention.recurrent_layers"), n_layer_all)
        if flags is not None:
            return flags
        interval = _int(model.arch_value("full_attention_interval"), 4) or 4
        return [b and (il + 1) % interval != 0 for il, b in enumerate(below)]
    return [False] * n_layer_all


def _kv_layers(
    model: GGUFFile,
    rule: ArchRule | None,
    recurrent: list[bool],
    n_head_kv: list[int],
    n_ff: list[int],
    n_layer: int,
    n_nextn: int,
) -> tuple[list[bool], list[bool]]:
    """Which layers own a KV cache, and which run attention at all (create_memory's filters,
    llama_hparams::has_kv and the gemma3n/gemma4 reuse callback)."""
    n_all = len(recurrent)
    memory = rule.memory if rule else r.KV
    trunk = [il < n_layer for il in range(n_all)]
    if memory == r.HYBRID:
        if rule is not None and rule.attention_and_state:  # falcon-h1
            own = [True] * n_all
        elif rule is not None and rule.recurrent == r.KV_AND_FF_ZERO:  # nemotron_h
            own = [not rec and ff == 0 for rec, ff in zip(recurrent, n_ff, strict=True)]
        elif rule is not None and rule.recurrent == r.INTERVAL:  # qwen3next, qwen35 ...
            own = [t and not rec for t, rec in zip(trunk, recurrent, strict=True)]
        else:  # null filters: attention where not recurrent, over n_layer_all
            own = [not rec for rec in recurrent]
    elif memory == r.KV:
        # NextN/MTP layers are filtered out of the main context (llama-model.cpp:2796-2804)
        own = trunk if n_nextn > 0 and n_layer > 0 else [True] * n_all
    else:  # no memory at all, or a purely recurrent one
        own = [False] * n_all
    attention = [
        t and kv > 0 and (not rec or bool(rule and rule.attention_and_state))
        for t, kv, rec in zip(trunk, n_head_kv, recurrent, strict=True)
    ]
    if rule is not None and rule.recurrent == r.KV_AND_FF_ZERO:
        attention = [a and ff == 0 for a, ff in zip(attention, n_ff, strict=True)]
    kv_from = _kv_from_start(model, rule, n_all)
    if kv_from >= 0:  # layers past it reuse an earlier layer's cache (llama-hparams.cpp:321)
        own = [o and il < kv_from for il, o in enumerate(own)]
    return own, attention


def _kv_from_start(model: GGUFFile, rule: ArchRule | None, n_layer_all: int) -> int:
    if rule is None:
        return -1
    if rule.kv_shared_key:  # gemma4.cpp:8-11
        shared = _int(model.arch_value(rule.kv_shared_key), 0)
        return n_layer_all - shared if shared else -1
    return rule.kv_from_start


def _indexer(model: GGUFFile, rule: ArchRule | None, n_layer: int, n_layer_all: int) -> list[int]:
    """The DSA indexer K cache per layer (llama-model.cpp:2427-2431): indexer.key_length
    elements per cell on every trunk layer, or (glm-dsa) on its "full" indexer layers."""
    if rule is None or not rule.indexer:
        return [0] * n_layer_all
    width = _int(model.arch_value("attention.indexer.key_length"), 0)
    full = [True] * n_layer_all
    if rule.indexer == "types":
        flags = _flags(model.arch_value("attention.indexer.types"), n_layer_all)
        if flags is not None:
            full = flags
        elif _int(model.arch_value("context_length"), 0) >= 1048576:
            # GLM-5.2's default pattern (glm-dsa.cpp:6-27): layers 0, 1, then 2 + 4k
            full = [il < 2 or (il - 2) % 4 == 0 for il in range(n_layer_all)]
    return [width if il < n_layer and full[il] else 0 for il in range(n_layer_all)]


def _recurrent_state(model: GGUFFile, n_head: list[int]) -> tuple[int, int]:
    """Elements per sequence of llama.cpp's r and s state per layer (n_embd_r and n_embd_s,
    llama-hparams.cpp:208-258; the first case whose key is set wins, as there)."""
    get = model.arch_value
    n_embd = _int(get("embedding_length"), 0)
    d_conv = _int(get("ssm.conv_kernel"), 0)
    wkv_head = _int(get("wkv.head_size"), 0)
    if wkv_head:  # RWKV: token shift and wkv state
        return _int(get("token_shift_count"), 2) * n_embd, n_embd * wkv_head
    l_cache = _int(get("shortconv.l_cache"), 0)
    if l_cache:  # LFM2 short convolutions: no s state
        return n_embd * (l_cache - 1), 0
    kda = _int(get("kda.head_dim"), 0)
    if kda:  # Kimi delta attention: q, k and v conv states
        heads = n_head[0] if n_head else 0
        return 3 * (d_conv - 1 if d_conv > 0 else 3) * heads * kda, kda * kda * heads
    d_inner = _int(get("ssm.inner_size"), 0)
    d_state = _int(get("ssm.state_size"), 0)
    n_group = _int(get("ssm.group_count"), 0)
    n_conv = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state)
    return n_conv, d_state * d_inner


def _expert_width(
    model: GGUFFile, rule: ArchRule | None, n_ff: list[int], n_expert: int, n_used: int
) -> int:
    if not n_expert:
        return 0
    kind = rule.expert_width if rule else r.EXPERT_KEY
    # a scalar or, for per-layer widths (Nemotron puzzles), the widest layer's
    key = max(_per_layer(model.arch_value("expert_feed_forward_length"), len(n_ff), 0), default=0)
    if kind == r.EXPERT_FF:
        return n_ff[0]
    if key:
        return key
    if kind == r.EXPERT_FF_PER_USED and n_used:
        return n_ff[0] // n_used
    return n_ff[0]


def _skipped(model: GGUFFile, rule: ArchRule | None, n_layer: int) -> frozenset[str]:
    """NextN/MTP tensors llama.cpp creates with TENSOR_SKIP (not loaded, not mapped)."""
    if rule is None or not rule.nextn_skipped:
        return frozenset()
    skipped: set[str] = set()
    for info in model.tensors:
        head = info.name.split(".", 2)
        nextn = len(head) > 2 and head[0] == "blk" and head[1].isdigit() and int(head[1]) >= n_layer
        if nextn and not any(info.name.endswith(kept) for kept in rule.nextn_kept):
            skipped.add(info.name)
    return frozenset(skipped)


def known_archs(families: Iterable[str] | None = None) -> Mapping[str, ArchRule]:
    """The registered rules, optionally of some families only."""
    wanted = set(families) if families is not None else None
    return {
        a: rule for a, rule in sorted(REGISTRY.items()) if wanted is None or rule.family in wanted
    }
