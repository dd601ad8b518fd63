"""Where a model's header comes from: a local file (split shards beside it), a plain
https:// or http:// URL (Range requests), the Hugging Face Hub (hf://) or Ollama's local
store (ollama://). One module per member, behind the protocol in :mod:`.protocol`:

- :mod:`.local`: files and ``file://`` URLs, read in place;
- :mod:`.url`: ``https://`` and ``http://`` URLs;
- :mod:`.hf`: ``hf://ORG/REPO[@REVISION]/FILE.gguf`` through huggingface_hub;
- :mod:`.ollama`: ``ollama://NAME[:TAG]`` from Ollama's manifests and blobs;

and the machinery the remote members share: :mod:`.http` (range reads, Content-Range
checks), :mod:`.remote` (cache, lock, split shards in parallel), :mod:`.cache` (the header
cache on disk), :mod:`.download` (a URL model downloaded for loading).

:func:`read_model` is what the engine's callers use in place of ``read_gguf`` when a model
may live elsewhere; :func:`model_file` gives llama.cpp a local file. Both take
:class:`SourceSettings` (timeout, offline, cache directories), which the pytest plugin and
the command line resolve from their options; nothing here imports pytest.
"""

from __future__ import annotations

import os

from ..engine.gguf import GGUFFile
from ..errors import ConfigError
from .protocol import SPEC_FORMS, ModelSource, SourceSettings, is_remote, scheme_of

__all__ = [
    "SPEC_FORMS",
    "ModelSource",
    "SourceSettings",
    "is_remote",
    "model_file",
    "read_model",
    "resolve_source",
    "scheme_of",
]


def resolve_source(spec: str | os.PathLike[str], *, source: str | None = None) -> ModelSource:
    """The member that reads ``spec``; a malformed or unknown form is a ConfigError naming
    ``source`` (a marker, an option) and the accepted forms."""
    text = os.fspath(spec)
    scheme = scheme_of(text)
    if scheme is None or scheme == "file":
        from .local import LocalSource

        return LocalSource.parse(text)
    if scheme == "hf":
        from .hf import HfSource

        return HfSource.parse(text, source=source)
    if scheme in ("http", "https"):
        from .url import UrlSource

        return UrlSource(text)
    if scheme == "ollama":
        from .ollama import OllamaSource

        return OllamaSource.parse(text, source=source)
    raise ConfigError(text, SPEC_FORMS, hint=f"unknown scheme {scheme}://", source=source)


def read_model(
    spec: str | os.PathLike[str],
    settings: SourceSettings | None = None,
    *,
    source: str | None = None,
) -> GGUFFile:
    """The parsed header of the model at ``spec``, wherever it lives; a remote model's
    header only (cached), never its weights. Errors are one-line GGUFError/SourceError."""
    chosen = settings if settings is not None else SourceSettings.from_env(os.environ)
    return resolve_source(spec, source=source).read(chosen)


def model_file(
    spec: str | os.PathLike[str],
    settings: SourceSettings | None = None,
    *,
    source: str | None = None,
) -> str:
    """A local path llama.cpp can load for ``spec``: the file itself, Ollama's blob, or a
    download (once per machine, safe under pytest-xdist)."""
    chosen = settings if settings is not None else SourceSettings.from_env(os.environ)
    return resolve_source(spec, source=source).local_file(chosen)
