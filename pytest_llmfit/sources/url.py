"""A model at a plain ``https://`` or ``http://`` URL: its header read with Range
requests (cached; a split model's shards at once), the file downloaded only to load it."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.gguf import GGUFFile
from .download import download_url
from .http import Http
from .protocol import SourceSettings
from .remote import Target, read_remote


class _UrlLocator:
    def pinned(self, spec: str) -> bool:
        return False

    def target(self, spec: str, settings: SourceSettings, *, checking: bool) -> Target:
        if not checking:  # the first range answer tells the size and the ETag
            return Target(url=spec, address=spec)
        meta = Http(spec, settings).head(spec)
        return Target(
            url=spec,
            address=spec,
            size=meta.size,
            size_from="Content-Length",
            etag=meta.etag or meta.last_modified,
        )


@dataclass(frozen=True)
class UrlSource:
    spec: str
    kind: str = "http"

    def read(self, settings: SourceSettings) -> GGUFFile:
        return read_remote(_UrlLocator(), self.spec, settings)

    def local_file(self, settings: SourceSettings) -> str:
        model = self.read(settings)
        paths = [download_url(shard, settings) for shard in model.shards]
        return paths[0]
