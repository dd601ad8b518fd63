"""Command line: ``pytest-llmfit`` / ``python -m pytest_llmfit``.

probe     what this machine has
plan      will MODEL fit this (or a simulated) host, where, and how fast
advise    what would make MODEL fit (or run faster): the ranked ways out
inspect   what a GGUF file holds and what it costs per component
stub      write a header-only copy of a model for CI machines without the weights
twin      write a shape twin of a published model (true tensor table, no weights)
cache     list or clear the cache of remote models' headers (hf://, https://)
profiles  the hardware catalog for --hardware (built in, plus a user catalog file)
merge     one table of tests x runners from the JSON reports of a CI matrix

A user catalog file (same schema as the built-in one, see hardware/catalog.py) adds cards,
Apple chips and runners for ``--hardware`` and ``profiles``: ``--catalog FILE`` before the
command or on ``plan``/``profiles``, else the environment's ``LLMFIT_CATALOG``, as the
pytest plugin reads it.

Bad input exits 2 with one line on stderr; nothing prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import cli_advise as ways
from .engine.context import FLASH_ATTN_MODES, Settings
from .engine.estimate import Footprint, estimate
from .engine.ggml import KV_CACHE_TYPES
from .engine.gguf import GGUFFile, read_gguf
from .engine.plan import DEFAULT_HEADROOM, OFFLOAD_RULES, DevicePlan, Plan, plan
from .errors import LlmfitError
from .hardware.types import Host

if TYPE_CHECKING:
    from .hardware.catalog import Catalog
    from .sources import SourceSettings
from .units import format_bandwidth, format_rate, format_size, parse_size

PROG = "pytest-llmfit"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _at_least_one(text: str) -> int:
    value = _positive_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _layers(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of layers (-1 for all)"
        ) from None


def _split(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not v >= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of non-negative shares like '3,1' or '0.5,0.5'"
        )
    return values


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Will this GGUF model fit, where, and how fast?")
    parser.add_argument("--catalog", metavar="FILE", default=None, help=_CATALOG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    probe = sub.add_parser("probe", help="show what this machine has")
    probe.add_argument("--json", action="store_true", help="machine-readable output")
    probe.add_argument(
        "--measure-ram", action="store_true", help="measure RAM bandwidth (about a second)"
    )

    p = sub.add_parser("plan", help="plan MODEL on this or a simulated host")
    p.add_argument("model", help=_MODEL_HELP)
    _add_settings(p)
    _add_source_options(p)
    p.add_argument(
        "--hardware",
        metavar="SPEC|FILE",
        help="simulate a host: '2x h100', 'rtx-4090, ram=64GB' or a TOML profile file",
    )
    _add_catalog(p)
    p.add_argument(
        "--headroom", default=None, metavar="SIZE", help="kept free per device (default 1GiB)"
    )
    p.add_argument(
        "--n-gpu-layers",
        "-ngl",
        type=_layers,
        default=None,
        metavar="N",
        help="plan exactly N offloaded layers (the output layer counts as one; -1 = all) "
        "instead of the most that fit",
    )
    p.add_argument(
        "--tensor-split",
        type=_split,
        default=None,
        metavar="A,B,...",
        help="share of the offloaded layers per GPU, as llama.cpp's --tensor-split",
    )
    p.add_argument(
        "--n-cpu-moe",
        "-ncmoe",
        type=_positive_int,
        default=0,
        metavar="N",
        help="keep the routed experts of the first N blocks in RAM (llama.cpp's --n-cpu-moe)",
    )
    p.add_argument(
        "--offload-rule",
        default="current",
        choices=OFFLOAD_RULES,
        help="which layers n_gpu_layers offloads first: 'current' (the output layer, as the "
        "llama.cpp in llama-cpp-python) or 'legacy' (blocks first, builds up to mid-2025)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    ways.add_quant_option(p)
    ways.add_advice_options(p)

    a = sub.add_parser("advise", help="what would make MODEL fit: the ranked ways out")
    a.add_argument("model", help=_MODEL_HELP)
    _add_settings(a)
    _add_source_options(a)
    a.add_argument("--hardware", metavar="SPEC|FILE", help="simulate a host (as for plan)")
    _add_catalog(a)
    a.add_argument("--headroom", default=None, metavar="SIZE", help="kept free per device")
    ways.add_quant_option(a)
    ways.add_advice_options(a)
    a.add_argument("--kinds", default=None, metavar="K,K", help=f"only these ({ways.KIND_HELP})")
    a.add_argument("--json", action="store_true", help="machine-readable output")

    i = sub.add_parser("inspect", help="what MODEL holds and costs")
    i.add_argument("model", help=_MODEL_HELP)
    _add_settings(i)
    _add_source_options(i)
    i.add_argument("--json", action="store_true")

    s = sub.add_parser("stub", help="write a header-only copy of MODEL to OUT")
    s.add_argument("model", help=_MODEL_HELP)
    s.add_argument("out")
    _add_source_options(s)

    c = sub.add_parser("cache", help="list or clear the cache of remote models' headers")
    c.add_argument("action", choices=("list", "clear"))
    c.add_argument("--json", action="store_true", help="machine-readable list")

    t = sub.add_parser("twin", help="write a shape twin of a published model")
    t.add_argument("name", help="catalog id, e.g. llama-3.1-405b (see --list)", nargs="?")
    t.add_argument("out", nargs="?")
    t.add_argument("--quant", default=None, help="q4_k_m, q3_k_m, q8_0, f16, ...")
    t.add_argument(
        "--full", action="store_true", help="sparse full-size file instead of a header-only stub"
    )
    t.add_argument("--list", action="store_true", help="list the models")

    m = sub.add_parser("merge", help="merge the JSON reports of a CI matrix of runners")
    from .report import add_merge_arguments

    add_merge_arguments(m)

    pr = sub.add_parser("profiles", help="list the hardware profiles (built in and the user's)")
    pr.add_argument("--json", action="store_true")
    _add_catalog(pr)
    return parser


_CATALOG_HELP = (
    "a TOML file of extra hardware profiles; an entry with a built-in id replaces it "
    "(default: $LLMFIT_CATALOG)"
)


def _add_catalog(p: argparse.ArgumentParser) -> None:
    # Its own dest: a subparser's default would overwrite the top-level --catalog otherwise.
    p.add_argument(
        "--catalog", dest="sub_catalog", metavar="FILE", default=None, help=_CATALOG_HELP
    )


def _catalog(args: argparse.Namespace) -> Catalog | None:
    """The catalog --catalog (on the command, then before it) or LLMFIT_CATALOG names."""
    from .hardware.catalog import load_catalog

    for path, source in (
        (getattr(args, "sub_catalog", None), "--catalog"),
        (args.catalog, "--catalog"),
        (os.environ.get("LLMFIT_CATALOG"), "environment LLMFIT_CATALOG"),
    ):
        if path and path.strip():
            return load_catalog([path.strip()], source=source)
    return None


_MODEL_HELP = (
    "GGUF file (first shard of a split model, or a stub), hf://ORG/REPO[@REVISION]/FILE.gguf, "
    "https://.../FILE.gguf or ollama://NAME[:TAG]"
)


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--http-timeout",
        default=None,
        metavar="SECONDS",
        help="wait this long for a server's next byte (default $LLMFIT_HTTP_TIMEOUT, else 30)",
    )
    p.add_argument(
        "--offline",
        action="store_true",
        default=None,
        help="remote headers from the cache only (default $LLMFIT_OFFLINE, $HF_HUB_OFFLINE)",
    )


def _read_model(args: argparse.Namespace) -> GGUFFile:
    """The model's header, wherever it lives (a file, hf://, https://, ollama://)."""
    from .sources import read_model

    return read_model(args.model, _source_settings(args), source="MODEL")


def _source_settings(args: argparse.Namespace) -> SourceSettings:
    from .sources import SourceSettings

    return SourceSettings.from_env(
        os.environ, timeout=getattr(args, "http_timeout", None), offline=args.offline
    )


def _cache(args: argparse.Namespace) -> int:
    from .sources.cache import HeaderCache
    from .sources.protocol import SourceSettings

    cache = HeaderCache(SourceSettings().header_dir())
    if args.action == "clear":
        count, size = cache.clear()
        print(f"removed {count} cached header(s), {format_size(size)}, from {cache.root}")
        return 0
    entries = cache.entries()
    if args.json:
        print(json.dumps({"directory": str(cache.root), "entries": [vars(e) for e in entries]}))
        return 0
    print(f"header cache {cache.root}: {len(entries)} model(s), {format_size(cache.disk_bytes())}")
    for e in entries:
        version = e.revision[:12] if e.revision else (e.etag or "no ETag").strip('"')[:16]
        print(
            f"  {e.spec}  {format_size(e.header_bytes)} header of {format_size(e.size)}, "
            f"{version}, checked {_ago(e.checked_at)}"
        )
    return 0


def _ago(when: float) -> str:
    import time

    seconds = max(0, int(time.time() - when))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _add_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ctx", type=_positive_int, default=4096, help="n_ctx (default 4096)")
    p.add_argument("--ubatch", type=_at_least_one, default=512, help="n_ubatch (default 512)")
    p.add_argument("--batch", type=_at_least_one, default=512, help="n_batch (default 512)")
    p.add_argument("--parallel", type=_at_least_one, default=1, help="sequences (n_seq_max)")
    p.add_argument(
        "--cache-type", default=None, choices=KV_CACHE_TYPES, help="type of K and V cache"
    )
    p.add_argument("--cache-type-k", default="f16", choices=KV_CACHE_TYPES)
    p.add_argument("--cache-type-v", default="f16", choices=KV_CACHE_TYPES)
    p.add_argument("--flash-attn", default="auto", choices=FLASH_ATTN_MODES)
    p.add_argument("--swa-full", default="on", choices=("on", "off"))


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        n_ctx=args.ctx,
        n_batch=args.batch,
        n_ubatch=args.ubatch,
        n_seq=args.parallel,
        cache_type_k=args.cache_type or args.cache_type_k,
        cache_type_v=args.cache_type or args.cache_type_v,
        flash_attn=args.flash_attn,
        swa_full=args.swa_full == "on",
    ).validated(source="command line")


def _host(spec: str | None, catalog: Catalog | None = None) -> Host:
    if spec:
        from .hardware.specs import resolve_hardware

        return resolve_hardware(spec, source="--hardware", catalog=catalog)
    from .hardware.probes import detect_host

    return detect_host()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except LlmfitError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "probe":
        host = _probe(args.measure_ram)
        _emit(args.json, host.to_dict(), lambda: _describe_host(host))
        return 0
    if command == "advise":
        return _advise(args)
    if command == "plan":
        model = ways.requantized(_read_model(args), args.quant)
        settings = _settings(args)
        headroom = _headroom(args)
        catalog = _catalog(args)
        host = _host(args.hardware, catalog)
        result = plan(
            model,
            host,
            settings,
            headroom=headroom,
            n_gpu_layers=args.n_gpu_layers,
            tensor_split=args.tensor_split,
            offload_rule=args.offload_rule,
            n_cpu_moe=args.n_cpu_moe,
        )
        result, alternatives = ways.plan_with_advice(
            model, host, settings, result, headroom=headroom, gpu_ids=args.gpu, catalog=catalog
        )
        data = {"model": _model_summary(model), **result.to_dict(), "alternatives": alternatives}
        _emit(args.json, data, lambda: _describe_plan(model, result))
        return 0 if result.fits else 1  # a script can branch on it; 2 is bad input
    if command == "inspect":
        model = _read_model(args)
        fp = estimate(model, _settings(args))
        data = {"model": _model_summary(model), "memory": fp.to_dict()}
        _emit(args.json, data, lambda: _describe_model(model, fp))
        return 0
    if command == "stub":
        from .sources.stub import write_any_stub

        written, _ = write_any_stub(args.model, args.out, _source_settings(args))
        print(f"wrote {args.out}: {format_size(written)} header of {args.model}")
        return 0
    if command == "cache":
        return _cache(args)
    if command == "twin":
        return _twin(args)
    if command == "merge":
        from .report import run_merge

        return run_merge(args)
    if command == "profiles":
        from .hardware.catalog import builtin_catalog
        from .hardware.render import render_catalog

        catalog = _catalog(args) or builtin_catalog()
        if args.json:
            print(json.dumps([p.to_dict() for p in catalog.profiles], indent=2))
        else:
            print(render_catalog(catalog))
        return 0
    raise AssertionError(command)


def _headroom(args: argparse.Namespace) -> int:
    if args.headroom is None:
        return DEFAULT_HEADROOM
    return parse_size(args.headroom, source="--headroom")


def _advise(args: argparse.Namespace) -> int:
    model = ways.requantized(_read_model(args), args.quant)
    catalog = _catalog(args)
    host = _host(args.hardware, catalog)
    data, text, code = ways.run_advise(
        args, model, host, _settings(args), _headroom(args), catalog, _model_summary(model)
    )
    _emit(args.json, data, lambda: text)
    return code


def _probe(measure_ram: bool) -> Host:
    from .hardware.probes import detect_host

    return detect_host(ram_bandwidth="measure" if measure_ram else "cached")


def _twin(args: argparse.Namespace) -> int:
    from .twins import MODELS, get_model, write_twin

    if args.list or not args.name:
        for model_id, shape in sorted(MODELS.items()):
            print(f"{model_id:24} {shape.arch:12} {shape.title}")
        return 0
    if not args.out:
        print(f"{PROG}: error: twin needs an output path: twin {args.name} OUT", file=sys.stderr)
        return 2
    shape = get_model(args.name)
    path = write_twin(shape, args.out, quant=args.quant, header_only=not args.full)
    model = read_gguf(path)
    kind = "sparse twin" if args.full else "header-only stub"
    print(f"wrote {path}: {kind} of {shape.title}, {format_size(model.weights_bytes)} of weights")
    return 0


def _emit(as_json: bool, data: dict[str, Any], human: Any) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(human())


def _model_summary(model: GGUFFile) -> dict[str, Any]:
    return {
        "path": model.path,
        "architecture": model.architecture,
        "name": model.metadata.get("general.name"),
        "tensors": len(model.tensors),
        "weights_bytes": model.weights_bytes,
        "file_bytes": model.file_size,
        "header_only": model.header_only,
        "shards": len(model.shards),
    }


def _describe_host(host: Host) -> str:
    lines = [f"host    {host.describe()}"]
    for gpu in host.gpus:
        cc = ".".join(map(str, gpu.compute_capability)) if gpu.compute_capability else "?"
        lines.append(
            f"  GPU {gpu.cuda_index if gpu.cuda_index is not None else gpu.index}: {gpu.name}, "
            f"{format_size(gpu.memory_free)} free of {format_size(gpu.memory_total)}, "
            f"{format_bandwidth(gpu.bandwidth)}, compute {cc}"
            + (", MIG" if gpu.mig else "")
            + (", unified memory" if gpu.unified else "")
        )
    ram = host.ram
    lines.append(
        f"  RAM: {format_size(ram.available)} available of {format_size(ram.total)}"
        + (f" (container limit {format_size(ram.cgroup_limit)})" if ram.cgroup_limit else "")
        + (f", {format_bandwidth(ram.bandwidth)}" if ram.bandwidth else "")
    )
    lines.append(
        f"  CPU: {host.cpu.model}, {host.cpu.cores_physical} cores "
        f"({host.cpu.cores_logical} threads)"
    )
    lines.extend(f"  note: {note}" for note in host.notes)
    return "\n".join(lines)


def _describe_footprint(fp: Footprint) -> list[str]:
    s = fp.settings
    lines = [
        f"context n_ctx {fp.context.n_ctx}, n_ubatch {fp.context.n_ubatch}, "
        f"KV {s.cache_type_k}/{s.cache_type_v}, flash attention {s.flash_attn}",
        f"memory  weights {format_size(fp.weights_bytes)} | KV cache "
        f"{format_size(fp.kv_cache_bytes + fp.recurrent_bytes)} | compute "
        f"{format_size(fp.compute_bytes)} | output {format_size(fp.output_bytes)} | "
        f"total {format_size(fp.total_bytes)}",
    ]
    if fp.repack_bytes:
        lines.append(
            f"        on the CPU llama.cpp also logs {format_size(fp.repack_bytes)} of repacked "
            f"weight copies (CPU_REPACK; the mapped originals go cold): "
            f"{format_size(fp.allocated_bytes)} in its buffer lines"
        )
    return lines


def _model_line(model: GGUFFile, fp: Footprint) -> str:
    stub = ", header only" if model.header_only else ""
    return (
        f"model   {model.path} ({fp.arch}, {fp.n_layer} blocks, "
        f"{format_size(model.weights_bytes)} of weights{stub})"
    )


def _describe_model(model: GGUFFile, fp: Footprint) -> str:
    lines = [_model_line(model, fp), *_describe_footprint(fp)]
    lines.append(
        f"layers  token_embd {format_size(fp.token_embd_bytes)} (host), output layer "
        f"{format_size(fp.output_layer_bytes)}"
        + (" (tied to token_embd)" if fp.output_is_tied else "")
        + f", {fp.n_layer} blocks of about "
        f"{format_size(max((layer.total_bytes for layer in fp.layers), default=0))}"
    )
    lines.extend(f"note    {note}" for note in fp.notes)
    return "\n".join(lines)


def _device_line(dev: DevicePlan) -> str:
    """One device's share: layers, then the same breakdown for every device and the host."""
    layers = f"{dev.n_layers} layers" + (" + output layer" if dev.holds_output_layer else "")
    if dev.index is None:
        layers += " + token_embd"
    parts = [
        f"weights {format_size(dev.weights_bytes)}",
        f"KV {format_size(dev.kv_bytes)}",
        f"compute {format_size(dev.compute_bytes)}",
    ]
    if dev.output_bytes:
        parts.append(f"output {format_size(dev.output_bytes)}")
    return (
        f"{layers}; {', '.join(parts)}; needs {format_size(dev.need_bytes)} of "
        f"{format_size(dev.free_bytes)}"
    )


def _describe_plan(model: GGUFFile, p: Plan) -> str:
    fp = p.footprint
    verdict = {
        "gpu": "fits on GPU",
        "partial": "fits with partial offload",
        "cpu": "fits on the CPU",
        "none": "does NOT fit",
    }[p.mode]
    lines = [_model_line(model, fp), *_describe_footprint(fp)]
    lines.append(f"host    {p.host_description}")
    lines.append(
        f"plan    {verdict}: n_gpu_layers {p.n_gpu_layers}/{p.n_layers_total}"
        + (" (given)" if p.given else "")
        + (f", tensor_split {','.join(str(x) for x in p.tensor_split)}" if p.tensor_split else "")
        + (", legacy offload order (blocks first)" if p.offload_rule == "legacy" else "")
        + (f", experts of {p.n_cpu_moe} blocks in RAM" if p.n_cpu_moe else "")
    )
    for dev in p.devices:
        lines.append(f"  GPU {dev.index} {dev.name}: {_device_line(dev)} free")
    lines.append(f"  host RAM: {_device_line(p.host)} available")
    if p.shortfall_bytes:
        lines.append(f"  short by {format_size(p.shortfall_bytes)}")
    if p.tokens_per_second is not None:
        rate = format_rate(p.tokens_per_second)
        lines.append(f"speed   about {rate} tokens/s (decode, predicted)")
        if p.speed is not None and p.speed.explain():
            lines.append(f"        per token: {p.speed.explain()}")
    if p.prompt_tokens_per_second is not None and p.speed is not None:
        ttft = p.speed.time_to_first_token()
        first = f"; first token after {ttft:.2f} s" if ttft is not None else ""
        lines.append(
            f"prompt  about {format_rate(p.prompt_tokens_per_second)} tokens/s over "
            f"{p.speed.prompt_tokens} tokens (predicted){first}"
        )
    lines.extend(f"why     {reason}" for reason in p.reasons)
    lines.extend(f"helps   {tip}" for tip in p.suggestions)
    lines.extend(f"note    {note}" for note in fp.notes)
    return "\n".join(lines)
