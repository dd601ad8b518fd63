"""The example project's models, generated at session start so a fresh clone just works.

pytest-llmfit decides at collection, from each GGUF's header alone, whether a test's model
fits. A header-only stub (the real file's metadata and tensor table, no weights, ~3 MB) is
therefore enough to test *decisions* about a 405B model on any machine. Here:

* ``Llama-3.1-405B-Instruct-Q3_K_M.gguf`` and ``Llama-3.1-8B-Instruct-Q4_K_M.gguf``: shape
  twins of the published files (``pytest_llmfit.twins.write_twin``), header only;
* ``tiny-llama-f32.gguf``: a real, tiny model (``tiny_model.py``) that llama.cpp loads and
  generates from in milliseconds.

They go into ``models/`` (gitignored), which ``pytest.ini`` names as ``llmfit_models_dir``,
so markers use bare file names. A stamp file regenerates them when pytest-llmfit's twin
writer or ``tiny_model.py`` changes. In a real project the same directory would hold the
real weights (or stubs made with ``pytest-llmfit stub MODEL OUT``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).parent
MODELS = HERE / "models"

LLAMA_405B = "Llama-3.1-405B-Instruct-Q3_K_M.gguf"
LLAMA_8B = "Llama-3.1-8B-Instruct-Q4_K_M.gguf"
TINY = "tiny-llama-f32.gguf"

# file name -> (twin catalog id, quantization mix); see `pytest-llmfit twin --list`.
TWINS = {
    LLAMA_405B: ("llama-3.1-405b", "q3_k_m"),
    LLAMA_8B: ("llama-3.1-8b", "q4_k_m"),
}


def _stamp() -> str:
    """Changes whenever the generators could write different bytes."""
    import pytest_llmfit.twins

    digest = hashlib.sha256(pytest_llmfit.__version__.encode())
    sources = sorted(Path(pytest_llmfit.twins.__file__).parent.glob("*.py"))
    for source in [*sources, HERE / "tiny_model.py"]:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _load_tiny_model() -> ModuleType:
    # By file path, so it works under any --import-mode and from any working directory.
    spec = importlib.util.spec_from_file_location("_example_tiny_model", HERE / "tiny_model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate_models(directory: Path = MODELS) -> Path:
    """Write the stubs and the tiny model into ``directory`` unless they are current."""
    stamp_file = directory / ".stamp"
    stamp = _stamp()
    wanted = [directory / name for name in (*TWINS, TINY)]
    current = stamp_file.is_file() and stamp_file.read_text().strip() == stamp
    if current and all(path.is_file() for path in wanted):
        return directory

    from pytest_llmfit.twins import write_twin

    write_tiny_llama = _load_tiny_model().write_tiny_llama
    # Write into a private directory, then move each file into place: sessions started side
    # by side (a CI matrix on one machine, a test running this suite) never see half a file.
    directory.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".generating-", dir=directory))
    try:
        for name, (model_id, quant) in TWINS.items():
            write_twin(model_id, scratch / name, quant=quant, header_only=True)
        write_tiny_llama(scratch / TINY)
        (scratch / ".stamp").write_text(stamp + "\n")
        for path in wanted:
            os.replace(scratch / path.name, path)
        os.replace(scratch / ".stamp", stamp_file)  # last: the stamp vouches for the files
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, where pytest-llmfit reads the headers. Under pytest-xdist the
    # controller configures first, so workers find the files in place.
    if getattr(config, "workerinput", None) is None:
        try:
            generate_models()
        except ImportError as error:
            raise pytest.UsageError(
                f"this example writes its models with the gguf and numpy packages ({error}): "
                "pip install 'pytest-llmfit[gguf]'"
            ) from None


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return MODELS
