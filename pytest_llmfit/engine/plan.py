"""Offload planning: where llama.cpp would put each layer on a host, and how fast it would run.

Placement follows llama.cpp (llama_model::load_tensors): with n_gpu_layers = N out of
n_layer + 1 (the blocks plus the output layer), the output layer goes to a GPU first, then
blocks from the back (``i_gpu_start = n_layer_all + 1 - n_gpu_layers``); token embeddings
stay in host memory. Builds until at least mid-2025 offloaded blocks first and the output
layer only when every block was on a GPU (``offload_rule="legacy"``), which is what older
public logs show. Several GPUs share the offloaded layers in proportion to their free
memory (llama.cpp's default) or to a given ``tensor_split``.
Speed (decode and prompt tokens/s, time to first token) comes from :mod:`.speed`: the
layers run one after another, so the devices' times per token add up.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError
from ..hardware.types import Gpu, Host
from ..units import format_rate, format_size
from .context import Settings
from .estimate import INPUT_GROUP, OTHER_GROUP, Footprint, estimate
from .gguf import GGUFFile
from .speed import DeviceWork, LayerWork, Speed, SpeedModel, model_work, predict

DEFAULT_HEADROOM = 2**30  # 1 GiB kept free on every device for the driver and fragmentation

# GPUs whose llama.cpp backend is ggml-cuda (CUDA, or its HIP build): their model buffers
# pad quantized rows and align tensors (estimate.cuda_alloc_bytes); Metal, Vulkan and SYCL
# buffers hold the plain tensor bytes.
CUDA_VENDORS = frozenset({"nvidia", "amd"})

OffloadRule = Literal["current", "legacy"]
OFFLOAD_RULES = ("current", "legacy")


@dataclass(frozen=True)
class DevicePlan:
    name: str  # "NVIDIA GeForce RTX 4090" or "host RAM"
    index: int | None  # GPU index (CUDA order); None for host memory
    n_layers: int  # blocks placed here (the output layer counts as one when on a GPU)
    weights_bytes: int  # weights held here, each once (a tied output copy on a GPU counts)
    kv_bytes: int
    compute_bytes: int
    need_bytes: int
    free_bytes: int  # what the device has free, before headroom
    budget_bytes: int  # free minus headroom: what the plan may use
    read_bytes_per_token: int
    output_bytes: int = 0  # the logits buffer (host only)
    holds_output_layer: bool = False
    # What llama.cpp's "<device> model buffer size" line says: a GPU's weights; on the host
    # the mapped span of its tensors (CPU_Mapped), with repacked copies apart (CPU_REPACK).
    model_buffer_bytes: int = 0
    repack_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "n_layers": self.n_layers,
            "holds_output_layer": self.holds_output_layer,
            "weights_bytes": self.weights_bytes,
            "kv_bytes": self.kv_bytes,
            "compute_bytes": self.compute_bytes,
            "output_bytes": self.output_bytes,
            "need_bytes": self.need_bytes,
            "free_bytes": self.free_bytes,
            "model_buffer_bytes": self.model_buffer_bytes,
            "repack_bytes": self.repack_bytes,
        }


@dataclass(frozen=True)
class Plan:
    mode: str  # "gpu", "partial", "cpu" or "none"
    fits: bool
    n_gpu_layers: int
    n_layers_total: int  # n_layer + 1: what n_gpu_layers counts against
    tensor_split: tuple[float, ...]
    devices: tuple[DevicePlan, ...]  # the GPUs, in CUDA order
    host: DevicePlan
    shortfall_bytes: int
    tokens_per_second: float | None
    footprint: Footprint
    host_description: str
    reasons: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = field(default=())
    offload_rule: OffloadRule = "current"
    given: bool = False  # n_gpu_layers (and tensor_split) came from the user, not the search
    n_cpu_moe: int = 0  # blocks whose routed experts stay in host RAM
    # Prompt processing over a 512-token prompt (speed.DEFAULT_PROMPT_TOKENS), and the
    # prediction both speeds come from (speed.Speed: the parts, other prompt lengths).
    prompt_tokens_per_second: float | None = None
    speed: Speed | None = field(default=None, repr=False, compare=False)

    @property
    def host_bytes(self) -> int:
        return self.host.need_bytes

    def time_to_first_token(self, prompt_tokens: int | None = None) -> float | None:
        """Predicted seconds from a prompt of ``prompt_tokens`` (512 by default) to the first
        generated token."""
        return self.speed.time_to_first_token(prompt_tokens) if self.speed else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.footprint.to_dict(),
            "plan": {
                "mode": self.mode,
                "n_gpu_layers": self.n_gpu_layers,
                "n_layers_total": self.n_layers_total,
                "tensor_split": list(self.tensor_split),
                "devices": [d.to_dict() for d in self.devices],
                "host": self.host.to_dict(),
                "host_bytes": self.host_bytes,
                "host_free_bytes": self.host.free_bytes,
                "shortfall_bytes": self.shortfall_bytes,
                "tokens_per_second": self.tokens_per_second,
                "prompt_tokens_per_second": self.prompt_tokens_per_second,
                "offload_rule": self.offload_rule,
                "given": self.given,
                "n_cpu_moe": self.n_cpu_moe,
            },
            "fits": self.fits,
            "notes": list(self.footprint.notes),
            "reasons": list(self.reasons),
            "suggestions": list(self.suggestions),
        }


def plan(
    model: GGUFFile,
    host: Host,
    settings: Settings | None = None,
    *,
    headroom: int = DEFAULT_HEADROOM,
    footprint: Footprint | None = None,
    speed_model: SpeedModel | None = None,
    n_gpu_layers: int | None = None,
    tensor_split: Sequence[float] | None = None,
    offload_rule: OffloadRule = "current",
    n_cpu_moe: int = 0,
) -> Plan:
    """Place ``model`` on ``host`` the way llama.cpp would and say whether it fits.

    By default the plan searches for the most layers that fit. With ``n_gpu_layers`` (and
    optionally ``tensor_split``) it plans exactly that configuration, as llama.cpp would load
    it, and says whether it fits: what a log of that configuration can be compared with.
    ``n_cpu_moe`` keeps the routed experts of the first N blocks in host RAM, as llama.cpp's
    ``--n-cpu-moe N`` does (``-ot exps=CPU`` is every block): attention, shared weights and
    the KV cache stay on the GPU, and a token reads only its active experts from RAM.
    ``suggestions`` stay empty here: the ways out are the advisor's, and
    ``engine.advise.with_suggestions()`` (the top-level ``pytest_llmfit.plan``) fills them.
    """
    fp = footprint or estimate(model, settings)
    total_layers = fp.n_layer + 1
    if offload_rule not in OFFLOAD_RULES:
        raise ConfigError(offload_rule, "an offload rule (current, legacy)", source="offload_rule")
    if isinstance(n_cpu_moe, bool) or not isinstance(n_cpu_moe, int) or n_cpu_moe < 0:
        raise ConfigError(n_cpu_moe, "a number of blocks >= 0", source="n_cpu_moe")
    gpus, budgets, host_budget = _devices(host, headroom)
    split_weights = _split_weights(gpus, tensor_split)

    def place(n_gpu: int) -> tuple[list[DevicePlan], DevicePlan]:
        return _place(
            fp, gpus, budgets, n_gpu, host, host_budget, split_weights, offload_rule, n_cpu_moe
        )

    if n_gpu_layers is not None:
        n_gpu = _given_layers(n_gpu_layers, total_layers) if gpus else 0
        devices, host_plan = place(n_gpu)
        fits = all(d.need_bytes <= d.budget_bytes for d in devices) and (
            host_plan.need_bytes <= host_budget
        )
        shortfall = 0 if fits else _shortfall(devices, host_plan, host_budget)
    else:
        best: tuple[int, list[DevicePlan], DevicePlan] | None = None
        gpu_only_best: tuple[int, list[DevicePlan], DevicePlan] | None = None
        for n_gpu in range(total_layers if gpus else 0, -1, -1):
            placed = place(n_gpu)
            gpu_ok = all(d.need_bytes <= d.budget_bytes for d in placed[0])
            if gpu_ok and gpu_only_best is None:
                gpu_only_best = (n_gpu, *placed)
            if gpu_ok and placed[1].need_bytes <= host_budget:
                best = (n_gpu, *placed)
                break
        if best is not None:
            n_gpu, devices, host_plan = best
            fits, shortfall = True, 0
        else:
            assert gpu_only_best is not None  # n_gpu = 0 always fits the (empty) GPU side
            n_gpu, devices, host_plan = gpu_only_best
            fits = False
            shortfall = host_plan.need_bytes - host_budget
    if not fits:
        mode = "none"
    elif n_gpu == total_layers and gpus:
        mode = "gpu"
    elif n_gpu > 0:
        mode = "partial"
    else:
        mode = "cpu"

    split: tuple[float, ...] = ()
    if n_gpu and len(gpus) > 1:
        split = _tensor_split(split_weights)
    speed = _speed(
        model, fp, gpus, host, speed_model or SpeedModel(), n_gpu, split_weights,
        offload_rule, n_cpu_moe,
    )  # fmt: skip
    result = Plan(
        mode=mode,
        fits=fits,
        n_gpu_layers=n_gpu,
        n_layers_total=total_layers,
        tensor_split=split,
        devices=tuple(devices),
        host=host_plan,
        shortfall_bytes=shortfall,
        tokens_per_second=speed.decode_tokens_per_second,
        footprint=fp,
        host_description=host.describe(),
        offload_rule=offload_rule,
        given=n_gpu_layers is not None,
        n_cpu_moe=min(n_cpu_moe, fp.n_layer),
        prompt_tokens_per_second=speed.prompt_tokens_per_second,
        speed=speed,
    )
    return replace(result, reasons=_reasons(result, host, headroom))


def _devices(host: Host, headroom: int) -> tuple[list[Gpu], list[int], int]:
    """The GPUs layers can go to, what each may use, and what host RAM may use."""
    gpus = [g for g in host.gpus if not g.unified]
    unified = [g for g in host.gpus if g.unified]
    if unified and not gpus:
        # Apple Silicon: the GPU works in the same RAM; treat its usable share as one device.
        gpus = unified[:1]
    budgets = [max(g.memory_free - headroom, 0) for g in gpus]
    host_budget = max(host.ram.available - headroom, 0)
    if unified and gpus == unified[:1]:
        # Unified memory: what the GPU holds comes out of the same RAM.
        host_budget = max(host_budget - gpus[0].memory_total, 0)
    return gpus, budgets, host_budget


def placement_fits(
    fp: Footprint,
    host: Host,
    n_gpu_layers: int,
    *,
    headroom: int = DEFAULT_HEADROOM,
    n_cpu_moe: int = 0,
    offload_rule: OffloadRule = "current",
) -> tuple[bool, bool]:
    """Whether the GPUs, and whether host RAM, hold ``n_gpu_layers`` layers placed as
    :func:`plan` places them (the default split): one placement, no speed, no reasons. What
    a faster search of the same answer probes (``engine.advise.search``)."""
    gpus, budgets, host_budget = _devices(host, headroom)
    n_gpu = _given_layers(n_gpu_layers, fp.n_layer + 1) if gpus else 0
    devices, host_plan = _place(
        fp, gpus, budgets, n_gpu, host, host_budget, _split_weights(gpus, None), offload_rule,
        n_cpu_moe,
    )  # fmt: skip
    gpu_ok = all(d.need_bytes <= d.budget_bytes for d in devices)
    return gpu_ok, host_plan.need_bytes <= host_budget


def _given_layers(n_gpu_layers: int, total_layers: int) -> int:
    """llama.cpp's reading of n_gpu_layers: negative means all, more than all means all."""
    if isinstance(n_gpu_layers, bool) or not isinstance(n_gpu_layers, int):
        raise ConfigError(
            n_gpu_layers, "a whole number of layers (-1 for all)", source="n_gpu_layers"
        )
    return total_layers if n_gpu_layers < 0 else min(n_gpu_layers, total_layers)


def _split_weights(gpus: list[Gpu], tensor_split: Sequence[float] | None) -> list[float]:
    """The per-GPU split weights llama.cpp normalises: the given ones, else free memory."""
    if tensor_split is None or not any(tensor_split):
        return [float(g.memory_free) for g in gpus]
    values = list(tensor_split)
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0]
    if bad or len(values) > max(len(gpus), 1):
        raise ConfigError(
            ",".join(str(v) for v in values),
            f"one non-negative share per GPU ({len(gpus)} on this host), e.g. 3,1",
            source="tensor_split",
        )
    return [float(v) for v in values] + [0.0] * (len(gpus) - len(values))


def _shortfall(devices: list[DevicePlan], host_plan: DevicePlan, host_budget: int) -> int:
    over = [max(d.need_bytes - d.budget_bytes, 0) for d in devices]
    return sum(over) + max(host_plan.need_bytes - host_budget, 0)


def _layer_device(
    il: int, first_gpu_layer: int, n_active: int, splits: list[float]
) -> int | None:
    """The GPU llama.cpp gives layer ``il`` (n_layer = the output layer), or None for host."""
    if il < first_gpu_layer or il - first_gpu_layer >= n_active:
        return None
    if len(splits) <= 1:
        return 0
    position = (il - first_gpu_layer) / n_active
    return min(bisect.bisect_right(splits, position), len(splits) - 1)


def _cumulative_splits(weights: list[float]) -> list[float]:
    total = sum(weights) or 1.0
    acc = 0.0
    out = []
    for w in weights:
        acc += w / total
        out.append(acc)
    return out


def _tensor_split(weights: list[float]) -> tuple[float, ...]:
    total = sum(weights) or 1.0
    return tuple(round(w / total, 4) for w in weights)


def _place(
    fp: Footprint,
    gpus: list[Gpu],
    budgets: list[int],
    n_gpu: int,
    host: Host,
    host_budget: int,
    split_weights: list[float],
    offload_rule: OffloadRule = "current",
    n_cpu_moe: int = 0,
) -> tuple[list[DevicePlan], DevicePlan]:
    n_layer = fp.n_layer
    # The current rule counts the output layer first; the legacy one offloads blocks first.
    first_gpu_layer = max(n_layer + (1 if offload_rule == "current" else 0) - n_gpu, 0)
    n_active = min(n_gpu, n_layer + 1) if gpus else 0
    splits = _cumulative_splits(split_weights)
    cuda = [g.vendor.lower() in CUDA_VENDORS for g in gpus]
    weights = [0] * len(gpus)
    kv = [0] * len(gpus)
    reads = [0] * len(gpus)
    counts = [0] * len(gpus)
    h_weights = fp.token_embd_bytes + fp.other_bytes
    h_groups = {INPUT_GROUP, OTHER_GROUP}
    h_repack = 0
    h_kv = 0
    h_reads = 0
    h_count = 0
    for layer in fp.layers:
        dev = _layer_device(layer.index, first_gpu_layer, n_active, splits) if n_gpu else None
        read = _active_bytes(fp, layer.index) + layer.kv_bytes + layer.recurrent_bytes
        state = layer.kv_bytes + layer.recurrent_bytes
        if dev is None:
            # Each weight counts once: a repacked copy replaces its mapped original, which
            # llama.cpp never reads again (cold page cache), though its log lists both.
            h_weights += layer.weights_bytes
            h_groups.add(layer.index)
            h_repack += layer.repack_bytes
            h_kv += state
            h_reads += read
            h_count += 1
        else:
            on_gpu = layer.cuda_bytes if cuda[dev] else layer.weights_bytes
            if layer.index < n_cpu_moe and layer.expert_bytes:
                # --n-cpu-moe: this block's routed experts stay mapped in host RAM (the
                # override's plain CPU buffer: not repacked); a token reads its active ones.
                on_gpu -= layer.expert_cuda_bytes if cuda[dev] else layer.expert_bytes
                active = layer.expert_bytes - layer.idle_expert_bytes
                h_weights += layer.expert_bytes
                h_groups.add(layer.index)
                h_reads += active
                read -= active
            weights[dev] += on_gpu
            kv[dev] += state if fp.settings.offload_kqv else 0
            if not fp.settings.offload_kqv:
                h_kv += state
            reads[dev] += read
            counts[dev] += 1
    out_dev = _layer_device(n_layer, first_gpu_layer, n_active, splits) if n_gpu else None
    if out_dev is None:
        # The output matrix is read every token; tied models read token_embd in its place
        # (or its repacked copy, which the CPU keeps beside the mapped original).
        h_reads += fp.output_layer_bytes + fp.tied_output_bytes
        h_weights += fp.output_layer_bytes + fp.tied_output_repack_bytes
        h_groups.add(n_layer)
        h_repack += fp.output_repack_bytes
    else:
        # A tied output matrix is a duplicate of token_embd in the GPU's model buffer.
        out_bytes = fp.output_layer_bytes + fp.tied_output_bytes
        weights[out_dev] += fp.output_layer_cuda_bytes if cuda[out_dev] else out_bytes
        reads[out_dev] += out_bytes
        counts[out_dev] += 1

    # Partial offload: llama.cpp's scheduler runs large-batch matmuls of CPU-resident layers
    # on the first GPU (op_offload, batch >= 32), copying their weights into that GPU's
    # compute buffer; one layer's weights at a time is the model used here (not yet checked
    # on a GPU).
    staged = 0
    if n_gpu and gpus and fp.context.n_ubatch >= 32:
        cpu_layers = [layer.weights_bytes for layer in fp.layers if layer.index < first_gpu_layer]
        staged = max(cpu_layers, default=0)
    devices: list[DevicePlan] = []
    for i, gpu in enumerate(gpus):
        compute = fp.compute_bytes if counts[i] else 0
        if i == 0 and counts[i]:
            compute += staged
        devices.append(
            DevicePlan(
                name=gpu.name,
                index=gpu.cuda_index if gpu.cuda_index is not None else gpu.index,
                n_layers=counts[i],
                weights_bytes=weights[i],
                kv_bytes=kv[i],
                compute_bytes=compute,
                need_bytes=weights[i] + kv[i] + compute,
                free_bytes=gpu.memory_free,
                budget_bytes=budgets[i],
                read_bytes_per_token=reads[i],
                holds_output_layer=out_dev == i,
                model_buffer_bytes=weights[i],
            )
        )
    # The host always runs the token embedding lookup and holds the logits; it runs the
    # whole graph's compute buffer only when no layer is offloaded.
    host_compute = fp.compute_bytes if (not n_gpu or not gpus) else _host_compute(fp)
    host_plan = DevicePlan(
        name="host RAM",
        index=None,
        n_layers=h_count,
        weights_bytes=h_weights,
        kv_bytes=h_kv,
        compute_bytes=host_compute,
        need_bytes=h_weights + h_kv + host_compute + fp.output_bytes,
        free_bytes=host.ram.available,
        budget_bytes=host_budget,
        read_bytes_per_token=h_reads,
        output_bytes=fp.output_bytes,
        holds_output_layer=out_dev is None,
        # CPU_Mapped: the span of the host's unrepacked tensors; a GPU layer lying inside
        # that span is mapped too, since llama.cpp maps whole ranges.
        model_buffer_bytes=fp.mapped_span(h_groups),
        repack_bytes=h_repack,
    )
    return devices, host_plan


def _host_compute(fp: Footprint) -> int:
    """Host-side compute buffer with layers offloaded: the token embeddings of one ubatch
    (llama.cpp looks them up on the host) and the small inputs staged there."""
    u = fp.context.n_ubatch
    return fp.n_embd * u * 4 + u * 4 * 2


def _active_bytes(fp: Footprint, il: int) -> int:
    """Weights of layer ``il`` read per decoded token: MoE layers read only the used experts."""
    layer = fp.layers[il]
    return layer.weights_bytes - layer.idle_expert_bytes


_WORK: dict[int, tuple[GGUFFile, tuple[LayerWork, ...]]] = {}


def _model_work(model: GGUFFile) -> tuple[LayerWork, ...]:
    """``model_work(model)``, once per header: it reads every tensor, and a search (the
    advisor's above all) plans one model many times."""
    found = _WORK.get(id(model))
    if found is None or found[0] is not model:
        if len(_WORK) >= 64:
            _WORK.clear()
        found = (model, model_work(model))
        _WORK[id(model)] = found
    return found[1]


def _speed(
    model: GGUFFile,
    fp: Footprint,
    gpus: list[Gpu],
    host: Host,
    speed_model: SpeedModel,
    n_gpu: int,
    split_weights: list[float],
    offload_rule: OffloadRule,
    n_cpu_moe: int,
) -> Speed:
    """The speed of this placement: each layer (and its KV cache) on the device _place puts
    it on; ``--n-cpu-moe`` blocks split, their routed experts on the host."""
    n_layer = fp.n_layer
    first_gpu_layer = max(n_layer + (1 if offload_rule == "current" else 0) - n_gpu, 0)
    n_active = min(n_gpu, n_layer + 1) if gpus else 0
    splits = _cumulative_splits(split_weights)
    whole: list[list[int]] = [[] for _ in range(len(gpus) + 1)]  # the last one is the host
    shared: list[list[int]] = [[] for _ in range(len(gpus) + 1)]
    kv = [0] * (len(gpus) + 1)
    experts_on_host: list[int] = []
    for il in range(n_layer + 1):
        dev = _layer_device(il, first_gpu_layer, n_active, splits) if n_gpu else None
        slot = len(gpus) if dev is None else dev
        state = 0
        if il < n_layer:
            layer = fp.layers[il]
            state = layer.kv_bytes + layer.recurrent_bytes
        kv[slot if fp.settings.offload_kqv else len(gpus)] += state
        if dev is not None and il < min(n_cpu_moe, n_layer) and fp.layers[il].expert_bytes:
            shared[slot].append(il)
            experts_on_host.append(il)
        else:
            whole[slot].append(il)
    devices = [
        DeviceWork(gpu, tuple(whole[i]), (), tuple(shared[i]), kv[i]) for i, gpu in enumerate(gpus)
    ]
    devices.append(DeviceWork(None, tuple(whole[-1]), tuple(experts_on_host), (), kv[-1]))
    return predict(
        _model_work(model),
        devices,
        host,
        speed_model,
        cpu_seconds_per_byte=fp.cpu_seconds_per_byte,
        n_ubatch=fp.context.n_ubatch,
    )


def _reasons(p: Plan, host: Host, headroom: int) -> tuple[str, ...]:
    fp = p.footprint
    need = format_size(fp.total_bytes)
    vram = sum(d.free_bytes for d in p.devices)
    lines = [
        f"needs {need} at n_ctx {fp.context.n_ctx}: weights "
        f"{format_size(fp.weights_bytes)}, "
        f"KV cache {format_size(fp.kv_cache_bytes + fp.recurrent_bytes)}, "
        f"compute {format_size(fp.compute_bytes)}, output {format_size(fp.output_bytes)}",
    ]
    have = f"{format_size(vram)} VRAM ({len(p.devices)} GPU) + " if p.devices else ""
    lines.append(
        f"has {have}{format_size(host.ram.available)} RAM available; "
        f"headroom {format_size(headroom, binary=True)} per device"
    )
    if p.mode == "gpu":
        lines.append(f"all {p.n_layers_total} layers fit on the GPU(s)")
    elif p.mode == "partial":
        lines.append(
            f"{p.n_gpu_layers} of {p.n_layers_total} layers on the GPU(s), "
            f"{format_size(p.host_bytes)} in host RAM"
        )
    elif p.mode == "cpu":
        lines.append(f"runs on the CPU from host RAM ({format_size(p.host_bytes)})")
    else:
        placed = (
            f"with {p.n_gpu_layers} of {p.n_layers_total} layers on the GPU(s), "
            if p.devices
            else ""
        )
        lines.append(
            f"does not fit: {placed}host RAM must hold {format_size(p.host_bytes)} but has "
            f"{format_size(p.host.budget_bytes)} to give; short by {format_size(p.shortfall_bytes)}"
        )
    if p.tokens_per_second is not None:
        lines.append(f"predicted decode speed {format_rate(p.tokens_per_second)} tokens/s")
    if p.prompt_tokens_per_second is not None:
        lines.append(
            f"predicted prompt speed {format_rate(p.prompt_tokens_per_second)} tokens/s "
            f"(512-token prompt)"
        )
    return tuple(lines)

