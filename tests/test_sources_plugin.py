"""Remote models on every surface: requires_model markers (with pytest-xdist: one fetch per
session, not per worker), the llm fixture (downloaded once, then loaded), llmfit.plan(),
and the command line (plan, inspect, stub, cache)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf_bytes as gb
import pytest
from model_server import ModelServer

from pytest_llmfit.cli import main
from pytest_llmfit.engine.gguf import read_gguf

pytest_plugins = ["sources_fixtures"]
pytest.importorskip("huggingface_hub", reason="hf:// needs huggingface_hub (the hf extra)")

REPO = "bartowski/Meta-Llama-3.1-405B-Instruct-GGUF"
FILE = "Meta-Llama-3.1-405B-Instruct-Q3_K_M.gguf"
SPEC = f"hf://{REPO}/{FILE}"


@pytest.fixture
def remote_suite(
    pytester: pytest.Pytester, hub: ModelServer, twin_405b: Path, tmp_path: Path
) -> pytest.Pytester:
    """A suite whose markers name the 405B twin on the Hub and a small model at a URL."""
    hub.hub_file(REPO, FILE, path=twin_405b)
    small = tmp_path / "small.gguf"
    small.write_bytes(gb.small_model().data)
    url = hub.serve("/files/small.gguf", path=small)
    tests = "\n".join(
        f"""
@requires_model("{SPEC}", n_ctx=8192)
def test_405b_{i}():
    pass

@requires_model("{url}", n_ctx=512)
def test_small_{i}(llmfit):
    assert llmfit.plan("{url}", n_ctx=512).fits
"""
        for i in range(4)
    )
    pytester.makepyfile(test_remote="from pytest_llmfit import requires_model\n" + tests)
    return pytester


def _fetches(hub: ModelServer) -> dict[str, list[str]]:
    cdn = hub.cdn
    assert cdn is not None
    seen: dict[str, list[str]] = {}
    for server in (hub, cdn):
        for r in server.requests():
            if "/resolve/" in r.path or r.path.startswith(("/files/", "/repos/")):
                seen.setdefault(r.path.rsplit("/", 1)[-1], []).append(f"{r.method} {r.status}")
    return seen


def test_markers_under_xdist_fetch_each_header_once(
    remote_suite: pytest.Pytester, hub: ModelServer
) -> None:
    pytest.importorskip("xdist")
    result = remote_suite.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "-rs", "--llmfit-hardware", "rtx-4090, ram=64GB"
    )
    result.assert_outcomes(passed=4, skipped=4)
    reason = (
        f": requires_model {FILE} @8192: needs 200.1 GB; have 25.8 GB VRAM (1x NVIDIA GeForce "
        "RTX 4090) + 64.0 GB RAM; short by 114.7 GB; "
        "fits as IQ1_S with a q8_0 KV cache at n_ctx 2048 or on 1x b300"
    )
    skips = [line for line in result.stdout.lines if line.startswith("SKIPPED [1] test_remote")]
    assert len(skips) == 4 and all(reason in line for line in skips), skips
    fetched = _fetches(hub)
    cdn_path = next(p for p in fetched if p not in (FILE, "small.gguf"))
    assert fetched == {FILE: ["HEAD 302"], cdn_path: ["GET 206"] * 3, "small.gguf": ["GET 206"]}
    assert hub.cdn is not None and hub.cdn.sent() == 4 << 20

    hub.reset()
    hub.cdn.reset()
    again = remote_suite.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--llmfit-hardware", "rtx-4090, ram=64GB"
    )
    again.assert_outcomes(passed=4, skipped=4)
    assert _fetches(hub) == {}  # the header cache answers; checked less than a minute ago


def test_remote_faults_are_error_outcomes_with_one_line(
    pytester: pytest.Pytester, hub: ModelServer
) -> None:
    pytester.makepyfile(
        test_bad="""
        from pytest_llmfit import requires_model

        @requires_model("hf://org/missing/m.gguf")
        def test_missing_repo():
            pass

        @requires_model("hf://org/only-two-parts.gguf")
        def test_malformed():
            pass

        import pytest

        @pytest.mark.parametrize("llm", ["https://127.0.0.1:9/gone.gguf"], indirect=True)
        def test_llm_unreachable(llm):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--llmfit-http-timeout=2")
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(
        [
            "*pytest-llmfit: https://127.0.0.1:9/gone.gguf: cannot connect to 127.0.0.1:9 "
            "(connection refused)",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*pytest-llmfit: hf://org/missing/m.gguf: repository org/missing not found (HTTP 401 "
            f"from 127.0.0.1:{hub.port}); if it is private or gated, set HF_TOKEN or run `hf auth "
            "login` (marker requires_model on test_bad.py::test_missing_repo)",
            "*pytest-llmfit: 'hf://org/only-two-parts.gguf' is not an hf:// model like "
            "hf://ORG/REPO/FILE.gguf or hf://ORG/REPO@REVISION/FILE.gguf (marker requires_model "
            "on test_bad.py::test_malformed)",
        ]
    )


def test_offline_and_http_timeout_options(pytester: pytest.Pytester, hub: ModelServer) -> None:
    pytester.makepyfile(
        test_off=f"""
        from pytest_llmfit import requires_model

        @requires_model("{SPEC}")
        def test_uncached():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--llmfit-offline")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"*pytest-llmfit: {SPEC}: not in the header cache (*) and offline (command line "
            "--llmfit-offline): run once with network access to cache it (marker requires_model "
            "on test_off.py::test_uncached)"
        ]
    )
    assert _fetches(hub) == {}
    bad = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--llmfit-http-timeout=soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        [
            "*pytest-llmfit: 'soon' is not a number of seconds above 0 (command line "
            "--llmfit-http-timeout)"
        ]
    )


def test_llm_downloads_a_remote_model_once_and_loads_it(
    pytester: pytest.Pytester, hub: ModelServer, tmp_path: Path
) -> None:
    pytest.importorskip("llama_cpp", reason="needs the llama extra")
    pytest.importorskip("xdist")
    from pytest_llmfit.twins.tiny import tiny_model_cached

    tiny = tiny_model_cached(tmp_path / "tiny", dtype="f16", n_layer=2, n_embd=128)
    hf_spec = hub.hub_file("org/tiny", "tiny-f16.gguf", path=tiny)
    url = hub.serve("/files/tiny-f16.gguf", path=tiny)
    pytester.makepyfile(
        test_llm=f"""
        import pytest
        from pytest_llmfit import requires_model

        @pytest.mark.parametrize("n", range(2))
        @requires_model("{hf_spec}", n_ctx=256)
        def test_hf(llm, n):
            assert llm("hello", max_tokens=2)["choices"]

        @pytest.mark.parametrize("n", range(2))
        @requires_model("{url}", n_ctx=256)
        def test_url(llm, n):
            assert llm("hello", max_tokens=2)["choices"]
        """
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", f"--llmfit-models-dir={tmp_path / 'models'}"
    )
    result.assert_outcomes(passed=4)
    whole = [r for s in (hub, hub.cdn) if s for r in s.requests("GET") if r.range is None]
    assert (
        sorted(r.path.rsplit("/", 1)[0] for r in whole)
        == ["/files", f"/repos/{whole[0].path.split('/')[2]}"]
        or len(whole) == 2
    )
    assert len(whole) == 2  # one download per model for the machine, not per worker
    local = tmp_path / "models" / f"127.0.0.1_{hub.port}" / "files" / "tiny-f16.gguf"
    assert local.read_bytes() == tiny.read_bytes()


# -- the command line ----------------------------------------------------------------------------


def test_cli_plans_a_hub_model_like_its_local_file(
    hub: ModelServer, twin_405b: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.hub_file(REPO, FILE, path=twin_405b)
    args = ["--ctx", "8192", "--hardware", "rtx-4090, ram=64GB", "--json"]
    assert main(["plan", SPEC, *args]) == 1  # does not fit
    remote = json.loads(capsys.readouterr().out)
    assert main(["plan", str(twin_405b), *args]) == 1
    local = json.loads(capsys.readouterr().out)
    assert remote.pop("model")["path"] == SPEC
    assert local.pop("model")["path"] == str(twin_405b)
    assert remote == local
    assert main(["plan", SPEC, "--ctx", "8192", "--hardware", "rtx-4090, ram=64GB"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"model   {SPEC} (llama, 126 blocks, 195.4 GB of weights)"
    assert "plan    does NOT fit: n_gpu_layers 14/127" in out
    assert "  short by 114.7 GB" in out


def test_cli_errors_exit_2_with_one_line(
    hub: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", "hf://org/nope/m.gguf"]) == 2
    assert capsys.readouterr().err == (
        f"pytest-llmfit: error: hf://org/nope/m.gguf: repository org/nope not found (HTTP 401 "
        f"from 127.0.0.1:{hub.port}); if it is private or gated, set HF_TOKEN or run `hf auth "
        "login`\n"
    )
    assert main(["plan", "hf://org/nope/m.gguf", "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pytest-llmfit: error: hf://org/nope/m.gguf: not in the header cache")
    assert err.endswith(
        "and offline (command line --offline): run once with network access to cache it\n"
    )
    assert main(["plan", "hf://org/nope/m.gguf", "--http-timeout", "-1"]) == 2
    assert capsys.readouterr().err == (
        "pytest-llmfit: error: '-1' is not a number of seconds above 0 (command line "
        "--http-timeout)\n"
    )
    assert main(["plan", "s3://b/m.gguf"]) == 2
    assert "unknown scheme s3:// (MODEL)" in capsys.readouterr().err


def test_cli_stub_and_cache_list_clear(
    hub: ModelServer, twin_405b: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.hub_file(REPO, FILE, path=twin_405b)
    stub = tmp_path / "405b-stub.gguf"
    assert main(["stub", SPEC, str(stub)]) == 0
    assert capsys.readouterr().out == f"wrote {stub}: 3.3 MB header of {SPEC}\n"
    model, local = read_gguf(stub), read_gguf(twin_405b)
    assert model.header_only and model.tensors == local.tensors
    assert main(["cache", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    cache_dir = tmp_path / "llmfit-cache" / "headers"
    assert lines[0] == f"header cache {cache_dir}: 1 model(s), 4.2 MB"
    assert lines[1].startswith(f"  {SPEC}  4.2 MB header of 195.4 GB, ")
    assert main(["cache", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["spec"] for e in listed["entries"]] == [SPEC]
    assert listed["entries"][0]["revision"] == hub.repos[REPO].commit
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith(
        f"removed 1 cached header(s), 4.2 MB, from {cache_dir}"
    )
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out == f"header cache {cache_dir}: 0 model(s), 0 B\n"
    shutil.rmtree(cache_dir, ignore_errors=True)
