"""llama.cpp's log: capture it, and read back the buffers llama.cpp says it allocated.

- :func:`capture_llama_log` collects llama.cpp's (and ggml's) log through ``llama_log_set``
  instead of letting it reach the terminal;
- :func:`parse_buffers` turns its "... model/KV/RS/compute/output buffer size = X MiB" lines
  into :class:`Allocations`, per component and buffer, and :func:`device_of` names the
  device a buffer lives on.

Sizes are llama.cpp's two-decimal MiB figures turned into bytes: each one is exact to
+-0.005 MiB (5243 bytes, ``MIB_ROUNDING``), which :func:`~.compare.compare` allows for.
``llama_cpp`` is imported inside functions only (:func:`import_llama_cpp`).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, LlmfitError

MiB = 2**20
# half of the last printed digit of "%.2f MiB": the most a logged size can be off by
MIB_ROUNDING = math.ceil(0.005 * MiB)

COMPONENTS = ("model", "kv", "rs", "compute", "output")

# enum ggml_log_level (ggml.h)
LOG_NONE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_CONT = range(6)


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or a one-line LlmfitError saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise LlmfitError(
            f"llama-cpp-python is not installed ({exc}); pip install 'pytest-llmfit[llama]'"
        ) from None
    return llama_cpp


# --- the log -----------------------------------------------------------------------------------


class LogCapture:
    """The log lines llama.cpp emitted while a :func:`capture_llama_log` block ran."""

    def __init__(self) -> None:
        self.records: list[tuple[int, str]] = []  # (ggml log level, line without newline)
        self._partial = ""
        self._partial_level = LOG_INFO
        self._level = LOG_INFO

    def _feed(self, level: int, text: str) -> None:
        if level != LOG_CONT:
            self._level = level
        if not self._partial:
            self._partial_level = self._level
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        for part in parts:
            self.records.append((self._partial_level, part))
            self._partial_level = self._level

    def flush(self) -> None:
        if self._partial:
            self.records.append((self._partial_level, self._partial))
            self._partial = ""

    @property
    def lines(self) -> list[str]:
        return [text for _, text in self.records] + ([self._partial] if self._partial else [])

    def errors(self) -> list[str]:
        """The lines logged at ERROR level (llama.cpp's reasons for a refusal)."""
        return [text.strip() for level, text in self.records if level == LOG_ERROR and text]


# Callbacks handed to llama.cpp must outlive their registration: kept here while active.
_LIVE_CALLBACKS: list[Any] = []


@contextlib.contextmanager
def capture_llama_log() -> Iterator[LogCapture]:
    """Route llama.cpp's (and ggml's) log into a :class:`LogCapture` for the block's duration.

    The previous callback (llama-cpp-python's own, which prints errors only once a
    ``Llama(verbose=False)`` exists) is read with ``llama_log_get`` and put back afterwards;
    nesting works. The ctypes callback object is kept referenced until it is unregistered.
    llama.cpp's logger is process-global: two threads capturing at once see each other's lines.
    """
    llama_cpp = import_llama_cpp()
    capture = LogCapture()

    def on_log(level: int, text: bytes | None, user_data: Any) -> None:
        with contextlib.suppress(Exception):  # never raise into C
            capture._feed(int(level), text.decode("utf-8", errors="replace") if text else "")

    callback = llama_cpp.llama_log_callback(on_log)
    previous = llama_cpp.llama_log_callback()
    previous_data = ctypes.c_void_p()
    try:
        llama_cpp.llama_log_get(ctypes.byref(previous), ctypes.byref(previous_data))
    except Exception:  # an older build without llama_log_get: restore the quiet default
        previous = None
    _LIVE_CALLBACKS.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield capture
    finally:
        if previous is not None:
            llama_cpp.llama_log_set(previous, previous_data)
        else:
            _set_quiet(llama_cpp)
        _LIVE_CALLBACKS.remove(callback)
        capture.flush()


def _set_quiet(llama_cpp: Any) -> None:
    try:
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    except Exception:
        pass


# --- the allocations ---------------------------------------------------------------------------

_BUF_RE = re.compile(
    r"^(?P<func>[\w:]+):\s+(?P<name>\S+)\s+(?P<kind>model|KV|RS|compute|output)"
    r"\s+buffer size\s*=\s*(?P<mib>[0-9.]+) MiB"
)
_KIND = {"model": "model", "KV": "kv", "RS": "rs", "compute": "compute", "output": "output"}


def device_of(buffer_name: str) -> str:
    """The device a buffer lives on: ``CPU_Mapped``, ``CPU_REPACK``, ``CUDA_Host`` -> ``CPU``
    (host memory, pinned or not); ``Metal_Mapped`` -> ``Metal``; ``CUDA0`` -> ``CUDA0``."""
    if buffer_name.startswith("CPU") or buffer_name.endswith("_Host"):
        return "CPU"
    if buffer_name.endswith("_Mapped"):
        return buffer_name[: -len("_Mapped")]
    return buffer_name


def _frozen(d: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(d))


@dataclass(frozen=True)
class Allocations:
    """What llama.cpp logged it allocated, per component and buffer name, in bytes."""

    model: Mapping[str, int] = field(default_factory=dict)  # {"CPU_Mapped": n, "CUDA0": n}
    kv: Mapping[str, int] = field(default_factory=dict)
    rs: Mapping[str, int] = field(default_factory=dict)  # recurrent state (Mamba, RWKV)
    compute: Mapping[str, int] = field(default_factory=dict)
    output: Mapping[str, int] = field(default_factory=dict)

    def component(self, name: str) -> Mapping[str, int]:
        if name not in COMPONENTS:
            raise ConfigError(name, f"an allocation component ({', '.join(COMPONENTS)})")
        value: Mapping[str, int] = getattr(self, name)
        return value

    @property
    def model_bytes(self) -> int:
        return sum(self.model.values())

    @property
    def repack_bytes(self) -> int:
        """Weights the CPU backend copied into a repacked layout (``CPU_REPACK``): on top of
        the mapped file, since llama-cpp-python cannot switch ``use_extra_bufts`` off."""
        return sum(v for k, v in self.model.items() if k.endswith("_REPACK"))

    @property
    def kv_bytes(self) -> int:
        return sum(self.kv.values())

    @property
    def rs_bytes(self) -> int:
        return sum(self.rs.values())

    @property
    def compute_bytes(self) -> int:
        return sum(self.compute.values())

    @property
    def output_bytes(self) -> int:
        return sum(self.output.values())

    @property
    def total_bytes(self) -> int:
        return sum(sum(self.component(c).values()) for c in COMPONENTS)

    def totals(self) -> dict[str, int]:
        """Bytes per component: {"model": ..., "kv": ..., "rs": ..., "compute": ..., "output"}."""
        return {c: sum(self.component(c).values()) for c in COMPONENTS}

    def by_device(self) -> dict[str, int]:
        """Bytes per device (``CPU``, ``CUDA0``, ``Metal``...), every component together."""
        out: dict[str, int] = {}
        for c in COMPONENTS:
            for name, n in self.component(c).items():
                dev = device_of(name)
                out[dev] = out.get(dev, 0) + n
        return out

    def device_component(self) -> dict[str, dict[str, int]]:
        """{device: {component: bytes}}."""
        out: dict[str, dict[str, int]] = {}
        for c in COMPONENTS:
            for name, n in self.component(c).items():
                per = out.setdefault(device_of(name), {})
                per[c] = per.get(c, 0) + n
        return out

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {c: dict(self.component(c)) for c in COMPONENTS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, int]]) -> Allocations:
        return cls(**{c: _frozen(data.get(c, {})) for c in COMPONENTS})


def parse_buffers(lines: Iterable[str]) -> Allocations:
    """Allocations from llama.cpp log lines such as
    ``load_tensors:   CPU_Mapped model buffer size =  4685.30 MiB`` or
    ``llama_kv_cache:      CUDA0 KV buffer size =   512.00 MiB``.

    Lines that log the same buffer name twice (an iSWA model's base and SWA caches, a
    hybrid model's attention and recurrent memories) are summed.
    """
    found: dict[str, dict[str, int]] = {c: {} for c in COMPONENTS}
    for line in lines:
        m = _BUF_RE.match(line.strip())
        if not m:
            continue
        per = found[_KIND[m["kind"]]]
        per[m["name"]] = per.get(m["name"], 0) + round(float(m["mib"]) * MiB)
    return Allocations(**{c: _frozen(v) for c, v in found.items()})
