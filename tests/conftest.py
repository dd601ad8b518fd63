from __future__ import annotations

import os
import pathlib
from collections.abc import Callable

import pytest

from pytest_llmfit.engine.gguf import GGUFFile, read_gguf

pytest_plugins = ["pytester"]

TwinHeader = Callable[..., GGUFFile]


@pytest.fixture(scope="session")
def twin_header(tmp_path_factory: pytest.TempPathFactory) -> TwinHeader:
    """Header-only shape twins of catalog models, written once per session.

    ``twin_header("llama-3.1-405b", "q3_k_m")`` returns the parsed header; the file's path
    is ``.path``. Needs the ``gguf`` package (a dev dependency).
    """
    pytest.importorskip(
        "gguf", reason="writing twins needs the gguf package (pip install -e .[dev])"
    )
    from pytest_llmfit.twins import write_twin

    root = tmp_path_factory.mktemp("twins")
    cache: dict[tuple[str, str | None], GGUFFile] = {}

    def make(model_id: str, quant: str | None = None) -> GGUFFile:
        key = (model_id, quant)
        if key not in cache:
            path = root / f"{model_id}.{quant or 'default'}.gguf"
            write_twin(model_id, path, quant=quant, header_only=True)
            cache[key] = read_gguf(path)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def zoo_dir() -> pathlib.Path:
    return pathlib.Path(__file__).parent / "data" / "llamacpp"


@pytest.fixture(scope="session")
def stub_405b(twin_header: TwinHeader) -> pathlib.Path:
    """Header-only Llama 3.1 405B Q3_K_M (195 GB of weights described, 3 MB on disk)."""
    return pathlib.Path(twin_header("llama-3.1-405b", "q3_k_m").path)


@pytest.fixture(scope="session")
def stub_8b(twin_header: TwinHeader) -> pathlib.Path:
    return pathlib.Path(twin_header("llama-3.1-8b", "q4_k_m").path)


def pytest_configure(config: pytest.Config) -> None:
    # Tests of real loading skip where llama-cpp-python is not installed (a partial dev
    # install); in CI, which installs it, its absence must fail the run instead.
    if os.environ.get("CI"):
        try:
            import llama_cpp  # noqa: F401
        except ImportError as error:
            raise pytest.UsageError(f"CI needs llama-cpp-python for the tests: {error}") from None
