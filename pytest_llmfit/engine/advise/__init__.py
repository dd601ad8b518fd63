"""The ways out: what would make a model fit (or run faster), computed from the file.

When a plan says no (or only with a partial offload), :func:`advise` answers the next
question with alternatives planned by the same engine, each reproducible: other
quantizations of the same tensor table (:mod:`.quant`), the fewest cards of each catalog GPU
(:mod:`.gpus`), MoE experts in RAM (:mod:`.moe`), a shorter context or a quantized KV cache
(:mod:`.context`), a smaller model of the same family (:mod:`.sibling`), more RAM or VRAM
(:mod:`.memory`); :mod:`.rank` keeps those that help and orders them. :mod:`.base` holds
the :class:`Alternative` value and the protocol; :mod:`.search` the fast form of the
planner's search. The planner does not import this package; the CLI and the pytest glue do.

Advice is cached per model, host and settings (:class:`AdviceCache`), Footprints per model
variant and settings (a host does not change them), requantized headers per file type.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from ...hardware.catalog import Catalog, builtin_catalog
from ...hardware.types import Host
from ..context import Settings
from ..gguf import GGUFFile
from ..plan import DEFAULT_HEADROOM, Plan, plan
from ..quantize import guess_ftype
from ..speed import SpeedModel
from . import context, gpus, memory, moe, quant, sibling
from .base import KINDS, AdviceCache, Alternative, Context, WayOut, model_key, tier
from .rank import best_of_each_kind, rank, ways_out

__all__ = [
    "KINDS",
    "WAYS",
    "Advice",
    "AdviceCache",
    "Alternative",
    "WayOut",
    "advise",
    "with_suggestions",
]

WAYS: tuple[WayOut, ...] = (quant, gpus, moe, context, sibling, memory)
DEFAULT_CACHE = AdviceCache()
HELPS = 6  # best-of-kind lines a plan shows


@dataclass(frozen=True)
class Advice:
    """The question's plan, its ranked ways out, and how long finding them took."""

    plan: Plan
    alternatives: tuple[Alternative, ...]
    seconds: float = 0.0

    def fitting(self) -> tuple[Alternative, ...]:
        return tuple(a for a in self.alternatives if a.fits)

    def suggestions(self, limit: int = HELPS) -> tuple[str, ...]:
        """One line per kind, best kinds first: what ``plan`` prints as ``helps``."""
        return tuple(a.describe() for a in best_of_each_kind(self.alternatives)[:limit])

    def ways_out(self) -> str:
        """``fits as IQ1_M or on 3x h100-sxm``: the end of a skip reason ("" if none)."""
        return ways_out(self.alternatives)

    def to_dict(self) -> dict[str, Any]:
        return {
            "alternatives": [a.to_dict() for a in self.alternatives],
            "advise_seconds": round(self.seconds, 3),
        }


def advise(
    model: GGUFFile,
    host: Host,
    settings: Settings | None = None,
    *,
    headroom: int = DEFAULT_HEADROOM,
    speed_model: SpeedModel | None = None,
    base: Plan | None = None,
    kinds: Iterable[str] | None = None,
    gpu_ids: Iterable[str] | None = None,
    catalog: Catalog | None = None,
    cache: AdviceCache | None = None,
) -> Advice:
    """The ways out for ``model`` on ``host``: ranked :class:`Alternative` values.

    ``base`` is the question's plan when the caller has it (else planned here, searching
    n_gpu_layers: a given offload is not what the alternatives change). ``kinds`` limits the
    ways tried (default: all of :data:`KINDS`); ``gpu_ids`` the catalog GPUs tried for
    ``gpus`` (default: every card). Nothing is proposed for a plan with every layer on GPU.
    """
    started = time.perf_counter()
    settings = (settings or Settings()).validated()
    speed = speed_model or SpeedModel()
    cat = catalog or builtin_catalog()
    store = cache if cache is not None else DEFAULT_CACHE
    wanted = tuple(kinds) if kinds is not None else KINDS
    names = tuple(gpu_ids) if gpu_ids is not None else None
    store.remember(model)
    key = (
        model_key(model),
        host,
        settings,
        headroom,
        repr(speed),
        wanted,
        names,
        id(cat),
    )
    found = store.advice.get(key)
    if isinstance(found, Advice):
        return found
    if base is None or base.given or base.n_cpu_moe:
        fp = base.footprint if base is not None else None
        base = plan(model, host, settings, headroom=headroom, footprint=fp, speed_model=speed)
    ctx = Context(
        model=model,
        host=host,
        settings=settings,
        headroom=headroom,
        speed_model=speed,
        catalog=cat,
        base=base,
        cache=store,
        gpu_ids=names,
        quant=guess_ftype(model),
    )
    proposed: list[Alternative] = []
    if tier(base) < 3:
        for way in WAYS:
            if any(kind in wanted for kind in way.KINDS):
                proposed.extend(a for a in way.propose(ctx) if a.kind in wanted)
    result = Advice(
        plan=base,
        alternatives=rank(proposed, tier(base)),
        seconds=time.perf_counter() - started,
    )
    store.advice[key] = result
    return result


def with_suggestions(
    model: GGUFFile,
    host: Host,
    settings: Settings | None = None,
    *,
    suggest: bool = True,
    **options: Any,
) -> Plan:
    """``plan(model, host, settings, **options)`` with ``suggestions`` filled from the
    advice (the ``helps`` lines), for callers that read ``Plan.suggestions``. This is the
    top-level ``pytest_llmfit.plan``; ``suggest=False`` skips the advice."""
    p = plan(model, host, settings, **options)
    if not suggest or p.given or (p.fits and p.mode == "gpu"):
        return p
    headroom = options.get("headroom", DEFAULT_HEADROOM)
    advice = advise(
        model, host, settings, headroom=headroom, speed_model=options.get("speed_model"), base=p
    )
    return replace(p, suggestions=advice.suggestions())
