"""pytest_llmfit.sources without a server: how models are named, the settings every source
takes, the header cache on disk, Ollama's store, and what ``import`` costs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import gguf_bytes as gb
import pytest

from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.errors import ConfigError, GGUFError, SourceError
from pytest_llmfit.plugin.requirements import parse_requirement, resolve_model_path
from pytest_llmfit.plugin.settings import resolve
from pytest_llmfit.sources import (
    SourceSettings,
    is_remote,
    model_file,
    read_model,
    resolve_source,
    scheme_of,
)
from pytest_llmfit.sources.cache import HeaderCache, Identity, file_lock
from pytest_llmfit.sources.download import destination
from pytest_llmfit.sources.hf import HfPath, parse_hf
from pytest_llmfit.sources.ollama import OllamaName, parse_ollama
from pytest_llmfit.sources.remote import shard_specs

pytest_plugins = ["sources_fixtures"]  # remote_env, server, hub, twin_405b

# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "scheme"),
    [
        ("hf://a/b/c.gguf", "hf"),
        ("HTTPS://x/y.gguf", "https"),
        ("ollama://llama3", "ollama"),
        ("file:///tmp/x.gguf", "file"),
        ("models/x.gguf", None),
        ("C:\\models\\x.gguf", None),
        ("/abs/x.gguf", None),
        ("weird name://x", None),
    ],
)
def test_scheme_of(spec: str, scheme: str | None) -> None:
    assert scheme_of(spec) == scheme
    assert is_remote(spec) == (scheme not in (None, "file") or scheme == "file")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("hf://org/repo/file.gguf", HfPath("org/repo", None, "file.gguf")),
        ("hf://org/repo@v1.0/sub/dir/file.gguf", HfPath("org/repo", "v1.0", "sub/dir/file.gguf")),
        ("hf://org/repo@refs%2Fpr%2F3/f.gguf", HfPath("org/repo", "refs/pr/3", "f.gguf")),
        ("hf://org/repo@refs/pr/3/f.gguf", HfPath("org/repo", "refs/pr/3", "f.gguf")),
        ("hf://org/repo@" + "a" * 40 + "/f.GGUF", HfPath("org/repo", "a" * 40, "f.GGUF")),
    ],
)
def test_parse_hf(spec: str, expected: HfPath) -> None:
    assert parse_hf(spec) == expected
    assert expected.pinned == (expected.revision == "a" * 40)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("hf://org/file.gguf", "'hf://org/file.gguf' is not an hf:// model like"),
        ("hf://org/repo/readme.md", "; the file must be a .gguf (marker)"),
        ("hf://datasets/org/repo/x.gguf", "; only model repos hold GGUF models (marker)"),
        ("hf://org/repo@/x.gguf", "is not an hf:// model like hf://ORG/REPO/FILE.gguf"),
        ("hf://org//x.gguf", "is not an hf:// model"),
    ],
)
def test_parse_hf_rejects_with_the_accepted_forms(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"hf://ORG/REPO@REVISION/FILE\.gguf") as info:
        parse_hf(spec, source="marker")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ollama://llama3.1", OllamaName("registry.ollama.ai", "library", "llama3.1", "latest")),
        ("ollama://llama3.1:8b", OllamaName("registry.ollama.ai", "library", "llama3.1", "8b")),
        ("ollama://me/model:q4", OllamaName("registry.ollama.ai", "me", "model", "q4")),
        ("ollama://host:1234/me/m:t", OllamaName("host:1234", "me", "m", "t")),
    ],
)
def test_parse_ollama(spec: str, expected: OllamaName) -> None:
    assert parse_ollama(spec) == expected


@pytest.mark.parametrize("spec", ["ollama://", "ollama://a/b/c/d", "ollama://m:", "ollama://../x"])
def test_parse_ollama_rejects(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"is not an Ollama model like ollama://llama3.1:8b"):
        parse_ollama(spec)


def test_unknown_scheme_names_every_accepted_form() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_source("s3://bucket/x.gguf", source="marker requires_model on t.py::t")
    assert str(info.value) == (
        "'s3://bucket/x.gguf' is not a model: a GGUF file path, "
        "hf://ORG/REPO[@REVISION]/FILE.gguf, http(s)://HOST/PATH/FILE.gguf or "
        "ollama://NAME[:TAG]; unknown scheme s3:// (marker requires_model on t.py::t)"
    )


def test_shard_specs_keep_the_form_and_the_query() -> None:
    assert shard_specs("hf://o/r@v/m-00002-of-00003.gguf") == (
        "hf://o/r@v/m-00001-of-00003.gguf",
        "hf://o/r@v/m-00002-of-00003.gguf",
        "hf://o/r@v/m-00003-of-00003.gguf",
    )
    assert shard_specs("https://h/d/m-00001-of-00002.gguf?download=1") == (
        "https://h/d/m-00001-of-00002.gguf?download=1",
        "https://h/d/m-00002-of-00002.gguf?download=1",
    )
    assert shard_specs("https://h/m.gguf") is None
    assert shard_specs("https://h/m-00003-of-00002.gguf") is None


def test_remote_specs_pass_through_model_path_resolution() -> None:
    for spec in ("hf://o/r/m.gguf", "https://h/m.gguf", "ollama://m:t"):
        assert resolve_model_path(spec, "models", "/root") == spec
    assert resolve_model_path("m.gguf", "models", "/root") == "/root/models/m.gguf"


def test_a_malformed_remote_marker_is_a_config_error_at_parse_time() -> None:
    with pytest.raises(ConfigError, match=r"\(marker requires_model on t\.py::t\)$"):
        parse_requirement(
            "requires_model",
            ("hf://only-org/x.gguf",),
            {},
            source="marker requires_model on t.py::t",
        )
    req = parse_requirement("requires_model", ("hf://o/r/x.gguf",), {"n_ctx": 512}, source="m")
    assert req.model_path == "hf://o/r/x.gguf"
    assert req.summary == "requires_model x.gguf @512"


def test_destination_keeps_host_and_path_and_drops_dot_dot(tmp_path: Path) -> None:
    got = destination("http://127.0.0.1:8000/a/../b c/m-00001-of-00002.gguf?x=1", tmp_path)
    assert got == tmp_path / "127.0.0.1_8000" / "a" / "b_c" / "m-00001-of-00002.gguf"


# -- settings ----------------------------------------------------------------------------------


def test_source_settings_from_env_order_and_errors() -> None:
    s = SourceSettings.from_env({})
    assert (s.timeout, s.offline, s.timeout_source, s.offline_source) == (
        30.0,
        False,
        "default",
        "default",
    )
    s = SourceSettings.from_env({"LLMFIT_HTTP_TIMEOUT": "5", "HF_HUB_OFFLINE": "1"})
    assert (s.timeout, s.offline) == (5.0, True)
    assert s.offline_source == "environment HF_HUB_OFFLINE"
    assert s.timeout_hint() == "5 s (environment LLMFIT_HTTP_TIMEOUT)"
    s = SourceSettings.from_env({"LLMFIT_HTTP_TIMEOUT": "5", "LLMFIT_OFFLINE": "0"}, timeout="2")
    assert (s.timeout, s.offline, s.timeout_source) == (2.0, False, "command line --http-timeout")
    with pytest.raises(ConfigError) as info:
        SourceSettings.from_env({"LLMFIT_HTTP_TIMEOUT": "soon"})
    assert str(info.value) == (
        "'soon' is not a number of seconds above 0 (environment LLMFIT_HTTP_TIMEOUT)"
    )
    with pytest.raises(ConfigError, match=r"'maybe' is not a yes/no value .* LLMFIT_OFFLINE\)"):
        SourceSettings.from_env({"LLMFIT_OFFLINE": "maybe"})


def test_plugin_settings_resolve_http_timeout_and_offline_in_one_order() -> None:
    s = resolve({}, {}, {})
    assert (s.http_timeout, s.offline) == (30.0, False)
    s = resolve({}, {"HF_HUB_OFFLINE": "1"}, {"http_timeout": "7"})
    assert (s.http_timeout, s.offline) == (7.0, True)
    assert s.source_of("offline") == "environment HF_HUB_OFFLINE"
    assert s.source_of("http_timeout") == "ini llmfit_http_timeout"
    s = resolve({"offline": None, "http_timeout": "3"}, {"LLMFIT_OFFLINE": "no"}, {})
    assert (s.http_timeout, s.offline) == (3.0, False)
    assert s.source_of("offline") == "environment LLMFIT_OFFLINE"
    with pytest.raises(ConfigError) as info:
        resolve({"http_timeout": "0"}, {}, {})
    assert (
        str(info.value)
        == "'0' is not a number of seconds above 0 (command line --llmfit-http-timeout)"
    )


# -- local files and the cache -----------------------------------------------------------------


def test_local_and_file_urls_read_like_read_gguf(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gb.small_model().data)
    for spec in (str(path), path.as_uri()):
        model = read_model(spec, SourceSettings())
        assert model.tensors == read_gguf(path).tensors
        assert model_file(spec, SourceSettings()) == str(path)
    with pytest.raises(GGUFError, match="no such file"):
        read_model(str(tmp_path / "missing.gguf"))


def test_cache_store_lookup_list_clear(tmp_path: Path) -> None:
    cache = HeaderCache(tmp_path)
    assert cache.lookup("hf://o/r/m.gguf") is None
    identity = Identity("hf://o/r/m.gguf", "c" * 40, "etag", 1000)
    entry = cache.store("hf://o/r/m.gguf", identity, "http://cdn/x", b"GGUF1234", immutable=False)
    assert cache.lookup("hf://o/r/m.gguf") == entry
    assert cache.data(entry) == b"GGUF1234"
    assert entry.identity == identity and entry.fresh(60) and not entry.fresh(0)
    later = cache.touch(entry)
    assert later.checked_at >= entry.checked_at
    other = Identity("https://h/m.gguf", None, None, 10)
    cache.store("https://h/m.gguf", other, "https://h/m.gguf", b"x" * 10, immutable=False)
    assert [e.spec for e in cache.entries()] == ["hf://o/r/m.gguf", "https://h/m.gguf"]
    # a truncated data file or a corrupt entry is a miss, not a crash
    (tmp_path / "data" / f"{entry.key}.bin").write_bytes(b"GG")
    assert cache.data(entry) is None
    next((tmp_path / "specs").glob("*.json")).write_text("{not json")
    assert len(cache.entries()) == 1
    count, size = cache.clear()
    assert count == 1 and size > 0 and cache.entries() == []


def test_file_lock_serialises_threads_of_different_handles(tmp_path: Path) -> None:
    order: list[str] = []

    def hold(name: str) -> None:
        with file_lock(tmp_path / "x.lock"):
            order.append(f"{name} in")
            time.sleep(0.1)
            order.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order[0][0] == order[1][0] and order[2][0] == order[3][0]


def test_offline_without_a_cached_header_says_so(remote_env: Path) -> None:
    settings = SourceSettings.from_env({"HF_HUB_OFFLINE": "1"})
    with pytest.raises(SourceError) as info:
        read_model("https://127.0.0.1:9/x.gguf", settings)
    assert str(info.value) == (
        f"https://127.0.0.1:9/x.gguf: not in the header cache ({remote_env}/llmfit-cache/headers)"
        " and offline (environment HF_HUB_OFFLINE): run once with network access to cache it"
    )


# -- Ollama ------------------------------------------------------------------------------------


def _ollama_store(root: Path, data: bytes, name: str = "llama3.1", tag: str = "8b") -> Path:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True)
    (root / "blobs" / f"sha256-{digest}").write_bytes(data)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True)
    layers = [
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64},
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"},
    ]
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": layers}))
    return root / "blobs" / f"sha256-{digest}"


def test_ollama_reads_the_model_blob_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = gb.small_model()
    blob = _ollama_store(tmp_path / "store", model.data)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "store"))
    got = read_model("ollama://llama3.1:8b")
    assert got.path == "ollama://llama3.1:8b"
    assert got.tensors == read_gguf(blob).tensors
    assert model_file("ollama://llama3.1:8b") == str(blob)


def test_ollama_faults_are_one_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    blob = _ollama_store(store, b"<html>not a model</html>")
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    with pytest.raises(GGUFError) as info:
        read_model("ollama://llama3.1:8b")
    assert str(info.value) == (
        "ollama://llama3.1:8b: not a GGUF file (starts with b'<htm', expected b'GGUF') at offset 0"
    )
    with pytest.raises(SourceError) as info:
        read_model("ollama://mistral")
    assert str(info.value) == (
        f"ollama://mistral: not in Ollama's store {store} (no manifest "
        "manifests/registry.ollama.ai/library/mistral/latest); run `ollama pull mistral:latest` "
        "or set OLLAMA_MODELS"
    )
    blob.unlink()
    with pytest.raises(SourceError, match=r"the manifest names blob sha256-[0-9a-f]+, missing"):
        read_model("ollama://llama3.1:8b")


# -- imports -----------------------------------------------------------------------------------


def test_importing_the_package_and_sources_loads_no_http_client_or_hub() -> None:
    code = (
        "import sys, pytest_llmfit, pytest_llmfit.sources, pytest_llmfit.plugin.decide\n"
        "heavy = [m for m in ('huggingface_hub', 'httpx2', 'httpx', 'requests', "
        "'urllib.request', 'llama_cpp') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
