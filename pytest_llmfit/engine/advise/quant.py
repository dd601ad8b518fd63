"""Ways out by quantization: the same model at another llama-quantize file type.

Role: each common file type smaller than the model's own is sized from the model's tensor
table with llama.cpp's per-tensor rules (:mod:`..quantize`), estimated once and planned on
the question's host. The largest file type reaching each level (fits at all, all layers on
the GPUs) is what matters: a smaller one that runs no better only loses precision, so file
types are tried largest first and bounds skip those that cannot run better than a larger one
already does. IQ1/IQ2 (and IQ3_XXS) files need an importance matrix: said in a note.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from ..context import CTX_PAD, Settings
from ..ftypes import COMMON_FTYPES
from ..ggml import GGML_TYPES_BY_NAME
from ..gguf import GGUFFile
from ..quantize import QuantizeError, allows_quantization, requires_imatrix, target_types
from .base import Alternative, Context, tier
from .search import fast_plan

KINDS: tuple[str, ...] = ("quant",)

IMATRIX_NOTE = "needs an importance matrix (llama-quantize --imatrix)"


class Sized(NamedTuple):
    """A file type's weights, without an estimate or a plan."""

    weights: int  # every tensor
    token_embd: int  # what stays on the host whatever is offloaded
    imatrix: bool  # llama-quantize needs an importance matrix for it


def size_at(model: GGUFFile, ftype: str) -> Sized:
    """The bytes of ``model``'s tensors at ``ftype``."""
    types = target_types(model.tensors, model.metadata, ftype)
    arch = model.architecture
    total = embd = 0
    imatrix = False
    for info in model.tensors:
        name = types[info.name]
        rows = 1
        for n in info.shape[1:]:
            rows *= n
        size = GGML_TYPES_BY_NAME[name.lower()].row_bytes(info.shape[0] if info.shape else 1)
        total += size * rows
        if info.name == "token_embd.weight":
            embd = size * rows
        elif not imatrix and requires_imatrix(info.name, name, ftype):
            imatrix = allows_quantization(info.name, info.shape, arch)
    return Sized(total, embd, imatrix)


def _variants(ctx: Context) -> list[Settings]:
    """The question's settings, then the same with a q8_0 and a q4_0 KV cache (flash
    attention on): a file type just too large for the cache it is asked with may fit with
    a smaller one."""
    out = [ctx.settings]
    if ctx.settings.type_k.type_size / ctx.settings.type_k.block_size >= 1.5:
        for name in ("q8_0", "q4_0"):
            out.append(replace(ctx.settings, cache_type_k=name, cache_type_v=name, flash_attn="on"))
    return out


def propose(ctx: Context) -> list[Alternative]:
    current = ctx.footprint.weights_bytes
    sized: list[tuple[Sized, str]] = []
    for ftype in COMMON_FTYPES:
        if ftype == ctx.quant:
            continue
        try:
            size = size_at(ctx.model, ftype)
        except QuantizeError:
            continue  # llama-quantize would refuse this model at this file type
        if size.weights < current:
            sized.append((size, ftype))
    sized.sort(reverse=True)
    variants = _variants(ctx)
    out: list[Alternative] = []
    reached = tier(ctx.base)
    for size, ftype in sized:
        if reached == 3:
            break  # every smaller file type runs no better than one already found
        found = None
        for settings in variants:
            if _in_reach(ctx, size, settings) > reached:
                found = _planned(ctx, ftype, settings, size)
                if found.tier > reached:
                    break
        if (found is None or found.tier <= reached) and _in_reach(ctx, size, None) > reached:
            found = _shorter(ctx, ftype, variants[-1 if len(variants) == 1 else 1], size, reached)
        if found is not None and found.tier > reached:
            reached = found.tier
            out.append(found)
    return out


def _in_reach(ctx: Context, size: Sized, settings: Settings | None) -> int:
    """The best level ``size`` could reach with ``settings`` (None: the shortest context),
    from bounds: every weight and the cache must fit somewhere, and all on the GPUs needs
    the GPUs to hold all but token_embd."""
    fp = ctx.footprint
    gpu_budget = sum(max(g.memory_free - ctx.headroom, 0) for g in ctx.host.gpus)
    host_budget = max(ctx.host.ram.available - ctx.headroom, 0)
    kv = 0
    if settings is not None:  # the cache scales with its type's bytes per element
        asked, given = ctx.settings.type_k, settings.type_k
        kv = fp.kv_cache_bytes * given.type_size * asked.block_size
        kv //= given.block_size * asked.type_size
    state = kv + fp.recurrent_bytes
    if size.weights + state + fp.output_bytes > gpu_budget + host_budget:
        return 0
    if ctx.host.gpus and size.weights - size.token_embd + state <= gpu_budget:
        return 3
    return 2 if ctx.host.gpus else 1


def _shorter(
    ctx: Context, ftype: str, settings: Settings, size: Sized, reached: int
) -> Alternative | None:
    """The file type at the longest power-of-two n_ctx (from 256) below the question's that
    runs better than the question, with ``settings``' cache: a bisection, one estimate a
    step (:mod:`.context` searches 256-token steps for the question's own file type)."""
    lengths = []
    n_ctx = CTX_PAD
    while n_ctx < ctx.footprint.context.n_ctx:
        lengths.append(n_ctx)
        n_ctx *= 2
    tried: dict[int, Alternative] = {}

    def at(i: int) -> Alternative:
        if i not in tried:
            tried[i] = _planned(ctx, ftype, replace(settings, n_ctx=lengths[i]), size)
        return tried[i]

    if not lengths or at(0).tier <= reached:
        return None
    low, high = 0, len(lengths) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if at(middle).tier > reached:
            low = middle
        else:
            high = middle - 1
    return at(low)


def _planned(ctx: Context, ftype: str, settings: Settings, size: Sized) -> Alternative:
    model = ctx.requantized(ftype)
    variant = ctx.estimate(model, settings, variant=f"quant:{ftype}")
    p = fast_plan(
        model, ctx.host, settings, variant, headroom=ctx.headroom, speed_model=ctx.speed_model
    )
    cache = settings.cache_type_k if settings.cache_type_k != ctx.settings.cache_type_k else None
    n_ctx = variant.context.n_ctx if settings.n_ctx != ctx.settings.n_ctx else None
    notes = [IMATRIX_NOTE] if size.imatrix else []
    label = ftype + (f" + {cache} KV" if cache else "") + (f" @ n_ctx {n_ctx}" if n_ctx else "")
    return Alternative.from_plan(
        "quant",
        label,
        p,
        quality=float(variant.weights_bytes),
        quant=ftype,
        cache_type=cache,
        flash_attn="on" if cache else None,
        n_ctx=n_ctx,
        notes=tuple(notes),
    )
