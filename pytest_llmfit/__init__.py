"""pytest-llmfit: will this GGUF model fit this machine under llama.cpp, where, and how fast.

The engine is plain Python and usable without pytest::

    from pytest_llmfit import read_gguf, read_model, plan, Settings, host_from_spec
    model = read_gguf("llama-405b-q3_k_m.gguf")   # or read_model("hf://ORG/REPO/FILE.gguf")
    p = plan(model, host_from_spec("rtx-4090, ram=64GB"), Settings(n_ctx=8192))
    print(p.mode, p.n_gpu_layers, p.tokens_per_second)

The marker decorators are pytest's own marks: ``requires_vram("24GB")`` is
``pytest.mark.requires_vram("24GB")``. Every name loads on first use, so importing this
package loads neither llama_cpp nor the NVML library nor pytest, and probes nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _pytest.mark.structures import MarkDecorator

    from .engine.advise import with_suggestions as plan
    from .engine.context import Settings
    from .engine.estimate import Footprint, estimate
    from .engine.gguf import GGUFFile, read_gguf
    from .engine.plan import Plan
    from .errors import (
        ConfigError,
        GGUFError,
        LlmfitError,
        ProbeError,
        ProfileError,
        SourceError,
    )
    from .hardware.probes import detect_host
    from .hardware.specs import host_from_spec, resolve_hardware
    from .hardware.types import Cpu, Gpu, Host, Ram
    from .sources import SourceSettings, read_model
    from .units import format_size, parse_size

    requires_vram: MarkDecorator
    requires_ram: MarkDecorator
    requires_gpu: MarkDecorator
    requires_model: MarkDecorator

__version__ = "0.1.0.dev0"

_WHERE = {
    "ConfigError": "errors",
    "GGUFError": "errors",
    "LlmfitError": "errors",
    "ProbeError": "errors",
    "ProfileError": "errors",
    "SourceError": "errors",
    "SourceSettings": "sources",
    "read_model": "sources",
    "Footprint": "engine.estimate",
    "Settings": "engine.context",
    "estimate": "engine.estimate",
    "GGUFFile": "engine.gguf",
    "read_gguf": "engine.gguf",
    "Cpu": "hardware.types",
    "Gpu": "hardware.types",
    "Host": "hardware.types",
    "Ram": "hardware.types",
    "Plan": "engine.plan",
    "plan": "engine.advise:with_suggestions",  # the plan with its ways out filled
    "detect_host": "hardware.probes",
    "host_from_spec": "hardware.specs",
    "resolve_hardware": "hardware.specs",
    "format_size": "units",
    "parse_size": "units",
}
_MARKERS = ("requires_vram", "requires_ram", "requires_gpu", "requires_model")

__all__ = [
    "ConfigError",
    "Cpu",
    "Footprint",
    "GGUFError",
    "GGUFFile",
    "Gpu",
    "Host",
    "LlmfitError",
    "Plan",
    "ProbeError",
    "ProfileError",
    "Ram",
    "Settings",
    "SourceError",
    "SourceSettings",
    "__version__",
    "detect_host",
    "estimate",
    "format_size",
    "host_from_spec",
    "parse_size",
    "plan",
    "read_gguf",
    "read_model",
    "requires_gpu",
    "requires_model",
    "requires_ram",
    "requires_vram",
    "resolve_hardware",
]


def __getattr__(name: str) -> Any:
    if name in _MARKERS:
        import pytest

        return getattr(pytest.mark, name)
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_llmfit' has no attribute {name!r}")
    module, _, attribute = module.partition(":")
    value = getattr(import_module(f".{module}", __name__), attribute or name)
    globals()[name] = value  # later lookups skip this function
    return value
