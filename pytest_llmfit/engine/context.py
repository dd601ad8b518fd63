"""Context settings as llama-cpp-python takes them, and the sizes llama_context derives.

:class:`Settings` is what a user chooses (``Llama(n_ctx=..., flash_attn=...)``);
:class:`ContextShape` is what llama.cpp makes of it after its padding rules
(src/llama-context.cpp). Both are used by the estimate and the compute-buffer model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ConfigError
from .arch import ModelParams
from .ggml import GGMLType, kv_cache_type

FLASH_ATTN_MODES = ("on", "off", "auto")
CTX_PAD = 256  # llama_context pads n_ctx (and n_ctx_seq) to a multiple of 256


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@dataclass(frozen=True)
class Settings:
    """Context settings, as llama-cpp-python's ``Llama(...)`` takes them."""

    n_ctx: int = 4096  # 0 means the model's training context, as in llama.cpp
    n_batch: int = 512  # llama-cpp-python's default (llama.cpp's own is 2048)
    n_ubatch: int = 512
    n_seq: int = 1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: str = "auto"  # "auto" resolves to on: the CPU, CUDA and Metal backends have it
    offload_kqv: bool = True
    swa_full: bool = True  # llama_context_default_params() keeps a full-size SWA cache
    kv_unified: bool = False
    # The CPU backend copies some quantized weights into an interleaved layout
    # ("CPU_REPACK" buffer) for faster matmuls; llama-cpp-python always lets it.
    repack: bool = True

    def validated(self, *, source: str | None = None) -> Settings:
        """Return self with names normalised, or raise ConfigError naming the bad field."""
        for name in ("swa_full", "offload_kqv", "kv_unified", "repack"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(getattr(self, name), "true or false", source=_where(name, source))
        for name in ("n_ctx", "n_batch", "n_ubatch", "n_seq"):
            value = getattr(self, name)
            lowest = 0 if name == "n_ctx" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                where = f"{name}" + (f", {source}" if source else "")
                raise ConfigError(value, f"a whole number >= {lowest}", source=where)
        k = kv_cache_type(self.cache_type_k, source=_where("cache_type_k", source))
        v = kv_cache_type(self.cache_type_v, source=_where("cache_type_v", source))
        fa = str(self.flash_attn).strip().lower()
        fa = {"true": "on", "1": "on", "false": "off", "0": "off"}.get(fa, fa)
        if fa not in FLASH_ATTN_MODES:
            raise ConfigError(
                self.flash_attn,
                "a flash attention mode (on, off, auto)",
                source=_where("flash_attn", source),
            )
        if fa == "off" and v.block_size > 1:
            raise ConfigError(
                self.cache_type_v,
                "usable without flash attention",
                hint="llama.cpp needs flash attention for a quantized V cache; "
                "use flash_attn='on' or cache_type_v='f16'",
                source=_where("cache_type_v", source),
            )
        return replace(
            self, cache_type_k=k.name.lower(), cache_type_v=v.name.lower(), flash_attn=fa
        )

    @property
    def type_k(self) -> GGMLType:
        return kv_cache_type(self.cache_type_k)

    @property
    def type_v(self) -> GGMLType:
        return kv_cache_type(self.cache_type_v)

    @property
    def uses_flash_attn(self) -> bool:
        return self.flash_attn != "off"


def _where(field: str, source: str | None) -> str:
    return f"{field}, {source}" if source else field


@dataclass(frozen=True)
class ContextShape:
    """The sizes llama_context derives from the settings (after its padding rules)."""

    n_ctx: int  # padded to 256
    n_ctx_seq: int
    n_batch: int
    n_ubatch: int
    n_seq: int
    n_stream: int  # KV streams: 1 when unified, else one per sequence
    kv_size: int  # cells of a full-attention layer's cache (per stream)
    kv_size_swa: int  # cells of a sliding-window layer's cache (per stream)
    flash_attn: bool


def context_shape(params: ModelParams, settings: Settings) -> ContextShape:
    n_ctx = settings.n_ctx or params.n_ctx_train or 4096
    n_ctx = _pad(n_ctx, CTX_PAD)
    n_seq = settings.n_seq
    if settings.kv_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = _pad(n_ctx // n_seq, CTX_PAD)
        n_ctx = n_ctx_seq * n_seq
    n_batch = min(n_ctx, settings.n_batch)
    n_ubatch = min(n_batch, settings.n_ubatch)
    n_stream = 1 if settings.kv_unified else n_seq
    kv_size = n_ctx_seq
    if settings.swa_full or not params.n_swa:
        kv_size_swa = kv_size
    else:
        window = params.n_swa * (n_seq if settings.kv_unified else 1) + n_ubatch
        kv_size_swa = _pad(min(kv_size, window), CTX_PAD)
    return ContextShape(
        n_ctx=n_ctx,
        n_ctx_seq=n_ctx_seq,
        n_batch=n_batch,
        n_ubatch=n_ubatch,
        n_seq=n_seq,
        n_stream=n_stream,
        kv_size=kv_size,
        kv_size_swa=kv_size_swa,
        flash_attn=settings.uses_flash_attn,
    )
