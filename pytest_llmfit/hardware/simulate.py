"""Building a simulated Host from what a spec string or a host file asks for.

Role: one :class:`Request` (cards, a runner, host options) becomes one frozen
:class:`~pytest_llmfit.hardware.types.Host` with ``simulated=True``, by the decisions
documented once in :mod:`.specs`: capacities are the driver's, GPUs are idle unless
``used=``/``free=`` say otherwise, RAM is all available, an Apple chip's GPU gets macOS's
default share of the RAM, and a spec that names only cards gets their host classes' RAM and
cores, said in the Host's notes. Both ways in (:mod:`.specs`, :mod:`.hostfile`) share it so
the same machine comes out of either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ProfileError
from ..units import format_bandwidth, format_size
from .catalog import Catalog, HostDefaults, Profile, apple_gpu_share
from .types import Cpu, Gpu, Host, Ram

__all__ = ["SPEC_FORMS", "CustomCard", "Request", "build_host", "check_combination"]

SPEC_FORMS = (
    "a hardware spec like '2x a100-80gb, ram=256GB', 'rtx-4090, rtx-3090', "
    "'cpu-only, ram=32GB, cpu=8' or a path to a .toml profile file"
)
_DEFAULT_HOST = "desktop"  # for custom cards and CPU-only hosts


@dataclass(frozen=True)
class CustomCard:
    """A card described field by field in a host file (or a catalog card modified there)."""

    name: str
    memory: int
    bandwidth: float | None
    vendor: str = "custom"
    compute_capability: tuple[int, int] | None = None
    unified: bool = False


@dataclass
class Request:
    """What a spec or a file asks for, before defaults are applied (built up while reading,
    hence not frozen)."""

    catalog: Catalog
    runner: Profile | None = None
    cards: list[tuple[Profile | CustomCard, int, int | None, int | None]] = field(
        default_factory=list
    )  # (card, count, used, free) per GPU entry
    cpu_only: bool = False
    ram: int | None = None
    ram_bandwidth: float | None = None
    cpu_cores: int | None = None
    cpu_model: str | None = None
    used: int | None = None
    free: int | None = None
    vram: int | None = None
    notes: list[str] = field(default_factory=list)


def _base(request: Request) -> HostDefaults:
    """The host the cards (or the runner) imply before ram=, ram_bw= and cpu= apply."""
    desktop = request.catalog.hosts[_DEFAULT_HOST]
    if request.runner is not None:
        return request.runner.host
    if not request.cards:
        return desktop
    defaults = [(c.host if isinstance(c, Profile) else desktop, n) for c, n, _, _ in request.cards]
    # RAM and cores add up per card (an 8-GPU server has 8 shares); bandwidth does not.
    return HostDefaults(
        ram=sum(d.ram * n for d, n in defaults),
        ram_bandwidth=max(d.ram_bandwidth for d, _ in defaults),
        cpu_cores=sum(d.cpu_cores * n for d, n in defaults),
        cpu_model=defaults[0][0].cpu_model,
    )


def build_host(request: Request, *, source: str, where: str | None) -> Host:
    """The simulated Host ``request`` describes; ``source`` becomes the Host's own source,
    ``where`` is named in errors."""
    notes = list(request.notes)
    cards = list(request.cards)
    if request.runner is not None:
        cards = []
        for card_id, count in request.runner.gpus:
            found = request.catalog.get(card_id)
            if found is None:  # pragma: no cover - the catalog checks runners' cards on load
                raise AssertionError(card_id)
            cards.append((found, count, None, None))
    base = _base(request)
    ram = request.ram if request.ram is not None else base.ram
    ram_bw = request.ram_bandwidth if request.ram_bandwidth is not None else base.ram_bandwidth
    if request.cpu_cores is not None:
        cores, threads = request.cpu_cores, request.cpu_cores
    else:
        cores, threads = base.cpu_cores, base.cpu_threads or base.cpu_cores
    assumed = [
        label
        for label, given in (
            (f"RAM {format_size(ram, binary=True)} (ram=)", request.ram),
            (f"RAM bandwidth {format_bandwidth(ram_bw)} (ram_bw=)", request.ram_bandwidth),
            (f"{cores} CPU cores (cpu=)", request.cpu_cores),
        )
        if given is None
    ]
    if assumed and request.runner is None:
        notes.append("assumed host defaults: " + ", ".join(assumed))

    gpus: list[Gpu] = []
    for card, count, used, free in cards:
        for _ in range(count):
            gpus.append(_gpu(request, card, len(gpus), ram, used, free, where=where))
    return Host(
        gpus=tuple(gpus),
        cpu=Cpu(
            model=request.cpu_model or base.cpu_model,
            cores_physical=cores,
            cores_logical=max(threads, cores),
        ),
        ram=Ram(total=ram, available=ram, bandwidth=ram_bw),
        simulated=True,
        source=source,
        notes=tuple(notes),
    )


def _gpu(
    request: Request,
    card: Profile | CustomCard,
    index: int,
    ram: int,
    used: int | None,
    free: int | None,
    *,
    where: str | None,
) -> Gpu:
    if isinstance(card, Profile):
        # An Apple chip's GPU share follows the RAM the spec gives, not the catalog's.
        total = apple_gpu_share(ram) if card.unified else card.memory
    else:
        total = card.memory
    if request.vram is not None:
        total = request.vram
    gpu_used = used if used is not None else request.used
    gpu_free = free if free is not None else request.free
    for label, amount in (("free=", gpu_free), ("used=", gpu_used)):
        if amount is not None and amount > total:
            raise ProfileError(
                format_size(amount),
                f"a {label} within GPU {index}'s total ({card.name}, {format_size(total)})",
                source=where,
            )
    return Gpu(
        vendor=card.vendor,
        name=card.name,
        index=index,
        memory_total=total,
        memory_free=gpu_free if gpu_free is not None else total - (gpu_used or 0),
        bandwidth=card.bandwidth,
        cuda_index=None if card.vendor == "apple" else index,
        uuid=f"SIM-GPU-{index}",
        compute_capability=card.compute_capability,
        unified=card.unified,
        fp16_tflops=getattr(card, "fp16_tflops", None),
        fp32_tflops=getattr(card, "fp32_tflops", None),
        int8_tops=getattr(card, "int8_tops", None),
    )


def check_combination(request: Request, *, where: str | None, spec: str) -> None:
    """Reject what no machine is: cpu-only with GPUs, a runner plus more, two Apple chips."""
    kinds = [c for c, _, _, _ in request.cards]
    if request.cpu_only and kinds:
        raise ProfileError(
            spec, SPEC_FORMS, source=where, hint="'cpu-only' cannot be mixed with GPUs"
        )
    if request.runner is not None and (kinds or request.cpu_only):
        raise ProfileError(
            spec,
            SPEC_FORMS,
            source=where,
            hint=f"runner {request.runner.id!r} is a whole machine: add only options "
            "(ram=, ram_bw=, cpu=, used=, free=, vram=) to it",
        )
    socs = [(c, n) for c, n, _, _ in request.cards if isinstance(c, Profile) and c.kind == "soc"]
    if socs and (len(socs) > 1 or socs[0][1] != 1 or len(kinds) > 1):
        raise ProfileError(
            spec,
            SPEC_FORMS,
            source=where,
            hint=f"an Apple chip ({socs[0][0].id!r}) is the whole machine: one, on its own",
        )
    if request.used is not None and request.free is not None:
        raise ProfileError(spec, SPEC_FORMS, source=where, hint="give used= or free=, not both")
