"""What llama.cpp will allocate for a model and settings: weights, KV cache, compute, output.

The figures follow llama.cpp's own sizing code (src/llama-context.cpp, src/llama-kv-cache.cpp,
src/llama-kv-cache-iswa.cpp, src/llama-memory-recurrent.cpp) and are checked against what
llama.cpp logs for shape twins of real models (tests/data/llamacpp/). Defaults are
llama-cpp-python's, since that is the loader users run.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import compute
from .arch import ModelParams, model_params
from .context import ContextShape, Settings, context_shape
from .gguf import GGUFFile, TensorInfo
from .speed import DEFAULT_THREAD_RATE, thread_rate


@dataclass(frozen=True)
class LayerFootprint:
    index: int
    weights_bytes: int  # the blk.N.* tensors
    kv_bytes: int  # this layer's K and V cache
    recurrent_bytes: int  # this layer's recurrent state (Mamba/RWKV/hybrid)
    idle_expert_bytes: int = 0  # MoE expert weights a decoded token does not read
    repack_bytes: int = 0  # weights the CPU backend copies into repacked layouts

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.recurrent_bytes


@dataclass(frozen=True)
class Footprint:
    """What llama.cpp allocates for one model and one context, component by component."""

    model_path: str
    arch: str
    settings: Settings
    context: ContextShape
    layers: tuple[LayerFootprint, ...]
    token_embd_bytes: int  # stays in host memory (llama.cpp never offloads the input layer)
    output_layer_bytes: int  # output.weight + output_norm: llama.cpp's "output layer"
    output_is_tied: bool  # no output.weight: token_embd doubles as the output matrix
    other_bytes: int  # tensors outside blocks, embeddings and output (e.g. rope factors)
    weights_bytes: int  # the file's tensor data as llama.cpp maps it (CPU_Mapped)
    repack_bytes: int  # the CPU_REPACK copies, when every layer runs on the CPU
    kv_cache_bytes: int
    recurrent_bytes: int
    compute_bytes: int  # the compute buffer of a single device holding every layer
    output_bytes: int  # the host-side logits buffer
    n_vocab: int
    n_embd: int
    # CPU decode cost of this model's weight mix: seconds per byte for one thread
    # (speed.CPU_THREAD_RATES weighted by each type's share of the bytes).
    cpu_seconds_per_byte: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes
            + self.repack_bytes
            + self.kv_cache_bytes
            + self.recurrent_bytes
            + self.compute_bytes
            + self.output_bytes
        )

    @property
    def resident_weights_bytes(self) -> int:
        """Every tensor once: a repacked copy replaces its mapped original, which llama.cpp
        never reads again (cold page cache), though its log lists both."""
        return (
            self.token_embd_bytes
            + self.output_layer_bytes
            + self.other_bytes
            + sum(layer.weights_bytes for layer in self.layers)
        )

    @property
    def resident_bytes(self) -> int:
        """What the model holds in memory: what placement compares with free memory."""
        return (
            self.resident_weights_bytes
            + self.kv_cache_bytes
            + self.recurrent_bytes
            + self.compute_bytes
            + self.output_bytes
        )

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    @property
    def output_repack_bytes(self) -> int:
        """Repacked copies outside the blocks: the output matrix (or a tied copy of it)."""
        return self.repack_bytes - sum(layer.repack_bytes for layer in self.layers)

    def to_dict(self) -> dict[str, object]:
        return {
            "weights_bytes": self.weights_bytes + self.repack_bytes,
            "mapped_bytes": self.weights_bytes,
            "repack_bytes": self.repack_bytes,
            "kv_cache_bytes": self.kv_cache_bytes + self.recurrent_bytes,
            "compute_bytes": self.compute_bytes,
            "output_bytes": self.output_bytes,
            "total_bytes": self.total_bytes,
            "resident_bytes": self.resident_bytes,
            "token_embd_bytes": self.token_embd_bytes,
            "output_layer_bytes": self.output_layer_bytes,
            "recurrent_bytes": self.recurrent_bytes,
            "n_ctx": self.context.n_ctx,
            "n_ubatch": self.context.n_ubatch,
            "flash_attn": self.context.flash_attn,
        }


# x86-64 with AVX2 (ggml-cpu/repack.cpp, ggml_repack_get_optimal_repack_type): these types
# are repacked when their row count is a multiple of 8. ARM (NEON) repacks other types too;
# a simulated host is taken to be x86.
REPACK_TYPES = frozenset({"Q4_0", "Q4_K", "IQ4_NL", "MXFP4"})


def repackable(info: TensorInfo, *, as_matmul: bool = False) -> bool:
    """Whether the CPU backend copies this weight into a CPU_REPACK buffer: a 2-D (MUL_MAT)
    or 3-D expert (MUL_MAT_ID) weight of a repackable type; token_embd is looked up with
    GET_ROWS and stays mapped unless ``as_matmul`` (a tied output matrix)."""
    kind = info.ggml_type
    if kind is None or kind.name not in REPACK_TYPES or len(info.shape) not in (2, 3):
        return False
    if info.name.startswith("token_embd.") and not as_matmul:
        return False
    return info.name.endswith(".weight") and info.shape[1] % 8 == 0


def _block_index(info: TensorInfo) -> int | None:
    if not info.name.startswith("blk."):
        return None
    head = info.name[4:].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _mapped_bytes(tensors: list[TensorInfo]) -> int:
    """Bytes llama.cpp maps for these tensors: the span from the first to the last tensor of
    each shard, alignment padding included (llama_model_loader::get_mapping_range)."""
    spans: dict[int, tuple[int, int]] = {}
    for info in tensors:
        start, end = info.offset, info.offset + info.nbytes
        low, high = spans.get(info.shard, (start, end))
        spans[info.shard] = (min(low, start), max(high, end))
    return sum(high - low for low, high in spans.values())


def estimate(
    model: GGUFFile, settings: Settings | None = None, *, params: ModelParams | None = None
) -> Footprint:
    """The memory llama.cpp allocates for ``model`` under ``settings`` on one device."""
    settings = (settings or Settings()).validated()
    params = params or model_params(model)
    ctx = context_shape(params, settings)

    per_layer_weights = [0] * params.n_layer_all
    per_layer_idle = [0] * params.n_layer_all
    idle_share = (
        1 - params.n_expert_used / params.n_expert
        if params.n_expert and params.n_expert_used
        else 0.0
    )
    per_layer_repack = [0] * params.n_layer_all
    token_embd = output_layer = other = 0
    tied = model.tensor("output.weight") is None
    repacked: set[str] = set()
    other_repack = 0
    for info in model.tensors:
        block = _block_index(info)
        moves = settings.repack and repackable(info)
        if moves:
            repacked.add(info.name)
        if block is not None and block < params.n_layer_all:
            per_layer_weights[block] += info.nbytes
            per_layer_repack[block] += info.nbytes if moves else 0
            if "_exps." in info.name:
                per_layer_idle[block] += int(info.nbytes * idle_share)
            continue
        if moves:
            other_repack += info.nbytes
        if info.name == "token_embd.weight" and tied and settings.repack:
            # A tied output matrix is a second tensor in the output layer's buffer: on the
            # CPU it is repacked when its type allows (token_embd itself is read by GET_ROWS).
            if repackable(info, as_matmul=True):
                other_repack += info.nbytes
        elif info.name.startswith("token_embd."):
            token_embd += info.nbytes
        elif info.name.startswith("output"):
            output_layer += info.nbytes
        else:
            other += info.nbytes

    kv_per_layer = _kv_bytes_per_layer(params, settings, ctx)
    rs_per_layer = _recurrent_bytes_per_layer(params, ctx)
    layers = tuple(
        LayerFootprint(
            il,
            per_layer_weights[il],
            kv_per_layer[il],
            rs_per_layer[il],
            per_layer_idle[il],
            per_layer_repack[il],
        )
        for il in range(params.n_layer_all)
    )
    notes = list(params.notes)
    if settings.flash_attn == "auto":
        notes.append("flash attention 'auto' counted as on (supported by CPU, CUDA and Metal)")
    return Footprint(
        model_path=model.path,
        arch=params.arch,
        settings=settings,
        context=ctx,
        layers=layers,
        token_embd_bytes=token_embd,
        output_layer_bytes=output_layer,
        output_is_tied=tied,
        other_bytes=other,
        weights_bytes=_mapped_bytes([t for t in model.tensors if t.name not in repacked]),
        repack_bytes=sum(per_layer_repack) + other_repack,
        kv_cache_bytes=sum(kv_per_layer),
        recurrent_bytes=sum(rs_per_layer),
        compute_bytes=compute.compute_buffer_bytes(params, ctx, settings, model),
        output_bytes=params.n_vocab * max(ctx.n_seq, 1) * 4,
        n_vocab=params.n_vocab,
        n_embd=params.n_embd,
        cpu_seconds_per_byte=_cpu_seconds_per_byte(model),
        notes=tuple(notes),
    )


def _cpu_seconds_per_byte(model: GGUFFile) -> float:
    total = seconds = 0.0
    for info in model.tensors:
        kind = info.ggml_type
        if kind is None or info.name.startswith("token_embd."):
            continue  # one row of the embeddings is read per token
        total += info.nbytes
        seconds += info.nbytes / thread_rate(kind.name)
    return seconds / total if total else 1 / DEFAULT_THREAD_RATE


def _kv_bytes_per_layer(params: ModelParams, settings: Settings, ctx: ContextShape) -> list[int]:
    """K and V bytes per layer (llama_kv_cache's constructor; [TAG_V_CACHE_VARIABLE])."""
    type_k, type_v = settings.type_k, settings.type_v
    v_trans = not ctx.flash_attn
    attn_layers = [layer for layer in params.layers[: params.n_layer] if not layer.recurrent]
    v_max = max((layer.n_embd_v_gqa for layer in attn_layers), default=0)
    sizes: list[int] = []
    for il, layer in enumerate(params.layers):
        if il >= params.n_layer or layer.recurrent or layer.n_head_kv == 0:
            sizes.append(0)
            continue
        cells = (ctx.kv_size_swa if layer.swa else ctx.kv_size) * ctx.n_stream
        k = type_k.row_bytes(layer.n_embd_k_gqa) * cells
        v = 0
        if not params.mla:
            width = v_max if v_trans else layer.n_embd_v_gqa
            v = type_v.row_bytes(width) * cells
        sizes.append(k + v)
    return sizes


def _recurrent_bytes_per_layer(params: ModelParams, ctx: ContextShape) -> list[int]:
    """r and s state per recurrent layer, f32, one row per sequence (llama_memory_recurrent)."""
    rows = max(1, ctx.n_seq)
    per_layer = (params.recurrent_r + params.recurrent_s) * 4 * rows
    return [
        per_layer if layer.recurrent and il < params.n_layer else 0
        for il, layer in enumerate(params.layers)
    ]
