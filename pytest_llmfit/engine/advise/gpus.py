"""Ways out by hardware: the fewest cards of each catalog GPU that run the model.

Role: for every GPU card of the catalog (or the ids a user names), two counts on the
question's own RAM, RAM bandwidth and CPU, up to one machine's worth (:data:`MAX_CARDS`):
the fewest cards that hold every layer, and the fewest that run it at all with a partial
offload. Host RAM must hold what the GPUs do not, whatever the cards: the fewest layers
on GPUs for which it does (``m``) is found once, and a count of cards runs the model iff
they hold ``m`` layers. Counts start from a lower bound (the weights and the cache must fit
the cards' memory) and step to the fewest, so one card fewer does not reach the same
level. Cards with the same memory and bandwidth are tried once; a card slower and dearer
than another reaching the same level is dropped before its plan is made. Each alternative
carries a spec string (``3x h100-sxm, ram=64GB, ram_bw=60GB/s, cpu=8``) and its speed.
"""

from __future__ import annotations

from ...errors import ConfigError
from ...hardware.catalog_schema import Profile
from ...hardware.types import Host
from ..plan import Plan, placement_fits
from .base import Alternative, Context, tier
from .hosts import build, host_options
from .search import fast_plan

KINDS: tuple[str, ...] = ("gpus",)

MAX_CARDS = 8  # llama.cpp splits layers over one machine's GPUs: 8 is the usual most


def cards(ctx: Context) -> list[Profile]:
    """The cards to try: the named ids, else every GPU card of the catalog, one of each
    memory size and bandwidth."""
    if ctx.gpu_ids is not None:
        named = [ctx.catalog.find(name) for name in ctx.gpu_ids]
        for name, p in zip(ctx.gpu_ids, named, strict=True):
            if p.kind != "gpu" or p.unified:
                raise ConfigError(name, "a GPU card of the catalog", source="gpu_ids (--gpu)")
        return named
    seen: set[tuple[int, float, str]] = set()
    out: list[Profile] = []
    for p in ctx.catalog.profiles:
        key = (p.memory, p.bandwidth, p.vendor)
        if p.kind == "gpu" and not p.unified and key not in seen:
            seen.add(key)
            out.append(p)
    return out


class _Card:
    """One card's hosts (by count) and the placement checks on them."""

    def __init__(self, ctx: Context, card: Profile, options: str) -> None:
        self.ctx, self.card, self.options = ctx, card, options
        self.hosts: dict[int, Host] = {}

    def spec(self, count: int) -> str:
        return f"{count}x {self.card.id}, {self.options}"

    def host(self, count: int) -> Host:
        if count not in self.hosts:
            self.hosts[count] = build(self.spec(count), self.ctx.catalog)
        return self.hosts[count]

    def hold(self, count: int, layers: int) -> bool:
        fp = self.ctx.footprint
        return placement_fits(fp, self.host(count), layers, headroom=self.ctx.headroom)[0]

    def fewest(self, layers: int, start: int) -> int | None:
        """The fewest cards (at most MAX_CARDS) that hold ``layers`` layers."""
        count = max(start, 1)
        while count <= MAX_CARDS and not self.hold(count, layers):
            count += 1
        if count > MAX_CARDS:
            return None
        while count > 1 and self.hold(count - 1, layers):
            count -= 1  # the bound was not tight: step down to the fewest
        return count


def propose(ctx: Context) -> list[Alternative]:
    base = tier(ctx.base)
    found = cards(ctx)
    if base == 3 or not found:
        return []
    fp = ctx.footprint
    options = host_options(ctx.host)
    total = fp.n_layer + 1
    probe = build(f"{found[0].id}, {options}", ctx.catalog)

    def host_holds(layers: int) -> bool:
        return placement_fits(fp, probe, layers, headroom=ctx.headroom)[1]

    if not host_holds(total):
        return []  # the host cannot hold even token_embd and the logits
    low, high = 1, total  # the fewest layers on GPUs that leave the host enough
    while low < high:
        middle = (low + high) // 2
        if host_holds(middle):
            high = middle
        else:
            low = middle + 1
    blocks = sum(layer.cuda_bytes + layer.kv_bytes + layer.recurrent_bytes for layer in fp.layers)
    on_gpus = blocks + fp.output_layer_cuda_bytes
    host_budget = max(ctx.host.ram.available - ctx.headroom, 0)
    candidates: list[tuple[int, int, Profile]] = []  # (level, count, card)
    for card in found:
        budget = card.memory - ctx.headroom - fp.compute_bytes
        if budget <= 0:
            continue
        tries = _Card(ctx, card, options)
        full = tries.fewest(total, -(-on_gpus // budget))
        if full is not None:
            candidates.append((3, full, card))
        if base < 2 and high < total:
            least = tries.fewest(high, -(-(fp.total_bytes - host_budget) // budget))
            if least is not None and least != full:
                candidates.append((2, least, card))
    out = []
    for level, count, card in _unbeaten(candidates):
        host = build(f"{count}x {card.id}, {options}", ctx.catalog)
        p = fast_plan(
            ctx.model, host, ctx.settings, fp, headroom=ctx.headroom, speed_model=ctx.speed_model
        )
        if tier(p) >= level:
            out.append(_alternative(card, count, p, options))
    return out


def _unbeaten(candidates: list[tuple[int, int, Profile]]) -> list[tuple[int, int, Profile]]:
    """Drop, before planning, a candidate another reaches its level (or better) with no more
    memory bought and no less bandwidth: slower and dearer."""

    def beats(a: tuple[int, int, Profile], b: tuple[int, int, Profile]) -> bool:
        cost_a, cost_b = a[1] * a[2].memory, b[1] * b[2].memory
        if a[0] < b[0] or cost_a > cost_b:
            return False
        if a[0] > b[0]:
            return True  # all on GPUs against a partial offload: faster for no more memory
        faster = a[2].bandwidth >= b[2].bandwidth
        return faster and (cost_a < cost_b or a[2].bandwidth > b[2].bandwidth)

    return [c for c in candidates if not any(beats(other, c) for other in candidates)]


def _alternative(card: Profile, count: int, p: Plan, options: str) -> Alternative:
    label = f"{count}x {card.id}"
    return Alternative.from_plan(
        "gpus",
        label,
        p,
        cost=float(count * card.memory),
        gpu=card.id,
        count=count,
        hardware=f"{label}, {options}",
    )
