"""The work a model asks of each layer per token (weights by type, flops, attention per
cached cell, the activation row), read from its tensor table; and a placement's share of
it per device (:class:`DeviceWork`), which the decode and prompt terms price."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ...hardware.types import Gpu, Host
    from ..arch import ModelParams
    from ..gguf import GGUFFile
    from .model import SpeedModel

# --------------------------------------------------------------------------- the work


@dataclass(frozen=True)
class LayerWork:
    """What one layer (the blocks, then the output layer at index n_layer) costs per token."""

    index: int
    weights: tuple[tuple[str, int], ...]  # (ggml type, bytes) read per decoded token
    experts: tuple[tuple[str, int], ...] = ()  # the routed experts' share of that (MoE)
    expert_bytes_all: int = 0  # every routed expert: what a large batch reads once
    flops: int = 0  # 2 x weights' elements per token (MoE: the used experts)
    expert_flops: int = 0  # the routed experts' share of ``flops``
    attn_flops_per_cell: int = 0  # QK and PV flops per token per context cell
    row_bytes: int = 0  # one token's activation row (n_embd FP32 values)
    moe: bool = False
    idle: bool = False  # a block that takes no part in decoding (MTP/NextN)

    @property
    def read_bytes(self) -> int:
        return sum(b for _, b in self.weights)


def _type_class(type_name: str) -> str:
    name = type_name.upper()
    if name in ("F16", "F32", "BF16", "Q8_0", "Q4_0"):
        return name
    if name in ("Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "MXFP4"):
        return "Q4_0"
    return "K"


def model_work(model: GGUFFile, params: ModelParams | None = None) -> tuple[LayerWork, ...]:
    """Per-layer work of ``model``: weights by type, flops, attention cost per cell."""
    from ..arch import model_params

    params = params or model_params(model)
    n_run = params.n_layer  # blocks that take part in the forward pass
    n_layer = params.n_layer_all  # the output layer's index, as placement counts it
    used = (
        params.n_expert_used / params.n_expert if params.n_expert and params.n_expert_used else 1.0
    )
    weights: list[dict[str, float]] = [{} for _ in range(n_layer + 1)]
    experts: list[dict[str, float]] = [{} for _ in range(n_layer + 1)]
    all_experts = [0] * (n_layer + 1)
    flops = [0.0] * (n_layer + 1)
    expert_flops = [0.0] * (n_layer + 1)
    tied = model.tensor("output.weight") is None
    for info in model.tensors:
        kind = info.ggml_type
        if kind is None:
            continue
        match = re.match(r"blk\.(\d+)\.", info.name)
        if match:
            il = int(match.group(1))
            if il >= n_run:
                continue  # MTP/NextN blocks take no part in decoding
        elif info.name.startswith("output") or (tied and info.name == "token_embd.weight"):
            il = n_layer  # the output layer (a tied model multiplies by token_embd)
        else:
            continue  # token_embd: one row per token; rope factors and the like
        share = used if "_exps." in info.name else 1.0
        name = kind.name.upper()
        weights[il][name] = weights[il].get(name, 0.0) + info.nbytes * share
        matrix = len([n for n in info.shape if n > 1]) >= 2
        if matrix:
            flops[il] += 2 * info.n_elements * share
        if "_exps." in info.name:
            experts[il][name] = experts[il].get(name, 0.0) + info.nbytes * share
            all_experts[il] += info.nbytes
            if matrix:
                expert_flops[il] += 2 * info.n_elements * share
    out: list[LayerWork] = []
    for il in range(n_layer + 1):
        attn = 0
        if il < n_run and il < len(params.layers):
            shape = params.layers[il]
            # Attention runs where a layer owns a KV cache (Falcon-H1's layers also hold a
            # recurrent state) or reads a shared one; a recurrent-only layer has none.
            if shape.kv or not shape.recurrent:
                attn = 2 * shape.n_head * (shape.head_dim_k + shape.head_dim_v)
        out.append(
            LayerWork(
                index=il,
                weights=tuple(sorted((t, int(b)) for t, b in weights[il].items())),
                experts=tuple(sorted((t, int(b)) for t, b in experts[il].items())),
                expert_bytes_all=all_experts[il],
                flops=int(flops[il]),
                expert_flops=int(expert_flops[il]),
                attn_flops_per_cell=attn,
                row_bytes=4 * params.n_embd if il < n_run else 0,
                moe=bool(all_experts[il]),
                idle=n_run <= il < n_layer,
            )
        )
    return tuple(out)


# --------------------------------------------------------------------------- placement


@dataclass(frozen=True)
class DeviceWork:
    """The layers one device runs: a GPU (``gpu`` set) or the host's CPU (``gpu`` None).

    ``layers`` are whole layers; ``experts_of`` are layers whose routed experts alone run
    here and ``shared_of`` layers whose all-but-routed-experts run here (``--n-cpu-moe``
    splits a block so). ``kv_bytes`` is the KV cache and recurrent state read per token.
    """

    gpu: Gpu | None
    layers: tuple[int, ...] = ()
    experts_of: tuple[int, ...] = ()
    shared_of: tuple[int, ...] = ()
    kv_bytes: int = 0

    @property
    def busy(self) -> bool:
        return bool(self.layers or self.experts_of or self.shared_of)

    def parts(self, work: Sequence[LayerWork]) -> list[tuple[LayerWork, str]]:
        """(layer, "all" | "experts" | "shared") for every layer part this device runs."""
        out = [(work[il], "all") for il in self.layers]
        out += [(work[il], "experts") for il in self.experts_of]
        out += [(work[il], "shared") for il in self.shared_of]
        return out


def _part_weights(layer: LayerWork, part: str) -> list[tuple[str, int]]:
    if part == "all":
        return list(layer.weights)
    if part == "experts":
        return list(layer.experts)
    experts = dict(layer.experts)
    return [(t, b - experts.get(t, 0)) for t, b in layer.weights]


def _part_flops(layer: LayerWork, part: str) -> int:
    if part == "all":
        return layer.flops
    return layer.expert_flops if part == "experts" else layer.flops - layer.expert_flops


def _part_batch_bytes(layer: LayerWork, part: str) -> int:
    """Bytes a large batch reads of this part: every routed expert, not just the used ones."""
    experts = sum(b for _, b in layer.experts)
    if part == "experts":
        return layer.expert_bytes_all
    if part == "shared":
        return layer.read_bytes - experts
    return layer.read_bytes - experts + layer.expert_bytes_all


@dataclass(frozen=True)
class SpeedInputs:
    """Everything a prediction is made from, kept to predict other prompt lengths."""

    work: tuple[LayerWork, ...]
    devices: tuple[DeviceWork, ...]
    host: Host
    model: SpeedModel
    cpu_seconds_per_byte: float
    n_ubatch: int = 512
