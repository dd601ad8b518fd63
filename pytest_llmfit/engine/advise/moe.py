"""Ways out for mixture-of-experts models: the routed experts of N blocks in host RAM.

Role: llama.cpp's ``--n-cpu-moe N`` (``-ot exps=CPU`` for every block), what its ``--fit``
tries first: attention, shared weights and the KV cache stay on the GPUs with every layer,
while the experts of blocks 0..N-1 stay mapped in RAM, where a token reads only its active
ones. The smallest N that fits with every layer on the GPUs is found by bisection (VRAM
falls as N grows; RAM rises, so the smallest N is also the one the host most likely holds),
then planned exactly as ``plan --n-cpu-moe N`` does.
"""

from __future__ import annotations

from ..plan import placement_fits
from .base import Alternative, Context, tier
from .search import fast_plan

KINDS: tuple[str, ...] = ("moe_offload",)


def propose(ctx: Context) -> list[Alternative]:
    fp = ctx.footprint
    if tier(ctx.base) == 3 or not ctx.host.gpus:
        return []
    if not any(layer.expert_bytes for layer in fp.layers):
        return []

    def all_on_gpu(n: int) -> bool:
        return placement_fits(fp, ctx.host, -1, headroom=ctx.headroom, n_cpu_moe=n)[0]

    n_layer = fp.n_layer
    if not all_on_gpu(n_layer):
        return []  # attention and shared weights alone do not fit the GPUs
    low, high = 0, n_layer  # the GPUs hold everything with `high` blocks' experts in RAM
    while low < high:
        middle = (low + high) // 2
        if all_on_gpu(middle):
            high = middle
        else:
            low = middle + 1
    p = fast_plan(
        ctx.model,
        ctx.host,
        ctx.settings,
        fp,
        headroom=ctx.headroom,
        speed_model=ctx.speed_model,
        n_cpu_moe=high,
    )
    if tier(p) <= tier(ctx.base):
        return []
    label = "-ot exps=CPU" if high == n_layer else f"--n-cpu-moe {high}"
    return [
        Alternative.from_plan(
            "moe_offload",
            label,
            p,
            quality=float(-high),
            n_cpu_moe=high,
            notes=("llama.cpp's --n-cpu-moe; llama-cpp-python's Llama() cannot load it this way",),
        )
    ]
