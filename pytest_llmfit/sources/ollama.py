"""A model in Ollama's local store, ``ollama://NAME[:TAG]``: the manifest
(``manifests/HOST/NAMESPACE/MODEL/TAG``, JSON) names the GGUF blob (the layer of media type
``application/vnd.ollama.image.model``, ``blobs/sha256-<hex>``), which is read in place:
nothing is copied or fetched. The store is ``$OLLAMA_MODELS``, else ``~/.ollama/models``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..engine.gguf import GGUFFile, parse_header
from ..engine.gguf.reader import open_checked
from ..errors import ConfigError, GGUFError, SourceError
from .protocol import SourceSettings

OLLAMA_FORMS = "an Ollama model like ollama://llama3.1:8b or ollama://NAMESPACE/NAME:TAG"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_DIGEST = re.compile(r"^sha256[:-]([0-9a-f]{64})$")


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    @property
    def short(self) -> str:
        return f"{self.model}:{self.tag}"

    def manifest(self, store: Path) -> Path:
        return store / "manifests" / self.host / self.namespace / self.model / self.tag


def parse_ollama(spec: str, *, source: str | None = None) -> OllamaName:
    """``ollama://[HOST/][NAMESPACE/]MODEL[:TAG]`` with Ollama's defaults."""
    rest = spec[len("ollama://") :]
    name, colon, tag = rest.rpartition(":") if ":" in rest.rsplit("/", 1)[-1] else (rest, "", "")
    parts = name.split("/")
    if not 1 <= len(parts) <= 3 or (colon and not tag):
        raise ConfigError(spec, OLLAMA_FORMS, source=source)
    host = parts[0] if len(parts) == 3 else DEFAULT_HOST
    namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
    model = parts[-1]
    tag = tag or DEFAULT_TAG
    if not all(_PART.match(p) for p in (namespace, model, tag)) or not host or ".." in host:
        raise ConfigError(spec, OLLAMA_FORMS, source=source)
    return OllamaName(host, namespace, model, tag)


def ollama_store(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    value = environ.get("OLLAMA_MODELS", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".ollama" / "models"


@dataclass(frozen=True)
class OllamaSource:
    spec: str
    name: OllamaName
    kind: str = "ollama"

    @classmethod
    def parse(cls, spec: str, *, source: str | None = None) -> OllamaSource:
        return cls(spec, parse_ollama(spec, source=source))

    def blob(self) -> Path:
        """The model's GGUF blob, from its manifest."""
        store = ollama_store()
        manifest = self.name.manifest(store)
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SourceError(
                self.spec,
                f"not in Ollama's store {store} (no manifest {manifest.relative_to(store)}); "
                f"run `ollama pull {self.name.short}` or set OLLAMA_MODELS",
            ) from None
        except (OSError, ValueError) as error:
            raise SourceError(self.spec, f"cannot read the manifest {manifest}: {error}") from None
        layers = data.get("layers") if isinstance(data, dict) else None
        if not isinstance(layers, list):
            raise SourceError(self.spec, f"the manifest {manifest} has no layers list")
        for layer in layers:
            if isinstance(layer, dict) and layer.get("mediaType") == MODEL_MEDIA_TYPE:
                match = _DIGEST.match(str(layer.get("digest", "")))
                if match is None:
                    raise SourceError(
                        self.spec, f"the manifest {manifest} has a model layer without a digest"
                    )
                blob = store / "blobs" / f"sha256-{match[1]}"
                if not blob.is_file():
                    raise SourceError(
                        self.spec,
                        f"the manifest names blob {blob.name}, missing from {store / 'blobs'}",
                    )
                return blob
        raise SourceError(self.spec, f"the manifest {manifest} has no {MODEL_MEDIA_TYPE} layer")

    def read(self, settings: SourceSettings) -> GGUFFile:
        blob = self.blob()
        handle, size = open_checked(str(blob))
        try:
            with handle:

                def read_at(offset: int, n: int) -> bytes:
                    handle.seek(offset)
                    return handle.read(n)

                return parse_header(self.spec, read_at, size).as_model()
        except OSError as error:
            raise GGUFError(self.spec, f"cannot read {blob}: {error.strerror or error}") from None

    def local_file(self, settings: SourceSettings) -> str:
        return str(self.blob())
