"""Tiny real models: written with the gguf package, loaded and run by llama-cpp-python."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.errors import ConfigError
from pytest_llmfit.twins.tiny import (
    ARCHS,
    BYTE_VOCAB,
    DTYPES,
    dims_for_size,
    tiny_model_cached,
    tiny_model_size,
    tiny_spec,
    write_tiny_model,
)

pytest.importorskip(
    "gguf", reason="writing tiny models needs the gguf package (pip install -e .[dev])"
)
np = pytest.importorskip("numpy", reason="writing tiny models needs numpy (pip install -e .[dev])")
llama_cpp = pytest.importorskip(
    "llama_cpp", reason="needs the llama extra: pip install -e .[llama]"
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], pathlib.Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {
        (arch, dtype): write_tiny_model(root / f"{arch}-{dtype}.gguf", arch=arch, dtype=dtype)
        for arch in ARCHS
        for dtype in DTYPES
    }


def test_same_arguments_same_bytes(tmp_path: pathlib.Path) -> None:
    a = write_tiny_model(tmp_path / "a.gguf", dtype="q8_0", n_layer=3)
    b = write_tiny_model(tmp_path / "b.gguf", dtype="q8_0", n_layer=3)
    c = write_tiny_model(tmp_path / "c.gguf", dtype="q8_0", n_layer=3, seed=1)
    assert a.read_bytes() == b.read_bytes()
    assert a.stat().st_size == c.stat().st_size
    assert a.read_bytes() != c.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "b.gguf", "c.gguf"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_header_and_size(
    models: dict[tuple[str, str], pathlib.Path], arch: str, dtype: str
) -> None:
    path = models[arch, dtype]
    assert path.stat().st_size == tiny_model_size(arch=arch, dtype=dtype)
    g = read_gguf(path)
    assert g.architecture == arch
    names = {t.name for t in g.tensors}
    assert ("output.weight" in names) is (arch == "llama")  # qwen2 ties it to token_embd
    assert ("blk.1.attn_q.bias" in names) is (arch == "qwen2")
    types = {t.name: t.ggml_type.name.lower() for t in g.tensors if t.ggml_type}
    assert types["blk.0.ffn_down.weight"] == dtype
    assert types["token_embd.weight"] == dtype
    assert types["blk.0.attn_norm.weight"] == "f32"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_llama_cpp_loads_tokenizes_and_generates(
    models: dict[tuple[str, str], pathlib.Path], arch: str, dtype: str
) -> None:
    llm = llama_cpp.Llama(
        str(models[arch, dtype]), n_ctx=256, verbose=False, logits_all=True, seed=1
    )
    try:
        assert llm.n_vocab() == BYTE_VOCAB
        tokens = llm.tokenize(b"hello world")
        assert tokens[0] == llm.token_bos()
        assert llm.detokenize(tokens) == b"hello world"
        unicode = "grüße, 世界 ✓".encode()
        assert llm.detokenize(llm.tokenize(unicode)) == unicode
        llm.eval(tokens)
        assert np.isfinite(llm.scores[: len(tokens)]).all()
        out = llm("hello", max_tokens=8, temperature=0.0)
        assert out["usage"]["completion_tokens"] > 0
        assert isinstance(out["choices"][0]["text"], str)
    finally:
        llm.close()


def test_size_from_kilobytes_to_hundreds_of_megabytes() -> None:
    assert tiny_model_size(dtype="q4_0") < 100_000
    for target in (10**6, 10**7, 10**8, 3 * 10**8):
        for dtype in DTYPES:
            dims = dims_for_size(target, dtype)
            size = tiny_model_size(dtype=dtype, **dims)
            # measured: within 3.2% from 1 MB up (the n_ff step of 32 bounds the error)
            assert abs(size - target) / target < 0.05, (target, dtype, dims, size)


def test_dims_for_size_shapes_are_loadable(tmp_path: pathlib.Path) -> None:
    dims = dims_for_size(4 * 10**6, "q4_0", arch="qwen2")
    path = write_tiny_model(tmp_path / "m.gguf", arch="qwen2", dtype="q4_0", **dims)
    assert path.stat().st_size == tiny_model_size(arch="qwen2", dtype="q4_0", **dims)
    llm = llama_cpp.Llama(str(path), n_ctx=128, verbose=False)
    try:
        assert llm("hi", max_tokens=2)["usage"]["completion_tokens"] > 0
    finally:
        llm.close()


def test_bigger_vocabulary(tmp_path: pathlib.Path) -> None:
    path = write_tiny_model(tmp_path / "v.gguf", n_vocab=1000)
    llm = llama_cpp.Llama(str(path), n_ctx=128, verbose=False)
    try:
        assert llm.n_vocab() == 1000
        assert llm.detokenize(llm.tokenize(b"a b")) == b"a b"
    finally:
        llm.close()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"arch": "gpt9"}, "architecture"),
        ({"dtype": "q4_k"}, "dtype"),
        ({"n_embd": 48, "n_head": 4, "dtype": "q4_0"}, "multiple of 32"),
        ({"n_ff": 100, "dtype": "q8_0"}, "multiple of 32"),
        ({"n_head": 3}, "multiple of n_head"),
        ({"n_head_kv": 3}, "divisor of n_head"),
        ({"n_layer": 0}, ">= 1"),
        ({"n_vocab": 100}, "vocabulary size"),
        ({"seed": -1}, ">= 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        tiny_spec(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_cache_reuses_and_keys(tmp_path: pathlib.Path) -> None:
    a = tiny_model_cached(tmp_path, n_layer=1)
    mtime = a.stat().st_mtime_ns
    assert tiny_model_cached(tmp_path, n_layer=1) == a
    assert a.stat().st_mtime_ns == mtime
    assert tiny_model_cached(tmp_path, n_layer=1, n_ff=None, dtype="f32") == a  # defaults spelt out
    b = tiny_model_cached(tmp_path, n_layer=1, dtype="f16")
    assert b != a
    assert a.read_bytes() == write_tiny_model(tmp_path / "direct.gguf", n_layer=1).read_bytes()


def test_cache_is_safe_across_processes(tmp_path: pathlib.Path) -> None:
    """Four processes asking at once get one complete file and leave no temporary files."""
    code = (
        "import sys; from pytest_llmfit.twins.tiny import tiny_model_cached; "
        "print(tiny_model_cached(sys.argv[1], n_layer=4, n_embd=256, n_head=4, dtype='f16'))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(4)
    ]
    outs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outs) == 1
    path = pathlib.Path(outs.pop())
    expected = tiny_model_size(n_layer=4, n_embd=256, n_head=4, dtype="f16")
    assert path.stat().st_size == expected
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert leftovers == []
