"""Sizes at other file types against llama.cpp's own quantizer.

Tiny f16 models of three architectures (a llama with GQA 4 and an untied output, a qwen2
with Q/K/V biases and tied embeddings, a llama-style MoE with 8 experts) are quantized with
``llama_cpp.llama_model_quantize`` at several file types; the file it writes is read back
with ``gguf.GGUFReader`` and compared with :func:`target_types` (every tensor's type) and
:func:`requantize` (tensor data within 1%, in practice to the byte; data offset within the
alignment; file size). Shapes are chosen to reach the rules that matter: the first and last
eighth of the layers, rows that are not a multiple of 256 (fallbacks), GQA and 8 experts.
"""

from __future__ import annotations

import ctypes
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_llmfit.engine.ftypes import FTYPES, ftype_name
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.engine.quantize import (
    guess_ftype,
    model_ftype,
    requantize,
    target_types,
    tensors_requiring_imatrix,
)
from pytest_llmfit.errors import ConfigError

Tensor = tuple[str, tuple[int, ...], str]  # name, shape (ne0 first), "F16"/"F32"


def _meta(
    arch: str, n_layer: int, n_embd: int, n_head: int, n_head_kv: int, n_ff: int
) -> dict[str, Any]:
    return {
        f"{arch}.context_length": 2048,
        f"{arch}.embedding_length": n_embd,
        f"{arch}.block_count": n_layer,
        f"{arch}.feed_forward_length": n_ff,
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": n_head_kv,
        f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{arch}.rope.dimension_count": n_embd // n_head,
    }


def _blocks(
    n_layer: int, n_embd: int, kv: int, ffn: Callable[[str], list[Tensor]], bias: bool
) -> list[Tensor]:
    out: list[Tensor] = []
    for il in range(n_layer):
        p = f"blk.{il}."
        out += [(p + "attn_norm.weight", (n_embd,), "F32")]
        for name, rows in (("attn_q", n_embd), ("attn_k", kv), ("attn_v", kv)):
            out.append((p + name + ".weight", (n_embd, rows), "F16"))
            if bias:
                out.append((p + name + ".bias", (rows,), "F32"))
        out += [(p + "attn_output.weight", (n_embd, n_embd), "F16")]
        out += [(p + "ffn_norm.weight", (n_embd,), "F32"), *ffn(p)]
    return out


def _gated_ffn(n_embd: int, n_ff: int) -> Callable[[str], list[Tensor]]:
    """A dense SwiGLU block's feed-forward tensors, for a block prefix ``blk.N.``."""

    def ffn(p: str) -> list[Tensor]:
        return [
            (p + "ffn_gate.weight", (n_embd, n_ff), "F16"),
            (p + "ffn_up.weight", (n_embd, n_ff), "F16"),
            (p + "ffn_down.weight", (n_ff, n_embd), "F16"),
        ]

    return ffn


def _llama() -> tuple[str, dict[str, Any], list[Tensor]]:
    """Untied output, GQA 4, n_ff 320 (ffn_down rows fall back from 256-blocks)."""
    n_layer, n_embd, n_ff, n_vocab = 8, 256, 320, 512
    meta = _meta("llama", n_layer, n_embd, 8, 2, n_ff)

    ffn = _gated_ffn(n_embd, n_ff)
    head: list[Tensor] = [
        ("token_embd.weight", (n_embd, n_vocab), "F16"),
        ("output_norm.weight", (n_embd,), "F32"),
        ("output.weight", (n_embd, n_vocab), "F16"),
    ]
    return "llama", meta, head + _blocks(n_layer, n_embd, 64, ffn, bias=False)


def _qwen2_tied() -> tuple[str, dict[str, Any], list[Tensor]]:
    """Tied embeddings (no output.weight), Q/K/V biases, GQA 2, 12 layers."""
    n_layer, n_embd, n_ff, n_vocab = 12, 256, 512, 512
    meta = _meta("qwen2", n_layer, n_embd, 4, 2, n_ff)

    ffn = _gated_ffn(n_embd, n_ff)
    head: list[Tensor] = [
        ("token_embd.weight", (n_embd, n_vocab), "F16"),
        ("output_norm.weight", (n_embd,), "F32"),
    ]
    return "qwen2", meta, head + _blocks(n_layer, n_embd, 128, ffn, bias=True)


def _mixtral() -> tuple[str, dict[str, Any], list[Tensor]]:
    """8 experts (the rules' Mixtral bumps), layers read from names, 3-D expert tensors."""
    n_layer, n_embd, n_ff, n_vocab, n_expert = 8, 256, 256, 512, 8
    meta = _meta("llama", n_layer, n_embd, 8, 2, n_ff)
    meta["llama.expert_count"] = n_expert
    meta["llama.expert_used_count"] = 2

    def ffn(p: str) -> list[Tensor]:
        return [
            (p + "ffn_gate_inp.weight", (n_embd, n_expert), "F32"),
            (p + "ffn_gate_exps.weight", (n_embd, n_ff, n_expert), "F16"),
            (p + "ffn_up_exps.weight", (n_embd, n_ff, n_expert), "F16"),
            (p + "ffn_down_exps.weight", (n_ff, n_embd, n_expert), "F16"),
        ]

    head: list[Tensor] = [
        ("token_embd.weight", (n_embd, n_vocab), "F16"),
        ("output_norm.weight", (n_embd,), "F32"),
        ("output.weight", (n_embd, n_vocab), "F16"),
    ]
    return "llama", meta, head + _blocks(n_layer, n_embd, 64, ffn, bias=False)


ROWS = 16  # every matrix's ne1 in the written file: a model of a few hundred KB
MODELS = {"llama-gqa4": _llama, "qwen2-tied": _qwen2_tied, "mixtral-e8": _mixtral}
# File types llama-quantize makes without an importance matrix, and some that need one
# (their rules do not depend on having one: a matrix of ones is given).
PLAIN = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0", "IQ4_XS", "IQ4_NL")
PLAIN += ("Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ3_M", "IQ3_S")
WITH_IMATRIX = ("IQ2_M", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S")


def _write(path: pathlib.Path, arch: str, meta: dict[str, Any], tensors: list[Tensor]) -> None:
    gguf = pytest.importorskip("gguf")
    np = pytest.importorskip("numpy")
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(path.stem)
    writer.add_file_type(1)
    for key, value in meta.items():
        if isinstance(value, int):
            writer.add_uint32(key, value)
        else:
            writer.add_float32(key, float(value))
    rng = np.random.default_rng(0)
    for name, shape, kind in tensors:
        if len(shape) >= 2:  # few rows: the rules read ne0, ne2 and names, never ne1
            shape = (shape[0], ROWS, *shape[2:])
        data = rng.standard_normal(tuple(reversed(shape))).astype(np.float32) * 0.02
        writer.add_tensor(name, data.astype(np.float16) if kind == "F16" else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def llama_cpp() -> Iterator[Any]:
    module = pytest.importorskip("llama_cpp", reason="needs llama-cpp-python")

    @module.llama_log_callback  # type: ignore[misc]
    def quiet(level: int, text: bytes, user: Any) -> None:
        pass

    module.llama_log_set(quiet, ctypes.c_void_p(0))
    module.llama_backend_init()
    try:
        yield module
    finally:
        # Hand the log back to llama-cpp-python's own callback: llama.cpp keeps the pointer,
        # and a later load would call `quiet` after it was collected (a segfault).
        from llama_cpp import _logger

        module.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


@pytest.fixture(scope="module")
def f16_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("f16")
    paths = {}
    for name, build in MODELS.items():
        arch, meta, tensors = build()
        paths[name] = root / f"{name}.f16.gguf"
        _write(paths[name], arch, meta, tensors)
    return paths


def _quantize(llama_cpp: Any, src: pathlib.Path, dst: pathlib.Path, ftype: str) -> None:
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.nthread = 2
    keep: list[Any] = []
    if ftype in WITH_IMATRIX:  # a matrix of ones: allowed, and the rules do not read it
        model = read_gguf(src)
        entries = [t for t in model.tensors if len(t.shape) >= 2]
        table = (llama_cpp.llama_model_imatrix_data * (len(entries) + 1))()
        for i, info in enumerate(entries):
            n = info.shape[0] * (info.shape[2] if len(info.shape) > 2 else 1)
            values = (ctypes.c_float * n)(*([1.0] * n))
            keep.append(values)
            table[i].name = info.name.encode()
            table[i].data = ctypes.cast(values, ctypes.POINTER(ctypes.c_float))
            table[i].size = n
        table[len(entries)].name = None
        keep.append(table)
        params.imatrix = ctypes.cast(table, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    code = llama_cpp.llama_model_quantize(
        str(src).encode(), str(dst).encode(), ctypes.byref(params)
    )
    assert code == 0, f"llama_model_quantize {src.name} -> {ftype} failed"


# The IQ1/IQ2 quantizers build their lattice tables on first use: tens of seconds. An IQ1 mix
# of the 8-expert model takes minutes and its rules are the IQ2 ones: not generated.
CASES = [
    pytest.param(model, ftype, marks=[pytest.mark.slow] if ftype in WITH_IMATRIX else [])
    for model in MODELS
    for ftype in (*PLAIN, *WITH_IMATRIX)
    if not (model == "mixtral-e8" and ftype.startswith("IQ1"))
]


@pytest.mark.parametrize(("model", "ftype"), CASES)
def test_types_and_sizes_match_llama_quantize(
    llama_cpp: Any,
    f16_models: dict[str, pathlib.Path],
    tmp_path: pathlib.Path,
    model: str,
    ftype: str,
) -> None:
    gguf = pytest.importorskip("gguf")
    src = read_gguf(f16_models[model])
    out = tmp_path / f"{model}.{ftype}.gguf"
    _quantize(llama_cpp, f16_models[model], out, ftype)

    reader = gguf.GGUFReader(str(out))
    written = {t.name: t.tensor_type.name for t in reader.tensors}
    predicted = target_types(src.tensors, src.metadata, ftype)
    assert predicted == written

    planned = requantize(src, ftype)
    assert [t.name for t in planned.tensors] == [t.name for t in reader.tensors]  # same order
    data = sum(int(t.n_bytes) for t in reader.tensors)
    ours = sum(t.nbytes for t in planned.tensors)
    assert abs(ours - data) <= data / 100  # the bound; in practice exact
    assert ours == data
    assert abs(planned.data_offset - reader.data_offset) <= planned.alignment  # padding
    assert planned.file_size - planned.data_offset == out.stat().st_size - reader.data_offset
    assert [t.offset for t in planned.tensors] == [
        int(t.data_offset) - reader.data_offset for t in reader.tensors
    ]
    assert model_ftype(planned) == ftype


def test_imatrix_file_types_are_named(f16_models: dict[str, pathlib.Path]) -> None:
    model = read_gguf(f16_models["llama-gqa4"])
    assert tensors_requiring_imatrix(model.tensors, model.metadata, "Q4_K_M") == []
    needs = tensors_requiring_imatrix(model.tensors, model.metadata, "IQ2_XXS")
    assert needs and "token_embd.weight" not in needs and "output.weight" not in needs


def test_requantize_reads_like_the_twins_mix(twin_header: Callable[..., Any]) -> None:
    """The twin writer's mix and the quantizer port agree on real tensor tables."""
    for model_id, quant in (
        ("llama-3.1-70b", "q4_k_m"),
        ("mixtral-8x7b", "q3_k_m"),
        ("gemma-2-2b", "q2_k"),
    ):
        model = twin_header(model_id, quant)
        types = target_types(model.tensors, model.metadata, quant)
        assert {t.name: t.ggml_type.name for t in model.tensors} == types
        again = requantize(model, quant)
        assert [(t.name, t.type_id, t.offset) for t in again.tensors] == [
            (t.name, t.type_id, t.offset) for t in model.tensors
        ]
        assert again.data_offset == model.data_offset


def test_file_type_names() -> None:
    assert ftype_name("q4_k") == "Q4_K_M"
    assert ftype_name("mostly_q8_0") == "Q8_0"
    assert ftype_name(31) == "IQ1_M"
    with pytest.raises(ConfigError, match="'Q9_K' is not a llama-quantize type"):
        ftype_name("Q9_K", source="--quant")


def test_guess_ftype_without_the_key(twin_header: Callable[..., Any]) -> None:
    from dataclasses import replace

    model = twin_header("llama-3.1-8b", "q4_k_m")
    assert guess_ftype(model) == "Q4_K_M"
    bare = replace(
        model, metadata={k: v for k, v in model.metadata.items() if k != "general.file_type"}
    )
    assert model_ftype(bare) is None
    assert guess_ftype(bare) == "Q4_K_M"
