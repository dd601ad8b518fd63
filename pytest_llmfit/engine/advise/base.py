"""The ways out, as values: :class:`Alternative`, the :class:`WayOut` protocol and the
:class:`Context` every way works in.

Role: an alternative is one concrete change (another quantization, N cards of a catalog GPU,
the experts of N blocks in RAM, a shorter context, a quantized KV cache, a smaller model of
the family, more RAM or VRAM) with the plan it leads to, planned by the same engine as the
question, and the fields that make it reproducible (``plan --quant``, ``--hardware SPEC``,
``--n-cpu-moe``, ``--ctx``, ``--cache-type``). A way is a module with ``KINDS`` and a
``propose(context)`` function (:class:`WayOut`); the context holds the question (model,
host, settings) and the caches that keep advice fast: one Footprint per model variant and
settings (the host does not change a Footprint), one requantized header per file type.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Protocol

from ...hardware.catalog import Catalog
from ...hardware.types import Host
from ...units import format_rate, format_size
from ..arch import ModelParams, model_params
from ..context import Settings
from ..estimate import Footprint, estimate
from ..gguf import GGUFFile
from ..plan import Plan
from ..speed import SpeedModel

KINDS = ("quant", "gpus", "moe_offload", "context", "cache_type", "model", "ram", "vram")
HARDWARE_KINDS = frozenset({"gpus", "ram", "vram"})  # the host changes, not the model
MODE_RANK = {"none": 0, "cpu": 1, "partial": 2, "gpu": 3}


def tier(p: Plan) -> int:
    """How well a plan runs: 0 does not fit, 1 CPU only, 2 partial offload, 3 all on GPU."""
    return MODE_RANK[p.mode] if p.fits else 0


@dataclass(frozen=True)
class Alternative:
    """One way out and the plan it leads to.

    ``quality`` is what the change keeps of the question (weights bytes for a quantization or
    a sibling, n_ctx, KV bits; higher is better) and ``cost`` what it buys (bytes of memory);
    :mod:`.rank` drops an alternative another of its kind beats on both.
    """

    kind: str  # one of KINDS
    label: str  # "IQ1_M", "3x h100-sxm", "--n-cpu-moe 12", "n_ctx 5120", ...
    fits: bool
    mode: str  # the plan's mode: gpu, partial, cpu, none
    n_gpu_layers: int
    n_layers_total: int
    total_bytes: int  # the Footprint's total: what the model needs
    vram_bytes: int  # what the plan puts on the GPUs
    ram_bytes: int  # what it puts in host RAM
    tokens_per_second: float | None
    weights_bytes: int = 0
    quality: float = 0.0
    cost: float = 0.0
    # What makes it reproducible: plan --quant, --hardware, --n-cpu-moe, --ctx, --cache-type.
    quant: str | None = None
    gpu: str | None = None  # catalog id
    count: int | None = None
    hardware: str | None = None  # a spec string for --hardware / --llmfit-hardware
    n_cpu_moe: int | None = None
    n_ctx: int | None = None
    cache_type: str | None = None
    flash_attn: str | None = None
    model: str | None = None  # a shape twin id (pytest-llmfit twin ID)
    notes: tuple[str, ...] = ()

    @classmethod
    def from_plan(cls, kind: str, label: str, p: Plan, **reproduce: Any) -> Alternative:
        """The alternative ``p`` leads to; ``reproduce`` holds what re-plans it (quant,
        hardware, n_cpu_moe, n_ctx, ...) and how it ranks (quality, cost, notes)."""
        return cls(
            kind=kind,
            label=label,
            fits=p.fits,
            mode=p.mode,
            n_gpu_layers=p.n_gpu_layers,
            n_layers_total=p.n_layers_total,
            total_bytes=p.footprint.total_bytes,
            vram_bytes=sum(d.need_bytes for d in p.devices),
            ram_bytes=p.host.need_bytes,
            tokens_per_second=p.tokens_per_second,
            weights_bytes=p.footprint.weights_bytes,
            **reproduce,
        )

    @property
    def tier(self) -> int:
        return MODE_RANK[self.mode] if self.fits else 0

    def phrase(self) -> str:
        """The change in a few words: ``as IQ1_M``, ``on 3x h100-sxm``, ``with n_ctx 5120``."""
        if self.kind in ("quant", "model"):
            cache = f" with a {self.cache_type} KV cache" if self.cache_type else ""
            cache += f" at n_ctx {self.n_ctx}" if self.n_ctx else ""
            return f"as {self.quant if self.kind == 'quant' else self.label}{cache}"
        if self.kind == "gpus":
            return f"on {self.label}"
        if self.kind == "context":
            return f"at n_ctx {self.n_ctx}"
        return f"with {self.label}"

    def outcome(self) -> str:
        """Where it runs and how fast: ``all 127 layers on GPU, 13.2 tokens/s``."""
        if not self.fits:
            where = "still does not fit"
        elif self.mode == "gpu":
            where = f"all {self.n_layers_total} layers on GPU"
        elif self.mode == "partial":
            where = f"partial offload, {self.n_gpu_layers}/{self.n_layers_total} layers on GPU"
        else:
            where = "CPU only"
        if self.fits and self.mode != "cpu":
            where += f" ({format_size(self.vram_bytes)} VRAM + {format_size(self.ram_bytes)} RAM)"
        elif self.fits:
            where += f" ({format_size(self.ram_bytes)} RAM)"
        if self.tokens_per_second is not None and self.fits:
            where += f", {format_rate(self.tokens_per_second)} tokens/s"
        return where

    def describe(self) -> str:
        """One line: the change, its size where it matters, the outcome."""
        size = ""
        if self.kind in ("quant", "model"):
            size = f" ({format_size(self.weights_bytes)} of weights)"
        verb = "fits" if self.fits else "needs"
        text = f"{verb} {self.phrase()}{size}: {self.outcome()}"
        return text + "".join(f"; {note}" for note in self.notes)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["notes"] = list(self.notes)
        data["summary"] = self.describe()
        return data


class WayOut(Protocol):
    """A kind of way out: ``propose`` returns its alternatives for the context's question
    (several, unranked; :mod:`.rank` orders and prunes them)."""

    KINDS: tuple[str, ...]

    def propose(self, ctx: Context) -> Iterable[Alternative]: ...


def model_key(model: GGUFFile) -> tuple[Any, ...]:
    """What identifies a header for the caches (a GGUFFile's metadata is not hashable)."""
    return (model.path, model.file_size, model.data_offset, len(model.tensors), id(model))


class AdviceCache:
    """Footprints, requantized headers and finished advice, kept across questions: a
    session asks about the same model for many tests, and the CLI for one. Bounded."""

    MAX_ENTRIES = 512

    def __init__(self) -> None:
        self.footprints: dict[tuple[Any, ...], Footprint] = {}
        self.params: dict[tuple[Any, ...], ModelParams] = {}
        self.headers: dict[tuple[Any, ...], GGUFFile] = {}
        self.advice: dict[tuple[Any, ...], Any] = {}
        self._keep: dict[int, GGUFFile] = {}  # the models whose id() is in a key

    def remember(self, model: GGUFFile) -> None:
        tables = (self.footprints, self.params, self.headers, self.advice)
        if sum(len(table) for table in tables) > self.MAX_ENTRIES:
            for table in tables:
                table.clear()
            self._keep.clear()
        self._keep[id(model)] = model


@dataclass
class Context:
    """One question (model, host, settings, the plan it gets) and the caches a way uses."""

    model: GGUFFile
    host: Host
    settings: Settings
    headroom: int
    speed_model: SpeedModel
    catalog: Catalog
    base: Plan  # the question's own plan
    cache: AdviceCache
    gpu_ids: tuple[str, ...] | None = None  # catalog GPUs to try; None: every card
    quant: str | None = None  # the model's file type, when known

    @property
    def footprint(self) -> Footprint:
        return self.base.footprint

    def estimate(self, model: GGUFFile, settings: Settings, variant: str = "") -> Footprint:
        """The Footprint of ``model`` (a variant of the question's: ``variant`` names it)
        under ``settings``, computed once."""
        self.cache.remember(model)
        key = (model_key(model), variant, settings)
        found = self.cache.footprints.get(key)
        if found is None:
            params = self.cache.params.get(key[0])
            if params is None:
                params = self.cache.params[key[0]] = model_params(model)
            found = estimate(model, settings, params=params)
            self.cache.footprints[key] = found
        return found

    def requantized(self, ftype: str) -> GGUFFile:
        """The question's model as llama-quantize would write it at ``ftype``."""
        from ..quantize import requantize

        key = (model_key(self.model), ftype)
        found = self.cache.headers.get(key)
        if found is None:
            found = requantize(self.model, ftype)
            self.cache.headers[key] = found
            self.cache.remember(found)
        return found
