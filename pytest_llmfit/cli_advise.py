"""The command line's ways out: ``plan``'s ``helps`` lines and ``alternatives``, and ``advise``.

Role: the glue between :mod:`pytest_llmfit.cli` and :mod:`pytest_llmfit.engine.advise`:
the ``--quant`` and ``--gpu`` options, the model as another file type, the advice for a plan,
and the ranked table ``pytest-llmfit advise MODEL`` prints (``--json`` for machines). Kept
apart so the command line's main module stays a map of the commands.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .engine.context import Settings
from .engine.gguf import GGUFFile
from .engine.plan import Plan
from .hardware.types import Host
from .units import format_rate, format_size

if TYPE_CHECKING:
    from .engine.advise import Advice
    from .hardware.catalog import Catalog

KIND_HELP = "quant, gpus, moe_offload, context, cache_type, model, ram, vram"


def add_quant_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quant",
        default=None,
        metavar="FTYPE",
        help="plan the model as llama-quantize would write it at this file type "
        "(Q8_0 ... Q2_K, IQ4_XS ... IQ1_S, the _S/_M/_L mixes)",
    )


def add_advice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu",
        action="append",
        default=None,
        metavar="ID",
        help="catalog GPUs to try as hardware ways out (repeatable; default every card)",
    )


def requantized(model: GGUFFile, quant: str | None) -> GGUFFile:
    """``model`` as llama-quantize would write it at ``quant`` (unchanged for None)."""
    if not quant:
        return model
    from .engine.ftypes import ftype_name
    from .engine.quantize import requantize

    return requantize(model, ftype_name(quant, source="--quant"))


def advice_for(
    model: GGUFFile,
    host: Host,
    settings: Settings,
    result: Plan,
    *,
    headroom: int,
    gpu_ids: Sequence[str] | None,
    catalog: Catalog | None,
    kinds: Sequence[str] | None = None,
) -> Advice:
    from .engine.advise import advise

    return advise(
        model,
        host,
        settings,
        headroom=headroom,
        base=result,
        gpu_ids=gpu_ids,
        catalog=catalog,
        kinds=kinds,
    )


def plan_with_advice(
    model: GGUFFile,
    host: Host,
    settings: Settings,
    result: Plan,
    *,
    headroom: int,
    gpu_ids: Sequence[str] | None,
    catalog: Catalog | None,
) -> tuple[Plan, list[dict[str, Any]]]:
    """The plan with its ``helps`` lines, and the alternatives as JSON (none for a given
    offload, or a plan with every layer on GPU)."""
    if result.given or (result.fits and result.mode == "gpu"):
        return result, []
    advice = advice_for(
        model, host, settings, result, headroom=headroom, gpu_ids=gpu_ids, catalog=catalog
    )
    with_tips = replace(result, suggestions=advice.suggestions())
    return with_tips, [a.to_dict() for a in advice.alternatives]


def run_advise(
    args: argparse.Namespace,
    model: GGUFFile,
    host: Host,
    settings: Settings,
    headroom: int,
    catalog: Catalog | None,
    summary: dict[str, Any],
) -> tuple[dict[str, Any], str, int]:
    """``pytest-llmfit advise``: the JSON, the table, and the exit status (0 when the model
    fits or a way out does, 1 otherwise)."""
    from .engine.plan import plan

    result = plan(model, host, settings, headroom=headroom)
    advice = advice_for(
        model,
        host,
        settings,
        result,
        headroom=headroom,
        gpu_ids=args.gpu,
        catalog=catalog,
        kinds=parse_kinds(args.kinds),
    )
    data = {"model": summary, "host": host.describe(), **result.to_dict(), **advice.to_dict()}
    text = advice_table(advice, title=f"{model.path} on {host.describe()}")
    return data, text, 0 if result.fits or advice.fitting() else 1


def parse_kinds(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    from .engine.advise import KINDS
    from .errors import ConfigError

    kinds = tuple(part.strip() for part in text.split(",") if part.strip())
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(text, f"a list of kinds ({KIND_HELP})", source="--kinds")
    return kinds


def advice_table(advice: Advice, *, title: str) -> str:
    """The ranked alternatives as a table, then each one's reproducible settings."""
    p = advice.plan
    verdict = {"gpu": "fits on GPU", "partial": "fits with partial offload", "cpu": "fits on CPU"}
    lines = [
        f"{title}: {verdict.get(p.mode, 'does NOT fit') if p.fits else 'does NOT fit'}, "
        f"n_gpu_layers {p.n_gpu_layers}/{p.n_layers_total}, "
        f"{format_rate(p.tokens_per_second)} tokens/s",
    ]
    if not advice.alternatives:
        lines.append("no way out found" if not (p.fits and p.mode == "gpu") else "nothing to do")
        return "\n".join(lines)
    header = ("#", "kind", "way out", "fits", "mode", "ngl", "needs", "tok/s")
    rows = [
        (
            str(i),
            a.kind,
            a.label,
            "yes" if a.fits else "no",
            a.mode,
            f"{a.n_gpu_layers}/{a.n_layers_total}",
            format_size(a.total_bytes),
            format_rate(a.tokens_per_second),
        )
        for i, a in enumerate(advice.alternatives, 1)
    ]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    right = {0, 5, 6, 7}

    def cells(row: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if c in right else v.ljust(w)
            for c, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    lines.append(cells(header))
    lines.extend(cells(r) for r in rows)
    lines.append("")
    for i, a in enumerate(advice.alternatives, 1):
        lines.append(f"{i:>2}. {a.describe()}")
        how = _how(a)
        if how:
            lines.append(f"    {how}")
    lines.append(f"advice took {advice.seconds:.2f} s")
    return "\n".join(lines)


def _how(a: Any) -> str:
    """What re-plans an alternative: options to add to the question's ``plan`` command."""
    parts = []
    if a.model:
        parts.append(f"pytest-llmfit twin {a.model} {a.model}.gguf --quant {a.quant.lower()},")
        parts.append(f"then plan {a.model}.gguf with the same options")
    elif a.quant:
        parts.append(f"plan with --quant {a.quant}")
    else:
        parts.append("plan with")
    if a.hardware:
        parts.append(f"--hardware {a.hardware!r}")
    if a.n_cpu_moe is not None:
        parts.append(f"--n-cpu-moe {a.n_cpu_moe}")
    if a.n_ctx is not None:
        parts.append(f"--ctx {a.n_ctx}")
    if a.cache_type:
        parts.append(f"--cache-type {a.cache_type} --flash-attn on")
    return " ".join(parts) if len(parts) > 1 or a.model or a.quant else ""
