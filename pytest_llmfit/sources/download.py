"""Downloading a URL model for loading: once per machine into the models directory
(``default_cache_dir()/models`` unless given), under a file lock so pytest-xdist workers
wait for the one that downloads, resumed from a ``.part`` file after an interruption, and
checked against the size its header read saw. (hf:// models use huggingface_hub's
``hf_hub_download`` instead: its cache, resume and progress bar.)"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import SourceError
from ..units import format_size
from .cache import HeaderCache, file_lock
from .http import CHUNK, Http, host_of
from .protocol import SourceSettings

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def destination(url: str, root: Path) -> Path:
    """``root/HOST/PATH...``: the URL's host and path, each part made safe for a file name."""
    parts = urlsplit(url)
    names = [_SAFE.sub("_", parts.netloc) or "host"]
    for piece in unquote(parts.path).split("/"):
        if piece in ("", ".", ".."):
            continue
        names.append(_SAFE.sub("_", piece))
    if len(names) == 1:
        names.append("model.gguf")
    return root.joinpath(*names)


def download_url(url: str, settings: SourceSettings) -> str:
    """The local copy of ``url``, downloaded first if this machine has none."""
    dest = destination(url, settings.models_dir())
    entry = HeaderCache(settings.header_dir()).lookup(url)
    expected = entry.size if entry is not None else None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file() and (expected is None or dest.stat().st_size == expected):
            return str(dest)
        if settings.offline:
            raise SourceError(
                url, f"not downloaded to {dest} and offline ({settings.offline_source})"
            )
        _download(url, dest, expected, settings)
    return str(dest)


def _download(url: str, dest: Path, expected: int | None, settings: SourceSettings) -> None:
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    if expected is not None and have > expected:
        have = 0
    http = Http(url, settings)
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    response = http.open(url, headers=headers)
    with response:
        if response.status == 200:
            have = 0  # no resume from this server: start again
        elif response.status == 206:
            value = response.headers.get("Content-Range", "")
            if not value.replace(" ", "").startswith(f"bytes{have}-"):
                raise http.fail(f"answered a resume from byte {have} with {value!r}")
        else:
            raise http.fail(f"unexpected answer to a download (HTTP {response.status})")
        got = have
        try:
            with open(part, "ab" if have else "wb") as out:
                while True:
                    chunk = response.read(CHUNK * 16)
                    if not chunk:
                        break
                    out.write(chunk)
                    got += len(chunk)
        except OSError as error:
            if isinstance(error, (ConnectionError, TimeoutError)):
                raise http.fail(
                    f"download from {host_of(url)} broken after {format_size(got)} "
                    f"({error or type(error).__name__}); run again to resume"
                ) from None
            raise SourceError(url, f"cannot write {part}: {error.strerror or error}") from None
    if expected is not None and got != expected:
        with contextlib.suppress(OSError):
            if got > expected:
                part.unlink()
        raise SourceError(
            url,
            f"wrong size: downloaded {got} bytes but the header read saw a {expected}-byte "
            "file" + ("; run again to resume" if got < expected else ""),
        )
    os.replace(part, dest)
