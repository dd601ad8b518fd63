"""Ways out by context: the longest n_ctx that runs better, and a quantized KV cache.

Role: the KV cache (and the compute buffer) grow with n_ctx. For each level the question
does not reach (fits at all, all layers on the GPUs) the longest n_ctx reaching it is found
by bisection over llama.cpp's 256-token steps; one estimate per step, none when the weights
alone rule the level out. A q8_0 or q4_0 cache (with flash attention, which a quantized V
cache needs) at the question's n_ctx is the other way: half or a quarter of the f16 cache.
"""

from __future__ import annotations

from dataclasses import replace

from ..context import CTX_PAD, Settings
from ..estimate import Footprint
from ..ggml import kv_cache_type
from ..plan import Plan
from .base import Alternative, Context, tier
from .search import fast_plan

KINDS: tuple[str, ...] = ("context", "cache_type")

CACHE_TYPES = ("q8_0", "q4_0")  # tried in this order, each with flash attention on


def _plan(ctx: Context, settings: Settings, variant: str) -> tuple[Footprint, Plan]:
    fp = ctx.estimate(ctx.model, settings, variant=variant)
    p = fast_plan(
        ctx.model, ctx.host, settings, fp, headroom=ctx.headroom, speed_model=ctx.speed_model
    )
    return fp, p


def _levels_in_reach(ctx: Context) -> int:
    """The best level a smaller cache could reach, from the weights alone (no estimate)."""
    fp = ctx.footprint
    gpu_budget = sum(max(g.memory_free - ctx.headroom, 0) for g in ctx.host.gpus)
    host_budget = max(ctx.host.ram.available - ctx.headroom, 0)
    if fp.weights_bytes + fp.output_bytes > gpu_budget + host_budget:
        return 0
    if ctx.host.gpus and fp.weights_bytes - fp.token_embd_bytes <= gpu_budget:
        return 3
    return 2 if ctx.host.gpus else 1


def propose(ctx: Context) -> list[Alternative]:
    base = tier(ctx.base)
    reach = _levels_in_reach(ctx)
    if base == 3 or reach <= base:
        return []
    return _contexts(ctx, base, reach) + _caches(ctx, base)


def _contexts(ctx: Context, base: int, reach: int) -> list[Alternative]:
    n_ctx = ctx.footprint.context.n_ctx
    steps = n_ctx // CTX_PAD - 1  # n_ctx = 256 * k for k in 1..steps, all shorter
    if steps < 1:
        return []
    plans: dict[int, tuple[Footprint, Plan]] = {}

    def at(k: int) -> tuple[Footprint, Plan]:
        if k not in plans:
            settings = replace(ctx.settings, n_ctx=k * CTX_PAD)
            plans[k] = _plan(ctx, settings, "")
        return plans[k]

    best_short = tier(at(1)[1])
    out: list[Alternative] = []
    for level in range(base + 1, min(reach, best_short) + 1):
        low, high = 1, steps  # the level is reached at `low`
        while low < high:
            middle = (low + high + 1) // 2
            if tier(at(middle)[1]) >= level:
                low = middle
            else:
                high = middle - 1
        fp, p = at(low)
        if out and out[-1].n_ctx == fp.context.n_ctx:
            out[-1] = _alternative("context", f"n_ctx {fp.context.n_ctx}", fp, p)
        else:
            out.append(_alternative("context", f"n_ctx {fp.context.n_ctx}", fp, p))
    return out


def _caches(ctx: Context, base: int) -> list[Alternative]:
    settings = ctx.settings
    current = min(settings.type_k.type_size / settings.type_k.block_size, 2.0)
    out: list[Alternative] = []
    for name in CACHE_TYPES:
        kind = kv_cache_type(name)
        if kind.type_size / kind.block_size >= current:
            continue
        trial = replace(settings, cache_type_k=name, cache_type_v=name, flash_attn="on")
        fp, p = _plan(ctx, trial, "")
        if tier(p) > base:
            out.append(_alternative("cache_type", f"a {name} KV cache", fp, p))
            if tier(p) == 3:
                break
    return out


def _alternative(kind: str, label: str, fp: Footprint, p: Plan) -> Alternative:
    settings = fp.settings
    quality = (
        float(fp.context.n_ctx)
        if kind == "context"
        else 8.0 * settings.type_k.type_size / settings.type_k.block_size
    )
    return Alternative.from_plan(
        kind,
        label,
        p,
        quality=quality,
        n_ctx=fp.context.n_ctx,
        cache_type=settings.cache_type_k if kind == "cache_type" else None,
        flash_attn="on" if kind == "cache_type" else None,
    )
