"""Shape twins of MoE, MLA, SWA + sinks, recurrent and hybrid models (moe.py, recurrent.py).

What is checked without llama.cpp:
- each table has the tensor count llama.cpp's ``load_arch_tensors`` asks for (derived here
  from the loader's rules, independently of the table builders) and the parameter count the
  model card publishes;
- each twin writes, and reads back with gguf's GGUFReader with the same metadata, tensor
  names, shapes and types, and is exactly header + data section long;
- the default quantization lands at the size of the published GGUF.

With llama-cpp-python installed (``slow``), llama.cpp loads every twin: a wrong tensor
count, a wrong shape or a missing key makes it refuse the file.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

import pytest

from pytest_llmfit.twins import (
    MODELS,
    data_size,
    get_model,
    moe,
    recurrent,
    tensor_types,
    write_twin,
)
from pytest_llmfit.twins.spec import ModelShape

SHAPES: tuple[ModelShape, ...] = moe.SHAPES + recurrent.SHAPES
IDS = [s.id for s in SHAPES]


def _expected_tensor_count(model_id: str) -> int:
    """Tensors llama.cpp's loader creates for the model, from the rules of src/models/*.cpp."""
    if model_id == "mixtral-8x7b":
        # token_embd, output_norm, output; per layer attn_norm, q, k, v, o, ffn_norm,
        # ffn_gate_inp, gate/down/up_exps
        return 3 + 32 * 10
    if model_id == "qwen1.5-moe-a2.7b":
        # + q/k/v biases, ffn_gate_inp_shexp and the three shared-expert tensors
        return 3 + 24 * (10 + 3 + 4)
    if model_id == "qwen3-30b-a3b":
        # + attn_q_norm, attn_k_norm
        return 3 + 48 * (10 + 2)
    if model_id.startswith("deepseek-v2-lite"):
        # per layer: attn_norm, attn_kv_a_norm, attn_q, attn_kv_a_mqa, (k_b + v_b | kv_b),
        # attn_output, ffn_norm; layer 0 dense gate/down/up; 26 MoE layers gate_inp,
        # 3 exps, 3 shexp
        attn = 8 if model_id == "deepseek-v2-lite" else 7
        return 3 + 27 * attn + 3 + 26 * 7
    if model_id == "gpt-oss-20b":
        # per layer: attn_norm, post_attention_norm, q/k/v (+ biases), o (+ bias), sinks,
        # gate_inp (+ bias), gate/down/up_exps (+ biases)
        return 3 + 24 * (2 + 6 + 2 + 1 + 2 + 6)
    if model_id == "mamba-2.8b":
        # tied output; per layer attn_norm, ssm_in, conv1d (+ bias), ssm_x, ssm_dt (+ bias),
        # ssm_a, ssm_d, ssm_out
        return 2 + 64 * 10
    if model_id == "granite-4.0-h-tiny":
        # tied output; 36 Mamba-2 layers (attn_norm, ssm_in, conv1d + bias, dt bias, a, d,
        # ssm_norm, ssm_out) and 4 attention layers (attn_norm, q, k, v, o), each with
        # ffn_norm, gate_inp, 3 exps, 3 shexp
        return 2 + 36 * (9 + 8) + 4 * (5 + 8)
    raise AssertionError(f"no expected count for {model_id}")


# Parameters published on the model cards (billions), to 3 significant digits.
PUBLISHED_PARAMS_B = {
    "mixtral-8x7b": 46.7,
    "qwen1.5-moe-a2.7b": 14.3,
    "qwen3-30b-a3b": 30.5,
    "deepseek-v2-lite": 15.7,
    "deepseek-v2-lite-legacy": 15.7,
    "gpt-oss-20b": 20.9,
    "mamba-2.8b": 2.77,
    "granite-4.0-h-tiny": 6.94,
}

# Published GGUF sizes of the default quantization, in GB (10**9), and the tolerance.
PUBLISHED_GB = {
    # Qwen/Qwen3-30B-A3B-GGUF Qwen3-30B-A3B-Q4_K_M.gguf
    "qwen3-30b-a3b": (18.6, 0.02),
    # bartowski DeepSeek-V2-Lite-Chat-Q4_K_M.gguf (legacy attn_kv_b layout)
    "deepseek-v2-lite": (10.36, 0.02),
    "deepseek-v2-lite-legacy": (10.36, 0.02),
    # ggml-org/gpt-oss-20b-GGUF gpt-oss-20b-mxfp4.gguf
    "gpt-oss-20b": (12.1, 0.02),
    # ibm-granite/granite-4.0-h-tiny-GGUF granite-4.0-h-tiny-Q4_K_M.gguf
    "granite-4.0-h-tiny": (4.23, 0.02),
    # TheBloke mixtral-8x7b-instruct-v0.1.Q4_K_M.gguf is 26.44 GB, but it was quantized
    # (Dec 2023) before llama-quantize recognised merged experts as ffn_down: today's mix
    # gives half of the expert ffn_down tensors Q6_K (use_more_bits), about 2 GB more.
    "mixtral-8x7b": (28.4, 0.02),
}

# Bits per weight of the default mix over the whole file.
BPW_RANGE = {"q4_k_m": (4.5, 5.5), "q8_0": (8.4, 8.8), "mxfp4_moe": (4.4, 4.8)}


def _n_params(shape: ModelShape) -> int:
    return sum(math.prod(t.shape) for t in shape.tensors())


def test_all_shapes_are_in_the_registry() -> None:
    for shape in SHAPES:
        assert MODELS[shape.id] is shape
        assert get_model(shape.id) is shape


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_table_is_well_formed(shape: ModelShape) -> None:
    tensors = shape.tensors()
    names = [t.name for t in tensors]
    assert len(names) == len(set(names)), "duplicated tensor names"
    for t in tensors:
        assert t.shape and all(isinstance(n, int) and n > 0 for n in t.shape), t
        assert t.type in (None, "F32", "MXFP4"), t
    for key in shape.metadata:
        assert not key.startswith(shape.arch + "."), f"{key}: metadata keys drop the arch prefix"
    assert shape.notes, "notes name the source of the figures"
    token_embd = next(t for t in tensors if t.name == "token_embd.weight")
    assert token_embd.shape[1] == shape.n_vocab
    assert token_embd.shape[0] == shape.metadata["embedding_length"]


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_tensor_count_matches_llamacpp_loader(shape: ModelShape) -> None:
    assert len(shape.tensors()) == _expected_tensor_count(shape.id)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_parameter_count_matches_model_card(shape: ModelShape) -> None:
    assert _n_params(shape) / 1e9 == pytest.approx(PUBLISHED_PARAMS_B[shape.id], rel=0.005)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_default_quant_size_is_plausible(shape: ModelShape) -> None:
    size = data_size(shape)
    lo, hi = BPW_RANGE[shape.default_quant]
    assert lo <= size * 8 / _n_params(shape) <= hi
    if shape.id in PUBLISHED_GB:
        gb, rel = PUBLISHED_GB[shape.id]
        assert size / 1e9 == pytest.approx(gb, rel=rel)


def test_gpt_oss_experts_stay_mxfp4_and_the_rest_f32_or_q8() -> None:
    types = {spec.name: t for spec, t in tensor_types("gpt-oss-20b")}
    assert types["blk.0.ffn_down_exps.weight"] == "MXFP4"
    assert types["blk.0.ffn_down_exps.bias"] == "F32"
    assert types["blk.0.attn_sinks.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "Q8_0"
    assert types["output.weight"] == "Q8_0"
    # with an f16 mix the experts still stay MXFP4 (the 13.8 GB "F16" uploads)
    f16 = dict((s.name, t) for s, t in tensor_types("gpt-oss-20b", "f16"))
    assert f16["blk.0.ffn_up_exps.weight"] == "MXFP4"
    assert data_size("gpt-oss-20b", "f16") / 1e9 == pytest.approx(13.8, rel=0.02)


def test_deepseek_mla_and_legacy_metadata() -> None:
    mla = get_model("deepseek-v2-lite").metadata
    assert mla["attention.head_count_kv"] == 1
    assert mla["attention.key_length"] == 576 and mla["attention.value_length"] == 512
    assert mla["attention.key_length_mla"] == 192 and mla["attention.value_length_mla"] == 128
    legacy = get_model("deepseek-v2-lite-legacy").metadata
    assert "attention.key_length_mla" not in legacy
    assert legacy["attention.head_count_kv"] == 16


def test_granite_hybrid_marks_recurrent_layers_with_zero_kv_heads() -> None:
    kv = get_model("granite-4.0-h-tiny").metadata["attention.head_count_kv"]
    assert isinstance(kv, list) and len(kv) == 40
    assert [i for i, n in enumerate(kv) if n] == [5, 15, 25, 35]


# --- writing and reading back -----------------------------------------------------------------


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("twins_moe")


# GGUFReader parses a 150k-token vocabulary in 10-20 s: those read-backs run with the slow tests.
READBACK = [
    pytest.param(s, id=s.id, marks=[pytest.mark.slow] if s.n_vocab > 100_000 else [])
    for s in SHAPES
]


@pytest.mark.parametrize("shape", READBACK)
def test_twin_writes_and_reads_back(shape: ModelShape, twin_dir: pathlib.Path) -> None:
    gguf = pytest.importorskip("gguf")
    path = write_twin(shape, twin_dir / f"{shape.id}.gguf")
    reader = gguf.GGUFReader(path)

    assert reader.fields["general.architecture"].contents() == shape.arch
    for key, value in shape.metadata.items():
        got = reader.fields[f"{shape.arch}.{key}"].contents()
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-6), key
        else:
            assert got == value, key
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == shape.n_vocab

    expected = {spec.name: (spec.shape, t) for spec, t in tensor_types(shape)}
    got = {t.name: (tuple(int(n) for n in t.shape), t.tensor_type.name) for t in reader.tensors}
    assert got == expected

    # header, alignment, then the data section as a sparse hole
    last = max(reader.tensors, key=lambda t: t.data_offset)
    assert os.path.getsize(path) >= last.data_offset + last.n_bytes
    assert os.path.getsize(path) - reader.data_offset == data_size(shape)
    path.unlink()


# --- llama.cpp accepts the tables -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_llamacpp_loads_the_twin(shape: ModelShape, twin_dir: pathlib.Path) -> None:
    pytest.importorskip("gguf")
    llama_cpp = pytest.importorskip("llama_cpp")
    path = write_twin(shape, twin_dir / f"{shape.id}.load.gguf")
    try:
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False  # no CPU repack: it would read the hole
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        assert model, f"llama.cpp refused {shape.id}"
        try:
            assert llama_cpp.llama_model_n_params(model) == _n_params(shape)
            assert llama_cpp.llama_model_size(model) == data_size(shape)
        finally:
            llama_cpp.llama_model_free(model)
    finally:
        path.unlink(missing_ok=True)


# --- what llama.cpp allocated for them (tests/data/llamacpp/<id>.json, scripts/record_llamacpp.py)

DATA = pathlib.Path(__file__).parent / "data" / "llamacpp"
MIB_ROUNDING = 0.006 * 2**20  # the log prints MiB with two decimals
BYTES = {"f16": 2.0, "q8_0": 34 / 32}


def _recorded(model_id: str) -> dict[str, Any]:
    path = DATA / f"{model_id}.json"
    if not path.exists():
        pytest.skip(f"{path.name} not recorded")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _ok_cases(data: dict[str, Any]) -> list[dict[str, Any]]:
    cases = [c for c in data["cases"] if c["status"] == "ok"]
    assert cases
    return cases


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_recorded_model_buffer_is_the_data_section(shape: ModelShape) -> None:
    data = _recorded(shape.id)
    assert data["load"]["llama_model_size"] == data_size(shape, data["quant"])
    assert data["load"]["llama_model_n_params"] == _n_params(shape)
    mapped = sum(data["load"]["buffers"].values())
    assert abs(mapped - data_size(shape, data["quant"])) <= MIB_ROUNDING


def _kv_bytes(case: dict[str, Any]) -> int:
    return sum(case["buffers"]["kv"].values())


def test_recorded_mla_caches_only_the_latent() -> None:
    """MLA: one K row of kv_lora_rank + rope (576) per layer and cell, and no V at all."""
    for case in _ok_cases(_recorded("deepseek-v2-lite")):
        cells = case["n_ctx"]
        per = BYTES[case["settings"]["cache_type"]]
        assert abs(_kv_bytes(case) - 27 * cells * 576 * per) <= MIB_ROUNDING
        assert all(k["v_bytes"] == 0 for k in case["kv_cache"])


def test_recorded_legacy_deepseek_caches_full_heads() -> None:
    """Pre-MLA GGUF: 16 heads of K 192 and V 128 per layer and cell, 9.4x the latent."""
    for case in _ok_cases(_recorded("deepseek-v2-lite-legacy")):
        per = BYTES[case["settings"]["cache_type"]]
        assert abs(_kv_bytes(case) - 27 * case["n_ctx"] * 16 * (192 + 128) * per) <= MIB_ROUNDING


def test_recorded_mamba_state_is_fixed() -> None:
    """Mamba-1: f32 conv state (d_conv-1) x d_inner and SSM state d_state x d_inner per layer,
    one cell per sequence, whatever n_ctx and cache type; no KV cache."""
    per_layer = (3 * 5120 + 16 * 5120) * 4
    for case in _ok_cases(_recorded("mamba-2.8b")):
        assert _kv_bytes(case) == 0
        assert abs(sum(case["buffers"]["rs"].values()) - 64 * per_layer) <= MIB_ROUNDING


def test_recorded_granite_hybrid_kv_and_state() -> None:
    """Hybrid: KV only for the 4 attention layers, Mamba-2 state for the other 36."""
    conv = 3 * (3072 + 2 * 1 * 128)
    ssm = 128 * 3072
    for case in _ok_cases(_recorded("granite-4.0-h-tiny")):
        per = BYTES[case["settings"]["cache_type"]]
        assert abs(_kv_bytes(case) - 4 * case["n_ctx"] * 4 * 128 * 2 * per) <= MIB_ROUNDING
        rs = sum(case["buffers"]["rs"].values())
        assert abs(rs - 36 * (conv + ssm) * 4) <= MIB_ROUNDING


def test_recorded_gpt_oss_sliding_window_cache() -> None:
    """12 full layers of n_ctx cells; 12 SWA layers of n_ctx cells with swa_full (llama-cpp-
    python's default), else of pad(min(n_ctx, n_swa + n_ubatch), 256) cells."""
    row = 8 * 64 * 2  # K + V, per cell, 8 KV heads of 64
    for case in _ok_cases(_recorded("gpt-oss-20b")):
        s = case["settings"]
        per = BYTES[s["cache_type"]]
        n_ctx = case["n_ctx"]
        swa_cells = n_ctx if s["swa_full"] else -(-min(n_ctx, 128 + s["n_ubatch"]) // 256) * 256
        expected = 12 * n_ctx * row * per + 12 * swa_cells * row * per
        assert abs(_kv_bytes(case) - expected) <= 2 * MIB_ROUNDING
