"""Ordering the ways out: better than the question, not beaten by another, fastest first.

Role: an alternative is kept when it runs better than the question's own plan (it fits where
the question does not, or puts more on the GPUs) and no alternative of its kind beats it: one
that runs at least as well, keeps at least as much (``quality``: precision, context, model
size), buys no more (``cost``: memory), and, for hardware, is at least as fast. What is
left is ordered as the issue asks: those that fit first, then by predicted decode speed.
The short forms (``helps`` lines, the end of a skip reason) come from that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .base import HARDWARE_KINDS, Alternative

SAME_MODEL_KINDS = frozenset({"quant", "moe_offload", "context", "cache_type"})


def beats(a: Alternative, b: Alternative) -> bool:
    """Whether ``a`` makes ``b`` pointless: same kind, no worse on every count, and better
    on one (or equal on all and listed first)."""
    if a.kind != b.kind or a is b:
        return False
    speed_a = a.tokens_per_second or 0.0
    speed_b = b.tokens_per_second or 0.0
    no_worse = (
        a.tier >= b.tier
        and a.quality >= b.quality
        and a.cost <= b.cost
        and (a.kind not in HARDWARE_KINDS or speed_a >= speed_b)
    )
    if not no_worse:
        return False
    better = (
        a.tier > b.tier
        or a.quality > b.quality
        or a.cost < b.cost
        or (a.kind in HARDWARE_KINDS and speed_a > speed_b)
    )
    return better


def sort_key(a: Alternative) -> tuple[bool, float, int, str]:
    return (not a.fits, -(a.tokens_per_second or 0.0), -a.tier, a.label)


def rank(alternatives: Iterable[Alternative], base_tier: int) -> tuple[Alternative, ...]:
    """The alternatives better than the question (``base_tier``), none beaten, in order."""
    better = [a for a in alternatives if a.tier > base_tier]
    kept = [a for a in better if not any(beats(b, a) for b in better)]
    unique: dict[tuple[str, str], Alternative] = {}
    for a in kept:
        unique.setdefault((a.kind, a.label), a)
    return tuple(sorted(unique.values(), key=sort_key))


def best_of_each_kind(ranked: Sequence[Alternative]) -> list[Alternative]:
    """The first (best) alternative of each kind, in rank order: the ``helps`` lines."""
    seen: set[str] = set()
    out: list[Alternative] = []
    for a in ranked:
        if a.kind not in seen:
            seen.add(a.kind)
            out.append(a)
    return out


def ways_out(ranked: Sequence[Alternative]) -> str:
    """The best change to how the model runs (its file type, experts, context, cache; else a
    smaller model of its family) and the best hardware, as the end of a skip reason: ``fits
    as IQ1_M or on 3x h100-sxm``; "" when none fits."""
    fitting = [a for a in ranked if a.fits]
    soft = next((a for a in fitting if a.kind in SAME_MODEL_KINDS), None)
    if soft is None:
        soft = next((a for a in fitting if a.kind == "model"), None)
    hard = next((a for a in fitting if a.kind == "gpus"), None)
    if hard is None:
        hard = next((a for a in fitting if a.kind == "ram"), None)
    phrases = [a.phrase() for a in (soft, hard) if a is not None]
    return "fits " + " or ".join(phrases) if phrases else ""
