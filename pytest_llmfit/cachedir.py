"""Where pytest-llmfit keeps what it learns between sessions on this machine (measured RAM
bandwidth, fetched GGUF headers): one documented directory under the user's cache."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``$LLMFIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/pytest-llmfit``, else ``~/.cache/...``."""
    if env.get("LLMFIT_CACHE_DIR"):
        return Path(env["LLMFIT_CACHE_DIR"]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "pytest-llmfit"
    return Path.home() / ".cache" / "pytest-llmfit"
