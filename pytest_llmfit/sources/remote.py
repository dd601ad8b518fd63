"""Reading a remote model's header: through the header cache, under its lock, with a split
model's shards fetched in parallel. Shared by the members that reach a server (http.py's
plain URLs, hf.py's Hub files); each supplies a :class:`Locator` that says where a file
is and what version it is."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from ..engine.gguf import GGUFFile, parse_header
from ..engine.gguf.split import SPLIT_RE, join_split, split_count
from ..engine.gguf.values import Shard
from ..errors import GGUFError, SourceError
from .cache import Entry, HeaderCache, Identity
from .http import Http, RangeReader
from .protocol import SourceSettings

MAX_PARALLEL = 8  # shards fetched at once (a 405B split in 4-9 shards: all at once)
_SPLIT_TAIL = re.compile(r"-(?P<no>[0-9]{5})-of-(?P<count>[0-9]{5})\.gguf$")


@dataclass(frozen=True)
class Target:
    """Where to range-read one file and what version it is."""

    url: str
    address: str  # the file's identity for the cache (hf: the repo path; http: the URL)
    headers: Mapping[str, str] = field(default_factory=dict)
    size: int | None = None  # None: learnt from the first Content-Range
    size_from: str = "Content-Range"
    etag: str | None = None
    revision: str | None = None
    immutable: bool = False  # a pinned revision: a cached header is never re-checked
    check_etag: bool = True  # compare every answer's ETag with ``etag``


class Locator(Protocol):
    """One member's way to find a file. ``checking`` is True when a cached copy is to be
    confirmed: the answer must then carry the size and version (a HEAD); otherwise it may
    leave them to the first range answer."""

    def target(self, spec: str, settings: SourceSettings, *, checking: bool) -> Target: ...

    def pinned(self, spec: str) -> bool: ...


def shard_specs(spec: str) -> tuple[str, ...] | None:
    """Every shard of a split model named like ``...-00002-of-00004.gguf``, in order, as
    specs of the same form (a URL's query string is kept), or None."""
    base, sep, query = spec.partition("?")
    match = _SPLIT_TAIL.search(base)
    if match is None or not SPLIT_RE.match(base.rsplit("/", 1)[-1]):
        return None
    count = int(match["count"])
    if count < 1 or not 1 <= int(match["no"]) <= count:
        return None
    head = base[: match.start()]
    return tuple(f"{head}-{i:05d}-of-{count:05d}.gguf{sep}{query}" for i in range(1, count + 1))


def read_remote(locator: Locator, spec: str, settings: SourceSettings) -> GGUFFile:
    """The header of the model at ``spec`` (all shards of a split model, fetched at once)."""
    cache = HeaderCache(settings.header_dir())
    specs = shard_specs(spec)
    if specs is None:
        given = read_shard(locator, spec, settings, cache)
        if split_count(given) > 1:
            return join_split(given, split_count(given), _no_siblings)
        return given.as_model()
    index = specs.index(spec) if spec in specs else 0
    results: list[Shard | GGUFError] = []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(specs))) as pool:
        futures = [pool.submit(_shard_or_error, locator, s, settings, cache) for s in specs]
        results = [f.result() for f in futures]
    given_result = results[index]
    if isinstance(given_result, GGUFError):
        raise given_result
    count = split_count(given_result)
    if count <= 1:  # named like a shard, but a model in one file
        return given_result.as_model()

    def read_sibling(path: str) -> Shard:
        match = SPLIT_RE.match(os.path.basename(path.partition("?")[0]))
        number = int(match["no"]) - 1 if match else -1
        if not 0 <= number < len(results):
            raise GGUFError(path, f"not a shard of {spec}")
        result = results[number]
        if isinstance(result, GGUFError):
            if isinstance(result, SourceError) and result.reason.startswith("not found"):
                missing = f"shard {number + 1} of {len(results)} is missing ({result.reason})"
                raise SourceError(result.path, missing)
            raise result
        return result

    return join_split(given_result, count, read_sibling)


def _no_siblings(path: str) -> Shard:
    raise GGUFError(path, "the shards of this split model cannot be named from its address")


def _shard_or_error(
    locator: Locator, spec: str, settings: SourceSettings, cache: HeaderCache
) -> Shard | GGUFError:
    try:
        return read_shard(locator, spec, settings, cache)
    except GGUFError as error:
        return error


def read_shard(locator: Locator, spec: str, settings: SourceSettings, cache: HeaderCache) -> Shard:
    """One file's header: from the cache when it is current, else fetched and stored.

    Under the cache's lock for ``spec``: pytest-xdist workers asking for the same model
    wait for the first, then find its entry (checked moments ago) and fetch nothing.
    """
    with cache.lock(spec):
        entry = cache.lookup(spec)
        data = cache.data(entry) if entry is not None else None
        if entry is not None and data is not None:
            trusted = (
                settings.offline
                or entry.immutable
                or locator.pinned(spec)
                or entry.fresh(settings.revalidate_after)
            )
            if trusted:
                shard = _parse_cached(spec, entry, data)
                if shard is not None:
                    return shard
            else:
                target = locator.target(spec, settings, checking=True)
                current = Identity(target.address, target.revision, target.etag, target.size or -1)
                if current == entry.identity:
                    shard = _parse_cached(spec, entry, data)
                    if shard is not None:
                        cache.touch(entry)
                        return shard
                return _fetch(spec, target, settings, cache)
        if settings.offline:
            raise SourceError(
                spec,
                f"not in the header cache ({settings.header_dir()}) and offline "
                f"({settings.offline_source}): run once with network access to cache it",
            )
        return _fetch(spec, locator.target(spec, settings, checking=False), settings, cache)


def _fetch(spec: str, target: Target, settings: SourceSettings, cache: HeaderCache) -> Shard:
    http = Http(spec, settings, target.headers)
    reader = RangeReader(
        http,
        target.url,
        size=target.size,
        etag=target.etag if target.check_etag else None,
        size_from=target.size_from,
    )
    size = reader.open()
    shard = parse_header(spec, reader.read_at, size, first_read=reader.initial)
    etag = target.etag if not target.check_etag else reader.etag or reader.last_modified
    identity = Identity(target.address, target.revision, etag, size)
    cache.store(spec, identity, target.url, bytes(reader.prefix), immutable=target.immutable)
    return shard


class _Short(Exception):
    """The cached prefix ends before what the parser asks for: fetch again."""


def _parse_cached(spec: str, entry: Entry, data: bytes) -> Shard | None:
    def read_at(offset: int, n: int) -> bytes:
        end = min(offset + n, entry.size)
        if end > len(data):
            raise _Short
        return data[offset:end]

    try:
        return parse_header(spec, read_at, entry.size, first_read=max(len(data), 1))
    except _Short:
        return None
