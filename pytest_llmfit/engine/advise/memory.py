"""Ways out by memory: the same host with more RAM, or GPUs with more VRAM.

Role: the two plain answers. ``ram``: the RAM that runs the model with the layers the GPUs
already hold (a partial offload at RAM speed, or the CPU alone). ``vram``: the VRAM per GPU
that holds every layer, a figure rather than a card to buy (:mod:`.gpus` names real cards).
Both are rounded up to whole GB, re-planned, and carry a spec string when the host's GPUs
are catalog cards, so ``--hardware`` gives the very same plan.
"""

from __future__ import annotations

from dataclasses import replace

from ...hardware.types import Host
from ...units import format_size
from ..plan import Plan, plan
from .base import Alternative, Context, tier
from .hosts import (
    GB,
    build,
    cards_spec,
    gpu_items,
    host_options,
    round_up_gb,
    size_token,
    used_option,
)
from .search import fast_plan

KINDS: tuple[str, ...] = ("ram", "vram")

TRIES = 4  # GB steps above the first estimate before giving up (rounding, compute shifts)


def propose(ctx: Context) -> list[Alternative]:
    out: list[Alternative] = []
    if tier(ctx.base) == 0:
        found = _more_ram(ctx)
        if found is not None:
            out.append(found)
    if ctx.host.gpus and not any(g.unified for g in ctx.host.gpus) and tier(ctx.base) < 3:
        found = _more_vram(ctx)
        if found is not None:
            out.append(found)
    return out


def _hypothetical(
    ctx: Context, *, ram: int | None = None, vram: int | None = None
) -> tuple[Host, str | None]:
    """The question's host with this RAM / this total per GPU, and its spec when one says it."""
    host = ctx.host
    items = gpu_items(host, ctx.catalog)
    used = used_option(host) if host.gpus else ""
    if items is not None and used is not None:
        spec = cards_spec(items) + used
        if vram is not None:
            spec += f", vram={size_token(vram)}"
        spec += ", " + host_options(host, ram=ram)
        return build(spec, ctx.catalog), spec
    if ram is not None:
        host = host.with_ram(total=ram, available=ram)
    if vram is not None:
        gpus = tuple(
            replace(g, memory_total=vram, memory_free=vram - (g.memory_total - g.memory_free))
            for g in host.gpus
        )
        host = replace(host, gpus=gpus)
    return host, None


def _fit(ctx: Context, host: Host) -> Plan:
    return fast_plan(
        ctx.model,
        host,
        ctx.settings,
        ctx.footprint,
        headroom=ctx.headroom,
        speed_model=ctx.speed_model,
    )


def _more_ram(ctx: Context) -> Alternative | None:
    need = round_up_gb(ctx.base.host.need_bytes + ctx.headroom)
    for step in range(TRIES):
        ram = need + step * GB
        host, spec = _hypothetical(ctx, ram=ram)
        p = _fit(ctx, host)
        if p.fits:
            return _alternative(ctx, "ram", f"{format_size(ram)} RAM", p, spec, float(ram))
    return None


def _more_vram(ctx: Context) -> Alternative | None:
    # Every layer on GPUs of one large size: the split is even, the largest share decides.
    big = replace(
        ctx.host,
        gpus=tuple(replace(g, memory_total=10**15, memory_free=10**15) for g in ctx.host.gpus),
    )
    full = plan(
        ctx.model,
        big,
        ctx.settings,
        headroom=ctx.headroom,
        footprint=ctx.footprint,
        speed_model=ctx.speed_model,
        n_gpu_layers=-1,
    )
    used = max(g.memory_total - g.memory_free for g in ctx.host.gpus)
    need = round_up_gb(max(d.need_bytes for d in full.devices) + ctx.headroom + used)
    for step in range(TRIES):
        vram = need + step * GB
        host, spec = _hypothetical(ctx, vram=vram)
        p = _fit(ctx, host)
        if tier(p) == 3:
            label = f"{format_size(vram)} VRAM per GPU"
            alt = _alternative(ctx, "vram", label, p, spec, float(vram * len(ctx.host.gpus)))
            return replace(alt, notes=("a figure, not a card: see the gpus alternatives",))
    return None


def _alternative(
    ctx: Context, kind: str, label: str, p: Plan, spec: str | None, cost: float
) -> Alternative:
    return Alternative.from_plan(
        kind,
        label,
        p,
        cost=cost,
        hardware=spec,
    )
