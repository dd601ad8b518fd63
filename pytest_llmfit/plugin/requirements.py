"""A marker's arguments, checked and normalised into a :class:`Requirement`: sizes, GPU
filters, a model path (local or remote) with its context settings and a given offload.
Every bad argument is one :class:`~pytest_llmfit.errors.ConfigError` naming the value, the
marker and the test, and what is accepted."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.context import Settings
from ..errors import ConfigError
from ..hardware.types import GPU_VENDORS
from ..sources import is_remote, resolve_source
from ..units import format_size, parse_size
from .markers import MARKERS
from .settings import NOFIT_ACTIONS, OFFLOAD_ACTIONS, resolve_action

_MODEL_SETTINGS = {
    "n_ctx",
    "n_batch",
    "n_ubatch",
    "n_seq",
    "cache_type",
    "cache_type_k",
    "cache_type_v",
    "flash_attn",
    "swa_full",
}
# A given offload, as llama-cpp-python's Llama() takes it: planned exactly, not searched.
_OFFLOAD_SETTINGS = {"n_gpu_layers", "tensor_split", "n_cpu_moe"}
_ALLOWED_KWARGS: dict[str, set[str]] = {
    "requires_vram": {"size", "per_device", "on_nofit"},
    "requires_ram": {"size", "on_nofit"},
    "requires_gpu": {"count", "vendor", "name", "min_compute_capability", "on_nofit"},
    "requires_model": {"path", "on_nofit", "on_offload"}
    | {"min_tokens_per_second", "min_prompt_tokens_per_second"}
    | _MODEL_SETTINGS
    | _OFFLOAD_SETTINGS,
}
_POSITIONAL = {
    "requires_vram": ("size",),
    "requires_ram": ("size",),
    "requires_gpu": ("count",),
    "requires_model": ("path",),
}


@dataclass(frozen=True)
class Requirement:
    """One marker, checked and normalised."""

    marker: str
    summary: str  # "requires_vram 24.0 GB", "requires_model llama.gguf @8192"
    need_bytes: int | None = None
    per_device: bool = False
    count: int = 0
    vendor: str | None = None
    name: str | None = None
    min_compute_capability: tuple[int, int] | None = None
    model_path: str | None = None
    settings: Settings | None = None
    n_gpu_layers: int | None = None  # None: the most layers that fit
    tensor_split: tuple[float, ...] | None = None
    n_cpu_moe: int = 0  # blocks whose routed experts stay in RAM (llama.cpp's --n-cpu-moe)
    min_tokens_per_second: float | None = None
    min_prompt_tokens_per_second: float | None = None  # over a 512-token prompt
    on_nofit: str | None = None
    on_offload: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def marker_dict(self) -> dict[str, Any]:
        return {"name": self.marker, "args": list(self.args), "kwargs": dict(self.kwargs)}


def _bind(
    marker: str, args: Sequence[Any], kwargs: Mapping[str, Any], source: str
) -> dict[str, Any]:
    names = _POSITIONAL[marker]
    if len(args) > len(names):
        raise ConfigError(
            tuple(args),
            f"at most {len(names)} positional argument(s) ({', '.join(names)})",
            source=source,
        )
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in _ALLOWED_KWARGS[marker]:
            accepted = ", ".join(sorted(_ALLOWED_KWARGS[marker]))
            raise ConfigError(key, f"an argument of {marker} ({accepted})", source=source)
        if key in bound:
            raise ConfigError(
                key, "given once", hint="passed both by position and by name", source=source
            )
        bound[key] = value
    return bound


def _cc(value: object, source: str) -> tuple[int, int]:
    try:
        if isinstance(value, (tuple, list)) and len(value) == 2:
            return int(value[0]), int(value[1])
        major, _, minor = str(value).partition(".")
        return int(major), int(minor or 0)
    except (TypeError, ValueError):
        raise ConfigError(
            value, "a compute capability like '8.0' or (8, 9)", source=source
        ) from None


def parse_requirement(
    marker: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    source: str,
    models_dir: str | None = None,
    root: str | None = None,
) -> Requirement:
    """Check one marker's arguments; ``source`` names it in errors
    (``"marker requires_vram on tests/test_x.py::test_y"``)."""
    if marker not in MARKERS:
        raise ConfigError(marker, f"a pytest-llmfit marker ({', '.join(MARKERS)})", source=source)
    bound = _bind(marker, args, kwargs, source)
    common: dict[str, Any] = {
        "marker": marker,
        "args": tuple(args),
        "kwargs": tuple(sorted(kwargs.items())),
        "on_nofit": resolve_action(
            bound.get("on_nofit"), "skip", allowed=NOFIT_ACTIONS, source=f"on_nofit of {source}"
        )
        if bound.get("on_nofit") is not None
        else None,
    }
    if marker in ("requires_vram", "requires_ram"):
        if "size" not in bound:
            raise ConfigError(
                None, "a size like '24GB'", hint=f"{marker} needs a size", source=source
            )
        need = parse_size(bound["size"], source=source)
        per_device = bound.get("per_device", False)
        if not isinstance(per_device, bool):
            raise ConfigError(per_device, "true or false", source=f"per_device, {source}")
        # The size as the user wrote it: "24GB" and "24GiB" must not both read "25.8 GB".
        written = bound["size"] if isinstance(bound["size"], str) else format_size(need)
        summary = f"{marker} {str(written).strip()}" + (" per GPU" if per_device else "")
        return Requirement(summary=summary, need_bytes=need, per_device=per_device, **common)
    if marker == "requires_gpu":
        count = bound.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(count, "a GPU count of 1 or more", source=source)
        vendor = bound.get("vendor")
        if vendor is not None and (not isinstance(vendor, str) or not vendor.strip()):
            raise ConfigError(vendor, f"a GPU vendor ({', '.join(GPU_VENDORS)})", source=source)
        cc = bound.get("min_compute_capability")
        min_cc = _cc(cc, source) if cc is not None else None
        parts = [f"requires_gpu {count}x"]
        if bound.get("vendor"):
            parts.append(str(bound["vendor"]))
        if bound.get("name"):
            parts.append(repr(str(bound["name"])))
        if min_cc:
            parts.append(f"cc>={min_cc[0]}.{min_cc[1]}")
        return Requirement(
            summary=" ".join(parts),
            count=count,
            vendor=str(bound["vendor"]).strip().lower() if bound.get("vendor") else None,
            name=str(bound["name"]) if bound.get("name") else None,
            min_compute_capability=min_cc,
            **common,
        )
    # requires_model
    path = bound.get("path")
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ConfigError(path, "a GGUF file path", source=source)
    resolved = resolve_model_path(str(path), models_dir, root)
    if is_remote(resolved):  # check an hf://, https:// or ollama:// form now (no network)
        resolve_source(resolved, source=source)
    settings_kwargs = {k: v for k, v in bound.items() if k in _MODEL_SETTINGS}
    cache = settings_kwargs.pop("cache_type", None)
    if cache is not None:
        settings_kwargs.setdefault("cache_type_k", cache)
        settings_kwargs.setdefault("cache_type_v", cache)
    try:
        settings = Settings(**settings_kwargs).validated(source=source)
    except TypeError as error:  # a wrong type for a numeric field
        raise ConfigError(
            settings_kwargs, "valid model settings", hint=str(error), source=source
        ) from None
    min_tps = _rate(bound, "min_tokens_per_second", source)
    min_pp = _rate(bound, "min_prompt_tokens_per_second", source)
    on_offload = bound.get("on_offload")
    if on_offload is not None:
        on_offload = resolve_action(
            on_offload, "run", allowed=OFFLOAD_ACTIONS, source=f"on_offload of {source}"
        )
    n_gpu_layers, tensor_split = _offload(bound, source)
    n_cpu_moe = bound.get("n_cpu_moe", 0)
    if isinstance(n_cpu_moe, bool) or not isinstance(n_cpu_moe, int) or n_cpu_moe < 0:
        raise ConfigError(n_cpu_moe, "a number of blocks >= 0", source=f"n_cpu_moe, {source}")
    return Requirement(
        summary=f"requires_model {os.path.basename(resolved)} @{settings.n_ctx}"
        + (f" ngl={n_gpu_layers}" if n_gpu_layers is not None else "")
        + (f" n_cpu_moe={n_cpu_moe}" if n_cpu_moe else ""),
        model_path=resolved,
        settings=settings,
        n_gpu_layers=n_gpu_layers,
        tensor_split=tensor_split,
        n_cpu_moe=n_cpu_moe,
        min_tokens_per_second=min_tps,
        min_prompt_tokens_per_second=min_pp,
        on_offload=on_offload,
        **common,
    )


def _rate(bound: Mapping[str, Any], key: str, source: str) -> float | None:
    """A positive, finite number of tokens per second, or None when not given."""
    value = bound.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf
    if value is not None and not ok:
        raise ConfigError(value, "a positive number of tokens per second", source=source)
    return None if value is None else float(value)


def _offload(
    bound: Mapping[str, Any], source: str
) -> tuple[int | None, tuple[float, ...] | None]:
    """n_gpu_layers and tensor_split as llama-cpp-python's Llama() takes them."""
    ngl = bound.get("n_gpu_layers")
    if ngl is not None and (isinstance(ngl, bool) or not isinstance(ngl, int)):
        raise ConfigError(
            ngl, "a whole number of layers (-1 for all)", source=f"n_gpu_layers, {source}"
        )
    split = bound.get("tensor_split")
    if split is None:
        return ngl, None
    values = tuple(split) if isinstance(split, (list, tuple)) else ()
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 for v in values
    ):
        raise ConfigError(
            split,
            "a list of non-negative shares per GPU like [3, 1]",
            source=f"tensor_split, {source}",
        )
    return ngl, tuple(float(v) for v in values)


def resolve_model_path(path: str, models_dir: str | None, root: str | None) -> str:
    if is_remote(path):  # hf://, https://, ollama://: not a file path
        return path
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        return expanded
    base = models_dir or root or os.getcwd()
    if models_dir and not os.path.isabs(models_dir) and root:
        base = os.path.join(root, models_dir)
    return os.path.normpath(os.path.join(base, expanded))


