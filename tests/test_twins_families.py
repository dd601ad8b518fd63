"""The 2026 twins (twins/decoders.py, swa.py, mla.py, hybrid.py, encoder.py and the
Mamba-2 hybrids of recurrent.py).

Each is registered, has a well-formed table, adds up to its model card's parameter count
(where the card counts the text model alone) and has llama.cpp's recorded truth beside it
in tests/data/llamacpp/ (loading a twin is what checks its table: llama.cpp refuses a
missing or an extra tensor).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Callable

import pytest

from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import GGUFFile
from pytest_llmfit.twins import (
    MODELS,
    decoders,
    encoder,
    hybrid,
    mla,
    recurrent,
    swa,
    tensor_types,
)
from pytest_llmfit.twins.spec import ModelShape

SHAPES: tuple[ModelShape, ...] = (
    decoders.SHAPES
    + swa.SHAPES
    + mla.SHAPES
    + hybrid.SHAPES
    + recurrent.HYBRID_SHAPES
    + encoder.SHAPES
)
ZOO = pathlib.Path(__file__).parent / "data" / "llamacpp"
MiB = 2**20

# Parameters on the model cards (billions). Multimodal cards that count their vision or
# audio towers (Gemma 3n/4, Llama 4) and the approximate Mistral 4 shape are left out.
CARD_PARAMS = {
    "smollm3-3b": 3.08,
    "seed-oss-36b": 36.15,
    "ernie-4.5-21b-a3b": 21.83,
    "glm-4.5-air": 110.0,  # 106B + the NextN layer
    "command-r7b": 8.03,
    "olmo-3-7b": 7.30,
    "exaone-4.0-32b": 32.0,
    "deepseek-v3.2": 685.0,  # 671B + the MTP layer
    "qwen3-next-80b-a3b": 81.3,
    "lfm2-1.2b": 1.17,
    "lfm2-8b-a1b": 8.34,
    "falcon-h1-0.5b": 0.52,
    "nemotron-nano-9b-v2": 8.89,
    "kimi-linear-48b-a3b": 49.1,
    "bge-small-en-v1.5": 0.0334,
    "nomic-embed-text-v1.5": 0.137,
    "nomic-embed-text-v2-moe": 0.475,
    "jina-embeddings-v2-small-en": 0.0329,
    "modernbert-base": 0.149,
    "embeddinggemma-300m": 0.308,
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_registered_and_well_formed(shape: ModelShape) -> None:
    assert MODELS[shape.id] is shape
    names = [t.name for t, _ in tensor_types(shape)]
    assert len(names) == len(set(names))
    n_layer = int(shape.metadata["block_count"])  # type: ignore[arg-type]
    blocks = {int(n.split(".")[1]) for n in names if n.startswith("blk.")}
    assert blocks == set(range(n_layer))
    assert "token_embd.weight" in names
    for key, value in shape.metadata.items():
        if isinstance(value, list) and key != "rope.dimension_sections":
            assert len(value) == n_layer, key  # llama.cpp refuses other lengths


@pytest.mark.parametrize("model_id", sorted(CARD_PARAMS))
def test_parameter_count_matches_the_model_card(model_id: str) -> None:
    n = sum(math.prod(t.shape) for t in MODELS[model_id].tensors()) / 1e9
    assert n == pytest.approx(CARD_PARAMS[model_id], rel=0.03)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.id)
def test_llama_cpp_loaded_it(shape: ModelShape) -> None:
    record = json.loads((ZOO / f"{shape.id}.json").read_text())
    assert record["arch"] == shape.arch and "error" not in record["load"]
    assert any(case["status"] == "ok" for case in record["cases"])


def test_qwen35_9b_cache_matches_a_public_log_of_the_real_file(
    twin_header: Callable[..., GGUFFile],
) -> None:
    """tests/data/logs/20-qwen3.5-9b-...log (llama.cpp b9849, the Unsloth UD-Q4_K_XL file):
    KV 96.00 + 160.00 MiB, RS 20.94 + 29.31 MiB (R 2.25, S 48.00), output 0.95 MiB at n_ctx
    8192, one sequence; the split across devices does not change the sums."""
    fp = estimate(twin_header("qwen3.5-9b"), Settings(n_ctx=8192, n_ubatch=2048, n_batch=2048))
    assert fp.kv_cache_bytes == 256 * MiB
    assert fp.recurrent_bytes == round(50.25 * MiB)
    assert round(fp.output_bytes / MiB, 2) == 0.95
