"""A model on the Hugging Face Hub, ``hf://ORG/REPO[@REVISION]/PATH/FILE.gguf`` (the path
form of huggingface_hub's HfFileSystem): located with huggingface_hub (``hf_hub_url``,
``get_hf_file_metadata``: HF_ENDPOINT, HF_TOKEN or the stored login, proxies), its header
read with Range requests from where the Hub points (the token is not sent to another
origin such as a CDN), and downloaded for loading with ``hf_hub_download`` (its cache,
resume, locks and progress bar).

huggingface_hub is an optional dependency (``pip install 'pytest-llmfit[hf]'``), imported
only when an hf:// model is used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from ..engine.gguf import GGUFFile
from ..errors import ConfigError, SourceError
from .http import host_of, origin
from .protocol import SourceSettings
from .remote import Target, read_remote

HF_FORMS = "an hf:// model like hf://ORG/REPO/FILE.gguf or hf://ORG/REPO@REVISION/FILE.gguf"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class HfPath:
    repo_id: str
    revision: str | None  # None: the default branch
    filename: str

    @property
    def pinned(self) -> bool:
        """A commit hash: the file at it never changes."""
        return self.revision is not None and bool(_COMMIT.match(self.revision))

    @property
    def address(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}"


def parse_hf(spec: str, *, source: str | None = None) -> HfPath:
    """``hf://ORG/REPO[@REVISION]/FILE`` (FILE may be in folders; a revision with ``/``
    is written URL-encoded, ``refs%2Fpr%2F1``, or as HfFileSystem does, ``@refs/pr/1``)."""
    rest = spec[len("hf://") :]
    parts = rest.split("/")
    if parts and parts[0] in ("datasets", "spaces", "buckets"):
        raise ConfigError(spec, HF_FORMS, hint="only model repos hold GGUF models", source=source)
    if len(parts) < 3 or not all(parts):
        raise ConfigError(spec, HF_FORMS, source=source)
    org, repo_rev = parts[0], parts[1]
    rest_parts = parts[2:]
    repo, at, revision = repo_rev.partition("@")
    if at and revision == "refs" and len(rest_parts) > 2 and rest_parts[0] in ("pr", "convert"):
        revision = "/".join(["refs", *rest_parts[:2]])
        rest_parts = rest_parts[2:]
    if not _NAME.match(org) or not _NAME.match(repo) or (at and not revision):
        raise ConfigError(spec, HF_FORMS, source=source)
    filename = "/".join(rest_parts)
    if not filename.lower().endswith(".gguf"):
        raise ConfigError(spec, HF_FORMS, hint="the file must be a .gguf", source=source)
    return HfPath(f"{org}/{repo}", unquote(revision) if at else None, filename)


def hub(spec: str) -> ModuleType:
    """huggingface_hub, or a SourceError naming ``spec`` and saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise SourceError(
            spec, "hf:// models need huggingface_hub: pip install 'pytest-llmfit[hf]'"
        ) from None
    return huggingface_hub


def endpoint() -> str | None:
    """HF_ENDPOINT as it is now (huggingface_hub reads it once, at import)."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or None


class _HfLocator:
    def pinned(self, spec: str) -> bool:
        return parse_hf(spec).pinned

    def target(self, spec: str, settings: SourceSettings, *, checking: bool) -> Target:
        path = parse_hf(spec)
        hf = hub(spec)
        where = endpoint()
        url = hf.hf_hub_url(path.repo_id, path.filename, revision=path.revision, endpoint=where)
        try:
            meta = hf.get_hf_file_metadata(url, timeout=settings.timeout, endpoint=where)
        except Exception as error:  # huggingface_hub's and its HTTP client's: one line
            raise SourceError(spec, hub_reason(error, path, url, settings)) from None
        if meta.commit_hash is None:
            raise SourceError(
                spec,
                f"{host_of(url)} did not answer like a Hugging Face Hub (no X-Repo-Commit "
                "header); check HF_ENDPOINT and any proxy",
            )
        if meta.size is None:
            raise SourceError(spec, f"the Hub did not say the file's size ({url})")
        headers: dict[str, str] = dict(hf.utils.build_hf_headers())
        location = meta.location or url
        if origin(location) != origin(url):  # a CDN's signed URL: no token off the Hub
            headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        return Target(
            url=location,
            address=path.address,
            headers=headers,
            size=meta.size,
            size_from="the Hub (X-Linked-Size)",
            etag=meta.etag,
            revision=meta.commit_hash,
            immutable=path.pinned,
            check_etag=False,  # the CDN's own ETag need not be the Hub's
        )


def hub_reason(error: BaseException, path: HfPath, url: str, settings: SourceSettings) -> str:
    """What a huggingface_hub error means, in one line."""
    from huggingface_hub import errors

    repo = path.repo_id
    status = _status(error)
    http = f"HTTP {status}" if status else "no HTTP status"
    entry_missing: tuple[type[BaseException], ...] = (errors.EntryNotFoundError,)
    if isinstance(error, errors.GatedRepoError):
        sent = _token_sent()
        return f"gated repo {repo} ({http}): " + (
            "no token was sent; accept the model's terms on the Hub, then set HF_TOKEN or "
            "run `hf auth login`"
            if not sent
            else "the token has no access; accept the model's terms on the Hub with its account"
        )
    if isinstance(error, errors.RepositoryNotFoundError):
        return (
            f"repository {repo} not found ({http} from {host_of(url)}); if it is private or "
            "gated, set HF_TOKEN or run `hf auth login`"
        )
    if isinstance(error, errors.RevisionNotFoundError):
        return f"revision {path.revision!r} not found in {repo} ({http})"
    if isinstance(error, entry_missing):
        at = f"@{path.revision}" if path.revision else ""
        return f"not found: no file {path.filename} in {repo}{at} ({http})"
    if isinstance(error, errors.OfflineModeIsEnabled):
        return f"offline (HF_HUB_OFFLINE) and not cached: {error}"
    if isinstance(error, errors.HfHubHTTPError):
        return f"{http} from {host_of(url)}"
    name = type(error).__name__
    if isinstance(error, TimeoutError) or "Timeout" in name:
        return f"no answer from {host_of(url)} within {settings.timeout_hint()}"
    if isinstance(error, ConnectionError) or "Connect" in name or "Network" in name:
        return f"cannot connect to {host_of(url)} ({name}: {error})"
    return f"cannot reach the Hub at {host_of(url)} ({name}: {error})"


def _status(error: BaseException) -> int | None:
    response: Any = getattr(error, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _token_sent() -> bool:
    try:
        return bool(hub("hf://").get_token())
    except Exception:  # a broken token store is "no token"
        return False


@dataclass(frozen=True)
class HfSource:
    spec: str
    path: HfPath
    kind: str = "hf"

    @classmethod
    def parse(cls, spec: str, *, source: str | None = None) -> HfSource:
        return cls(spec, parse_hf(spec, source=source))

    def read(self, settings: SourceSettings) -> GGUFFile:
        return read_remote(_HfLocator(), self.spec, settings)

    def local_file(self, settings: SourceSettings) -> str:
        """hf_hub_download every shard (into huggingface_hub's cache, one snapshot folder,
        so llama.cpp finds the siblings); the first shard's path."""
        model = self.read(settings)
        hf = hub(self.spec)
        paths = []
        for shard in model.shards:
            path = parse_hf(shard)
            try:
                paths.append(
                    hf.hf_hub_download(
                        path.repo_id,
                        path.filename,
                        revision=path.revision,
                        endpoint=endpoint(),
                        etag_timeout=settings.timeout,
                        local_files_only=settings.offline,
                    )
                )
            except Exception as error:  # huggingface_hub's and its HTTP client's: one line
                url = hf.hf_hub_url(path.repo_id, path.filename, revision=path.revision)
                if settings.offline:
                    raise SourceError(
                        shard,
                        f"not downloaded yet and offline ({settings.offline_source})",
                    ) from None
                raise SourceError(shard, hub_reason(error, path, url, settings)) from None
        return str(paths[0])
