"""Shape twins: the writer, the quantization mix, the dense catalog and the recorded truth."""

from __future__ import annotations

import json
import os
import pathlib
import re

import pytest

from pytest_llmfit.errors import ConfigError
from pytest_llmfit.twins import (
    MODELS,
    QUANTS,
    ModelShape,
    TensorSpec,
    data_size,
    dense,
    get_model,
    get_quant,
    tensor_types,
    write_twin,
)

DATA = pathlib.Path(__file__).parent / "data" / "llamacpp"


def _tiny(n_vocab: int = 320, n_layer: int = 2, **meta: object) -> ModelShape:
    e, ff = 256, 512

    def tensors() -> list[TensorSpec]:
        t = [
            TensorSpec("token_embd.weight", (e, n_vocab)),
            TensorSpec("output_norm.weight", (e,)),
            TensorSpec("output.weight", (e, n_vocab)),
        ]
        for i in range(n_layer):
            p = f"blk.{i}."
            t += [
                TensorSpec(p + "attn_norm.weight", (e,)),
                TensorSpec(p + "attn_q.weight", (e, e)),
                TensorSpec(p + "attn_k.weight", (e, 64)),
                TensorSpec(p + "attn_v.weight", (e, 64)),
                TensorSpec(p + "attn_output.weight", (e, e)),
                TensorSpec(p + "ffn_norm.weight", (e,)),
                TensorSpec(p + "ffn_gate.weight", (e, ff)),
                TensorSpec(p + "ffn_up.weight", (e, ff)),
                TensorSpec(p + "ffn_down.weight", (ff, e)),
            ]
        return t

    md: dict[str, object] = {
        "context_length": 2048,
        "embedding_length": e,
        "block_count": n_layer,
        "feed_forward_length": ff,
        "attention.head_count": 4,
        "attention.head_count_kv": 1,
        "rope.freq_base": 10000.0,
        "attention.layer_norm_rms_epsilon": 1e-5,
    }
    md.update(meta)
    return ModelShape(
        id="tiny",
        arch="llama",
        title="tiny",
        n_vocab=n_vocab,
        metadata=md,  # type: ignore[arg-type]
        tensors=tensors,
    )


# --- the writer -------------------------------------------------------------------------------


def test_reader_reads_back_tensor_table_and_metadata(tmp_path: pathlib.Path) -> None:
    gguf = pytest.importorskip("gguf")
    shape = _tiny()
    path = write_twin(shape, tmp_path / "tiny.gguf", quant="q4_k_m")
    reader = gguf.GGUFReader(path)
    expected = tensor_types(shape, "q4_k_m")
    assert len(reader.tensors) == len(expected)
    by_name = {t.name: t for t in reader.tensors}
    for spec, type_name in expected:
        t = by_name[spec.name]
        assert tuple(int(n) for n in t.shape) == spec.shape
        assert t.tensor_type.name == type_name
    f = reader.fields
    assert f["general.architecture"].types == [gguf.GGUFValueType.STRING]
    assert f["llama.block_count"].types == [gguf.GGUFValueType.UINT32]
    assert f["llama.rope.freq_base"].types == [gguf.GGUFValueType.FLOAT32]
    assert f["general.file_type"].parts[-1][0] == QUANTS["q4_k_m"].ftype
    tokens = f["tokenizer.ggml.tokens"]
    assert len(tokens.data) == shape.n_vocab
    assert bytes(tokens.parts[tokens.data[3 + 0x0A]]) == b"<0x0A>"
    assert f["tokenizer.ggml.token_type"].types == [
        gguf.GGUFValueType.ARRAY,
        gguf.GGUFValueType.INT32,
    ]


def test_metadata_types_override_and_arrays(tmp_path: pathlib.Path) -> None:
    gguf = pytest.importorskip("gguf")
    shape = _tiny(**{"attention.sliding_window_pattern": [True, False], "expert_gating_func": 2})
    shape = ModelShape(
        id=shape.id,
        arch=shape.arch,
        title=shape.title,
        n_vocab=shape.n_vocab,
        metadata=shape.metadata,
        tensors=shape.tensors,
        metadata_types={"expert_gating_func": "INT32"},
    )
    reader = gguf.GGUFReader(write_twin(shape, tmp_path / "t.gguf", quant="f16"))
    f = reader.fields
    assert f["llama.attention.sliding_window_pattern"].types == [
        gguf.GGUFValueType.ARRAY,
        gguf.GGUFValueType.BOOL,
    ]
    assert f["llama.expert_gating_func"].types == [gguf.GGUFValueType.INT32]


def test_twin_is_sparse_with_full_size(tmp_path: pathlib.Path) -> None:
    path = write_twin("llama-3.1-8b", tmp_path / "8b.gguf", quant="q4_k_m")
    st = os.stat(path)
    assert 4.85e9 < st.st_size < 4.95e9  # published Q4_K_M: 4.92 GB
    assert st.st_blocks * 512 < 16 * 2**20  # the header only


def test_header_only_ends_after_the_aligned_tensor_table(tmp_path: pathlib.Path) -> None:
    full = write_twin("qwen3-0.6b", tmp_path / "full.gguf")
    head = write_twin("qwen3-0.6b", tmp_path / "head.gguf", header_only=True)
    n_head = os.path.getsize(head)
    assert n_head % 32 == 0 and n_head < 8 * 2**20
    assert os.path.getsize(full) == n_head + data_size("qwen3-0.6b")
    assert full.read_bytes()[:n_head] == head.read_bytes()


def test_405b_q3_k_m_is_the_published_size(tmp_path: pathlib.Path) -> None:
    path = write_twin("llama-3.1-405b", tmp_path / "405b.gguf", quant="q3_k_m")
    assert 190e9 < os.path.getsize(path) < 196e9  # published GGUFs: ~191-195 GB


@pytest.mark.parametrize(
    ("model", "quant", "low", "high"),
    [
        ("llama-3.1-8b", "q4_k_m", 4.85e9, 4.93e9),
        ("llama-3.1-8b", "q8_0", 8.45e9, 8.55e9),
        ("qwen2.5-7b", "q4_k_m", 4.6e9, 4.7e9),
        ("gemma-2-9b", "q4_k_m", 5.7e9, 5.8e9),
        ("phi-3-mini-4k", "q4_k_m", 2.35e9, 2.42e9),
    ],
)
def test_data_size_matches_published_files(model: str, quant: str, low: float, high: float) -> None:
    assert low < data_size(model, quant) < high


def test_write_leaves_no_partial_file_on_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError):
        write_twin("llama-3.1-8b", tmp_path / "x.gguf", quant="q9_9")
    assert list(tmp_path.iterdir()) == []


# --- the quantization mix ---------------------------------------------------------------------


def _types(model: str, quant: str) -> dict[str, str]:
    return {spec.name: t for spec, t in tensor_types(model, quant)}


def test_q4_k_m_mix_of_llama_8b() -> None:
    t = _types("llama-3.1-8b", "q4_k_m")
    assert t["token_embd.weight"] == "Q4_K"
    assert t["output.weight"] == "Q6_K"
    assert t["rope_freqs.weight"] == "F32"
    assert t["blk.0.attn_norm.weight"] == "F32"
    # use_more_bits(i, 32): i < 4, i >= 28, (i - 4) % 3 == 2
    more = {i for i in range(32) if i < 4 or i >= 28 or (i - 4) % 3 == 2}
    for i in range(32):
        want = "Q6_K" if i in more else "Q4_K"
        assert t[f"blk.{i}.attn_v.weight"] == want
        assert t[f"blk.{i}.ffn_down.weight"] == want
        assert t[f"blk.{i}.attn_q.weight"] == "Q4_K"


def test_q3_k_m_mix_of_405b() -> None:
    t = _types("llama-3.1-405b", "q3_k_m")
    assert t["output.weight"] == "Q6_K"
    assert t["token_embd.weight"] == "Q3_K"
    assert [t[f"blk.{i}.attn_v.weight"] for i in range(3)] == ["Q5_K", "Q5_K", "Q4_K"]
    assert t["blk.0.ffn_down.weight"] == "Q5_K"  # i < n/16
    assert t["blk.100.ffn_down.weight"] == "Q4_K"
    assert t["blk.5.attn_output.weight"] == "Q4_K"
    assert t["blk.5.ffn_up.weight"] == "Q3_K"


def test_tied_embeddings_take_the_output_type() -> None:
    t = _types("llama-3.2-1b", "q4_k_m")
    assert "output.weight" not in t
    assert t["token_embd.weight"] == "Q6_K"


def test_rows_not_a_multiple_of_the_block_fall_back() -> None:
    t = _types("qwen2.5-0.5b", "q4_k_m")  # 896 = 3.5 x 256
    assert t["blk.1.attn_q.weight"] == "Q5_0"  # Q4_K -> Q5_0
    assert t["blk.0.attn_v.weight"] == "Q8_0"  # Q6_K -> Q8_0
    assert t["token_embd.weight"] == "Q8_0"  # tied output rule: 896 % 256 != 0
    assert t["blk.0.attn_q.bias"] == "F32"
    f = _types("falcon-7b", "q4_k_m")
    assert f["output.weight"] == "Q8_0"  # falcon's output is always Q8_0


def test_70b_gets_the_attn_v_bump() -> None:
    t = _types("llama-3.1-70b", "q4_k_m")
    assert t["blk.1.attn_v.weight"] == "Q6_K"  # use_more_bits
    assert t["blk.11.attn_v.weight"] == "Q5_K"  # Q4_K bumped for LLM_TYPE_70B


def test_f16_and_q8_0_mixes() -> None:
    f16 = _types("qwen3-8b", "f16")
    assert f16["blk.0.attn_q_norm.weight"] == "F32"
    assert {t for n, t in f16.items() if not n.endswith("norm.weight")} == {"F16"}
    q8 = _types("qwen3-8b", "Q8_0")
    assert q8["output.weight"] == "Q8_0" and q8["blk.3.ffn_down.weight"] == "Q8_0"


def test_unknown_quant_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="q4_k_m"):
        get_quant("q4_k_x")


# --- the catalog ------------------------------------------------------------------------------


def test_registry_lists_the_dense_models() -> None:
    required = {
        "llama-3.1-8b",
        "llama-3.1-405b",
        "llama-3.2-1b",
        "mistral-7b-v0.3",
        "qwen2.5-0.5b",
        "qwen2.5-7b",
        "qwen3-0.6b",
        "qwen3-8b",
        "gemma-2b",
        "gemma-2-2b",
        "gemma-2-9b",
        "gemma-3-1b",
        "gemma-3-4b",
        "phi-3-mini-4k",
        "command-r-v01",
        "granite-3.1-8b",
        "starcoder2-3b",
        "falcon-7b",
    }
    assert required <= set(MODELS)
    assert get_model("LLAMA-3.1-8B") is MODELS["llama-3.1-8b"]


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(ConfigError) as exc:
        get_model("llama-3.1-7b", source="--models")
    msg = str(exc.value)
    assert "llama-3.1-8b" in msg and "'llama-3.1-7b'" in msg and "--models" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("shape", dense.SHAPES, ids=lambda s: s.id)
def test_dense_tables_are_consistent(shape: ModelShape) -> None:
    specs = shape.tensors()
    names = [t.name for t in specs]
    assert len(set(names)) == len(names)
    md = shape.metadata
    n_layer = md["block_count"]
    blocks = {int(m.group(1)) for n in names if (m := re.match(r"blk\.(\d+)\.", n))}
    assert blocks == set(range(n_layer))  # type: ignore[arg-type]
    by_name = {t.name: t for t in specs}
    assert by_name["token_embd.weight"].shape == (md["embedding_length"], shape.n_vocab)
    if "output.weight" in by_name:
        assert by_name["output.weight"].shape == (md["embedding_length"], shape.n_vocab)
    assert shape.notes
    for key, value in md.items():
        assert isinstance(value, (int, float, str, bool, list)), key
    # every layer holds the same tensors
    per_layer = {n.split(".", 2)[2] for n in names if n.startswith("blk.0.")}
    last = {n.split(".", 2)[2] for n in names if n.startswith(f"blk.{n_layer - 1}.")}
    assert per_layer == last


# --- the recorded truth -----------------------------------------------------------------------

_RECORDS = sorted(DATA.glob("*.json"))


@pytest.mark.parametrize("path", _RECORDS, ids=lambda p: p.stem)
def test_recorded_json_is_well_formed(path: pathlib.Path) -> None:
    rec = json.loads(path.read_text())
    assert rec["schema"] == 1
    repack = rec["model_params"]["set"]["use_extra_bufts"]
    # <model>.json with the CPU repack off; <model>-<quant>-repack.json with it on.
    assert path.stem == (f"{rec['model']}-{rec['quant']}-repack" if repack else rec["model"])
    assert rec["model"] in MODELS
    if repack:
        assert "CPU_REPACK" in rec["load"]["buffers"] or rec["quant"] == "f16"
    assert isinstance(rec["file_size"], int) and rec["file_size"] > 0
    assert rec["quant"] in QUANTS
    assert rec["cases"]
    n_ok = 0
    for case in rec["cases"]:
        s = case["settings"]
        assert {"n_ctx", "cache_type", "flash_attn", "n_ubatch", "n_batch"} <= set(s)
        assert case["status"] in ("ok", "refused", "skipped")
        if case["status"] != "ok":
            assert case.get("message") or case.get("reason")
            continue
        n_ok += 1
        b = case["buffers"]
        assert set(b) == {"model", "kv", "rs", "compute", "output"}
        for kind, per_name in b.items():
            for name, n in per_name.items():
                assert isinstance(name, str) and isinstance(n, int) and n >= 0, (kind, name)
        assert sum(b["model"].values()) > 0
        assert sum(b["compute"].values()) > 0
        assert sum(b["output"].values()) > 0
        assert case["n_ctx"] >= s["n_ctx"]
    assert n_ok > 0


# --- llama.cpp itself (slow) ------------------------------------------------------------------


@pytest.mark.slow
def test_llama_cpp_maps_a_twin_and_sizes_it(tmp_path: pathlib.Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    import ctypes

    path = write_twin("qwen3-0.6b", tmp_path / "q.gguf", quant="q8_0")
    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def cb(level: int, text: bytes, user_data: object) -> None:
        lines.append(text.decode(errors="replace"))

    llama_cpp.llama_log_set(cb, ctypes.c_void_p(0))
    try:
        mp = llama_cpp.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
        mp.use_extra_bufts = False
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
        assert model, "".join(lines[-20:])
        llama_cpp.llama_model_free(model)
    finally:  # hand the log back to llama-cpp-python's own callback
        from llama_cpp import _logger

        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
    text = "".join(lines)
    m = re.search(r"CPU_Mapped model buffer size =\s*([0-9.]+) MiB", text)
    assert m, text[-2000:]
    # the mapped buffer is the data section (token_embd included)
    assert abs(float(m.group(1)) * 2**20 - data_size("qwen3-0.6b", "q8_0")) < 2**20
