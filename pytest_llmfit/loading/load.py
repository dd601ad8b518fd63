"""Load a model through llama-cpp-python with our settings, and close it again.

- :func:`load_model` creates ``llama_cpp.Llama`` from our settings, retrying with fewer GPU
  layers when llama.cpp cannot place the model, and never lets a failure escape as anything
  but a one-line :class:`~pytest_llmfit.errors.LlmfitError`; :func:`load_planned` loads as a
  :class:`~pytest_llmfit.engine.plan.Plan` placed the model;
- :func:`close_and_check` frees the model and tells whether the memory came back.

Flash attention: llama-cpp-python's ``Llama(flash_attn=...)`` is a bool that it turns into
``LLAMA_FLASH_ATTN_TYPE_ENABLED`` or ``..._DISABLED`` before creating the context, and the
context is created inside the constructor, so llama.cpp's own ``AUTO`` cannot be reached
through the public API. ``flash_attn="auto"`` is therefore loaded as *on* (the same choice
:func:`~pytest_llmfit.engine.estimate.estimate` makes: the CPU, CUDA and Metal backends support it;
a backend that does not runs the op on the CPU instead). ``Loaded.flash_attn`` says what was
asked for, the log line ``llama_context: flash_attn = ...`` what llama.cpp did.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.ggml import kv_cache_type
from ..errors import ConfigError, LlmfitError
from .logs import Allocations, MiB, capture_llama_log, import_llama_cpp, parse_buffers

if TYPE_CHECKING:
    from ..engine.context import Settings
    from ..engine.plan import Plan

FLASH_ATTN_MODES = ("auto", "on", "off")


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


def check_int(value: Any, name: str, lowest: int) -> int:
    """``value`` when it is a whole number >= ``lowest``; else a ConfigError naming ``name``."""
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

    The defaults are :class:`~pytest_llmfit.engine.context.Settings`'s, so ``estimate(model)`` and
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
        "n_ctx": check_int(n_ctx, "n_ctx", 0),
        "n_batch": check_int(n_batch, "n_batch", 1),
        "n_ubatch": check_int(n_ubatch, "n_ubatch", 1),
        "type_k": _type_id(type_k, "type_k"),
        "type_v": _type_id(type_v, "type_v"),
        "flash_attn": fa != "off",
        "seed": check_int(seed, "seed", 0),
        "use_mmap": use_mmap,
        "verbose": False,
    }
    if n_threads is not None:  # decode and batch alike (Llama() would batch on every CPU)
        kwargs["n_threads"] = kwargs["n_threads_batch"] = check_int(n_threads, "n_threads", 1)
    if tensor_split is not None:
        kwargs["tensor_split"] = [float(x) for x in tensor_split]
    kwargs.update(llama_kwargs)
    layers = check_int(n_gpu_layers, "n_gpu_layers", -1)
    model_path = os.fspath(path)
    if not os.path.isfile(model_path):
        raise LlmfitError(f"cannot load {model_path}: no such file")

    llama_cpp = import_llama_cpp()
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
    """:func:`load_model` keywords for an :class:`~pytest_llmfit.engine.context.Settings`, so the
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
