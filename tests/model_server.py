"""A real HTTP server for the sources tests: 127.0.0.1, an ephemeral port, a thread.

It serves files (sparse shape twins: a 195 GB file that takes no disk) with or without
honouring Range requests, plays a Hugging Face Hub (``/{repo}/resolve/{revision}/{file}``
with the headers huggingface_hub reads: X-Repo-Commit, ETag, X-Linked-Etag,
X-Linked-Size, X-Error-Code; LFS files redirected to a second server standing in for the
CDN), injects faults (hang, break mid-body, wrong size, error status), and logs every
request with the body bytes it sent: the tests assert on those bytes.

Bounded: it stops itself after ``lifetime`` seconds, never streams more than
``MAX_STREAM`` bytes of a whole-file answer, and a hanging handler wakes when it stops.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# huggingface_hub reads these once, when first imported (by the hf:// source, inside a
# test): no telemetry or agent-registry call, and a token store of its own, never the
# developer's login. Tests set HF_ENDPOINT per test; the hf:// source reads it per call.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="llmfit-test-hf-home-"))

MAX_STREAM = 64 << 20  # a Range-ignoring answer is cut here even if nobody hangs up
CHUNK = 1 << 16
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


@dataclass
class Served:
    """One file: bytes in memory or a path (read per request; sparse holes read as zeros)."""

    data: bytes | None = None
    path: Path | None = None
    etag: str = ""
    fault: str | None = None  # "hang", "break", "status:NNN", "size:N" (a lying total)

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        assert self.path is not None
        return os.path.getsize(self.path)

    def read(self, start: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + n]
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(n)


@dataclass
class HubFile:
    served: Served
    lfs_path: str | None  # path on the CDN server, when the file is "LFS"


@dataclass
class HubRepo:
    commit: str
    revisions: set[str]
    files: dict[str, HubFile] = field(default_factory=dict)
    token: str | None = None  # gated: requests must carry "Bearer <token>"


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    sent: int  # body bytes written
    auth: bool  # an Authorization header came with it
    at: float  # time.monotonic() when the answer was done
    arrived: float  # ... when the request came in


class ModelServer:
    def __init__(self, *, honour_range: bool = True, lifetime: float = 180.0) -> None:
        self.honour_range = honour_range
        self.files: dict[str, Served] = {}
        self.repos: dict[str, HubRepo] = {}
        self.cdn: ModelServer | None = None
        self.log: list[Logged] = []
        self.delay = 0.0  # seconds before every answer (to see parallel fetches)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0  # answers being written
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

            def do_GET(self) -> None:
                server._handle(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    # -- setup -------------------------------------------------------------------------------

    def start(self) -> ModelServer:
        self._thread.start()
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve(
        self,
        url_path: str,
        *,
        data: bytes | None = None,
        path: str | os.PathLike[str] | None = None,
        fault: str | None = None,
    ) -> str:
        """Serve a file at ``url_path``; returns its full URL."""
        etag = '"' + hashlib.sha256(f"{url_path}{data!r}{path}".encode()).hexdigest()[:32] + '"'
        self.files[url_path] = Served(data, Path(path) if path else None, etag, fault)
        return self.url + url_path

    def hub_repo(
        self, repo: str, *, revisions: tuple[str, ...] = ("main",), token: str | None = None
    ) -> HubRepo:
        commit = hashlib.sha1(repo.encode()).hexdigest()
        self.repos[repo] = HubRepo(commit, {*revisions, commit}, token=token)
        return self.repos[repo]

    def hub_file(
        self,
        repo: str,
        filename: str,
        *,
        data: bytes | None = None,
        path: str | os.PathLike[str] | None = None,
        lfs: bool = True,
        fault: str | None = None,
    ) -> str:
        """Add a file to a Hub repo (created if needed); returns its hf:// spec."""
        hub = self.repos.get(repo) or self.hub_repo(repo)
        digest = hashlib.sha256(f"{repo}/{filename}{path}{data!r}".encode()).hexdigest()
        served = Served(data, Path(path) if path else None, f'"{digest}"', fault)
        lfs_path = None
        if lfs and self.cdn is not None:
            lfs_path = f"/repos/{digest[:2]}/{digest}"
            self.cdn.files[lfs_path] = Served(data, served.path, f'"{digest}"', fault)
        hub.files[filename] = HubFile(served, lfs_path)
        return f"hf://{repo}/{filename}"

    # -- what happened -------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        """The log, once every answer in progress is written (at most 2 s of waiting): a
        client may finish reading before the server's thread logs what it sent."""
        with self._lock:
            self._idle.wait_for(lambda: self._busy == 0, timeout=2.0)
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or path in r.path)
            ]

    def sent(self, path: str | None = None) -> int:
        return sum(r.sent for r in self.requests(path=path))

    def concurrent(self, requests: list[Logged]) -> bool:
        """Whether all ``requests`` were in progress at once: each came in before any of
        them was answered (with ``delay`` set, answers take at least that long)."""
        return max(r.arrived for r in requests) < min(r.at for r in requests)

    def reset(self) -> None:
        with self._lock:
            self._idle.wait_for(lambda: self._busy == 0, timeout=2.0)
            self.log.clear()

    # -- serving -------------------------------------------------------------------------------

    def _record(self, h: BaseHTTPRequestHandler, status: int, sent: int) -> None:
        with self._lock:
            self.log.append(
                Logged(
                    h.command,
                    h.path,
                    h.headers.get("Range"),
                    status,
                    sent,
                    bool(h.headers.get("Authorization")),
                    time.monotonic(),
                    getattr(h, "arrived", 0.0),
                )
            )

    def _simple(
        self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b""
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        sent = 0
        if body and h.command != "HEAD":
            h.wfile.write(body)
            sent = len(body)
        self._record(h, status, sent)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        h.arrived = time.monotonic()  # type: ignore[attr-defined]
        with self._lock:
            self._busy += 1
        try:
            self._answer(h, head=head)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    def _answer(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        if self.delay:
            time.sleep(self.delay)
        path = h.path.split("?")[0]
        served = self.files.get(path)
        match = _RESOLVE.match(path)
        if served is None and match is not None:
            self._hub(h, match["repo"], match["rev"], match["file"], head=head)
            return
        if served is None:
            self._simple(h, 404, {"Content-Type": "text/plain"}, b"not found")
            return
        self._send_file(h, served, {}, head=head)

    def _hub(
        self, h: BaseHTTPRequestHandler, repo: str, rev: str, name: str, *, head: bool
    ) -> None:
        hub = self.repos.get(repo)
        if hub is None:
            self._simple(
                h, 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
            )
            return
        if hub.token is not None and h.headers.get("Authorization") != f"Bearer {hub.token}":
            status = 403 if h.headers.get("Authorization") else 401
            self._simple(h, status, {"X-Error-Code": "GatedRepo", "X-Error-Message": "gated"})
            return
        from urllib.parse import unquote

        if unquote(rev) not in hub.revisions:
            self._simple(
                h, 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}
            )
            return
        entry = hub.files.get(unquote(name))
        common = {"X-Repo-Commit": hub.commit}
        if entry is None:
            self._simple(
                h,
                404,
                {**common, "X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"},
            )
            return
        served = entry.served
        size = _claimed(served, linked=True)
        if entry.lfs_path is not None:
            assert self.cdn is not None
            headers = {
                **common,
                "ETag": served.etag,
                "X-Linked-Etag": served.etag,
                "X-Linked-Size": str(size),
                "Location": self.cdn.url + entry.lfs_path,
            }
            self._simple(h, 302, headers)
            return
        self._send_file(h, served, {**common, "ETag": served.etag}, head=head)

    def _send_file(
        self, h: BaseHTTPRequestHandler, served: Served, extra: dict[str, str], *, head: bool
    ) -> None:
        fault = served.fault or ""
        if fault == "hang":
            self._stopping.wait()
            return
        if fault.startswith("status:"):
            self._simple(h, int(fault.split(":")[1]), {"Content-Type": "text/plain"}, b"fault")
            return
        size = served.size
        claimed = _claimed(served)
        wanted = h.headers.get("Range")
        headers = {
            "Accept-Ranges": "bytes" if self.honour_range else "none",
            "ETag": served.etag,
            **extra,
        }
        if head:
            h.send_response(200)
            for k, v in headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(_claimed(served, linked=True)))
            h.send_header("Connection", "close")
            h.end_headers()
            self._record(h, 200, 0)
            return
        if not wanted or not self.honour_range:
            self._stream(h, served, headers, size)
            return
        m = _RANGE.match(wanted.strip())
        if m is None or (not m[1] and not m[2]):
            self._simple(h, 416, {"Content-Range": f"bytes */{claimed}"})
            return
        if m[1]:
            start = int(m[1])
            end = min(int(m[2]), size - 1) if m[2] else size - 1
        else:
            start, end = max(size - int(m[2]), 0), size - 1
        if start >= size or end < start:
            self._simple(h, 416, {"Content-Range": f"bytes */{claimed}"})
            return
        n = end - start + 1
        h.send_response(206)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Range", f"bytes {start}-{end}/{claimed}")
        h.send_header("Content-Length", str(n))
        h.send_header("Connection", "close")
        h.end_headers()
        limit = n // 2 if fault == "break" else n
        sent = self._write(h, served, start, limit)
        self._record(h, 206, sent)
        if fault == "break":
            h.close_connection = True
            with _suppress():
                h.wfile.flush()
                h.connection.shutdown(2)

    def _stream(
        self, h: BaseHTTPRequestHandler, served: Served, headers: dict[str, str], size: int
    ) -> None:
        h.send_response(200)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(size))
        h.send_header("Connection", "close")
        h.end_headers()
        sent = self._write(h, served, 0, min(size, MAX_STREAM))
        self._record(h, 200, sent)

    def _write(self, h: BaseHTTPRequestHandler, served: Served, start: int, n: int) -> int:
        sent = 0
        while sent < n and not self._stopping.is_set():
            chunk = served.read(start + sent, min(CHUNK, n - sent))
            if not chunk:
                break
            try:
                h.wfile.write(chunk)
            except OSError:  # the client hung up
                break
            sent += len(chunk)
        return sent


def _claimed(served: Served, *, linked: bool = False) -> int:
    """The size the server states: a "size:N" fault lies everywhere, "linked-size:N" only in
    a HEAD's Content-Length and the Hub's X-Linked-Size."""
    fault = served.fault or ""
    if fault.startswith("size:") or (linked and fault.startswith("linked-size:")):
        return int(fault.split(":")[1])
    return served.size


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True
