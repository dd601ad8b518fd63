"""A model in a local file (or a ``file://`` URL): read in place with the engine's reader;
a split model's sibling shards are found beside it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ..engine.gguf import GGUFFile, read_gguf
from .protocol import SourceSettings


@dataclass(frozen=True)
class LocalSource:
    spec: str
    path: str
    kind: str = "local"

    @classmethod
    def parse(cls, spec: str) -> LocalSource:
        if spec.lower().startswith("file://"):
            parts = urlsplit(spec)
            return cls(spec, url2pathname(unquote(parts.path)))
        return cls(spec, spec)

    def read(self, settings: SourceSettings) -> GGUFFile:
        return read_gguf(self.path)

    def local_file(self, settings: SourceSettings) -> str:
        return self.path
