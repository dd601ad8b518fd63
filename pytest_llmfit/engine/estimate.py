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
    cuda_bytes: int = 0  # the same weights in a CUDA/HIP buffer (row padding, alignment)
    # The routed experts (blk.N.ffn_*_exps): what --n-cpu-moe / -ot exps=CPU keep in RAM.
    expert_bytes: int = 0
    expert_cuda_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.recurrent_bytes


@dataclass(frozen=True)
class TensorSpan:
    """Where one placement group's tensors lie in the file: llama.cpp maps the span from a
    buffer's first to its last tensor (llama_model_loader::get_mapping_range), so a host
    buffer's "CPU_Mapped" size is a span, not a sum."""

    group: int  # a block index; INPUT_GROUP, OUTPUT_GROUP (= n_layer_all) or OTHER_GROUP
    shard: int
    start: int
    end: int


INPUT_GROUP = -1  # token_embd and the other input-layer tensors: always host memory
OTHER_GROUP = -2  # tensors llama.cpp puts nowhere in particular (rope factors...): host


@dataclass(frozen=True)
class Footprint:
    """What llama.cpp allocates for one model and one context, component by component.

    Two totals, both from the same parts: :attr:`total_bytes` is what the model holds in
    memory on one device (each weight once: a CPU-repacked copy replaces its mapped
    original, which llama.cpp never reads again); :attr:`allocated_bytes` is the sum of
    llama.cpp's own buffer lines on the CPU, which list the mapped original and the
    repacked copy both (what the zoo compares with llama.cpp's log).
    """

    model_path: str
    arch: str
    settings: Settings
    context: ContextShape
    layers: tuple[LayerFootprint, ...]
    token_embd_bytes: int  # stays in host memory (llama.cpp never offloads the input layer)
    output_layer_bytes: int  # output.weight + output_norm: llama.cpp's "output layer"
    output_is_tied: bool  # no output.weight: token_embd doubles as the output matrix
    # Tied models: llama.cpp creates the output matrix as a duplicate of token_embd in the
    # output layer's buffer (TENSOR_DUPLICATED). On a GPU that is a second copy; on the CPU
    # it shares the mapping, unless repacking makes it a second, repacked copy.
    tied_output_bytes: int
    tied_output_repack_bytes: int  # the repacked tied copy on the CPU (0 when not repacked)
    output_layer_cuda_bytes: int  # the output layer (with a tied copy) in a CUDA/HIP buffer
    other_bytes: int  # tensors outside blocks, embeddings and output (e.g. rope factors)
    mapped_bytes: int  # the file's tensor data as llama.cpp maps it (CPU_Mapped)
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
    spans: tuple[TensorSpan, ...] = ()

    @property
    def weights_bytes(self) -> int:
        """Weights held in memory when every layer runs on the CPU: every tensor once, plus
        the repacked copy of a tied output matrix (token_embd itself is still read)."""
        return (
            self.token_embd_bytes
            + self.output_layer_bytes
            + self.tied_output_repack_bytes
            + self.other_bytes
            + sum(layer.weights_bytes for layer in self.layers)
        )

    @property
    def total_bytes(self) -> int:
        """What the model holds in memory on one device: what placement compares."""
        return (
            self.weights_bytes
            + self.kv_cache_bytes
            + self.recurrent_bytes
            + self.compute_bytes
            + self.output_bytes
        )

    @property
    def allocated_bytes(self) -> int:
        """The sum of llama.cpp's buffer lines on the CPU (CPU_Mapped + CPU_REPACK + KV +
        compute + output), the mapped originals of repacked weights included."""
        return (
            self.mapped_bytes
            + self.repack_bytes
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

    def mapped_span(self, groups: set[int]) -> int:
        """Bytes llama.cpp maps for the tensors of these placement groups (per shard, from
        the first to the last tensor), as a host "CPU_Mapped model buffer" line shows."""
        ranges: dict[int, tuple[int, int]] = {}
        for span in self.spans:
            if span.group in groups:
                low, high = ranges.get(span.shard, (span.start, span.end))
                ranges[span.shard] = (min(low, span.start), max(high, span.end))
        return sum(high - low for low, high in ranges.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "total_bytes": self.total_bytes,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes + self.recurrent_bytes,
            "compute_bytes": self.compute_bytes,
            "output_bytes": self.output_bytes,
            # llama.cpp's own CPU buffer lines: the mapped file and the CPU_REPACK copies.
            "cpu_mapped_bytes": self.mapped_bytes,
            "cpu_repack_bytes": self.repack_bytes,
            "allocated_bytes": self.allocated_bytes,
            "token_embd_bytes": self.token_embd_bytes,
            "output_layer_bytes": self.output_layer_bytes,
            "output_is_tied": self.output_is_tied,
            "tied_output_bytes": self.tied_output_bytes,
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


# Input-layer tensors besides token_embd (llama.cpp creates them with the input layer's
# buffer type, which is always host memory).
_INPUT_PREFIXES = ("token_embd", "token_types", "position_embd", "per_layer_token_embd")


def _placement_group(
    info: TensorInfo, n_layer_all: int, params: ModelParams | None = None
) -> int:
    """The layer whose buffer llama.cpp puts this tensor in: a block index, n_layer_all for
    the output layer, INPUT_GROUP or OTHER_GROUP. llama.cpp decides by the tensor's class
    in LLM_TENSOR_INFOS and the layer it is created with, not by its name: the
    architecture rules name the exceptions (BERT's token_embd_norm with layer 0, LFM2's
    output norm called token_embd_norm, Gemma 3n's altup projections in the output layer)."""
    name = info.name
    if params is not None:
        if name.startswith(params.layer0_tensors) and params.layer0_tensors:
            return 0
        if name.startswith(params.output_tensors) and params.output_tensors:
            return n_layer_all
    if name.startswith("blk."):
        head = name[4:].split(".", 1)[0]
        if head.isdigit() and int(head) < n_layer_all:
            return int(head)
        return OTHER_GROUP
    if name.startswith(_INPUT_PREFIXES):
        return INPUT_GROUP
    if name.startswith("output"):
        return n_layer_all
    return OTHER_GROUP


# ggml-cuda (also the HIP build for AMD): a quantized matrix's last row is padded to a
# multiple of 512 elements (MATRIX_ROW_PADDING, [TAG_ALLOC_SIZE_EXPAND]) and each tensor is
# aligned to 128 bytes in the buffer (ggml_backend_cuda_buffer_type_get_alignment).
CUDA_ROW_PADDING = 512
CUDA_ALIGNMENT = 128


def cuda_alloc_bytes(info: TensorInfo) -> int:
    """Bytes a weight takes in a CUDA/HIP model buffer."""
    size = info.nbytes
    kind = info.ggml_type
    if kind is not None and kind.block_size > 1 and info.shape:
        rest = info.shape[0] % CUDA_ROW_PADDING
        if rest:
            size += kind.row_bytes(CUDA_ROW_PADDING - rest)
    return -(-size // CUDA_ALIGNMENT) * CUDA_ALIGNMENT


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

    n_all = params.n_layer_all
    per_layer_weights = [0] * n_all
    per_layer_idle = [0] * n_all
    idle_share = (
        1 - params.n_expert_used / params.n_expert
        if params.n_expert and params.n_expert_used
        else 0.0
    )
    per_layer_repack = [0] * n_all
    per_layer_cuda = [0] * n_all
    per_layer_experts = [0] * n_all
    per_layer_experts_cuda = [0] * n_all
    output_layer_cuda = 0
    token_embd = output_layer = other = 0
    tied_output = tied_output_repack = 0
    tied = model.tensor("output.weight") is None and params.output_matrix
    repacked: set[str] = set()
    other_repack = 0
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    for info in model.tensors:
        if info.name in params.skipped_tensors:
            continue  # NextN/MTP tensors llama.cpp does not load (TENSOR_SKIP)
        group = _placement_group(info, n_all, params)
        moves = settings.repack and repackable(info)
        if moves:
            repacked.add(info.name)
        else:  # a repacked tensor leaves the mapped buffer (when its layer is on the CPU)
            key = (group, info.shard)
            low, high = spans.get(key, (info.offset, info.offset + info.nbytes))
            spans[key] = (min(low, info.offset), max(high, info.offset + info.nbytes))
        if 0 <= group < n_all:
            per_layer_weights[group] += info.nbytes
            per_layer_cuda[group] += cuda_alloc_bytes(info)
            per_layer_repack[group] += info.nbytes if moves else 0
            if "_exps." in info.name:
                per_layer_idle[group] += int(info.nbytes * idle_share)
                per_layer_experts[group] += info.nbytes
                per_layer_experts_cuda[group] += cuda_alloc_bytes(info)
            continue
        if moves:
            other_repack += info.nbytes
        if info.name == "token_embd.weight":
            token_embd += info.nbytes
            if tied:
                tied_output = info.nbytes
                output_layer_cuda += cuda_alloc_bytes(info)
                # On the CPU the tied output matrix is repacked when its type allows; the
                # mapped token_embd stays, read by GET_ROWS for the input.
                if settings.repack and repackable(info, as_matmul=True):
                    tied_output_repack = info.nbytes
        elif group == INPUT_GROUP:
            token_embd += info.nbytes
        elif group == n_all:
            output_layer += info.nbytes
            output_layer_cuda += cuda_alloc_bytes(info)
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
            per_layer_cuda[il],
            per_layer_experts[il],
            per_layer_experts_cuda[il],
        )
        for il in range(n_all)
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
        tied_output_bytes=tied_output,
        tied_output_repack_bytes=tied_output_repack,
        output_layer_cuda_bytes=output_layer_cuda,
        other_bytes=other,
        mapped_bytes=_mapped_bytes(
            [
                t
                for t in model.tensors
                if t.name not in repacked and t.name not in params.skipped_tensors
            ]
        ),
        repack_bytes=sum(per_layer_repack) + other_repack + tied_output_repack,
        kv_cache_bytes=sum(kv_per_layer),
        recurrent_bytes=sum(rs_per_layer),
        compute_bytes=compute.compute_buffer_bytes(params, ctx, settings, model),
        output_bytes=params.n_vocab * max(ctx.n_seq, 1) * 4,
        n_vocab=params.n_vocab,
        n_embd=params.n_embd,
        cpu_seconds_per_byte=_cpu_seconds_per_byte(model),
        notes=tuple(notes),
        spans=tuple(
            TensorSpan(group, shard, low, high) for (group, shard), (low, high) in spans.items()
        ),
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
    """K and V bytes per layer (llama_kv_cache's constructor, llama-kv-cache.cpp:165-234;
    [TAG_V_CACHE_VARIABLE]): the layers the architecture rules give a cache of their own,
    V rows as wide as the widest layer's when V is transposed, no V under MLA, plus the
    DSA indexer's K-only cache (llama_kv_cache_dsa)."""
    type_k, type_v = settings.type_k, settings.type_v
    v_max = params.n_embd_v_gqa_max if not ctx.flash_attn else 0
    sizes: list[int] = []
    for layer in params.layers:
        if not layer.kv:
            sizes.append(0)
            continue
        cells = (ctx.kv_size_swa if layer.swa else ctx.kv_size) * ctx.n_stream
        k = type_k.row_bytes(layer.n_embd_k_gqa) * cells
        v = 0 if params.mla else type_v.row_bytes(v_max or layer.n_embd_v_gqa) * cells
        indexer = type_k.row_bytes(layer.indexer_k) * cells if layer.indexer_k else 0
        sizes.append(k + v + indexer)
    return sizes


def _recurrent_bytes_per_layer(params: ModelParams, ctx: ContextShape) -> list[int]:
    """r and s state per recurrent layer, f32, one row per sequence (llama_memory_recurrent)."""
    rows = max(1, ctx.n_seq)
    per_layer = (params.recurrent_r + params.recurrent_s) * 4 * rows
    return [per_layer if layer.recurrent else 0 for layer in params.layers]
