"""HTTP range reads: a remote file's header fetched in Range requests that grow as the
parser asks for more, every answer's status and Content-Range checked, never the whole
file. Standard library only (urllib: it honours http_proxy, https_proxy and no_proxy).

The engine's parser (``engine.gguf.reader.parse_header``) is asked to start with the first
:data:`INITIAL_RANGE` (1 MiB) and doubles the prefix it holds while the header goes on;
:class:`RangeReader` serves exactly those reads, so the 3.3 MB header of Llama 3.1 405B
costs three requests and 4 MiB, and the small header of a split model's later shard one
request. A server that answers a Range request with the whole file (HTTP 200) is refused
before its body is read: planning never downloads a model.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlsplit

from ..errors import SourceError
from ..units import format_size
from .protocol import SourceSettings

INITIAL_RANGE = 1 << 20  # the first request (and the parser's first read); then doubling
MAX_HEADER_BYTES = 256 << 20  # no real GGUF header comes near; a hostile server stops here
CHUNK = 1 << 16
USER_AGENT = "pytest-llmfit (header reader; Range requests only)"

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, dropping the Authorization header when one leaves the origin
    (a Hub redirects LFS files to a signed CDN URL that must not see the token)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            if origin(newurl) != origin(req.full_url):
                new.headers = {k: v for k, v in new.headers.items() if k.lower() != "authorization"}
            if req.get_header("Range"):  # urllib keeps headers, but be explicit
                new.add_header("Range", str(req.get_header("Range")))
        return new


@dataclass(frozen=True)
class RemoteMeta:
    """What a HEAD (or a first range) says about a remote file."""

    url: str  # after redirects
    size: int | None
    etag: str | None
    last_modified: str | None = None


@dataclass
class Stats:
    """Requests made and body bytes received, for reports and tests."""

    requests: int = 0
    bytes: int = 0
    heads: int = 0


class Http:
    """An opener for one model: the timeout, extra headers (a token), proxies from the
    environment; every failure becomes one :class:`SourceError` line naming the model."""

    def __init__(
        self, name: str, settings: SourceSettings, headers: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.settings = settings
        self.headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self.opener = urllib.request.build_opener(_Redirects())
        self.stats = Stats()

    def fail(self, reason: str) -> SourceError:
        return SourceError(self.name, reason)

    def open(
        self, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None
    ) -> http.client.HTTPResponse:
        merged = {**self.headers, **(headers or {})}
        request = urllib.request.Request(url, method=method, headers=merged)
        try:
            response = self.opener.open(request, timeout=self.settings.timeout)
        except urllib.error.HTTPError as error:
            error.close()
            raise self.fail(status_reason(error.code, url)) from None
        except urllib.error.URLError as error:
            raise self.fail(self.network_reason(url, error.reason)) from None
        except (OSError, http.client.HTTPException) as error:
            raise self.fail(self.network_reason(url, error)) from None
        self.stats.requests += 1
        if method == "HEAD":
            self.stats.heads += 1
        assert isinstance(response, http.client.HTTPResponse)
        return response

    def network_reason(self, url: str, reason: object, *, received: str = "") -> str:
        host = host_of(url)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"no answer from {host} within {self.settings.timeout_hint()}{received}"
        if isinstance(reason, ConnectionRefusedError):
            return f"cannot connect to {host} (connection refused)"
        if isinstance(reason, socket.gaierror):
            return f"cannot resolve {urlsplit(url).hostname or host} (no network?)"
        if isinstance(reason, ssl.SSLError):
            return f"TLS error talking to {host}: {reason}"
        if isinstance(reason, (ConnectionError, http.client.HTTPException)):
            what = type(reason).__name__ + (f": {reason}" if str(reason) else "")
            return f"connection to {host} broken{received} ({what})"
        text = getattr(reason, "strerror", None) or str(reason)
        return f"cannot reach {host}: {text}"

    def head(self, url: str) -> RemoteMeta:
        """Size, ETag and final URL from a HEAD; from a one-byte range GET when the server
        refuses HEAD (405, 501)."""
        try:
            response = self.open(url, method="HEAD", headers={"Accept-Encoding": "identity"})
        except SourceError as error:
            if "HTTP 405" not in error.reason and "HTTP 501" not in error.reason:
                raise
            reader = RangeReader(self, url, initial=1)
            reader.open()
            return RemoteMeta(url, reader.size, reader.etag, reader.last_modified)
        with response:
            headers = response.headers
            length = headers.get("Content-Length")
            encoded = headers.get("Content-Encoding", "identity").lower() != "identity"
            size = int(length) if length and length.isdigit() and not encoded else None
            return RemoteMeta(
                response.geturl(), size, headers.get("ETag"), headers.get("Last-Modified")
            )


def status_reason(code: int, url: str) -> str:
    where = f"HTTP {code} from {url}"
    if code in (404, 410):
        return f"not found ({where})"
    if code in (401, 403):
        return f"access denied ({where})"
    if code == 416:
        return f"the server found nothing to send ({where}: range not satisfiable; empty file?)"
    if code == 429:
        return f"rate limited ({where}); try again later"
    if code >= 500:
        return f"server error ({where})"
    return f"unexpected answer ({where})"


@dataclass
class RangeReader:
    """``read_at(offset, n)`` over a remote file, for ``parse_header``: the bytes the parser
    asks for are fetched with Range requests and kept as one prefix of the file
    (:attr:`prefix`, what the header cache stores)."""

    client: Http
    url: str
    size: int | None = None  # known from a HEAD (checked against every Content-Range)
    etag: str | None = None
    size_from: str = "Content-Range"  # where ``size`` came from, for messages
    initial: int = INITIAL_RANGE
    last_modified: str | None = None
    prefix: bytearray = field(default_factory=bytearray)

    def open(self) -> int:
        """Fetch the first range; returns the file's size."""
        self.fetch(0, self.initial if self.size is None else min(self.initial, self.size))
        assert self.size is not None
        return self.size

    def read_at(self, offset: int, n: int) -> bytes:
        assert self.size is not None, "open() first"
        end = min(offset + n, self.size)
        if end > len(self.prefix):
            self.fetch(len(self.prefix), end)
        return bytes(self.prefix[offset:end])

    def fetch(self, start: int, end: int) -> None:
        """Append bytes [start, end) of the file (``start`` is the prefix's end)."""
        if end > MAX_HEADER_BYTES:
            raise self.client.fail(
                f"the header runs past {format_size(MAX_HEADER_BYTES)} (the parser asked for "
                f"{format_size(end)}): not a plausible GGUF header, not fetched further"
            )
        while start < end:
            start = self._one(start, end)

    def _one(self, start: int, end: int) -> int:
        client = self.client
        response = client.open(
            self.url, headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        )
        with response:
            headers = response.headers
            if response.status == 200:
                length = headers.get("Content-Length")
                whole = f" of {format_size(int(length))}" if length and length.isdigit() else ""
                raise client.fail(
                    f"the server ignored the Range request and began sending the whole file{whole} "
                    f"(HTTP 200 from {host_of(self.url)}); pytest-llmfit reads only the header "
                    "and stopped: use a server that honours Range requests, or download the "
                    "file and name the local copy"
                )
            if response.status != 206:
                raise client.fail(f"unexpected answer to a Range request (HTTP {response.status})")
            if headers.get("Content-Encoding", "identity").lower() != "identity":
                raise client.fail(
                    f"the server compressed a Range answer ({headers.get('Content-Encoding')}); "
                    "its bytes are not the file's"
                )
            first, last, total = self._content_range(headers.get("Content-Range"), start, end)
            etag = headers.get("ETag")
            if self.etag and etag and _weak(etag) != _weak(self.etag):
                raise client.fail(
                    f"the file changed on the server while its header was read (ETag {self.etag}, "
                    f"then {etag})"
                )
            self.etag = self.etag or etag
            self.last_modified = self.last_modified or headers.get("Last-Modified")
            want = last - first + 1
            body = self._body(response, want, first, last)
        self.prefix += body
        client.stats.bytes += len(body)
        if total is not None and last + 1 >= total:
            return end  # the file ends here
        return last + 1

    def _content_range(
        self, value: str | None, start: int, end: int
    ) -> tuple[int, int, int | None]:
        fail = self.client.fail
        match = _CONTENT_RANGE.match(value or "")
        if match is None:
            raise fail(f"answered a Range request without a valid Content-Range ({value!r})")
        first, last = int(match[1]), int(match[2])
        total = None if match[3] == "*" else int(match[3])
        if total is None and self.size is None:
            raise fail(f"the server did not say the file's size (Content-Range {value!r})")
        if total is not None:
            if self.size is None:
                self.size = total
                self.size_from = "Content-Range"
            elif total != self.size:
                raise fail(
                    f"wrong size: {self.size_from} said {self.size} bytes but Content-Range "
                    f"says {total}"
                )
        if first != start or last < first or last > end - 1:
            raise fail(
                f"answered bytes {first}-{last} (Content-Range {value!r}) to a request for "
                f"bytes {start}-{end - 1}"
            )
        return first, last, total

    def _body(self, response: http.client.HTTPResponse, want: int, first: int, last: int) -> bytes:
        parts: list[bytes] = []
        got = 0
        try:
            while got < want:
                chunk = response.read(min(CHUNK, want - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
        except (OSError, http.client.HTTPException) as error:
            received = f" after {got} of the {want} bytes of range {first}-{last}"
            raise self.client.fail(
                self.client.network_reason(self.url, error, received=received)
            ) from None
        if got < want:
            raise self.client.fail(
                f"connection to {host_of(self.url)} broken after {got} of the {want} bytes of "
                f"range {first}-{last}"
            )
        return b"".join(parts)


def _weak(etag: str) -> str:
    return etag[2:] if etag.startswith("W/") else etag
