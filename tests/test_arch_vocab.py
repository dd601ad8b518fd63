"""llama.cpp's own vocabulary-only GGUFs (models/ggml-vocab-*.gguf in its source tree).

They are real files from real converters, with metadata and no tensors: our reader must
read their metadata exactly as gguf-py does, and estimate/plan must refuse each as a model
in one line that names the file and what is missing. Three of them carry real
hyperparameters that the twins reuse (gemma-4 = Gemma 4 26B-A4B, bert-bge = bge-small,
nomic-bert-moe = nomic-embed-text-v2-moe); that is checked here too.

The files (93 MB together) are not copied into the repository: scripts/bootstrap.sh takes
them from the sdist of the installed llama-cpp-python into .llmfit-cache/vocab/ (or set
LLMFIT_LLAMACPP_SRC to a llama.cpp source tree). Without them the tests skip, except under
CI, where their absence is an error.
"""

from __future__ import annotations

import math
import os
import pathlib

import pytest

from pytest_llmfit.engine.estimate import estimate
from pytest_llmfit.engine.gguf import GGUFFile, SkippedArray, read_gguf
from pytest_llmfit.engine.plan import plan
from pytest_llmfit.errors import GGUFError
from pytest_llmfit.hardware.specs import host_from_spec
from pytest_llmfit.twins import MODELS

gguf = pytest.importorskip("gguf", reason="comparing with gguf-py needs the gguf package")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _vocab_dir() -> pathlib.Path | None:
    candidates = [ROOT / ".llmfit-cache" / "vocab"]  # scripts/bootstrap.sh puts them here
    if os.environ.get("LLMFIT_LLAMACPP_SRC"):
        candidates.append(pathlib.Path(os.environ["LLMFIT_LLAMACPP_SRC"]) / "models")
    for base in (ROOT.parent / "sdist", ROOT / "sdist", pathlib.Path("/tmp/sdist")):
        candidates += sorted(base.glob("llama_cpp_python-*/vendor/llama.cpp/models"))
    return next((c for c in candidates if list(c.glob("ggml-vocab-*.gguf"))), None)


VOCAB_DIR = _vocab_dir()
FILES = sorted(VOCAB_DIR.glob("ggml-vocab-*.gguf")) if VOCAB_DIR else []
if not FILES and os.environ.get("CI"):  # CI installs them (bootstrap.sh): never skip there
    raise RuntimeError("llama.cpp's ggml-vocab-*.gguf are missing: run scripts/bootstrap.sh")
pytestmark = pytest.mark.skipif(
    not FILES, reason="llama.cpp's models/ggml-vocab-*.gguf not found (run scripts/bootstrap.sh)"
)


def test_all_nineteen_vocab_files_are_there() -> None:
    assert len(FILES) == 19


def _same(ours: object, field: object) -> bool:
    contents = field.contents()  # type: ignore[attr-defined]
    if isinstance(ours, SkippedArray):
        return ours.length == len(contents)
    if isinstance(ours, tuple):
        return len(ours) == len(contents) and all(
            _same_scalar(a, b) for a, b in zip(ours, contents, strict=True)
        )
    return _same_scalar(ours, contents)


def _same_scalar(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-6)  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_metadata_reads_as_gguf_py_reads_it(path: pathlib.Path) -> None:
    model = read_gguf(path)
    reader = gguf.GGUFReader(str(path))
    keys = {k for k in reader.fields if not k.startswith("GGUF.")}
    assert set(model.metadata) == keys
    for key in keys:
        assert _same(model.metadata[key], reader.fields[key]), key
    assert model.tensors == () and len(reader.tensors) == 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_estimate_and_plan_refuse_a_vocab_file_in_one_line(path: pathlib.Path) -> None:
    model = read_gguf(path)
    for attempt in (lambda m: estimate(m), lambda m: plan(m, host_from_spec("rtx-4090"))):
        with pytest.raises(GGUFError) as info:
            attempt(model)
        message = str(info.value)
        assert "\n" not in message
        assert path.name in message
        assert f"has no tensors ({model.architecture} metadata only" in message


def _hparams(model: GGUFFile) -> dict[str, object]:
    arch = model.architecture
    return {
        k[len(arch) + 1 :]: v
        for k, v in model.metadata.items()
        if k.startswith(arch + ".") and not isinstance(v, SkippedArray)
    }


@pytest.mark.parametrize(
    ("vocab", "twin"),
    [
        ("ggml-vocab-gemma-4.gguf", "gemma-4-26b-a4b"),
        ("ggml-vocab-bert-bge.gguf", "bge-small-en-v1.5"),
        ("ggml-vocab-nomic-bert-moe.gguf", "nomic-embed-text-v2-moe"),
    ],
)
def test_twins_carry_the_vocab_files_hyperparameters(vocab: str, twin: str) -> None:
    real = _hparams(read_gguf(VOCAB_DIR / vocab))  # type: ignore[operator]
    shape = MODELS[twin]
    for key, value in real.items():
        if key in ("attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon"):
            continue  # not memory-relevant
        mine = shape.metadata.get(key)
        if mine is None:
            continue
        if isinstance(value, tuple):
            assert tuple(mine) == value, key  # type: ignore[arg-type]
        else:
            assert _same_scalar(mine, value), key
    assert shape.n_vocab == read_gguf(VOCAB_DIR / vocab).vocab_size  # type: ignore[operator]
