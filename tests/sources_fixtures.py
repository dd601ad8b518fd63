"""Fixtures of the sources tests (``pytest_plugins = ["sources_fixtures"]``): a clean
environment with no route off this machine, the model server and its CDN, the Hub
(HF_ENDPOINT), and a sparse 405B twin."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from model_server import ModelServer

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_CLEARED = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_ENDPOINT",
    "LLMFIT_OFFLINE",
    "LLMFIT_HTTP_TIMEOUT",
    "LLMFIT_MODELS_DIR",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection from this process to an address other than the loopback fails."""
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise OSError(f"test tried to reach {address!r}: nothing may leave this machine")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def remote_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_internet: None) -> Path:
    """A clean environment: no token, no proxy, no offline flag; the llmfit cache in
    ``tmp_path/llmfit-cache``."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("LLMFIT_CACHE_DIR", str(tmp_path / "llmfit-cache"))
    return tmp_path


@pytest.fixture
def server(remote_env: Path) -> Iterator[ModelServer]:
    """A file server (Range honoured) with a second one as its CDN, both on 127.0.0.1."""
    with ModelServer() as main, ModelServer() as cdn:
        main.cdn = cdn
        yield main


@pytest.fixture
def hub(server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    """``server`` as the Hugging Face Hub: HF_ENDPOINT points at it."""
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    return server


@pytest.fixture(scope="session")
def twin_405b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama 3.1 405B Q3_K_M as a sparse shape twin: a 195 GB file that takes 3 MB of disk."""
    pytest.importorskip("gguf", reason="writing twins needs the gguf package (dev extra)")
    from pytest_llmfit.twins import write_twin

    folder = tmp_path_factory.mktemp("twin405b")
    return Path(
        write_twin(
            "llama-3.1-405b",
            folder / "Meta-Llama-3.1-405B-Instruct-Q3_K_M.gguf",
            quant="q3_k_m",
        )
    )


@pytest.fixture(scope="session")
def split_405b(twin_405b: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The 405B twin as llama-gguf-split would cut it: five sparse shards of 38-41 GB."""
    from split_twin import split_gguf

    folder = tmp_path_factory.mktemp("split405b")
    return split_gguf(twin_405b, folder, 5, stem="Meta-Llama-3.1-405B-Instruct-Q3_K_M")
