"""Real tiny models, generated on the spot: GGUF files llama.cpp loads and runs, never downloaded.

:func:`write_tiny_model` writes a complete llama- or qwen2-architecture model with random
weights (a fixed seed, so the same arguments give the same bytes), a byte-level SentencePiece
vocabulary and every metadata key llama.cpp needs. Sizes range from kilobytes (the defaults:
2 layers of 64) to a few hundred megabytes; :func:`dims_for_size` picks dimensions for a
target file size and :func:`tiny_model_size` predicts the size of given dimensions exactly.

:func:`tiny_model_cached` keeps generated files in a directory, keyed by the arguments and
the package version, and is safe when several processes (pytest-xdist workers) ask at once.

The weights are ``normal(0, 0.02)`` for every matrix and 1 for the norms, so activations stay
small and finite through any depth; the text such a model generates is noise, but every
kernel of a real forward pass runs (RMS norm, rope, attention with grouped KV heads, SwiGLU,
the output projection and sampling).

The vocabulary is SentencePiece-style (``tokenizer.ggml.model = "llama"``): ``<unk>``,
``<s>``, ``</s>``, the 256 byte tokens ``<0x00>``..``<0xFF>`` and the word-boundary piece
``▁``. Any text tokenizes through byte fallback and detokenizes back unchanged.

``gguf`` and ``numpy`` are optional dependencies (the ``gguf`` extra): they are imported
inside the functions.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import pathlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from ..engine.ggml import GGML_TYPES_BY_NAME
from ..errors import ConfigError
from .writer import GGUF_ALIGNMENT, _fast_writer_class, add_spm_vocab, tensor_nbytes

ARCHS = ("llama", "qwen2")
DTYPES = ("f32", "f16", "q8_0", "q4_0")
# llama_ftype of a file whose matrices are all of one type (general.file_type)
_FTYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q8_0": 7}
# Bump when the bytes written for the same arguments change: it is part of the cache key.
FORMAT_VERSION = 1

N_SPECIAL = 3  # <unk>, <s>, </s>
BYTE_VOCAB = N_SPECIAL + 256 + 1  # + the "▁" piece: 260 tokens
WEIGHT_STD = 0.02


@dataclass(frozen=True)
class TinySpec:
    """The arguments of a tiny model, checked and completed (n_ff, n_vocab resolved)."""

    arch: str = "llama"
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 0  # 0 before resolution: the default below
    n_vocab: int = BYTE_VOCAB
    dtype: str = "f32"
    n_ctx_train: int = 2048
    seed: int = 0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_embd_kv(self) -> int:
        return self.head_dim * self.n_head_kv

    @property
    def tied_output(self) -> bool:
        """qwen2 ties the output matrix to token_embd (as Qwen2-0.5B does); llama does not."""
        return self.arch == "qwen2"

    def key(self) -> str:
        """A stable hash of the arguments, the format version and the package version."""
        from .. import __version__

        payload = {"spec": asdict(self), "format": FORMAT_VERSION, "version": __version__}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def _default_ff(n_embd: int) -> int:
    """About 8/3 x n_embd (the SwiGLU ratio), rounded up to a multiple of 32."""
    return -(-(8 * n_embd) // 3 // 32) * 32 or 32


def tiny_spec(
    *,
    arch: str = "llama",
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int | None = None,
    n_vocab: int | None = None,
    dtype: str = "f32",
    n_ctx_train: int = 2048,
    seed: int = 0,
) -> TinySpec:
    """Check the arguments and fill in the defaults; raise a one-line ConfigError."""
    src = "write_tiny_model"
    arch = str(arch).strip().lower()
    if arch not in ARCHS:
        raise ConfigError(arch, f"a tiny model architecture ({', '.join(ARCHS)})", source=src)
    dtype = str(dtype).strip().lower()
    if dtype not in DTYPES:
        raise ConfigError(dtype, f"a tiny model dtype ({', '.join(DTYPES)})", source=src)
    ints = {
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_head_kv": n_head_kv,
        "n_ctx_train": n_ctx_train,
    }
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(value, "a whole number >= 1", source=f"{name}, {src}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(seed, "a whole number >= 0", source=f"seed, {src}")
    if n_embd % n_head:
        raise ConfigError(n_embd, f"a multiple of n_head={n_head}", source=f"n_embd, {src}")
    if n_head % n_head_kv:
        raise ConfigError(n_head_kv, f"a divisor of n_head={n_head}", source=f"n_head_kv, {src}")
    if (n_embd // n_head) % 2:
        raise ConfigError(n_embd, "a size with an even head dimension (rope)", source=src)
    ff = _default_ff(n_embd) if n_ff is None else n_ff
    if isinstance(ff, bool) or not isinstance(ff, int) or ff < 1:
        raise ConfigError(n_ff, "a whole number >= 1", source=f"n_ff, {src}")
    vocab = BYTE_VOCAB if n_vocab is None else n_vocab
    if isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < BYTE_VOCAB:
        raise ConfigError(n_vocab, f"a vocabulary size >= {BYTE_VOCAB}", source=f"n_vocab, {src}")
    block = GGML_TYPES_BY_NAME[dtype].block_size
    for name, value in (("n_embd", n_embd), ("n_ff", ff)):
        if value % block:
            raise ConfigError(
                value, f"a multiple of {block} (the {dtype} block size)", source=f"{name}, {src}"
            )
    return TinySpec(arch, n_layer, n_embd, n_head, n_head_kv, ff, vocab, dtype, n_ctx_train, seed)


# --- the tensor table --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the row length
    type: str  # ggml type name
    kind: str  # "norm" (ones), "bias" (zeros), "weight" (normal * 0.02)


def _tensors(spec: TinySpec) -> list[_Tensor]:
    """In llama.cpp's weights order (globals first, then block by block, names sorted)."""
    e, kv, ff, wt = spec.n_embd, spec.n_embd_kv, spec.n_ff, spec.dtype.upper()
    out = [_Tensor("output_norm.weight", (e,), "F32", "norm")]
    if not spec.tied_output:
        out.append(_Tensor("output.weight", (e, spec.n_vocab), wt, "weight"))
    out.append(_Tensor("token_embd.weight", (e, spec.n_vocab), wt, "weight"))
    for il in range(spec.n_layer):
        layer = [
            _Tensor("attn_norm.weight", (e,), "F32", "norm"),
            _Tensor("attn_q.weight", (e, e), wt, "weight"),
            _Tensor("attn_k.weight", (e, kv), wt, "weight"),
            _Tensor("attn_v.weight", (e, kv), wt, "weight"),
            _Tensor("attn_output.weight", (e, e), wt, "weight"),
            _Tensor("ffn_norm.weight", (e,), "F32", "norm"),
            _Tensor("ffn_gate.weight", (e, ff), wt, "weight"),
            _Tensor("ffn_up.weight", (e, ff), wt, "weight"),
            _Tensor("ffn_down.weight", (ff, e), wt, "weight"),
        ]
        if spec.arch == "qwen2":
            layer += [
                _Tensor("attn_q.bias", (e,), "F32", "bias"),
                _Tensor("attn_k.bias", (kv,), "F32", "bias"),
                _Tensor("attn_v.bias", (kv,), "F32", "bias"),
            ]
        for t in sorted(layer, key=lambda t: t.name):
            out.append(_Tensor(f"blk.{il}.{t.name}", t.shape, t.type, t.kind))
    return out


def _pad(n: int, align: int = GGUF_ALIGNMENT) -> int:
    return -(-n // align) * align


def _header_size(spec: TinySpec) -> int:
    """Bytes before the data section, measured by writing the header to memory."""
    import io

    buf = io.BytesIO()
    _write(spec, buf, header_only=True)
    return buf.tell()


def tiny_model_size(**kwargs: Any) -> int:
    """The exact size in bytes of the file :func:`write_tiny_model` writes for these arguments."""
    spec = tiny_spec(**kwargs)
    data = sum(_pad(tensor_nbytes(t.shape, t.type)) for t in _tensors(spec))
    return _pad(_header_size(spec)) + data


def _weights_bytes(
    n_layer: int, n_embd: int, n_ff: int, n_vocab: int, dtype: str, arch: str
) -> int:
    """Tensor data of these dimensions (head_dim 64-style heads, half as many KV heads)."""
    t = GGML_TYPES_BY_NAME[dtype]
    n_head = max(1, n_embd // 64)
    kv = n_embd // n_head * max(1, n_head // 2)
    per_layer = t.row_bytes(n_embd) * (2 * n_embd + 2 * kv + 2 * n_ff) + t.row_bytes(n_ff) * n_embd
    per_layer += 2 * n_embd * 4 + (n_embd + 2 * kv) * 4 * (arch == "qwen2")
    n_out = 1 if arch == "qwen2" else 2
    return n_layer * per_layer + n_out * t.row_bytes(n_embd) * n_vocab + n_embd * 4


# n_embd ladder for dims_for_size, each with a depth that keeps the shape model-like
_LADDER = (
    (64, 2),
    (128, 2),
    (256, 4),
    (384, 4),
    (512, 6),
    (768, 8),
    (1024, 8),
    (1536, 12),
    (2048, 16),
    (3072, 24),
    (4096, 32),
)


def dims_for_size(
    target_bytes: int, dtype: str = "f16", *, arch: str = "llama", n_vocab: int | None = None
) -> dict[str, int]:
    """Dimensions (n_layer, n_embd, n_head, n_head_kv, n_ff) whose file is about target_bytes.

    Takes the widest n_embd of a fixed ladder whose model-like depth still fits, then the
    number of layers, then tunes n_ff (in steps of 32) to land within a fraction of a layer's
    feed-forward block of the target. Head dimension 64, half as many KV heads as heads.
    Pass the result to :func:`write_tiny_model` with the same dtype/arch; check the result
    with :func:`tiny_model_size`.
    """
    spec0 = tiny_spec(dtype=dtype, arch=arch, n_vocab=n_vocab)  # validates dtype, arch, vocab
    if isinstance(target_bytes, bool) or not isinstance(target_bytes, int) or target_bytes < 1:
        raise ConfigError(target_bytes, "a size in bytes >= 1", source="dims_for_size")
    vocab, dt = spec0.n_vocab, spec0.dtype
    n_embd = _LADDER[0][0]
    for e, depth in _LADDER:
        if _weights_bytes(depth, e, _default_ff(e), vocab, dt, arch) <= target_bytes:
            n_embd = e
    ff0 = _default_ff(n_embd)
    per_layer = _weights_bytes(1, n_embd, ff0, vocab, dt, arch) - _weights_bytes(
        0, n_embd, ff0, vocab, dt, arch
    )
    fixed = _weights_bytes(0, n_embd, ff0, vocab, dt, arch)
    n_layer = max(1, round((target_bytes - fixed) / per_layer))
    # n_ff: the bytes per unit of n_ff over all layers is linear, solve for it
    per_ff = _weights_bytes(n_layer, n_embd, ff0 + 32, vocab, dt, arch) - _weights_bytes(
        n_layer, n_embd, ff0, vocab, dt, arch
    )
    base = _weights_bytes(n_layer, n_embd, ff0, vocab, dt, arch)
    n_ff = ff0 + 32 * round((target_bytes - base) / per_ff)
    n_ff = max(32, n_ff)
    n_head = max(1, n_embd // 64)
    return {
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_head_kv": max(1, n_head // 2),
        "n_ff": n_ff,
    }


# --- writing -----------------------------------------------------------------------------------


def _tensor_data(spec: TinySpec, index: int, t: _Tensor, np: Any, quants: Any, qtype: Any) -> Any:
    """The bytes of one tensor, from a generator seeded by (seed, tensor index)."""
    rows = math.prod(t.shape[1:])
    cols = t.shape[0]
    if t.kind == "norm":
        return np.ones((rows, cols), dtype=np.float32)
    if t.kind == "bias":
        return np.zeros((rows, cols), dtype=np.float32)
    rng = np.random.default_rng([spec.seed, index])
    data = rng.standard_normal((rows, cols), dtype=np.float32)
    data *= np.float32(WEIGHT_STD)
    if t.type == "F32":
        return data
    if t.type == "F16":
        return data.astype(np.float16)
    return quants.quantize(data, qtype)


def _write(spec: TinySpec, target: Any, *, header_only: bool = False) -> None:
    """Write the model to ``target`` (a path, or a binary file object for the header only)."""
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, quants

    cls = _fast_writer_class(GGUFWriter, gguf, np)
    to_path = isinstance(target, (str, os.PathLike))
    writer = cls(target if to_path else None, spec.arch)
    try:
        writer.add_type("model")
        writer.add_name(f"llmfit tiny {spec.arch} {spec.dtype}")
        writer.add_string("general.source.llmfit", "pytest_llmfit.twins.tiny (random weights)")
        writer.add_uint32("general.source.llmfit.seed", spec.seed)
        writer.add_context_length(spec.n_ctx_train)
        writer.add_embedding_length(spec.n_embd)
        writer.add_block_count(spec.n_layer)
        writer.add_feed_forward_length(spec.n_ff)
        writer.add_head_count(spec.n_head)
        writer.add_head_count_kv(spec.n_head_kv)
        writer.add_rope_dimension_count(spec.head_dim)
        writer.add_rope_freq_base(10000.0 if spec.arch == "llama" else 1000000.0)
        writer.add_layer_norm_rms_eps(1e-5 if spec.arch == "llama" else 1e-6)
        writer.add_vocab_size(spec.n_vocab)
        writer.add_file_type(_FTYPE[spec.dtype])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_spm_vocab(writer, gguf, spec.n_vocab)  # byte fallback: any text round-trips

        tensors = _tensors(spec)
        for t in tensors:
            writer.add_tensor_info(
                t.name,
                tuple(reversed(t.shape)),  # GGUFWriter takes the numpy order
                np.dtype(np.float32),
                tensor_nbytes(t.shape, t.type),
                raw_dtype=GGMLQuantizationType[t.type],
            )
        if not to_path:  # write the header into the given file object
            from gguf.gguf_writer import WriterState

            writer.fout = [target]
            writer.state = WriterState.EMPTY
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        if header_only:
            return
        for index, t in enumerate(tensors):
            qtype = GGMLQuantizationType[t.type]
            data = _tensor_data(spec, index, t, np, quants, qtype)
            writer.write_tensor_data(data)
            del data
    finally:
        if not to_path:
            writer.fout = None  # the caller's file object stays open
        writer.close()


def write_tiny_model(
    path: str | os.PathLike[str],
    *,
    arch: str = "llama",
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_ff: int | None = None,
    n_vocab: int | None = None,
    dtype: str = "f32",
    n_ctx_train: int = 2048,
    seed: int = 0,
) -> pathlib.Path:
    """Write a real, runnable GGUF model with random weights to ``path`` and return it.

    ``arch`` is ``"llama"`` (separate output matrix) or ``"qwen2"`` (Q/K/V biases, output
    tied to token_embd). Every matrix is stored as ``dtype`` (``f32``, ``f16``, ``q8_0``,
    ``q4_0``; quantized with ``gguf.quants``), norms and biases as F32. ``n_ff`` defaults to
    about 8/3 x n_embd, ``n_vocab`` to the 260-token byte vocabulary (more adds filler
    pieces, for a bigger embedding and output buffer). The same arguments give the same bytes.
    The file is written under a temporary name and renamed, so a reader never sees half a
    model.
    """
    spec = tiny_spec(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=n_ff,
        n_vocab=n_vocab,
        dtype=dtype,
        n_ctx_train=n_ctx_train,
        seed=seed,
    )
    return _write_spec(spec, pathlib.Path(path))


def _write_spec(spec: TinySpec, out: pathlib.Path) -> pathlib.Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        _write(spec, tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def tiny_model_cached(cache_dir: str | os.PathLike[str], **kwargs: Any) -> pathlib.Path:
    """The tiny model for ``kwargs`` (those of :func:`write_tiny_model`) from ``cache_dir``,
    written there first if missing.

    The file name carries a hash of the completed arguments, the format version and the
    package version, so a change in either writes a new file. Several processes asking for
    the same model at once (pytest-xdist workers) wait on an ``fcntl`` lock beside the file
    and only the first writes it; the write itself is atomic (temporary name, then rename).
    """
    spec = tiny_spec(**kwargs)
    root = pathlib.Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    out = root / f"tiny-{spec.arch}-{spec.dtype}-{spec.key()}.gguf"
    if out.exists():
        return out
    with _locked(root / f".{out.name}.lock"):
        if not out.exists():
            _write_spec(spec, out)
    return out
