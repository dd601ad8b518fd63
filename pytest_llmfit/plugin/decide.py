"""From a test's requirement and the session's host to a decision: run, skip, xfail, fail
or benchmark, with a reason that carries the numbers.

Plain Python: the pytest glue turns markers into (name, args, kwargs) and calls
:func:`.requirements.parse_requirement` and :func:`decide`; anything else (a notebook,
another runner) can do the same. Reasons are deterministic for one host, so
``pytest -rs`` groups them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine.arch import UNKNOWN_ARCH
from ..engine.context import Settings
from ..engine.gguf import GGUFFile
from ..engine.plan import Plan, plan
from ..engine.speed import SpeedModel
from ..errors import ConfigError, LlmfitError
from ..hardware.types import GPU_VENDORS, Gpu, Host
from ..sources import SourceSettings, read_model
from ..units import format_rate, format_size
from .advice import SessionAdvice
from .requirements import Requirement
from .settings import SessionSettings


@dataclass(frozen=True)
class Decision:
    action: str  # "run", "skip", "xfail", "fail", "benchmark", or "error" for bad input
    fits: bool
    reason: str
    requirement: str
    need_bytes: int | None = None
    have_bytes: int | None = None
    plan: dict[str, Any] | None = None
    markers: tuple[dict[str, Any], ...] = field(default=())

    @property
    def predicted_tokens_per_second(self) -> float | None:
        value = (self.plan or {}).get("tokens_per_second")
        return float(value) if value is not None else None

    @property
    def predicted_prompt_tokens_per_second(self) -> float | None:
        value = (self.plan or {}).get("prompt_tokens_per_second")
        return float(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.action,
            "fits": self.fits,
            "reason": self.reason,
            "requirement": self.requirement,
            "need_bytes": self.need_bytes,
            "have_bytes": self.have_bytes,
            "plan": self.plan,
            "markers": list(self.markers),
            "predicted_tokens_per_second": self.predicted_tokens_per_second,
            "predicted_prompt_tokens_per_second": self.predicted_prompt_tokens_per_second,
        }


class ModelCache:
    """Headers and plans computed once per session, keyed by path and settings."""

    def __init__(
        self, speed_model: SpeedModel | None = None, *, sources: SourceSettings | None = None
    ) -> None:
        self._headers: dict[str, GGUFFile | LlmfitError] = {}
        self._plans: dict[tuple[Any, ...], Plan] = {}
        self.speed_model = speed_model or SpeedModel()
        self.sources = sources or SourceSettings()  # how remote models are reached
        self.advice = SessionAdvice()  # the ways out of plans that do not fit

    def header(self, path: str) -> GGUFFile:
        cached = self._headers.get(path)
        if cached is None:
            try:
                cached = read_model(path, self.sources)  # a file, or a remote header
            except LlmfitError as error:
                cached = error
            self._headers[path] = cached
        if isinstance(cached, LlmfitError):
            raise cached
        return cached

    def plan(
        self,
        path: str,
        host: Host,
        settings: Settings,
        headroom: int,
        *,
        n_gpu_layers: int | None = None,
        tensor_split: tuple[float, ...] | None = None,
        n_cpu_moe: int = 0,
    ) -> Plan:
        key = (path, settings, headroom, n_gpu_layers, tensor_split, n_cpu_moe)
        if key not in self._plans:
            self._plans[key] = plan(
                self.header(path),
                host,
                settings,
                headroom=headroom,
                speed_model=self.speed_model,
                n_gpu_layers=n_gpu_layers,
                tensor_split=tensor_split,
                n_cpu_moe=n_cpu_moe,
            )
        return self._plans[key]


def _basis_gpus(host: Host, basis: str) -> list[tuple[Gpu, int]]:
    return [(g, g.memory_total if basis == "total" else g.memory_free) for g in host.gpus]


def _have_line(host: Host, basis: str) -> str:
    gpus = _basis_gpus(host, basis)
    ram = host.ram.total if basis == "total" else host.ram.available
    if not gpus:
        return f"{format_size(ram)} RAM (no GPU)"
    names: dict[str, int] = {}
    for gpu, _ in gpus:
        names[gpu.name] = names.get(gpu.name, 0) + 1
    label = ", ".join(f"{n}x {name}" for name, n in names.items())
    vram = sum(mem for _, mem in gpus)
    return f"{format_size(vram)} VRAM ({label}) + {format_size(ram)} RAM"


def decide(
    req: Requirement,
    host: Host,
    session: SessionSettings,
    cache: ModelCache | None = None,
) -> Decision:
    """The decision for one requirement on ``host`` under the session's settings."""
    on_nofit = req.on_nofit or session.on_nofit
    base: dict[str, Any] = {"requirement": req.summary, "markers": (req.marker_dict(),)}
    basis = session.basis
    if req.vendor and req.vendor not in GPU_VENDORS | {g.vendor.lower() for g in host.gpus}:
        # A misspelt vendor would match nothing and skip silently: an error names it. A
        # third-party probe's own vendor name is accepted once a GPU reports it.
        raise ConfigError(
            req.vendor,
            f"a GPU vendor ({', '.join(sorted(GPU_VENDORS))}, or one a probe reports)",
            source=f"vendor of {req.summary}",
        )
    if req.marker == "requires_vram":
        assert req.need_bytes is not None
        gpus = _basis_gpus(host, basis)
        have = max((m for _, m in gpus), default=0) if req.per_device else sum(m for _, m in gpus)
        where = "on one GPU" if req.per_device else "VRAM"
        label = _have_line(host, basis).split(" + ")[0] if gpus else "no GPU"
        fits = req.need_bytes <= have and bool(gpus)
        reason = f"{req.summary}: needs {format_size(req.need_bytes)} {where}; have {label}" + (
            "" if fits else f"; short by {format_size(req.need_bytes - have)}"
        )
        return _verdict(fits, reason, on_nofit, need=req.need_bytes, have=have, **base)
    if req.marker == "requires_ram":
        assert req.need_bytes is not None
        have = host.ram.total if basis == "total" else host.ram.available
        fits = req.need_bytes <= have
        reason = (
            f"{req.summary}: needs {format_size(req.need_bytes)} RAM; have {format_size(have)}"
            + (" (container limit)" if host.ram.cgroup_limit else "")
            + ("" if fits else f"; short by {format_size(req.need_bytes - have)}")
        )
        return _verdict(fits, reason, on_nofit, need=req.need_bytes, have=have, **base)
    if req.marker == "requires_gpu":
        matching = [g for g in host.gpus if _gpu_matches(req, g)]
        fits = len(matching) >= req.count
        seen = ", ".join(g.name for g in host.gpus) or "no GPU"
        reason = f"{req.summary}: found {len(matching)} matching of {len(host.gpus)} ({seen})"
        return _verdict(fits, reason, on_nofit, need=None, have=None, **base)
    return _decide_model(req, host, session, cache or ModelCache(), on_nofit, base)


def _gpu_matches(req: Requirement, gpu: Gpu) -> bool:
    if req.vendor and gpu.vendor.lower() != req.vendor:
        return False
    if req.name and req.name.lower() not in gpu.name.lower():
        return False
    if req.min_compute_capability:
        return gpu.compute_capability is not None and (
            gpu.compute_capability >= req.min_compute_capability
        )
    return True


def _verdict(
    fits: bool,
    reason: str,
    on_nofit: str,
    *,
    need: int | None,
    have: int | None,
    requirement: str,
    markers: tuple[dict[str, Any], ...],
) -> Decision:
    return Decision(
        action="run" if fits else on_nofit,
        fits=fits,
        reason=reason,
        requirement=requirement,
        need_bytes=need,
        have_bytes=have,
        markers=markers,
    )


def _decide_model(
    req: Requirement,
    host: Host,
    session: SessionSettings,
    cache: ModelCache,
    on_nofit: str,
    base: dict[str, Any],
) -> Decision:
    assert req.model_path is not None and req.settings is not None
    if session.basis == "total":
        host = _as_total(host)
    result = cache.plan(
        req.model_path,
        host,
        req.settings,
        session.headroom,
        n_gpu_layers=req.n_gpu_layers,
        tensor_split=req.tensor_split,
        n_cpu_moe=req.n_cpu_moe,
    )
    fp = result.footprint
    need = fp.total_bytes
    have_line = _have_line(host, "free")
    plan_dict = result.to_dict()["plan"] | {"fits": result.fits, "notes": list(fp.notes)}
    tps = result.tokens_per_second
    speed = f"; predicted {format_rate(tps)} tokens/s" if tps is not None else ""
    # An architecture without known rules is sized from generic keys: say so in the reason.
    unknown = "".join(f"; {note}" for note in fp.notes if note.startswith(UNKNOWN_ARCH))
    if not result.fits:
        model = cache.header(req.model_path)  # the ways out: the end of the reason
        ways, plan_dict["alternatives"] = cache.advice.ways_out(
            model, host, req.settings, result, session.headroom, cache.speed_model
        )
        reason = (
            f"{req.summary}: needs {format_size(need)}; have {have_line}; "
            f"short by {format_size(result.shortfall_bytes)}{unknown}"
            + (f"; {ways}" if ways else "")
        )
        return Decision(
            action=on_nofit,
            fits=False,
            reason=reason,
            need_bytes=need,
            have_bytes=None,
            plan=plan_dict,
            **base,
        )
    floors = (
        ("", tps, req.min_tokens_per_second),
        ("prompt ", result.prompt_tokens_per_second, req.min_prompt_tokens_per_second),
    )
    for what, got, floor in floors:  # a predicted speed below the marker's minimum
        if floor is not None and (got is None or got < floor):
            shown = format_rate(got) if got is not None else "unknown"
            reason = (
                f"{req.summary}: predicted {what}{shown} tokens/s < required {floor:g} "
                f"tokens/s ({result.mode}, {result.n_gpu_layers}/{result.n_layers_total} "
                "layers on GPU)"
            )
            return Decision(
                action=on_nofit, fits=False, reason=reason, need_bytes=need, plan=plan_dict, **base
            )
    where = {
        "gpu": f"all {result.n_layers_total} layers on GPU",
        "partial": f"partial offload, {result.n_gpu_layers}/{result.n_layers_total} layers "
        f"on GPU, {format_size(result.host_bytes)} in RAM",
        "cpu": "CPU only",
    }[result.mode]
    reason = f"{req.summary}: needs {format_size(need)}; {where}{speed}{unknown}"
    # Partial and CPU-only runs read weights from host RAM: the model fits only by offloading.
    action = "run"
    if result.mode in ("partial", "cpu"):
        action = req.on_offload or session.on_offload
        if action != "run":
            source = "marker" if req.on_offload else session.source_of("on_offload")
            reason += f" (on_offload={action}, {source})"
    return Decision(
        action=action, fits=True, reason=reason, need_bytes=need, plan=plan_dict, **base
    )


def _as_total(host: Host) -> Host:
    from dataclasses import replace

    return replace(
        host,
        gpus=tuple(replace(g, memory_free=g.memory_total) for g in host.gpus),
        ram=replace(host.ram, available=host.ram.total),
    )


_SEVERITY = {"error": 5, "fail": 4, "xfail": 3, "skip": 2, "benchmark": 1, "run": 0}


def combine(decisions: Sequence[Decision], *, strict: bool = False) -> Decision:
    """One decision for a test with several markers: every requirement must fit; the most
    severe action wins and the reasons of the requirements that decided are joined.
    ``strict`` (``--llmfit-strict``) turns a hardware skip into a failure."""
    if not decisions:
        raise ValueError("combine() needs at least one decision")
    worst = max(decisions, key=lambda d: _SEVERITY[d.action])
    deciding = (
        [d for d in decisions if d.action == worst.action] if worst.action != "run" else [worst]
    )
    reason = "; ".join(dict.fromkeys(d.reason for d in deciding))
    action = worst.action
    if strict and action == "skip":
        action = "fail"
        reason = f"{reason} (--llmfit-strict: a hardware skip fails)"
    plans = [d.plan for d in decisions if d.plan]
    return Decision(
        action=action,
        fits=all(d.fits for d in decisions),
        reason=reason,
        requirement=" + ".join(d.requirement for d in decisions),
        need_bytes=worst.need_bytes,
        have_bytes=worst.have_bytes,
        plan=plans[0] if plans else None,
        markers=tuple(m for d in decisions for m in d.markers),
    )


def gpu_needs(decision: Decision, host: Host, *, per_device: bool = False) -> dict[str, int]:
    """Bytes a running test will hold on each GPU (keyed by UUID), for the xdist ledger.

    A model test holds what its plan puts on each GPU; a ``requires_vram`` test holds its
    size, spread over the GPUs in proportion to their free memory (as llama.cpp would
    split), or on the GPU with the most free memory when ``per_device``."""
    keys = [g.uuid or f"GPU-{g.index}" for g in host.gpus]
    if decision.plan and decision.plan.get("devices"):
        needs: dict[str, int] = {}
        by_index = {
            (g.cuda_index if g.cuda_index is not None else g.index): k
            for g, k in zip(host.gpus, keys, strict=True)
        }
        for device in decision.plan["devices"]:
            key = by_index.get(device.get("index"))
            if key is not None and device.get("need_bytes"):
                needs[key] = int(device["need_bytes"])
        return needs
    if (
        decision.need_bytes is None
        or not host.gpus
        or not any(m.get("name") == "requires_vram" for m in decision.markers)
    ):
        return {}
    if per_device:
        best = max(range(len(host.gpus)), key=lambda i: host.gpus[i].memory_free)
        return {keys[best]: decision.need_bytes}
    total_free = sum(g.memory_free for g in host.gpus) or 1
    return {
        k: -(-decision.need_bytes * g.memory_free // total_free)
        for g, k in zip(host.gpus, keys, strict=True)
    }
