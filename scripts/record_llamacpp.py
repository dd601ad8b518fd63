#!/usr/bin/env python3
"""Record what llama.cpp really allocates for shape twins: the ground truth for the estimator.

For each model id (default: every dense twin) this writes the twin (a sparse GGUF with the
real tensor table) into a cache directory outside the repository, loads it ONCE through
llama-cpp-python's low-level API (CPU only, mmap, CPU repack buffers off), then creates and
frees one context per setting of a matrix (n_ctx, K=V cache type, flash attention, n_ubatch,
and for sliding-window models swa_full). llama.cpp's log is captured with llama_log_set and
every "... buffer size = X MiB" line is parsed (model, KV, RS, compute, output; per buffer
name), with the KV cache summary lines and the final n_ctx / n_ctx_seq.

Output: tests/data/llamacpp/<model-id>.json (schema 1), one file per model (with --repack,
<model-id>-<quant>-repack.json: the CPU_REPACK buffers on, as llama-cpp-python loads):

    {"schema": 1, "llama_cpp_python": "0.3.36", "llama_cpp_build": "<commit>", "model": id,
     "arch", "quant", "file_size", "n_tensors", "model_params", "context_params",
     "load": {"buffers": {"CPU_Mapped": bytes}, "buffers_mib": {...}, "llama_model_size",
              "llama_model_n_params", "log": [...]},
     "cases": [{"settings": {n_ctx, cache_type (K = V), flash_attn, n_ubatch, n_batch,
                             swa_full, n_seq_max},
                "status": "ok" | "refused" (+ "message") | "skipped" (+ "reason"),
                "buffers": {"model"|"kv"|"rs"|"compute"|"output": {buffer name: bytes}},
                "buffers_mib": {... the raw "%.2f" MiB strings, "a + b" when several caches
                                log the same buffer name, e.g. iSWA base + SWA},
                "kv_cache": [per cache: cells, layers, seqs, K/V type and size],
                "context": {n_ctx, n_ctx_seq, n_batch, n_ubatch, iswa_cells, worst_case, ...},
                "n_ctx", "n_ctx_seq", "log": [relevant lines]}]}

Bytes are round(MiB * 2**20) of llama.cpp's two-decimal MiB figures: +-5 KiB.

    .venv/bin/python scripts/record_llamacpp.py --models llama-3.2-1b --quick
    .venv/bin/python scripts/record_llamacpp.py            # all dense twins, full matrix
    .venv/bin/python scripts/record_llamacpp.py --repack --quick --models llama-3.2-1b \
        --quant f16                                        # tied output, repack on

Settings llama.cpp refuses are recorded as refused with the log message. Settings whose KV
cache (which llama.cpp memsets) or attention scores would not fit this machine are skipped
and the reason is recorded. An exclusive lock on /tmp/llmfit-measure.lock keeps two
recorders from measuring at the same time.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import itertools
import json
import multiprocessing
import os
import pathlib
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_llmfit.twins import MODELS, data_size, get_model, tensor_types, write_twin  # noqa: E402
from pytest_llmfit.twins.spec import ModelShape  # noqa: E402

LOCK_PATH = "/tmp/llmfit-measure.lock"
DEFAULT_TWIN_DIR = "/tmp/llmfit-twins"
DEFAULT_OUT_DIR = ROOT / "tests" / "data" / "llamacpp"
MiB = 2**20

# llama-cpp-python's Llama(): n_batch=512 default, n_batch = min(n_ctx, n_batch),
# n_ubatch = min(n_batch, n_ubatch).
LLAMA_CPP_PYTHON_N_BATCH = 512

CACHE_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2, "f32": 0, "bf16": 30}


# --- settings matrix ---------------------------------------------------------------------------


def settings_matrix(shape: ModelShape, quick: bool) -> list[dict[str, Any]]:
    n_ctxs = (2048, 8192) if quick else (2048, 8192, 32768)
    caches = ("f16", "q8_0")
    fas = (True, False)
    ubatches = (512,) if quick else (256, 512)
    out = []
    for n_ctx, cache, fa, ub in itertools.product(n_ctxs, caches, fas, ubatches):
        out.append(
            {
                "n_ctx": n_ctx,
                "cache_type": cache,
                "flash_attn": fa,
                "n_ubatch": ub,
                "swa_full": True,
            }
        )
    # a context that is not a multiple of 256: llama.cpp pads n_ctx (GGML_PAD(n_ctx, 256))
    out.append(
        {"n_ctx": 5000, "cache_type": "f16", "flash_attn": True, "n_ubatch": 512, "swa_full": True}
    )
    if has_swa(shape):
        # llama-cpp-python keeps a full-size SWA cache (swa_full=true); llama.cpp's CLI does
        # not. Record the small-window layout too.
        for n_ctx, fa in itertools.product(n_ctxs, fas):
            out.append(
                {
                    "n_ctx": n_ctx,
                    "cache_type": "f16",
                    "flash_attn": fa,
                    "n_ubatch": 512,
                    "swa_full": False,
                }
            )
    return out


# Architectures that slide a window without a sliding_window key in the file (llama4: a
# forced 8192 chunk; gemma2: a 4096 default). Any file with a window key gets the small-SWA
# cases too (phi3 and starcoder2 write one llama.cpp ignores: the cases check that).
_SWA_WITHOUT_KEY = ("gemma2", "llama4", "exaone4", "exaone-moe")


def has_swa(shape: ModelShape) -> bool:
    md = shape.metadata
    return shape.arch in _SWA_WITHOUT_KEY or any(
        key in md for key in ("attention.sliding_window", "attention.sliding_window_pattern")
    )


def _first(v: Any) -> int:
    return int(v[0]) if isinstance(v, (list, tuple)) else int(v)


_HEADERS: dict[str, Any] = {}


def rough_kv_bytes(shape: ModelShape, s: dict[str, Any]) -> float:
    """The KV cache and recurrent state llama.cpp will memset, from the estimator's own
    architecture rules on a header-only twin (only used to skip what this machine cannot
    hold, never as a result)."""
    import tempfile

    from pytest_llmfit.engine.context import Settings
    from pytest_llmfit.engine.estimate import estimate
    from pytest_llmfit.engine.gguf import read_gguf

    if shape.id not in _HEADERS:
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "header.gguf"
            write_twin(shape, path, header_only=True)
            _HEADERS[shape.id] = read_gguf(path)
    settings = Settings(
        n_ctx=s["n_ctx"],
        cache_type_k=s["cache_type"],
        cache_type_v=s["cache_type"],
        flash_attn="on",
        swa_full=s.get("swa_full", True),
    )
    fp = estimate(_HEADERS[shape.id], settings)
    return float(fp.kv_cache_bytes + fp.recurrent_bytes)


def rough_scores_bytes(shape: ModelShape, s: dict[str, Any]) -> float:
    """The f32 [n_kv, n_ubatch, n_head] attention score matrix without flash attention."""
    if s["flash_attn"]:
        return 0.0
    n_head = _first(shape.metadata.get("attention.head_count", 1))
    return float(s["n_ctx"]) * s["n_ubatch"] * n_head * 4


# --- llama.cpp through llama_cpp -------------------------------------------------------------


class LogCapture:
    """Collects llama.cpp's log lines (all levels) through llama_log_set."""

    def __init__(self, llama_cpp: Any) -> None:
        self.llama_cpp = llama_cpp
        self.lines: list[str] = []
        self._partial = ""

        def cb(level: int, text: bytes, user_data: Any) -> None:
            try:
                s = text.decode("utf-8", errors="replace") if text else ""
            except Exception:  # never raise into C
                return
            buf = self._partial + s
            parts = buf.split("\n")
            self._partial = parts.pop()
            self.lines.extend(parts)

        self._cb = llama_cpp.llama_log_callback(cb)  # keep the reference alive
        llama_cpp.llama_log_set(self._cb, ctypes.c_void_p(0))

    def take(self) -> list[str]:
        lines = self.lines + ([self._partial] if self._partial else [])
        self.lines, self._partial = [], ""
        return lines


_BUF_RE = re.compile(
    r"^(?P<func>[\w:]+):\s+(?P<name>\S+)\s+(?P<kind>model|KV|RS|compute|output)"
    r"\s+buffer size\s*=\s*"
    r"(?P<mib>[0-9.]+) MiB"
)
_KIND = {"model": "model", "KV": "kv", "RS": "rs", "compute": "compute", "output": "output"}
_KV_SUMMARY_RE = re.compile(
    r"size =\s*(?P<mib>[0-9.]+) MiB \(\s*(?P<cells>\d+) cells,\s*(?P<layers>\d+) layers,\s*"
    r"(?P<seqs>\d+)/(?P<seqs_max>\d+) seqs\), K \((?P<k_type>\w+)\):\s*(?P<k_mib>[0-9.]+) MiB, "
    r"V \((?P<v_type>\w+)\):\s*(?P<v_mib>[0-9.]+) MiB"
)
_RS_SUMMARY_RE = re.compile(
    r"size =\s*(?P<mib>[0-9.]+) MiB \(\s*(?P<cells>\d+) cells,\s*(?P<layers>\d+) layers"
)
_KV_LINE = re.compile(r"(kv_cache|memory_recurrent|memory_hybrid|kv_cache_iswa)")
_RELEVANT = re.compile(
    r"buffer size|kv_cache|memory_recurrent|memory_hybrid|n_ctx|n_batch|n_ubatch|n_seq_max|"
    r"flash_attn|swa|file size|file type|model params|graph|error|failed|warn|refus|pad|"
    r"quantized V|requires|kv_unified|causal|n_outputs|reserv|CPU_REPACK|repack|mmap",
    re.IGNORECASE,
)


def mib_to_bytes(s: str) -> int:
    return round(float(s) * MiB)


def parse_buffers(lines: list[str]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, str]]]:
    buffers: dict[str, dict[str, int]] = {k: {} for k in ("model", "kv", "rs", "compute", "output")}
    raw: dict[str, dict[str, str]] = {k: {} for k in buffers}
    for line in lines:
        m = _BUF_RE.match(line.strip())
        if not m:
            continue
        kind = _KIND[m["kind"]]
        name = m["name"]
        # several caches (iSWA base + SWA, hybrid attention + recurrent) log one line each:
        # sum per buffer name and keep every raw figure
        buffers[kind][name] = buffers[kind].get(name, 0) + mib_to_bytes(m["mib"])
        raw[kind][name] = (raw[kind][name] + " + " if name in raw[kind] else "") + m["mib"]
    return buffers, raw


def parse_kv_summaries(lines: list[str]) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        if not _KV_LINE.search(line):
            continue
        m = _KV_SUMMARY_RE.search(line)
        if m:
            d: dict[str, Any] = {
                "func": line.split(":")[0].strip(),
                "mib": m["mib"],
                "bytes": mib_to_bytes(m["mib"]),
            }
            for k in ("cells", "layers", "seqs", "seqs_max"):
                d[k] = int(m[k])
            d.update(
                k_type=m["k_type"],
                k_mib=m["k_mib"],
                k_bytes=mib_to_bytes(m["k_mib"]),
                v_type=m["v_type"],
                v_mib=m["v_mib"],
                v_bytes=mib_to_bytes(m["v_mib"]),
            )
            out.append(d)
            continue
        m2 = _RS_SUMMARY_RE.search(line)
        if m2 and "memory_recurrent" in line:
            out.append(
                {
                    "func": line.split(":")[0].strip(),
                    "recurrent": True,
                    "mib": m2["mib"],
                    "bytes": mib_to_bytes(m2["mib"]),
                    "cells": int(m2["cells"]),
                    "layers": int(m2["layers"]),
                    "line": line.strip(),
                }
            )
    return out


def parse_context_lines(lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in lines:
        m = re.match(
            r"^llama_context:\s+(n_ctx|n_ctx_seq|n_batch|n_ubatch|n_seq_max|flash_attn|"
            r"kv_unified|causal_attn|n_outputs_max|n_outputs_max_per_seq|n_rs_seq)\s+=\s+(\S+)",
            line.strip(),
        )
        if m:
            v: Any = m.group(2)
            out[m.group(1)] = int(v) if v.isdigit() else v
        m = re.search(r"creating (non-SWA|\s*SWA) KV cache, size = (\d+) cells", line)
        if m:
            out.setdefault("iswa_cells", {})["swa" if "non" not in m.group(1) else "non_swa"] = int(
                m.group(2)
            )
        m = re.search(r"graph: nodes = (\d+), splits = (\d+)", line)
        if m:
            out["graph_nodes"], out["graph_splits"] = int(m.group(1)), int(m.group(2))
        m = re.search(r"worst-case: n_tokens = (\d+), n_seqs = (\d+), n_outputs = (\d+)", line)
        if m:
            out["worst_case"] = {
                "n_tokens": int(m.group(1)),
                "n_seqs": int(m.group(2)),
                "n_outputs": int(m.group(3)),
            }
    return out


_NOISE = re.compile(
    r"llama_graph_n_input_tensors|: layer\s+\d+: (dev =|filtered)|"
    r"load_tensors: layer\s+\d+ assigned|"
    r"llama_model_loader: - (kv|type)|print_info: (rope|f_|n_expert|ssm_)"
)


def relevant(lines: list[str]) -> list[str]:
    """The lines worth keeping: sizes, cells, settings, warnings (no per-layer chatter)."""
    return [
        ln.rstrip() for ln in lines if ln.strip() and _RELEVANT.search(ln) and not _NOISE.search(ln)
    ]


@contextlib.contextmanager
def measure_lock(path: str = LOCK_PATH) -> Iterator[None]:
    with open(path, "a+") as fh:
        t0 = time.time()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"  waiting for {path} (another recorder is measuring) ...", flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
            print(f"  got the lock after {time.time() - t0:.0f} s", flush=True)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_info(llama_cpp: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"llama_cpp_python": getattr(llama_cpp, "__version__", None)}
    with contextlib.suppress(Exception):
        info["system_info"] = llama_cpp.llama_print_system_info().decode().strip()
    sdist = pathlib.Path("/tmp/sdist")
    commit = None
    for head in sdist.glob("llama_cpp_python-*/vendor/llama.cpp/.git"):
        with contextlib.suppress(Exception):
            import subprocess

            commit = subprocess.run(
                ["git", "-C", str(head.parent), "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
    info["llama_cpp_build"] = commit
    return info


def record_model(
    llama_cpp: Any, shape: ModelShape, args: argparse.Namespace, binfo: dict[str, Any]
) -> dict[str, Any]:
    quant = args.quant or shape.default_quant
    twin_dir = pathlib.Path(args.twin_dir)
    path = twin_dir / f"{shape.id}.{quant}.gguf"
    t0 = time.time()
    write_twin(shape, path, quant=quant)
    file_size = path.stat().st_size
    print(
        f"[{shape.id}] twin {path} ({file_size / 1e9:.3f} GB, "
        f"{path.stat().st_blocks * 512 / 1e6:.1f} MB on disk) in {time.time() - t0:.1f} s",
        flush=True,
    )

    log = LogCapture(llama_cpp)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP  # use_mmap=True in llama-cpp-python
    # Off by default: no CPU_REPACK copies (a repack reads the whole sparse file). --repack
    # turns them on, as llama-cpp-python always does, for the tied-output cases.
    mparams.use_extra_bufts = bool(args.repack)
    model_params_set = {
        "n_gpu_layers": 0,
        "load_mode": "LLAMA_LOAD_MODE_MMAP",
        "use_extra_bufts": bool(args.repack),
    }
    model_params_default = {
        "lazy_mode": int(mparams.lazy_mode),
        "no_host": bool(mparams.no_host),
        "no_alloc": bool(mparams.no_alloc),
        "check_tensors": bool(mparams.check_tensors),
        "split_mode": int(mparams.split_mode),
    }

    t0 = time.time()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    load_lines = log.take()
    result: dict[str, Any] = {
        "schema": 1,
        "llama_cpp_python": binfo.get("llama_cpp_python"),
        "llama_cpp_build": binfo.get("llama_cpp_build"),
        "llama_cpp_system_info": binfo.get("system_info"),
        "model": shape.id,
        "arch": shape.arch,
        "quant": quant,
        "file_size": file_size,
        "n_tensors": len(tensor_types(shape, quant)),
        "model_params": {"set": model_params_set, "defaults_kept": model_params_default},
        "context_params": {
            "base": "llama_context_default_params()",
            "set": {
                "n_ctx": "per case",
                "n_batch": f"min(n_ctx, {LLAMA_CPP_PYTHON_N_BATCH})",
                "n_ubatch": "min(n_batch, case n_ubatch)",
                "n_seq_max": 1,
                "type_k": "per case",
                "type_v": "per case (= type_k)",
                "flash_attn_type": "ENABLED/DISABLED per case",
                "swa_full": "per case",
                "n_threads": "max(cpu_count // 2, 1)",
                "n_threads_batch": "cpu_count",
                "no_perf": False,
                "offload_kqv": True,
                "embeddings": False,
            },
        },
        "machine": {"cpu_count": os.cpu_count()},
        "load": {"seconds": None, "log": relevant(load_lines)},
        "cases": [],
    }
    if not model:
        result["load"]["error"] = "llama_model_load_from_file returned NULL"
        result["load"]["log_tail"] = load_lines[-30:]
        print(f"[{shape.id}] LOAD FAILED:\n  " + "\n  ".join(load_lines[-15:]), flush=True)
        return result
    result["load"]["seconds"] = round(time.time() - t0, 2)
    result["load"]["llama_model_size"] = int(llama_cpp.llama_model_size(model))
    result["load"]["llama_model_n_params"] = int(llama_cpp.llama_model_n_params(model))
    model_buffers, model_raw = parse_buffers(load_lines)
    result["load"]["buffers"] = model_buffers["model"]
    result["load"]["buffers_mib"] = model_raw["model"]
    print(
        f"[{shape.id}] loaded in {result['load']['seconds']} s: "
        f"model buffers {model_raw['model']} MiB",
        flush=True,
    )

    try:
        for s in settings_matrix(shape, args.quick):
            case = run_case(llama_cpp, model, shape, s, log, args)
            case["buffers"]["model"] = dict(model_buffers["model"])
            case["buffers_mib"]["model"] = dict(model_raw["model"])
            result["cases"].append(case)
    finally:
        llama_cpp.llama_model_free(model)
        log.take()
    return result


def run_case(
    llama_cpp: Any,
    model: Any,
    shape: ModelShape,
    s: dict[str, Any],
    log: LogCapture,
    args: argparse.Namespace,
) -> dict[str, Any]:
    n_batch = min(s["n_ctx"], LLAMA_CPP_PYTHON_N_BATCH)
    n_ubatch = min(n_batch, s["n_ubatch"])
    settings = dict(s, n_batch=n_batch, n_ubatch=n_ubatch, n_seq_max=1)
    label = (
        f"n_ctx={s['n_ctx']:>5} kv={s['cache_type']:<4} fa={'on ' if s['flash_attn'] else 'off'} "
        f"ub={n_ubatch} swa_full={s['swa_full']}"
    )
    case: dict[str, Any] = {
        "settings": settings,
        "status": None,
        "buffers": {k: {} for k in ("model", "kv", "rs", "compute", "output")},
        "buffers_mib": {},
        "log": [],
    }
    kv = rough_kv_bytes(shape, s)
    scores = rough_scores_bytes(shape, s)
    if kv > args.max_kv_gb * 1e9:
        case["status"] = "skipped"
        case["reason"] = (
            f"KV cache about {kv / 1e9:.1f} GB > {args.max_kv_gb} GB limit of this "
            f"recorder (llama.cpp memsets it; the machine has little RAM)"
        )
        print(f"  {label}: skipped (KV ~{kv / 1e9:.1f} GB)", flush=True)
        return case
    if scores > args.max_scores_gb * 1e9:
        case["status"] = "skipped"
        case["reason"] = (
            f"attention scores without flash attention about {scores / 1e9:.1f} GB "
            f"> {args.max_scores_gb} GB limit of this recorder"
        )
        print(f"  {label}: skipped (scores ~{scores / 1e9:.1f} GB)", flush=True)
        return case

    cpu = multiprocessing.cpu_count()
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx = s["n_ctx"]
    cp.n_batch = n_batch
    cp.n_ubatch = n_ubatch
    cp.n_seq_max = 1
    cp.n_threads = max(cpu // 2, 1)
    cp.n_threads_batch = cpu
    cp.type_k = CACHE_TYPES[s["cache_type"]]
    cp.type_v = CACHE_TYPES[s["cache_type"]]
    cp.flash_attn_type = (
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        if s["flash_attn"]
        else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    cp.swa_full = bool(s["swa_full"])
    cp.no_perf = False
    cp.offload_kqv = True
    cp.embeddings = False
    log.take()
    t0 = time.time()
    ctx = llama_cpp.llama_init_from_model(model, cp)
    lines = log.take()
    case["seconds"] = round(time.time() - t0, 2)
    if not ctx:
        case["status"] = "refused"
        errs = [
            ln.strip() for ln in lines if re.search(r"error|fail|requires|refus|cannot", ln, re.I)
        ]
        case["message"] = errs[-1] if errs else (lines[-1].strip() if lines else "")
        case["log"] = relevant(lines)
        print(f"  {label}: refused: {case['message']}", flush=True)
        return case
    try:
        buffers, raw = parse_buffers(lines)
        for k in ("kv", "rs", "compute", "output"):
            case["buffers"][k] = buffers[k]
            case["buffers_mib"][k] = raw[k]
        case["kv_cache"] = parse_kv_summaries(lines)
        case["context"] = parse_context_lines(lines)
        case["log"] = relevant(lines)
        case["status"] = "ok"
        with contextlib.suppress(Exception):
            case["n_ctx"] = int(llama_cpp.llama_n_ctx(ctx))
            case["n_ctx_seq"] = int(llama_cpp.llama_n_ctx_seq(ctx))
    finally:
        llama_cpp.llama_free(ctx)
        log.take()
    tot = {k: sum(v.values()) / MiB for k, v in case["buffers"].items() if k != "model"}
    print(
        f"  {label}: n_ctx={case.get('n_ctx')} kv={tot['kv']:.1f} rs={tot['rs']:.1f} "
        f"compute={tot['compute']:.1f} output={tot['output']:.2f} MiB ({case['seconds']} s)",
        flush=True,
    )
    return case


def dense_ids() -> list[str]:
    from pytest_llmfit.twins import dense

    return [s.id for s in dense.SHAPES]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--models",
        nargs="*",
        help="model ids (default: every dense twin); 'all' for the whole registry",
    )
    ap.add_argument("--quick", action="store_true", help="fewer settings, for trials")
    ap.add_argument("--quant", help="quantization mix (default: each model's default_quant)")
    ap.add_argument("--twin-dir", default=DEFAULT_TWIN_DIR)
    ap.add_argument("--out-dir", default=str(DEFAULT_OUT_DIR))
    ap.add_argument(
        "--repack",
        action="store_true",
        help="load with the CPU_REPACK buffers on (llama-cpp-python's behaviour); writes "
        "<model>-<quant>-repack.json",
    )
    ap.add_argument("--max-kv-gb", type=float, default=6.0)
    ap.add_argument("--max-scores-gb", type=float, default=8.0)
    ap.add_argument(
        "--delete-twins",
        action="store_true",
        help="delete the twin files afterwards (they are sparse: a few MB each)",
    )
    args = ap.parse_args(argv)

    ids = args.models or sorted(dense_ids(), key=lambda i: data_size(i))  # small ones first
    if ids == ["all"]:
        ids = list(MODELS)
    shapes = [get_model(i, source="--models") for i in ids]

    import llama_cpp

    llama_cpp.llama_backend_init()
    binfo = build_info(llama_cpp)
    print(
        f"llama-cpp-python {binfo.get('llama_cpp_python')}, "
        f"llama.cpp {binfo.get('llama_cpp_build')}",
        flush=True,
    )
    out_dir = pathlib.Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    for shape in shapes:
        t0 = time.time()
        with measure_lock():
            result = record_model(llama_cpp, shape, args, binfo)
        result["seconds"] = round(time.time() - t0, 1)
        if args.quick:
            result["quick"] = True
        quant = args.quant or shape.default_quant
        name = f"{shape.id}-{quant}-repack" if args.repack else shape.id
        out = out_dir / f"{name}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        n_ok = sum(c["status"] == "ok" for c in result["cases"])
        print(
            f"[{shape.id}] wrote {out} ({n_ok}/{len(result['cases'])} cases ok) "
            f"in {result['seconds']} s",
            flush=True,
        )
        if args.delete_twins:
            for p in pathlib.Path(args.twin_dir).glob(f"{shape.id}.*.gguf"):
                p.unlink(missing_ok=True)
    print(f"done in {time.time() - t_all:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
