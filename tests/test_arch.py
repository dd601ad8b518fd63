"""Architecture rules (engine/arch/) on hand-built headers: one test per llama.cpp rule.

Each header is an in-memory GGUFFile with just the metadata and tensors the rule reads; the
expected figures come from llama.cpp's sources (cited) and, for the recorded twins, from
tests/data/llamacpp/ (test_estimate_zoo.py checks those end to end).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

from pytest_llmfit.engine import arch
from pytest_llmfit.engine.arch import (
    DENSE_ARCHS,
    ENCODER_ARCHS,
    HYBRID_ARCHS,
    KNOWN_ARCHS,
    MLA_ARCHS,
    RECURRENT_ARCHS,
    REGISTRY,
    SWA_ARCHS,
    UNKNOWN_ARCH,
    ModelParams,
    model_params,
)
from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import INPUT_GROUP, _placement_group, estimate
from pytest_llmfit.engine.gguf import GGUFFile, MetadataValue, TensorInfo

F32, F16 = 0, 1
ARCH_DIR = pathlib.Path(arch.__file__).parent


def fake(
    arch_name: str,
    meta: dict[str, MetadataValue],
    tensors: list[tuple[str, tuple[int, ...]]] | None = None,
    *,
    n_layer: int | None = None,
    n_vocab: int = 1000,
    n_embd: int = 64,
) -> GGUFFile:
    """A header: ``<arch>.`` metadata, a vocabulary and F16 tensors laid out back to back.
    Without ``tensors``, token_embd and one attn_norm per block."""
    blocks = int(meta.get("block_count", n_layer or 4))  # type: ignore[arg-type]
    md: dict[str, MetadataValue] = {"general.architecture": arch_name}
    md.update({f"{arch_name}.{k}": v for k, v in meta.items()})
    md.setdefault(f"{arch_name}.block_count", blocks)
    md.setdefault(f"{arch_name}.embedding_length", n_embd)
    md["tokenizer.ggml.tokens"] = tuple(f"t{i}" for i in range(n_vocab))
    names = tensors or [("token_embd.weight", (n_embd, n_vocab))] + [
        (f"blk.{il}.attn_norm.weight", (n_embd,)) for il in range(blocks)
    ]
    infos, offset = [], 0
    for name, shape in names:
        info = TensorInfo(name, shape, F16, offset)
        infos.append(info)
        offset += -(-info.nbytes // 32) * 32
    return GGUFFile("fake.gguf", 3, 32, md, tuple(infos), 0, offset, ("fake.gguf",), True)


def kv_layers(p: ModelParams) -> list[int]:
    return [il for il, layer in enumerate(p.layers) if layer.kv]


def recurrent_layers(p: ModelParams) -> list[int]:
    return [il for il, layer in enumerate(p.layers) if layer.recurrent]


# --- the package: families, registry, imports ---------------------------------------------


def test_sixty_plus_architectures_grouped_by_memory_family() -> None:
    assert len(KNOWN_ARCHS) >= 60
    families = (DENSE_ARCHS, SWA_ARCHS, MLA_ARCHS, RECURRENT_ARCHS, HYBRID_ARCHS, ENCODER_ARCHS)
    assert all(families)
    assert sum(len(f) for f in families) == len(KNOWN_ARCHS)  # each in exactly one family
    for name in ("gemma4", "qwen35", "qwen35moe", "gemma3n", "glm4moe", "deepseek32", "mistral4"):
        assert name in KNOWN_ARCHS
    for name in ("kimi-linear", "ernie4_5-moe", "smollm3", "lfm2moe", "seed_oss", "bert"):
        assert name in KNOWN_ARCHS
    for name in ("nomic-bert", "jina-bert-v2", "jina-bert-v3", "modern-bert", "gemma-embedding"):
        assert name in ENCODER_ARCHS
    assert "mixtral" not in KNOWN_ARCHS  # not a llama.cpp architecture name


def test_every_rule_cites_llama_cpp_and_lives_in_its_family_module() -> None:
    for name, rule in REGISTRY.items():
        assert ".cpp" in rule.source or ".h" in rule.source, name
        module = (ARCH_DIR / f"{rule.family}.py").read_text()
        assert f'"{name}"' in module, f"{name} is not in {rule.family}.py"


def test_modules_have_a_role_and_stay_small() -> None:
    for path in ARCH_DIR.glob("*.py"):
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), path.name
        assert len(text.splitlines()) <= 500, path.name


def test_unknown_architecture_is_estimated_with_a_note() -> None:
    p = model_params(fake("brand-new", {"attention.head_count": 4}))
    assert not p.known and p.family == ""
    assert p.notes[0].startswith(UNKNOWN_ARCH)
    assert kv_layers(p) == [0, 1, 2, 3]


# --- encoders: no KV cache ----------------------------------------------------------------


def test_bert_bge_has_no_kv_cache() -> None:
    """create_memory returns nullptr for bert (llama-model.cpp:2358-2374): the estimate used
    to give BERT-bge 75 MB of KV at the default 4096 context."""
    meta: dict[str, MetadataValue] = {
        "block_count": 12,
        "embedding_length": 384,
        "attention.head_count": 12,
        "feed_forward_length": 1536,
        "context_length": 512,
    }
    p = model_params(fake("bert", meta, n_embd=384, n_vocab=30522))
    assert p.known and p.family == "encoder" and not p.causal
    assert kv_layers(p) == [] and recurrent_layers(p) == []
    fp = estimate(fake("bert", meta, n_embd=384, n_vocab=30522), Settings(n_ctx=4096))
    assert fp.kv_cache_bytes == 0 and fp.recurrent_bytes == 0


@pytest.mark.parametrize("name", sorted(ENCODER_ARCHS))
def test_no_encoder_gets_memory(name: str) -> None:
    p = model_params(fake(name, {"attention.head_count": 4, "attention.sliding_window": 8}))
    assert kv_layers(p) == [] and recurrent_layers(p) == []


def test_bert_token_embd_norm_lives_with_layer_0_and_has_no_tied_output() -> None:
    tensors = [
        ("token_embd.weight", (64, 1000)),
        ("token_embd_norm.weight", (64,)),
        ("blk.0.attn_norm.weight", (64,)),
    ]
    model = fake("bert", {"block_count": 1, "attention.head_count": 4}, tensors)
    p = model_params(model)
    assert _placement_group(model.tensors[1], 1, p) == 0
    assert not estimate(model).output_is_tied  # BERT has no output matrix to duplicate


# --- hybrids ------------------------------------------------------------------------------

_GDN = {
    "attention.head_count": 16,
    "attention.head_count_kv": 2,  # a scalar: it does not mark the recurrent layers
    "attention.key_length": 256,
    "attention.value_length": 256,
    "ssm.conv_kernel": 4,
    "ssm.state_size": 128,
    "ssm.group_count": 16,
    "ssm.time_step_rank": 32,
    "ssm.inner_size": 4096,
}


@pytest.mark.parametrize("name", ["qwen3next", "qwen35", "qwen35moe"])
def test_gated_delta_net_layers_come_from_the_interval(name: str) -> None:
    """qwen3next.cpp:17-23: (il + 1) % full_attention_interval != 0 (default 4) is recurrent;
    the MTP layer is neither recurrent nor cached (llama-model.cpp:2698-2705)."""
    p = model_params(fake(name, {**_GDN, "block_count": 9, "nextn_predict_layers": 1}))
    assert recurrent_layers(p) == [0, 1, 2, 4, 5, 6]
    assert kv_layers(p) == [3, 7]
    assert p.recurrent_r == 3 * (4096 + 2 * 16 * 128) and p.recurrent_s == 128 * 4096
    fp = estimate(fake(name, {**_GDN, "block_count": 9, "nextn_predict_layers": 1}))
    assert fp.recurrent_bytes == 6 * (p.recurrent_r + p.recurrent_s) * 4


def test_recurrent_layers_array_wins_over_the_interval() -> None:
    flags = (True, False, True, False)
    p = model_params(fake("qwen35", {**_GDN, "attention.recurrent_layers": flags}))
    assert recurrent_layers(p) == [0, 2] and kv_layers(p) == [1, 3]


def test_lfm2_short_convolution_state() -> None:
    """llama-hparams.cpp:214-217: r = n_embd x (l_cache - 1), s = 0 (it used to be 0/0)."""
    meta: dict[str, MetadataValue] = {
        "attention.head_count": 32,
        "attention.head_count_kv": (0, 0, 8, 0),
        "shortconv.l_cache": 3,
    }
    p = model_params(fake("lfm2", meta, n_embd=2048))
    assert recurrent_layers(p) == [0, 1, 3] and kv_layers(p) == [2]
    assert (p.recurrent_r, p.recurrent_s) == (2048 * 2, 0)
    assert not any(layer.swa for layer in p.layers)
    windowed = model_params(fake("lfm2", {**meta, "attention.sliding_window": 512}, n_embd=2048))
    assert [il for il, lay in enumerate(windowed.layers) if lay.swa] == [2]  # lfm2.cpp:26-31
    assert windowed.n_swa == 512


def test_falcon_h1_layers_hold_kv_and_state() -> None:
    """falcon-h1.cpp:14 and llama-model.cpp:2688-2690: every layer both."""
    meta: dict[str, MetadataValue] = {
        "attention.head_count": 8,
        "attention.head_count_kv": 2,
        "ssm.conv_kernel": 4,
        "ssm.inner_size": 1536,
        "ssm.state_size": 128,
        "ssm.group_count": 1,
        "ssm.time_step_rank": 24,
    }
    p = model_params(fake("falcon-h1", meta))
    assert kv_layers(p) == recurrent_layers(p) == [0, 1, 2, 3]
    assert p.recurrent_r == 3 * (1536 + 2 * 128) and p.recurrent_s == 128 * 1536


def test_nemotron_h_mlp_layers_hold_neither() -> None:
    """nemotron-h.cpp:14-16: recurrent only where head_count_kv and feed_forward_length are
    both 0; attention only where feed_forward_length is 0 (llama-model.cpp:2691-2697)."""
    meta: dict[str, MetadataValue] = {
        "attention.head_count": 8,
        "attention.head_count_kv": (0, 0, 2, 0),
        "feed_forward_length": (0, 512, 0, 512),
        "ssm.conv_kernel": 4,
        "ssm.inner_size": 256,
        "ssm.state_size": 16,
        "ssm.group_count": 1,
    }
    p = model_params(fake("nemotron_h", meta))
    assert recurrent_layers(p) == [0] and kv_layers(p) == [2]
    assert not p.layers[1].attention and not p.layers[3].recurrent


def test_kimi_linear_kda_state_and_mla_cache() -> None:
    """KDA (llama-hparams.cpp:219-247) beside K-only MLA layers."""
    meta: dict[str, MetadataValue] = {
        "attention.head_count": 32,
        "attention.head_count_kv": (0, 0, 0, 1),
        "attention.key_length": 576,
        "attention.value_length": 512,
        "attention.key_length_mla": 192,
        "attention.value_length_mla": 128,
        "ssm.conv_kernel": 4,
        "kda.head_dim": 128,
    }
    model = fake("kimi-linear", meta)
    p = model_params(model)
    assert recurrent_layers(p) == [0, 1, 2] and kv_layers(p) == [3] and p.mla
    assert (p.recurrent_r, p.recurrent_s) == (3 * 3 * 32 * 128, 128 * 128 * 32)
    fp = estimate(model, Settings(n_ctx=1024, flash_attn="off"))
    assert fp.kv_cache_bytes == 576 * 2 * 1024  # K only, f16


# --- sliding windows ---------------------------------------------------------------------


def test_llama4_chunked_attention_unless_the_window_is_zero() -> None:
    """llama4.cpp:8-24: n_swa forced to 8192, 3 of every 4 layers; sliding_window = 0 off."""
    meta: dict[str, MetadataValue] = {"block_count": 8, "attention.head_count": 4}
    p = model_params(fake("llama4", meta))
    assert p.n_swa == 8192
    assert [lay.swa for lay in p.layers] == [True, True, True, False] * 2
    assert model_params(fake("llama4", {**meta, "attention.sliding_window": 0})).n_swa == 0
    assert model_params(fake("llama4", {**meta, "attention.sliding_window": 4096})).n_swa == 8192


def test_exaone4_slides_only_with_64_layers() -> None:
    """exaone4.cpp:4-14: the window key alone does not turn SWA on."""
    small = model_params(fake("exaone4", {"block_count": 30, "attention.sliding_window": 4096}))
    assert small.n_swa == 0 and not any(lay.swa for lay in small.layers)
    big = model_params(fake("exaone4", {"block_count": 64, "attention.head_count": 8}))
    assert big.n_swa == 4096 and sum(lay.swa for lay in big.layers) == 48


def test_olmo2_window_means_pattern_4() -> None:
    """olmo2.cpp:6-15 (OLMo 3)."""
    plain = model_params(fake("olmo2", {"block_count": 8, "attention.head_count": 4}))
    assert plain.n_swa == 0
    p = model_params(fake("olmo2", {"block_count": 8, "attention.sliding_window": 4096}))
    assert [lay.swa for lay in p.layers] == [True, True, True, False] * 2


def test_phi3_window_is_ignored() -> None:
    p = model_params(fake("phi3", {"attention.sliding_window": 2047, "attention.head_count": 4}))
    assert p.n_swa == 0


def test_gemma3n_layers_past_20_share_kv() -> None:
    """gemma3n.cpp:7 and llama-model.cpp:2780-2790: n_layer_kv_from_start = 20."""
    meta: dict[str, MetadataValue] = {
        "block_count": 30,
        "attention.head_count": 8,
        "attention.head_count_kv": 2,
        "attention.key_length": 256,
        "attention.value_length": 256,
        "attention.sliding_window": 512,
    }
    p = model_params(fake("gemma3n", meta))
    assert kv_layers(p) == list(range(20))
    assert all(lay.attention for lay in p.layers)  # shared layers still attend
    assert [il for il in range(20) if not p.layers[il].swa] == [4, 9, 14, 19]


def test_gemma4_per_layer_heads_and_shared_kv() -> None:
    """gemma4.cpp:4-21: key_length for full layers, key_length_swa for window layers, KV
    heads per layer, the last shared_kv_layers own no cache; transposed V rows are as wide
    as the widest layer's (llama-hparams.cpp:199-206)."""
    pattern = (True, True, True, True, False, True, True, True, True, False)
    meta: dict[str, MetadataValue] = {
        "block_count": 10,
        "attention.head_count": 8,
        "attention.head_count_kv": (2, 2, 2, 2, 1, 2, 2, 2, 2, 1),
        "attention.key_length": 512,
        "attention.value_length": 512,
        "attention.key_length_swa": 256,
        "attention.value_length_swa": 256,
        "attention.sliding_window": 512,
        "attention.sliding_window_pattern": pattern,
        "attention.shared_kv_layers": 4,
    }
    model = fake("gemma4", meta)
    p = model_params(model)
    assert kv_layers(p) == [0, 1, 2, 3, 4, 5]
    assert p.layers[4].n_embd_k_gqa == 512 and p.layers[0].n_embd_k_gqa == 512
    assert p.layers[0].head_dim_k == 256
    cells = 1024
    fa = estimate(model, Settings(n_ctx=cells, flash_attn="on"))
    assert fa.kv_cache_bytes == 6 * 2 * 512 * 2 * cells
    no_fa = estimate(model, Settings(n_ctx=cells, flash_attn="off"))
    assert no_fa.kv_cache_bytes == 6 * (512 + 512) * 2 * cells


def test_gemma_per_layer_tensors_are_placed_like_llama_cpp() -> None:
    tensors = [
        ("token_embd.weight", (64, 1000)),
        ("per_layer_token_embd.weight", (256, 1000)),
        ("per_layer_model_proj.weight", (64, 256)),
        ("altup_proj.weight", (64, 64, 3)),
        ("blk.0.attn_norm.weight", (64,)),
    ]
    model = fake("gemma3n", {"block_count": 1, "attention.head_count": 4}, tensors)
    p = model_params(model)
    groups = [_placement_group(t, 1, p) for t in model.tensors]
    assert groups == [INPUT_GROUP, INPUT_GROUP, 0, 1, 0]


def test_lfm2_output_norm_named_token_embd_norm_is_an_output_tensor() -> None:
    tensors = [
        ("token_embd.weight", (64, 1000)),
        ("token_embd_norm.weight", (64,)),
        ("blk.0.attn_norm.weight", (64,)),
    ]
    model = fake("lfm2", {"block_count": 1, "shortconv.l_cache": 3}, tensors)
    assert _placement_group(model.tensors[1], 1, model_params(model)) == 1


# --- MLA, DSA and NextN -------------------------------------------------------------------

_MLA = {
    "attention.head_count": 16,
    "attention.head_count_kv": 1,
    "attention.key_length": 576,
    "attention.value_length": 512,
    "attention.key_length_mla": 192,
    "attention.value_length_mla": 128,
}


def _nextn_model(name: str, extra: dict[str, MetadataValue]) -> GGUFFile:
    tensors = [("token_embd.weight", (64, 1000))]
    for il in range(3):
        tensors += [(f"blk.{il}.attn_norm.weight", (64,)), (f"blk.{il}.ffn_up.weight", (64, 640))]
    tensors += [("blk.2.exp_probs_b.bias", (16,)), ("blk.2.nextn.eh_proj.weight", (128, 64))]
    return fake(name, {"block_count": 3, "nextn_predict_layers": 1, **extra}, tensors)


@pytest.mark.parametrize("name", ["glm4moe", "glm4", "deepseek2", "qwen35", "exaone4"])
def test_nextn_tensors_are_not_loaded(name: str) -> None:
    """TENSOR_SKIP when load_mtp is false (llama-model.cpp:2927; llama-cpp-python never sets
    it): the block's bytes are neither counted nor mapped, and it holds no KV."""
    model = _nextn_model(name, {"attention.head_count": 4})
    fp = estimate(model)
    blk2 = [t for t in model.tensors if t.name.startswith("blk.2.")]
    assert fp.layers[2].weights_bytes == 0 and fp.layers[2].kv_bytes == 0
    assert fp.mapped_bytes == blk2[0].offset  # the mapping ends before the NextN block


def test_deepseek32_keeps_the_nextn_expert_bias_and_adds_the_indexer_cache() -> None:
    """deepseek32.cpp:121: exp_probs_b is created without the MTP flags; the DSA indexer
    caches indexer.key_length K elements per trunk layer (llama-model.cpp:2427-2431)."""
    model = _nextn_model("deepseek32", {**_MLA, "attention.indexer.key_length": 128})
    p = model_params(model)
    assert p.skipped_tensors == {
        "blk.2.attn_norm.weight",
        "blk.2.ffn_up.weight",
        "blk.2.nextn.eh_proj.weight",
    }
    assert [lay.indexer_k for lay in p.layers] == [128, 128, 0]
    fp = estimate(model, Settings(n_ctx=256, flash_attn="off"))
    assert fp.kv_cache_bytes == 2 * (576 + 128) * 2 * 256  # K only: MLA latent + indexer
    assert fp.layers[2].weights_bytes == 16 * 2


def test_glm_dsa_indexer_only_on_full_layers() -> None:
    types: tuple[MetadataValue, ...] = (1, 0, 1, 0)
    meta = {**_MLA, "attention.indexer.key_length": 128, "attention.indexer.types": types}
    p = model_params(fake("glm-dsa", meta))
    assert [lay.indexer_k for lay in p.layers] == [128, 0, 128, 0]


def test_mla_without_mla_keys_caches_full_heads() -> None:
    p = model_params(fake("deepseek2", {"attention.head_count": 16, "attention.key_length": 192}))
    assert not p.mla and any("MLA cache not used" in n for n in p.notes)


# --- experts ------------------------------------------------------------------------------


def test_expert_width_follows_each_loader() -> None:
    """mistral3.cpp:73-85 sizes experts by feed_forward_length; qwen3moe.cpp:50 falls back
    to n_ff / n_expert_used; others take expert_feed_forward_length."""
    base: dict[str, MetadataValue] = {
        "attention.head_count": 4,
        "feed_forward_length": 4096,
        "expert_count": 8,
        "expert_used_count": 2,
    }
    assert (
        model_params(fake("mistral3", {**base, "expert_feed_forward_length": 512})).n_ff_exp == 4096
    )
    assert model_params(fake("qwen3moe", base)).n_ff_exp == 2048
    assert (
        model_params(fake("qwen3moe", {**base, "expert_feed_forward_length": 768})).n_ff_exp == 768
    )
    assert model_params(fake("llama", base)).n_ff_exp == 4096  # Mixtral: no expert key
