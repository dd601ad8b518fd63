"""Load a model through llama-cpp-python and read back what llama.cpp really allocated.

This is the only module that imports ``llama_cpp``, and only inside functions: importing
``pytest_llmfit`` never loads it.

- :func:`capture_llama_log` collects llama.cpp's log instead of letting it reach the terminal;
- :func:`parse_buffers` turns the "... buffer size = X MiB" lines into :class:`Allocations`;
- :func:`load_model` creates ``llama_cpp.Llama`` from our settings, retrying with fewer GPU
  layers when llama.cpp cannot place the model, and never lets a failure escape as anything
  but a one-line :class:`~pytest_llmfit.errors.LlmfitError`;
- :func:`compare` puts an :class:`~pytest_llmfit.engine.estimate.Footprint` beside the allocations;
- :func:`close_and_check` frees the model and tells whether the memory came back;
- :func:`measure_speed` measures prompt processing and decode speed.

Flash attention: llama-cpp-python's ``Llama(flash_attn=...)`` is a bool that it turns into
``LLAMA_FLASH_ATTN_TYPE_ENABLED`` or ``..._DISABLED`` before creating the context, and the
context is created inside the constructor, so llama.cpp's own ``AUTO`` cannot be reached
through the public API. ``flash_attn="auto"`` is therefore loaded as *on* (the same choice
:func:`~pytest_llmfit.engine.estimate.estimate` makes: the CPU, CUDA and Metal backends support it;
a backend that does not runs the op on the CPU instead). ``Loaded.flash_attn`` says what was
asked for, the log line ``llama_context: flash_attn = ...`` what llama.cpp did.

Sizes are llama.cpp's two-decimal MiB figures turned into bytes: each one is exact to
+-0.005 MiB (5243 bytes), which :func:`compare` allows for.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..engine.ggml import kv_cache_type
from ..errors import ConfigError, LlmfitError

if TYPE_CHECKING:
    from ..engine.estimate import Footprint, Settings
    from ..engine.plan import Plan

MiB = 2**20
# half of the last printed digit of "%.2f MiB": the most a logged size can be off by
MIB_ROUNDING = math.ceil(0.005 * MiB)

FLASH_ATTN_MODES = ("auto", "on", "off")
COMPONENTS = ("model", "kv", "rs", "compute", "output")

# enum ggml_log_level (ggml.h)
LOG_NONE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_CONT = range(6)


def _llama_cpp() -> Any:
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
    llama_cpp = _llama_cpp()
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


# --- loading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One try at creating the model and its context."""

    n_gpu_layers: int
    ok: bool
    seconds: float
    reason: str = ""  # why it failed: llama.cpp's error lines, else the exception


@dataclass
class Loaded:
    """A loaded ``llama_cpp.Llama`` with what llama.cpp allocated for it."""

    llm: Any  # llama_cpp.Llama
    allocations: Allocations
    log_lines: list[str]
    load_seconds: float  # the successful attempt only
    n_gpu_layers_used: int
    attempts: tuple[Attempt, ...]
    path: str = ""
    n_ctx: int = 0  # as llama.cpp set it (after padding)
    flash_attn: str = "auto"  # what was asked for
    rss_before_load: int | None = None  # host RSS before the first attempt (bytes)
    vram_before_load: int | None = None  # NVML used memory, all devices, before loading

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


# Errors that placing fewer layers on the GPU can cure: an allocation failed.
_MEMORY_ERRORS = re.compile(
    r"out of memory|failed to allocate|unable to allocate|cudaMalloc|hipMalloc|"
    r"alloc_buffer|not enough memory|insufficient memory|ErrorOutOfDeviceMemory",
    re.IGNORECASE,
)
# llama.cpp refusals that fewer GPU layers cannot cure: the settings or the file are wrong.
_SETTINGS_REFUSALS = re.compile(
    r"requires flash_attn|does not divide|cannot both be zero|does not support different K|"
    r"SPLIT_MODE_TENSOR requires|unknown model architecture|failed to open|no such file|"
    r"not a GGUF|invalid magic|wrong number of tensors|has wrong shape|key not found|"
    r"Model path does not exist|gguf_init_from|bad GGUF",
    re.IGNORECASE,
)


def _curable(text: str) -> bool:
    """Could fewer GPU layers help? Yes for allocation failures and unknown errors."""
    if _MEMORY_ERRORS.search(text):
        return True
    return not _SETTINGS_REFUSALS.search(text)


def _type_id(name: str, field_name: str) -> int:
    return kv_cache_type(name, source=f"{field_name}, load_model").id


def _check_int(value: Any, name: str, lowest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ConfigError(value, f"a whole number >= {lowest}", source=f"{name}, load_model")
    return value


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def _vram_used() -> int | None:
    """Used memory summed over every NVIDIA device (NVML), or None without NVML."""
    try:
        import pynvml
    except Exception:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        total = 0
        for i in range(pynvml.nvmlDeviceGetCount()):
            total += int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used)
        return total
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _fewer(n: int) -> int:
    return n // 2


def load_model(
    path: str | os.PathLike[str],
    *,
    n_gpu_layers: int = 0,
    tensor_split: Sequence[float] | None = None,
    n_ctx: int = 4096,
    n_batch: int = 512,
    n_ubatch: int = 512,
    type_k: str = "f16",
    type_v: str = "f16",
    flash_attn: str = "auto",
    n_threads: int | None = None,
    seed: int = 0,
    retry_fewer_layers: bool = True,
    use_mmap: bool = True,
    **llama_kwargs: Any,
) -> Loaded:
    """Create ``llama_cpp.Llama(path, ...)`` with these settings and capture what it allocated.

    The defaults are :class:`~pytest_llmfit.engine.estimate.Settings`'s, so ``estimate(model)`` and
    ``load_model(path)`` describe the same context. ``n_gpu_layers=-1`` offloads every layer.
    ``type_k``/``type_v`` are cache type names (``f16``, ``q8_0``...), passed to llama.cpp as
    ggml type ids. ``flash_attn`` is ``"on"``, ``"off"`` or ``"auto"`` (loaded as on: see the
    module notes). ``seed`` seeds llama-cpp-python's sampler; it treats 0 as "a random
    seed", so pass a positive seed for reproducible sampling. ``n_threads`` sets the decode
    and the batch threads alike; None keeps llama-cpp-python's defaults (half the CPUs for
    decode, all of them for prompt batches). ``llama_kwargs`` go to ``Llama`` unchanged
    (they win over the settings above).

    When llama.cpp fails to create the model or its context (``ValueError: Failed to load
    model`` / ``Failed to create llama_context``: an allocation that did not fit) and
    ``retry_fewer_layers``, the load is retried with half as many GPU layers, down to 0;
    every try is recorded in ``Loaded.attempts`` with llama.cpp's error lines. A refusal
    that fewer layers cannot cure (a quantized V cache without flash attention, a missing
    or corrupt file) is not retried. When nothing loads, a one-line LlmfitError says why.
    llama.cpp's log never reaches the terminal: it is in ``Loaded.log_lines``.
    """
    fa = str(flash_attn).strip().lower()
    if fa not in FLASH_ATTN_MODES:
        raise ConfigError(
            flash_attn, "a flash attention mode (auto, on, off)", source="flash_attn, load_model"
        )
    kwargs: dict[str, Any] = {
        "n_ctx": _check_int(n_ctx, "n_ctx", 0),
        "n_batch": _check_int(n_batch, "n_batch", 1),
        "n_ubatch": _check_int(n_ubatch, "n_ubatch", 1),
        "type_k": _type_id(type_k, "type_k"),
        "type_v": _type_id(type_v, "type_v"),
        "flash_attn": fa != "off",
        "seed": _check_int(seed, "seed", 0),
        "use_mmap": use_mmap,
        "verbose": False,
    }
    if n_threads is not None:  # decode and batch alike (Llama() would batch on every CPU)
        kwargs["n_threads"] = kwargs["n_threads_batch"] = _check_int(n_threads, "n_threads", 1)
    if tensor_split is not None:
        kwargs["tensor_split"] = [float(x) for x in tensor_split]
    kwargs.update(llama_kwargs)
    layers = _check_int(n_gpu_layers, "n_gpu_layers", -1)
    model_path = os.fspath(path)
    if not os.path.isfile(model_path):
        raise LlmfitError(f"cannot load {model_path}: no such file")

    llama_cpp = _llama_cpp()
    rss0, vram0 = _rss(), _vram_used()
    attempts: list[Attempt] = []
    while True:
        with capture_llama_log() as log:
            t0 = time.perf_counter()
            llm: Any = None
            reason = ""
            try:
                llm = llama_cpp.Llama(model_path, n_gpu_layers=layers, **kwargs)
            except Exception as exc:  # ValueError from llama-cpp-python, anything else too
                reason = f"{type(exc).__name__}: {exc}"
                del exc
            seconds = time.perf_counter() - t0
        if llm is not None:
            attempts.append(Attempt(layers, True, seconds))
            lines = log.lines
            return Loaded(
                llm=llm,
                allocations=parse_buffers(lines),
                log_lines=lines,
                load_seconds=seconds,
                n_gpu_layers_used=layers,
                attempts=tuple(attempts),
                path=model_path,
                n_ctx=_n_ctx(llm),
                flash_attn=fa,
                rss_before_load=rss0,
                vram_before_load=vram0,
            )
        errors = log.errors()
        why = "; ".join(dict.fromkeys(errors)) if errors else reason
        if errors and reason:
            why = f"{why} ({reason})"
        attempts.append(Attempt(layers, False, seconds, why))
        gc.collect()  # a half-built Llama frees its model in __del__: before the next try
        if retry_fewer_layers and layers != 0 and _curable(" ".join(errors) + " " + reason):
            layers = _fewer(layers) if layers > 0 else _fewer(_n_layers_hint(log.lines))
            continue
        tried = ", ".join(str(a.n_gpu_layers) for a in attempts)
        raise LlmfitError(
            f"llama.cpp could not load {model_path} (n_gpu_layers tried: {tried}): {_one_line(why)}"
        )


def _n_layers_hint(lines: Sequence[str]) -> int:
    """For n_gpu_layers=-1 (all): the model's block count from the log, + 1 for the output."""
    for line in lines:
        m = re.search(r"n_layer\s*=\s*(\d+)", line)
        if m:
            return int(m.group(1)) + 1
    return 0


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _n_ctx(llm: Any) -> int:
    try:
        return int(llm.n_ctx())
    except Exception:
        return 0


def settings_kwargs(settings: Settings) -> dict[str, Any]:
    """:func:`load_model` keywords for an :class:`~pytest_llmfit.engine.estimate.Settings`, so the
    loaded context is the one the estimate describes. ``n_seq`` and ``kv_unified`` have no
    ``Llama()`` argument (llama-cpp-python runs one sequence): a value other than the
    default raises a ConfigError rather than loading something else."""
    s = settings.validated()
    if s.n_seq != 1 or s.kv_unified:
        raise ConfigError(
            {"n_seq": s.n_seq, "kv_unified": s.kv_unified},
            "loadable through llama-cpp-python's Llama() (one sequence, no unified KV)",
            source="settings_kwargs",
        )
    return {
        "n_ctx": s.n_ctx,
        "n_batch": s.n_batch,
        "n_ubatch": s.n_ubatch,
        "type_k": s.cache_type_k,
        "type_v": s.cache_type_v,
        "flash_attn": s.flash_attn,
        "offload_kqv": s.offload_kqv,
        "swa_full": s.swa_full,
    }


def load_planned(
    path: str | os.PathLike[str], plan: Plan, *, retry_fewer_layers: bool = True, **kwargs: Any
) -> Loaded:
    """Load ``path`` as ``plan`` placed it: its n_gpu_layers and tensor_split, and the
    settings its footprint was estimated for. ``kwargs`` go to :func:`load_model`."""
    merged = settings_kwargs(plan.footprint.settings)
    merged.update(kwargs)
    return load_model(
        path,
        n_gpu_layers=plan.n_gpu_layers,
        tensor_split=list(plan.tensor_split) or None,
        retry_fewer_layers=retry_fewer_layers,
        **merged,
    )


# --- estimate vs actual ------------------------------------------------------------------------


@dataclass(frozen=True)
class ComponentMiss:
    """One component's estimate beside what llama.cpp allocated."""

    component: str  # "weights", "kv", "compute", "output", "repack"
    estimated: int
    actual: int
    flagged: bool  # the miss is beyond both the tolerance and the MiB rounding

    @property
    def miss_bytes(self) -> int:
        return self.estimated - self.actual

    @property
    def relative(self) -> float:
        """(estimated - actual) / actual; 0 when both are 0, inf when only actual is 0."""
        if self.actual == 0:
            return 0.0 if self.estimated == 0 else math.inf
        return self.miss_bytes / self.actual

    def describe(self) -> str:
        sign = "+" if self.miss_bytes >= 0 else "-"
        pct = "n/a" if math.isinf(self.relative) else f"{self.relative:+.1%}"
        return (
            f"{self.component}: estimated {self.estimated / MiB:.2f} MiB, "
            f"llama.cpp {self.actual / MiB:.2f} MiB ({sign}{abs(self.miss_bytes) / MiB:.2f} MiB, "
            f"{pct}){' FLAGGED' if self.flagged else ''}"
        )


def compare(
    footprint: Footprint,
    allocations: Allocations,
    *,
    tolerance: float = 0.05,
    rounding: int = MIB_ROUNDING,
) -> list[ComponentMiss]:
    """Estimate vs llama.cpp, per component: weights, kv (+ recurrent state), compute,
    output, and, when the CPU backend repacked weights, ``repack`` (which the estimate does
    not model). A component is flagged when it misses by more than ``tolerance`` of the
    actual figure *and* by more than ``rounding`` bytes (the logged MiB figures' precision).

    Weights compare the mapped and device model buffers (all but ``*_REPACK``) with
    ``weights_bytes``; compute compares the sum over every device's compute buffer with
    ``compute_bytes`` (a single-device figure: expect misses under partial offload).
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ConfigError(tolerance, "a tolerance >= 0 (0.05 = 5%)", source="compare")
    repack = allocations.repack_bytes
    pairs = [
        ("weights", footprint.weights_bytes, allocations.model_bytes - repack),
        (
            "kv",
            footprint.kv_cache_bytes + footprint.recurrent_bytes,
            allocations.kv_bytes + allocations.rs_bytes,
        ),
        ("compute", footprint.compute_bytes, allocations.compute_bytes),
        ("output", footprint.output_bytes, allocations.output_bytes),
    ]
    if repack or footprint.repack_bytes:
        pairs.append(("repack", footprint.repack_bytes, repack))
    out = []
    for name, est, act in pairs:
        miss = abs(est - act)
        flagged = miss > rounding and miss > tolerance * act
        out.append(ComponentMiss(name, est, act, flagged))
    return out


# --- closing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """Memory before and after closing a model."""

    rss_before: int | None  # host RSS with the model loaded (bytes)
    rss_after: int | None  # after llm.close() and gc
    rss_baseline: int | None  # before the model was loaded
    vram_before: int | None  # NVML used memory over all devices, or None without NVML
    vram_after: int | None
    vram_baseline: int | None
    host_allocated: int  # llama.cpp's host-side buffers (CPU, *_Host, *_Mapped) for this model
    slack: int  # how far above the baseline still counts as released
    looks_released: bool
    reason: str

    @property
    def rss_released(self) -> int | None:
        if self.rss_before is None or self.rss_after is None:
            return None
        return self.rss_before - self.rss_after

    @property
    def vram_released(self) -> int | None:
        if self.vram_before is None or self.vram_after is None:
            return None
        return self.vram_before - self.vram_after


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS (glibc only; a no-op elsewhere).

    After a process has freed large blocks, glibc raises its mmap threshold (up to 32 MiB),
    so later buffers of that size come from the heap and stay in RSS after free() until
    trimmed: without this a long test session would see a closed model as leaking.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    with contextlib.suppress(Exception):
        trim(ctypes.c_size_t(0))


def close_and_check(loaded: Loaded, *, slack: int | None = None) -> Release:
    """Close ``loaded.llm`` (``Llama.close()``, then ``gc.collect()``) and compare memory.

    Heuristic: the model counts as released when host RSS is back within ``slack`` of the
    RSS measured before it was loaded and, with NVML, used VRAM likewise. mmap'ed weights
    are resident file pages of this process (MAP_POPULATE by default on Linux) and leave
    RSS when unmapped; the KV, compute and output buffers and any repacked weights are
    anonymous memory, handed back to the OS by free() and ``malloc_trim``. What never comes
    back is one-off state (ggml's thread pool, the backend registry, Python caches), hence
    the slack: by default 32 MiB + 10% of the host-side buffers llama.cpp reported.
    """
    alloc = loaded.allocations
    host = alloc.by_device().get("CPU", 0)
    if slack is None:
        slack = 32 * MiB + host // 10
    rss_before, vram_before = _rss(), _vram_used()
    llm = loaded.llm
    if llm is not None:
        with capture_llama_log():
            with contextlib.suppress(Exception):
                llm.close()
            loaded.llm = None
            del llm
            gc.collect()
            _malloc_trim()
    rss_after, vram_after = _rss(), _vram_used()
    reasons = []
    ok = True
    base = loaded.rss_before_load
    if rss_after is None or base is None:
        reasons.append("host RSS unknown (psutil missing)")
    else:
        over = rss_after - base
        if over > slack:
            ok = False
            reasons.append(
                f"host RSS {over / MiB:.1f} MiB above its pre-load level (slack {slack / MiB:.1f})"
            )
        else:
            reasons.append(f"host RSS within {max(over, 0) / MiB:.1f} MiB of its pre-load level")
    vbase = loaded.vram_before_load
    if vram_after is not None and vbase is not None:
        vover = vram_after - vbase
        if vover > slack:
            ok = False
            reasons.append(f"VRAM {vover / MiB:.1f} MiB above its pre-load level")
        else:
            reasons.append("VRAM back to its pre-load level")
    return Release(
        rss_before=rss_before,
        rss_after=rss_after,
        rss_baseline=base,
        vram_before=vram_before,
        vram_after=vram_after,
        vram_baseline=vbase,
        host_allocated=host,
        slack=slack,
        looks_released=ok,
        reason="; ".join(reasons),
    )


# --- speed -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeedResult:
    """Prompt processing and decode speed over several repeats (medians, and the spread)."""

    prompt_tokens: int
    gen_tokens: int
    repeats: int
    prompt_tps: float  # median prompt-processing tokens/s
    decode_tps: float  # median decode tokens/s
    ttft_s: float  # median time to first token: the prompt's evaluation
    prompt_tps_range: tuple[float, float]  # (min, max) over repeats
    decode_tps_range: tuple[float, float]
    prompt_tps_samples: tuple[float, ...]
    decode_tps_samples: tuple[float, ...]
    peak_rss: int | None  # peak host RSS while measuring (VmHWM after a reset, else ru_maxrss)
    n_threads: int | None = None

    @property
    def decode_spread(self) -> float:
        """(max - min) / median of the decode speed: how steady the measurement was."""
        lo, hi = self.decode_tps_range
        return (hi - lo) / self.decode_tps if self.decode_tps else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "gen_tokens": self.gen_tokens,
            "repeats": self.repeats,
            "prompt_tps": self.prompt_tps,
            "decode_tps": self.decode_tps,
            "ttft_s": self.ttft_s,
            "prompt_tps_range": list(self.prompt_tps_range),
            "decode_tps_range": list(self.decode_tps_range),
            "peak_rss": self.peak_rss,
            "n_threads": self.n_threads,
        }


_SPEED_TEXT = (
    "The quick brown fox jumps over the lazy dog while the tests measure how fast a model "
    "reads a prompt and writes its answer, one token at a time. "
)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss(reset_worked: bool) -> int | None:
    if reset_worked:
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except Exception:
        return None


def _prompt(llm: Any, n: int) -> list[int]:
    text = _SPEED_TEXT
    tokens: list[int] = list(llm.tokenize(text.encode(), add_bos=True))
    while len(tokens) < n:
        text += _SPEED_TEXT
        tokens = list(llm.tokenize(text.encode(), add_bos=True))
    return tokens[:n]


def measure_speed(
    llm: Any,
    *,
    prompt_tokens: int = 64,
    gen_tokens: int = 32,
    repeats: int = 3,
    warmup: int = 1,
) -> SpeedResult:
    """Prompt processing and decode tokens/s of a loaded ``llama_cpp.Llama``.

    Each repeat clears the context (``llm.reset()``), evaluates ``prompt_tokens`` tokens in
    one ``llm.eval`` (timed: prompt speed and time to first token, whose logits are then
    ready), then ``gen_tokens`` single-token evals (timed: decode speed). The decoded tokens
    are taken from the prompt rather than sampled, so the figure is the model's forward pass
    without sampling; a sampler adds well under a millisecond per token. ``warmup`` untimed
    repeats come first (page faults, thread pool start-up). Medians are reported, with the
    min/max over repeats and the peak RSS of the process while measuring.
    """
    _check_int(prompt_tokens, "prompt_tokens", 1)
    _check_int(gen_tokens, "gen_tokens", 1)
    _check_int(repeats, "repeats", 1)
    _check_int(warmup, "warmup", 0)
    n_ctx = int(llm.n_ctx())
    if prompt_tokens + gen_tokens > n_ctx:
        raise ConfigError(
            prompt_tokens + gen_tokens,
            f"a token count within the context (n_ctx={n_ctx})",
            source="prompt_tokens + gen_tokens, measure_speed",
        )
    prompt = _prompt(llm, prompt_tokens)
    follow = [
        prompt[1 + i % (len(prompt) - 1)] if len(prompt) > 1 else prompt[0]
        for i in range(gen_tokens)
    ]
    reset = _reset_peak_rss()
    pp: list[float] = []
    tg: list[float] = []
    ttft: list[float] = []
    with capture_llama_log():
        for i in range(warmup + repeats):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval(prompt)
            t1 = time.perf_counter()
            for tok in follow:
                llm.eval([tok])
            t2 = time.perf_counter()
            if i >= warmup:
                ttft.append(t1 - t0)
                pp.append(len(prompt) / max(t1 - t0, 1e-9))
                tg.append(gen_tokens / max(t2 - t1, 1e-9))
        llm.reset()
    return SpeedResult(
        prompt_tokens=len(prompt),
        gen_tokens=gen_tokens,
        repeats=repeats,
        prompt_tps=statistics.median(pp),
        decode_tps=statistics.median(tg),
        ttft_s=statistics.median(ttft),
        prompt_tps_range=(min(pp), max(pp)),
        decode_tps_range=(min(tg), max(tg)),
        prompt_tps_samples=tuple(pp),
        decode_tps_samples=tuple(tg),
        peak_rss=_peak_rss(reset),
        n_threads=getattr(llm, "n_threads", None),
    )
