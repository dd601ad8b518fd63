"""hf:// models through huggingface_hub against a local Hub (HF_ENDPOINT -> 127.0.0.1): the
resolve URL, its HEAD (X-Repo-Commit, X-Linked-Size, X-Linked-Etag), the redirect to a CDN
that never sees the token, gated and missing repos, revisions, and the header cache."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gguf_bytes as gb
import pytest
from model_server import ModelServer

from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.engine.plan import plan
from pytest_llmfit.errors import GGUFError, SourceError
from pytest_llmfit.hardware.specs import resolve_hardware
from pytest_llmfit.sources import SourceSettings, read_model

pytest.importorskip("huggingface_hub", reason="hf:// needs huggingface_hub (the hf extra)")
pytest_plugins = ["sources_fixtures"]

REPO = "bartowski/Meta-Llama-3.1-405B-Instruct-GGUF"
FILE = "Meta-Llama-3.1-405B-Instruct-Q3_K_M.gguf"


def _model(path: Path) -> Path:
    path.write_bytes(gb.small_model().data)
    return path


def test_405b_from_the_hub_fetches_4mib_from_the_cdn_and_plans_like_the_file(
    hub: ModelServer, twin_405b: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    spec = hub.hub_file(REPO, FILE, path=twin_405b)
    settings = SourceSettings()
    model = read_model(spec, settings)
    local = read_gguf(twin_405b)
    assert model.tensors == local.tensors and model.metadata == local.metadata
    assert model.file_size == local.file_size == 195_368_796_000
    host = resolve_hardware("rtx-4090, ram=64GB", source="test")
    remote_plan = plan(model, host, Settings(n_ctx=8192))
    local_plan = plan(local, host, Settings(n_ctx=8192))
    assert remote_plan.to_dict() == local_plan.to_dict()
    assert (remote_plan.n_gpu_layers, remote_plan.fits) == (14, False)

    resolve = [r for r in hub.requests() if "/resolve/" in r.path]
    assert [(r.method, r.status, r.sent, r.auth) for r in resolve] == [("HEAD", 302, 0, True)]
    cdn = hub.cdn
    assert cdn is not None
    assert [(r.method, r.range, r.status, r.auth) for r in cdn.requests()] == [
        ("GET", "bytes=0-1048575", 206, False),  # the token stays on the Hub
        ("GET", "bytes=1048576-2097151", 206, False),
        ("GET", "bytes=2097152-4194303", 206, False),
    ]
    assert cdn.sent() == 4 << 20

    hub.reset()
    cdn.reset()
    assert read_model(spec, settings).tensors == local.tensors  # a second session
    assert hub.requests() == [] and cdn.requests() == []
    assert read_model(spec, SourceSettings(revalidate_after=0)).tensors == local.tensors
    assert [(r.method, r.status) for r in hub.requests()] == [("HEAD", 302)]
    assert cdn.sent() == 0


def test_a_pinned_revision_is_never_asked_again(hub: ModelServer, tmp_path: Path) -> None:
    hub.hub_file("org/repo", "m.gguf", path=_model(tmp_path / "m.gguf"))
    commit = hub.repos["org/repo"].commit
    spec = f"hf://org/repo@{commit}/m.gguf"
    read_model(spec, SourceSettings())
    hub.reset()
    read_model(spec, SourceSettings(revalidate_after=0))
    assert hub.requests() == []


def test_a_file_served_by_the_hub_itself_keeps_the_token(
    hub: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.hub_repo("org/gated", token="hf_good")
    spec = hub.hub_file("org/gated", "m.gguf", path=_model(tmp_path / "m.gguf"), lfs=False)
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    assert read_model(spec, SourceSettings()).architecture == "llama"
    assert [(r.method, r.status, r.auth) for r in hub.requests() if "resolve" in r.path] == [
        ("HEAD", 200, True),
        ("GET", 206, True),
    ]


@pytest.mark.parametrize(
    ("spec", "token", "expected"),
    [
        (
            "hf://org/gated/m.gguf",
            None,
            "gated repo org/gated (HTTP 401): no token was sent; accept the model's terms on "
            "the Hub, then set HF_TOKEN or run `hf auth login`",
        ),
        (
            "hf://org/gated/m.gguf",
            "hf_wrong",
            "gated repo org/gated (HTTP 403): the token has no access; accept the model's "
            "terms on the Hub with its account",
        ),
        (
            "hf://org/missing/m.gguf",
            None,
            "repository org/missing not found (HTTP 401 from 127.0.0.1:{port}); if it is "
            "private or gated, set HF_TOKEN or run `hf auth login`",
        ),
        ("hf://org/open/nope.gguf", None, "not found: no file nope.gguf in org/open (HTTP 404)"),
        (
            "hf://org/open@v9/m.gguf",
            None,
            "revision 'v9' not found in org/open (HTTP 404)",
        ),
    ],
)
def test_hub_errors_are_one_line(
    hub: ModelServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    token: str | None,
    expected: str,
) -> None:
    model = _model(tmp_path / "m.gguf")
    hub.hub_repo("org/gated", token="hf_good")
    hub.hub_file("org/gated", "m.gguf", path=model)
    hub.hub_file("org/open", "m.gguf", path=model)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    with pytest.raises(SourceError) as info:
        read_model(spec, SourceSettings())
    assert str(info.value) == f"{spec}: " + expected.format(port=hub.port)


def test_hub_timeout_wrong_size_and_not_a_hub(
    hub: ModelServer, tmp_path: Path, twin_405b: Path
) -> None:
    spec = hub.hub_file("org/slow", "m.gguf", path=twin_405b, lfs=False, fault="hang")
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        read_model(spec, SourceSettings(timeout=0.5, timeout_source="test"))
    assert str(info.value) == f"{spec}: no answer from 127.0.0.1:{hub.port} within 0.5 s (test)"
    assert time.monotonic() - started < 5

    spec = hub.hub_file("org/lies", "m.gguf", path=twin_405b, fault="linked-size:1000")
    with pytest.raises(SourceError) as info:
        read_model(spec, SourceSettings())
    assert str(info.value) == (
        f"{spec}: wrong size: the Hub (X-Linked-Size) said 1000 bytes but Content-Range says "
        "195368796000"
    )

    hub.serve("/org/plain/resolve/main/m.gguf", path=_model(tmp_path / "m.gguf"))
    with pytest.raises(SourceError) as info:
        read_model("hf://org/plain/m.gguf", SourceSettings())
    assert str(info.value) == (
        f"hf://org/plain/m.gguf: 127.0.0.1:{hub.port} did not answer like a Hugging Face Hub "
        "(no X-Repo-Commit header); check HF_ENDPOINT and any proxy"
    )


def test_split_model_on_the_hub(hub: ModelServer, tmp_path: Path) -> None:
    count = 4
    for i in range(count):
        kvs = [gb.kv("split.no", gb.UINT16, i), gb.kv("split.count", gb.UINT16, count)]
        if i == 0:
            kvs.insert(0, gb.kv("general.architecture", gb.STRING, "llama"))
        path = tmp_path / f"m-{i + 1:05d}-of-{count:05d}.gguf"
        path.write_bytes(gb.build(kvs, [gb.Tensor(f"blk.{i}.a", (32, 2))]).data)
        hub.hub_file("org/split", f"Q4/{path.name}", path=path)
    hub.delay = 0.4
    model = read_model("hf://org/split/Q4/m-00001-of-00004.gguf", SourceSettings())
    assert [t.name for t in model.tensors] == [f"blk.{i}.a" for i in range(count)]
    assert model.shards[-1] == "hf://org/split/Q4/m-00004-of-00004.gguf"
    heads = [r for r in hub.requests("HEAD") if "resolve" in r.path]
    assert len(heads) == count and hub.concurrent(heads)  # not one after another


def test_a_non_gguf_file_on_the_hub(hub: ModelServer) -> None:
    spec = hub.hub_file("org/r", "m.gguf", data=b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(GGUFError) as info:
        read_model(spec, SourceSettings())
    assert str(info.value) == (
        f"{spec}: not a GGUF file (starts with b'vers', expected b'GGUF') at offset 0"
    )


def test_without_huggingface_hub_the_error_says_how_to_install_it(
    remote_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(SourceError) as info:
        read_model("hf://org/r/m.gguf", SourceSettings())
    assert str(info.value) == (
        "hf://org/r/m.gguf: hf:// models need huggingface_hub: pip install 'pytest-llmfit[hf]'"
    )


def test_split_405b_on_the_hub_fetches_every_shard_header_at_once(
    hub: ModelServer, split_405b: list[Path]
) -> None:
    folder = "Meta-Llama-3.1-405B-Instruct-Q3_K_M"
    for path in split_405b:
        hub.hub_file(REPO, f"{folder}/{path.name}", path=path)
    hub.delay = 0.3
    spec = f"hf://{REPO}/{folder}/{split_405b[0].name}"
    model = read_model(spec, SourceSettings())
    local = read_gguf(split_405b[0])
    assert model.tensors == local.tensors and model.file_size == local.file_size
    assert len(model.shards) == 5
    host = resolve_hardware("rtx-4090, ram=64GB", source="test")
    assert plan(model, host, Settings(n_ctx=8192)).to_dict() == (
        plan(local, host, Settings(n_ctx=8192)).to_dict()
    )
    heads = [r for r in hub.requests("HEAD") if "/resolve/" in r.path]
    assert len(heads) == 5 and hub.concurrent(heads)  # every shard at once
    cdn = hub.cdn
    assert cdn is not None
    by_shard: dict[str, int] = {}
    for r in cdn.requests("GET"):
        by_shard[r.path] = by_shard.get(r.path, 0) + r.sent
    # the first shard's 3.2 MB header in 4 MiB, each other shard's few KB in its first 1 MiB
    assert sorted(by_shard.values()) == [1 << 20] * 4 + [4 << 20]
