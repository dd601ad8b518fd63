"""Load a model through llama-cpp-python and read back what llama.cpp really allocated.

This is the only package that imports ``llama_cpp``, and only inside functions: importing
``pytest_llmfit`` (or this package) never loads it. One module per role:

- :mod:`.logs`: :func:`capture_llama_log` collects llama.cpp's log instead of letting it
  reach the terminal; :func:`parse_buffers` turns the "... buffer size = X MiB" lines into
  :class:`Allocations`;
- :mod:`.load`: :func:`load_model` creates ``llama_cpp.Llama`` from our settings, retrying
  with fewer GPU layers when llama.cpp cannot place the model (:func:`load_planned` loads as
  a plan placed it); :func:`close_and_check` frees the model and tells whether the memory
  came back;
- :mod:`.compare`: :func:`compare` puts an :class:`~pytest_llmfit.engine.estimate.Footprint`
  beside the allocations;
- :mod:`.measure`: :func:`measure_speed` measures prompt processing and decode speed.
"""

from __future__ import annotations

from .compare import ComponentMiss, compare
from .load import (
    FLASH_ATTN_MODES,
    Attempt,
    Loaded,
    Release,
    close_and_check,
    load_model,
    load_planned,
    settings_kwargs,
)
from .logs import (
    COMPONENTS,
    MIB_ROUNDING,
    Allocations,
    LogCapture,
    capture_llama_log,
    device_of,
    parse_buffers,
)
from .measure import SpeedResult, measure_speed

__all__ = [
    "COMPONENTS",
    "FLASH_ATTN_MODES",
    "MIB_ROUNDING",
    "Allocations",
    "Attempt",
    "ComponentMiss",
    "Loaded",
    "LogCapture",
    "Release",
    "SpeedResult",
    "capture_llama_log",
    "close_and_check",
    "compare",
    "device_of",
    "load_model",
    "load_planned",
    "measure_speed",
    "parse_buffers",
    "settings_kwargs",
]
