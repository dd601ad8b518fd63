"""The compute buffer: the worst-case graph of one ubatch, as ggml's allocator packs it.

llama.cpp reserves its compute buffer by allocating the prompt-processing graph for a full
ubatch (n_ubatch tokens, n_ubatch outputs) against a full KV cache. ggml-alloc frees each
tensor after its last consumer and reuses memory in place for element-wise ops, so the
buffer is the largest set of tensors alive at once, plus the graph inputs, which stay
alive throughout. That peak is one of three phases of a layer or of the head:

- attention: without flash attention the f32 score matrix [n_kv, n_ubatch, n_head] (softmax
  runs in place) beside the attention output; with flash attention only q and the output;
- feed-forward: gate, up and their GLU product [n_ff, n_ubatch] (MoE: per used expert);
- head: the logits [n_vocab, n_ubatch] f32 beside the normed hidden state.

Encoders (architecture memory "none") have no cache: attention runs over the ubatch itself
([n_ubatch, n_ubatch] masks and scores, llama-graph.cpp:2757-2781) and the graph ends at the
pooled embeddings, without logits.
"""

from __future__ import annotations

from .arch import LayerShape, ModelParams
from .arch.rules import NONE
from .context import ContextShape, Settings
from .gguf import GGUFFile

F32 = 4
F16 = 2
ALIGN = 32  # TENSOR_ALIGNMENT of the CPU buffer type


def _a(n_bytes: int) -> int:
    return -(-n_bytes // ALIGN) * ALIGN


def compute_buffer_bytes(
    params: ModelParams, ctx: ContextShape, settings: Settings, model: GGUFFile
) -> int:
    """Bytes of the compute buffer of a device that runs every layer and the head."""
    u = ctx.n_ubatch
    n_out = min(u, ctx.n_batch)
    embd = params.n_embd
    hidden = _a(embd * u * F32)
    mask_type = F16 if ctx.flash_attn else F32

    # Graph inputs live for the whole graph: token ids, positions, one KQ mask per cache kind.
    attn_layers = [layer for layer in params.layers[: params.n_layer] if layer.attention]
    encoder = params.memory == NONE
    n_kv_full = u if encoder else ctx.kv_size * ctx.n_stream
    n_kv_swa = u if encoder else ctx.kv_size_swa * ctx.n_stream
    inputs = _a(u * 4) * 2
    if attn_layers:
        inputs += _a(n_kv_full * u * mask_type)
        if any(layer.swa for layer in attn_layers):  # SWA layers have a mask of their own
            inputs += _a(n_kv_swa * u * mask_type)

    # Layer phases: the inputs (masks included) are alive beside the layer's own tensors.
    gated = _gated(params, model)
    peak = 0
    for layer in attn_layers:
        n_kv = n_kv_swa if layer.swa else n_kv_full
        peak = max(peak, _attention_bytes(params, layer, n_kv, u, ctx, settings))
    for layer in params.layers[: params.n_layer]:
        peak = max(peak, _ffn_bytes(params, layer, u, gated))
    layers = inputs + hidden + peak
    if encoder:  # the graph ends at the (pooled) embeddings: no logits
        return layers
    # The head runs after the last layer, when the masks are dead: the last hidden state, its
    # norm and the logits of every output row. The logits land after whatever the last
    # layer left in place: one more hidden state for dense models, the per-expert outputs
    # [n_embd, n_used + n_shared, n_ubatch] for MoE (both fitted on the recorded zoo).
    lingering = 1
    if params.n_expert and params.n_expert_used:
        lingering += params.n_expert_used + params.n_expert_shared
    head = (2 + lingering) * hidden + _a(params.n_vocab * n_out * F32)
    return max(layers, head)


def _attention_bytes(
    params: ModelParams,
    layer: LayerShape,
    n_kv: int,
    u: int,
    ctx: ContextShape,
    settings: Settings,
) -> int:
    heads = layer.n_head
    q = _a(layer.head_dim_k * heads * u * F32)
    out = _a(layer.head_dim_v * heads * u * F32)
    if ctx.flash_attn:
        casts = 0
        if settings.cache_type_k == "f32":
            casts += _a(layer.n_embd_k_gqa * n_kv * F16)
        if settings.cache_type_v == "f32":
            casts += _a(layer.n_embd_v_gqa * n_kv * F16)
        return q + out + casts
    # Without flash attention the f32 scores [n_kv, n_ubatch, n_head] dominate; beside them
    # live the residual and normed input, q before and after RoPE, the attention output and
    # this ubatch's K and V rows (fitted on the recorded zoo: within 2 MiB of llama.cpp).
    scores = _a(n_kv * u * heads * F32)
    hidden = _a(params.n_embd * u * F32)
    kv_rows = _a(layer.n_embd_k_gqa * u * F32) + _a(layer.n_embd_v_gqa * u * F32)
    return scores + hidden + 2 * q + out + kv_rows


def _gated(params: ModelParams, model: GGUFFile) -> tuple[bool, bool]:
    """Whether the dense FFN and the experts are gated (GLU): a gate tensor, or an up
    projection twice the FFN width (gate and up packed: phi3, ModernBERT, Jina v2)."""
    dense = params.gated_ffn
    if not dense:
        for il, layer in enumerate(params.layers[: params.n_layer]):
            up = model.tensor(f"blk.{il}.ffn_up.weight")
            if (
                up is not None
                and len(up.shape) > 1
                and layer.n_ff
                and up.shape[1] == 2 * layer.n_ff
            ):
                dense = True
                break
    experts = any(
        t.name.endswith(("ffn_gate_exps.weight", "ffn_gate_up_exps.weight")) for t in model.tensors
    )
    return dense, experts


def _ffn_bytes(params: ModelParams, layer: LayerShape, u: int, gated: tuple[bool, bool]) -> int:
    # Beside gate, up and their GLU product live the FFN input (kept for the residual), its
    # norm and, after ggml-alloc's packing, room for about two more hidden states (fitted
    # on the recorded zoo: dense models within 2 MiB at n_ubatch 512).
    embd = params.n_embd
    hidden = _a(embd * u * F32)
    moe = (
        params.n_expert
        and params.n_ff_exp
        and (layer.moe or not any(lay.moe for lay in params.layers))
    )
    if moe:
        used = max(params.n_expert_used, 1)
        router = 2 * _a(params.n_expert * u * F32)
        experts = (3 if gated[1] else 1) * _a(params.n_ff_exp * used * u * F32)
        shared = 3 * _a(params.n_ff_shexp * u * F32) if params.n_ff_shexp else 0
        return 3 * hidden + router + max(experts, shared)
    # Gated FFNs hold gate, up and their product; plain ones the up projection alone
    # (the activation runs in place).
    intermediates = 3 if gated[0] else 1
    return 3 * hidden + intermediates * _a(layer.n_ff * u * F32)
