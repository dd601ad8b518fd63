"""What a model source is: the :class:`ModelSource` protocol every member implements, the
:class:`SourceSettings` the caller passes down (timeout, offline, where caches live), and
the accepted spellings of a model (:data:`SPEC_FORMS`).

A source turns a model as the user wrote it (``models/x.gguf``, ``hf://ORG/REPO/FILE.gguf``,
``https://host/x.gguf``, ``ollama://llama3.1:8b``) into its parsed header, read with the
engine's one bounded GGUF parser, and, for loading, into a local file llama.cpp can map.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..cachedir import default_cache_dir
from ..engine.gguf import GGUFFile
from ..errors import ConfigError

SPEC_FORMS = (
    "a model: a GGUF file path, hf://ORG/REPO[@REVISION]/FILE.gguf, "
    "http(s)://HOST/PATH/FILE.gguf or ollama://NAME[:TAG]"
)
REMOTE_SCHEMES = ("hf", "http", "https", "ollama")
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_REVALIDATE_AFTER = 60.0

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def scheme_of(spec: str) -> str | None:
    """``"hf"`` for ``hf://...``, ``None`` for a plain path (``C:\\x.gguf`` included)."""
    head, sep, _ = spec.partition("://")
    if not sep or not head or not head.replace("+", "").replace("-", "").isalnum():
        return None
    return head.lower()


def is_remote(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a model by a URL-like form rather than a file path."""
    return scheme_of(os.fspath(spec)) is not None


@dataclass(frozen=True)
class SourceSettings:
    """How sources reach the network and where they keep what they fetched.

    ``timeout``: seconds to wait for a server's next byte (connect included).
    ``offline``: use the header cache only; a model not in it is an error that says so.
    ``cache_dir``: the header cache (default ``default_cache_dir()/headers``).
    ``download_dir``: where a URL model is downloaded for loading (default
    ``default_cache_dir()/models``; hf:// models go to huggingface_hub's own cache).
    ``revalidate_after``: seconds after a check during which a cached header is used
    without asking the server again (so xdist workers starting together ask once).
    ``timeout_source``/``offline_source`` name where those values came from, for messages.
    """

    timeout: float = DEFAULT_HTTP_TIMEOUT
    offline: bool = False
    cache_dir: str | None = None
    download_dir: str | None = None
    revalidate_after: float = DEFAULT_REVALIDATE_AFTER
    timeout_source: str = "default"
    offline_source: str = "default"

    def header_dir(self) -> Path:
        if self.cache_dir:
            return Path(self.cache_dir).expanduser()
        return default_cache_dir(os.environ) / "headers"

    def models_dir(self) -> Path:
        if self.download_dir:
            return Path(self.download_dir).expanduser()
        return default_cache_dir(os.environ) / "models"

    def timeout_hint(self) -> str:
        """``"30 s (default)"``: the timeout and where it came from."""
        return f"{self.timeout:g} s ({self.timeout_source})"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        timeout: object = None,
        offline: object = None,
        given_as: tuple[str, str] = ("--http-timeout", "--offline"),
        **rest: object,
    ) -> SourceSettings:
        """Settings from values given on a command line (None: not given), else the
        environment (``LLMFIT_HTTP_TIMEOUT``; ``LLMFIT_OFFLINE``, then ``HF_HUB_OFFLINE``),
        else the defaults; each checked and traced. ``given_as`` names the flags."""
        t_layers = [(timeout, f"command line {given_as[0]}")]
        t_layers.append((env.get("LLMFIT_HTTP_TIMEOUT"), "environment LLMFIT_HTTP_TIMEOUT"))
        o_layers = [(offline, f"command line {given_as[1]}")]
        o_layers += [(env.get(n), f"environment {n}") for n in ("LLMFIT_OFFLINE", "HF_HUB_OFFLINE")]
        t_value, t_source = DEFAULT_HTTP_TIMEOUT, "default"
        for raw, where in t_layers:
            if raw is not None and raw != "":
                t_value, t_source = check_seconds(raw, where), where
                break
        o_value, o_source = False, "default"
        for raw, where in o_layers:
            if raw is not None and raw != "":
                o_value, o_source = check_bool(raw, where), where
                break
        return cls(
            timeout=t_value,
            offline=o_value,
            timeout_source=t_source,
            offline_source=o_source,
            **rest,  # type: ignore[arg-type]
        )


def check_seconds(value: object, source: str) -> float:
    """A positive, finite number of seconds, or a ConfigError naming ``source``."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(value, "a number of seconds above 0", source=source)
    return seconds


def check_bool(value: object, source: str) -> bool:
    """A yes/no value, or a ConfigError naming ``source``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(value, "a yes/no value (1, true, yes, on / 0, false, no, off)", source=source)


class ModelSource(Protocol):
    """One place a model lives. ``spec`` is the model as the user wrote it and names it in
    every message; ``kind`` is the member (``local``, ``http``, ``hf``, ``ollama``)."""

    @property
    def spec(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def read(self, settings: SourceSettings) -> GGUFFile:
        """The model's parsed header (all shards of a split model), fetching only headers."""
        ...

    def local_file(self, settings: SourceSettings) -> str:
        """A local path llama.cpp can load (a split model's first shard, its siblings
        beside it): the file itself, or a download kept once per machine."""
        ...
