"""Plain https:// and http:// models against a real HTTP server on 127.0.0.1: only the
header is fetched (Range requests, counted), it is cached, and every fault is one line."""

from __future__ import annotations

import time
from pathlib import Path

import gguf_bytes as gb
import pytest
from model_server import ModelServer

from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.errors import GGUFError, SourceError
from pytest_llmfit.sources import SourceSettings, model_file, read_model
from pytest_llmfit.sources.cache import HeaderCache

pytest_plugins = ["sources_fixtures"]

MB = 10**6


def _settings(**kw: object) -> SourceSettings:
    return SourceSettings(**kw)  # type: ignore[arg-type]


def _same(remote: object, local: object) -> None:
    for field in ("version", "alignment", "metadata", "tensors", "data_offset", "file_size"):
        assert getattr(remote, field) == getattr(local, field), field


def test_405b_header_over_http_costs_one_4mib_range_and_plans_like_the_file(
    server: ModelServer, twin_405b: Path
) -> None:
    url = server.serve("/models/405b-q3_k_m.gguf", path=twin_405b)
    model = read_model(url, _settings())
    local = read_gguf(twin_405b)
    _same(model, local)
    assert model.path == url and model.file_size == 195_368_796_000
    gets = server.requests("GET")
    assert [(g.range, g.status) for g in gets] == [  # 1 MiB, then doubling
        ("bytes=0-1048575", 206),
        ("bytes=1048576-2097151", 206),
        ("bytes=2097152-4194303", 206),
    ]
    assert server.sent() == 4 << 20  # 4.19 MB of a 195 GB file

    # a second session: the header comes from the cache, nothing is asked
    server.reset()
    _same(read_model(url, _settings()), local)
    assert server.requests() == []
    # once the check is due, one HEAD confirms it: no body byte
    server.reset()
    _same(read_model(url, _settings(revalidate_after=0)), local)
    assert [(r.method, r.status, r.sent) for r in server.requests()] == [("HEAD", 200, 0)]


def test_a_changed_file_is_fetched_again(server: ModelServer, tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gb.small_model().data)
    url = server.serve("/m.gguf", path=path)
    read_model(url, _settings())
    path.write_bytes(gb.small_model(extra_kvs=[gb.kv("general.name", gb.STRING, "v2")]).data)
    server.serve("/m.gguf", path=path)  # a new ETag
    server.reset()
    model = read_model(url, _settings(revalidate_after=0))
    assert model.metadata["general.name"] == "v2"
    assert [r.method for r in server.requests()] == ["HEAD", "GET"]


def test_a_header_longer_than_the_first_range_grows_by_doubling(
    server: ModelServer, tmp_path: Path
) -> None:
    tokens = [f"token-{i:07d}" * 3 for i in range(150_000)]  # about 5.9 MB of vocabulary
    built = gb.build(
        [
            gb.kv("general.architecture", gb.STRING, "llama"),
            gb.kv("tokenizer.ggml.tokens", gb.ARRAY, (gb.STRING, tokens)),
        ],
        [gb.Tensor("blk.0.a", (32, 2))],
    )
    path = tmp_path / "big.gguf"
    path.write_bytes(built.data)
    url = server.serve("/big.gguf", path=path)
    model = read_model(url, _settings())
    assert model.vocab_size == 150_000
    size = len(built.data)  # 7.05 MB: the second range doubles the prefix, up to the end
    assert size > 4 << 20
    ranges = [g.range for g in server.requests("GET")]
    assert ranges == [
        "bytes=0-1048575",
        "bytes=1048576-2097151",
        "bytes=2097152-4194303",
        f"bytes=4194304-{min(size, 8 << 20) - 1}",
    ]


def test_a_server_that_ignores_range_is_stopped_before_the_body(
    remote_env: Path, twin_405b: Path
) -> None:
    with ModelServer(honour_range=False) as server:
        url = server.serve("/405b.gguf", path=twin_405b)
        with pytest.raises(SourceError) as info:
            read_model(url, _settings())
        time.sleep(0.2)  # let the server notice the hang-up
        sent = server.sent()
    assert str(info.value) == (
        f"{url}: the server ignored the Range request and began sending the whole file of "
        f"195.4 GB (HTTP 200 from 127.0.0.1:{server.port}); pytest-llmfit reads only the "
        "header and stopped: use a server that honours Range requests, or download the file "
        "and name the local copy"
    )
    assert sent < 16 * MB  # what socket buffers took before the hang-up, not 195 GB


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("status:404", "not found (HTTP 404 from {url})"),
        ("status:403", "access denied (HTTP 403 from {url})"),
        ("status:503", "server error (HTTP 503 from {url})"),
        (
            "break",
            "connection to 127.0.0.1:{port} broken after 524288 of the 1048576 bytes of range "
            "0-1048575",
        ),
        ("hang", "no answer from 127.0.0.1:{port} within 0.5 s (default)"),
    ],
)
def test_faults_are_one_line_naming_the_model(
    server: ModelServer, twin_405b: Path, fault: str, expected: str
) -> None:
    url = server.serve("/f.gguf", path=twin_405b, fault=fault)
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        read_model(url, _settings(timeout=0.5))
    assert str(info.value) == f"{url}: " + expected.format(url=url, port=server.port)
    assert time.monotonic() - started < 5


def test_no_server_and_a_non_gguf_body(server: ModelServer) -> None:
    with ModelServer() as gone:
        dead = gone.url + "/x.gguf"
    with pytest.raises(SourceError) as info:
        read_model(dead, _settings(timeout=2))
    assert str(info.value) == f"{dead}: cannot connect to {dead[7:-7]} (connection refused)"
    html = server.serve("/page.gguf", data=b"<!doctype html><html>sign in</html>")
    with pytest.raises(GGUFError) as err:
        read_model(html, _settings())
    assert str(err.value) == (
        f"{html}: not a GGUF file (starts with b'<!do', expected b'GGUF') at offset 0"
    )


def test_a_lying_size_is_caught(server: ModelServer, twin_405b: Path, tmp_path: Path) -> None:
    # The server claims a shorter file than the tensors need: the parser's own bounds say so.
    url = server.serve("/short.gguf", path=twin_405b, fault="size:5000000")
    with pytest.raises(GGUFError, match=r"data section truncated: \d+ bytes missing"):
        read_model(url, _settings())
    # A HEAD that says one size and ranges that say another: "wrong size".
    path = tmp_path / "m.gguf"
    path.write_bytes(gb.small_model().data)
    url = server.serve("/m.gguf", path=path)
    read_model(url, _settings())
    server.serve("/m.gguf", path=path, fault="linked-size:99")
    server.files["/m.gguf"].etag = '"changed"'
    with pytest.raises(SourceError) as info:
        read_model(url, _settings(revalidate_after=0))
    assert str(info.value) == (
        f"{url}: wrong size: Content-Length said 99 bytes but Content-Range says "
        f"{len(path.read_bytes())}"
    )


def test_a_hostile_header_gets_the_file_readers_treatment(
    server: ModelServer, tmp_path: Path
) -> None:
    data = bytearray(gb.small_model().data)
    data[16:24] = (10**12).to_bytes(8, "little")  # n_kv: a trillion entries
    local = tmp_path / "hostile.gguf"
    local.write_bytes(bytes(data))
    url = server.serve("/hostile.gguf", data=bytes(data))
    with pytest.raises(GGUFError) as remote_err:
        read_model(url, _settings())
    with pytest.raises(GGUFError) as local_err:
        read_gguf(local)
    assert remote_err.value.reason == local_err.value.reason
    assert remote_err.value.offset == local_err.value.offset
    assert server.sent() == len(data)


def _split(folder: Path, count: int = 3) -> list[Path]:
    paths = []
    for i in range(count):
        kvs = [gb.kv("split.no", gb.UINT16, i), gb.kv("split.count", gb.UINT16, count)]
        if i == 0:
            kvs.insert(0, gb.kv("general.architecture", gb.STRING, "llama"))
        tensors = [gb.Tensor(f"blk.{i}.a", (32, 2)), gb.Tensor(f"blk.{i}.b", (64,), gb.F16)]
        path = folder / f"m-{i + 1:05d}-of-{count:05d}.gguf"
        path.write_bytes(gb.build(kvs, tensors).data)
        paths.append(path)
    return paths


def test_split_model_shards_are_fetched_in_parallel(server: ModelServer, tmp_path: Path) -> None:
    paths = _split(tmp_path, 3)
    for p in paths:
        server.serve(f"/split/{p.name}", path=p)
    server.delay = 0.5
    model = read_model(server.url + "/split/m-00002-of-00003.gguf", _settings())
    local = read_gguf(paths[0])
    assert model.tensors == local.tensors and model.file_size == local.file_size
    assert model.shards == tuple(server.url + f"/split/{p.name}" for p in paths)
    gets = server.requests("GET")
    assert len(gets) == 3
    assert server.concurrent(gets)  # three 0.5 s answers at once, not one after another


def test_split_model_with_a_missing_shard(server: ModelServer, tmp_path: Path) -> None:
    paths = _split(tmp_path, 3)
    for p in paths[:2]:
        server.serve(f"/split/{p.name}", path=p)
    with pytest.raises(SourceError) as info:
        read_model(server.url + "/split/m-00001-of-00003.gguf", _settings())
    shard3 = server.url + "/split/m-00003-of-00003.gguf"
    assert str(info.value) == (
        f"{shard3}: shard 3 of 3 is missing (not found (HTTP 404 from {shard3}))"
    )


def test_offline_uses_the_cache_only(server: ModelServer, twin_405b: Path) -> None:
    url = server.serve("/405b.gguf", path=twin_405b)
    read_model(url, _settings())
    server.reset()
    offline = SourceSettings.from_env({"LLMFIT_OFFLINE": "1"}, revalidate_after=0)
    assert read_model(url, offline).file_size == 195_368_796_000
    assert server.requests() == []
    assert [e.spec for e in HeaderCache(offline.header_dir()).entries()] == [url]


def test_the_model_is_downloaded_once_for_loading(server: ModelServer, tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    data = gb.small_model().data
    path.write_bytes(data)
    url = server.serve("/dl/m.gguf", path=path)
    settings = _settings(download_dir=str(tmp_path / "models"))
    local = model_file(url, settings)
    assert Path(local).read_bytes() == data
    assert local == str(tmp_path / "models" / f"127.0.0.1_{server.port}" / "dl" / "m.gguf")
    server.reset()
    assert model_file(url, settings) == local  # the header from the cache, the file on disk
    assert server.requests() == []


def test_an_interrupted_download_resumes(server: ModelServer, tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    data = gb.small_model().data
    path.write_bytes(data)
    url = server.serve("/dl/m.gguf", path=path)
    settings = _settings(download_dir=str(tmp_path / "models"))
    read_model(url, settings)
    part = tmp_path / "models" / f"127.0.0.1_{server.port}" / "dl" / "m.gguf.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:100])
    server.reset()
    assert Path(model_file(url, settings)).read_bytes() == data
    assert [r.range for r in server.requests("GET")] == ["bytes=100-"]
