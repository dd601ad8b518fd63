"""Every bad value a user can give, through the surface they give it, and the exact line.

One table per surface: the library call, the command-line option, the environment, the ini
file, a marker (the test errors alone) and the ``pytest-llmfit`` command. Each row pins the
whole message: one line that names the value, where it came from and what is accepted, and
never a traceback.

Rows marked ``xfail(strict=True)`` are known bugs: they state the behaviour we want, and
turn into a failure (XPASS) once fixed, so the mark is removed with the fix.
"""

from __future__ import annotations

import pathlib
import shutil
from collections.abc import Callable
from typing import Any

import pytest

from pytest_llmfit.cli import main as cli_main
from pytest_llmfit.engine.context import Settings
from pytest_llmfit.engine.gguf import read_gguf
from pytest_llmfit.errors import ConfigError, GGUFError, LlmfitError
from pytest_llmfit.hardware.specs import resolve_hardware
from pytest_llmfit.plugin.requirements import parse_requirement
from pytest_llmfit.plugin.settings import resolve
from pytest_llmfit.units import parse_size

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

SIZE = "a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of bytes"
UNIT = "unknown unit {!r} (use B, KB..TB, KiB..TiB)"
SPEC = (
    "a hardware spec like '2x a100-80gb, ram=256GB', 'rtx-4090, rtx-3090', "
    "'cpu-only, ram=32GB, cpu=8' or a path to a .toml profile file"
)
UNKNOWN_CARD = (
    "is not a known GPU, Apple chip or runner profile; {}a GPU item is '[N x] NAME' with NAME "
    "an id or alias such as '2x h100-sxm'; `pytest-llmfit profiles` lists them"
)
NEAR_4090 = UNKNOWN_CARD.format(
    "did you mean 'rtx-4090', 'rtx-4080', 'rtx-4070', 'rtx-4060', 'rtx-a4500'? "
)
KV_TYPES = "a KV cache type (f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1)"
NEEDS_FA = (
    "is not usable without flash attention; llama.cpp needs flash attention for a quantized "
    "V cache; use flash_attn='on' or cache_type_v='f16'"
)
BUG = "BUG (reported to the lead): "


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=BUG + reason)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def raises_line(call: Callable[[], object]) -> str:
    """The one-line message of the LlmfitError ``call`` raises (any other exception fails)."""
    with pytest.raises(LlmfitError) as info:
        call()
    return one_line(info.value)


# ============================================================================ library: sizes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("16 gigs", f"'16 gigs' is not {SIZE}; {UNIT.format('gigs')} (S)"),
        ("", f"'' is not {SIZE} (S)"),
        ("   ", f"'   ' is not {SIZE} (S)"),
        ("-5GB", f"'-5GB' is not {SIZE}; sizes cannot be negative (S)"),
        (-5, f"-5 is not {SIZE}; sizes cannot be negative (S)"),
        ("1.2.3GB", f"'1.2.3GB' is not {SIZE} (S)"),
        ("GB", f"'GB' is not {SIZE} (S)"),
        ("5 XB", f"'5 XB' is not {SIZE}; {UNIT.format('XB')} (S)"),
        ("0x10GB", f"'0x10GB' is not {SIZE} (S)"),
        (True, f"True is not {SIZE} (S)"),
        (None, f"None is not {SIZE} (S)"),
        (float("nan"), f"nan is not {SIZE} (S)"),
        (float("inf"), f"inf is not {SIZE} (S)"),
        ([1], f"[1] is not {SIZE} (S)"),
        pytest.param(
            "1e999GB",
            f"'1e999GB' is not {SIZE}; too large (S)",
        ),
        pytest.param(
            "1e400",
            f"'1e400' is not {SIZE}; too large (S)",
        ),
    ],
    ids=[
        "gigs", "empty", "blank", "negative-str", "negative-int", "two-dots", "unit-only",
        "unknown-unit", "hex", "bool", "none", "nan", "inf", "list", "overflow-unit",
        "overflow-bare",
    ],
)  # fmt: skip
def test_parse_size(value: object, expected: str) -> None:
    assert raises_line(lambda: parse_size(value, source="S")) == expected


# ========================================================== library: session settings layers

CLI_ON_NOFIT = "one of skip, xfail, fail"
OFFLOAD = "one of run, xfail, skip, benchmark"
YES_NO = "a yes/no value (1, true, yes, on / 0, false, no, off)"


@pytest.mark.parametrize(
    ("layer", "name", "value", "expected"),
    [
        ("cli", "on_nofit", "sometimes",
         f"'sometimes' is not {CLI_ON_NOFIT} (command line --llmfit-on-nofit)"),
        ("env", "on_offload", "maybe", f"'maybe' is not {OFFLOAD} (environment LLMFIT_ON_OFFLOAD)"),
        ("ini", "basis", "both", "'both' is not one of free, total (ini llmfit_basis)"),
        ("env", "strict", "perhaps", f"'perhaps' is not {YES_NO} (environment LLMFIT_STRICT)"),
        ("ini", "strict", "perhaps", f"'perhaps' is not {YES_NO} (ini llmfit_strict)"),
        ("cli", "headroom", "16 gigs",
         f"'16 gigs' is not {SIZE}; {UNIT.format('gigs')} (command line --llmfit-headroom)"),
        ("env", "headroom", "-5GB",
         f"'-5GB' is not {SIZE}; sizes cannot be negative (environment LLMFIT_HEADROOM)"),
    ],
    ids=[
        "cli-on-nofit", "env-on-offload", "ini-basis", "env-strict", "ini-strict",
        "cli-headroom", "env-headroom-negative",
    ],
)  # fmt: skip
def test_settings_resolve(layer: str, name: str, value: str, expected: str) -> None:
    from pytest_llmfit.plugin.settings import OPTIONS_BY_NAME

    option = OPTIONS_BY_NAME[name]
    layers: dict[str, dict[str, Any]] = {"cli": {}, "env": {}, "ini": {}}
    layers[layer][option.env if layer == "env" else name] = value
    assert raises_line(lambda: resolve(layers["cli"], layers["env"], layers["ini"])) == expected


def test_a_bad_lower_layer_is_not_read_when_a_higher_one_is_given() -> None:
    # The command line wins, so a broken environment value underneath it is never checked.
    settings = resolve({"basis": "total"}, {"LLMFIT_BASIS": "maybe"}, {})
    assert (settings.basis, settings.source_of("basis")) == ("total", "command line --llmfit-basis")


# ======================================================== library: hardware spec strings

HW = "command line --llmfit-hardware"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("rtx-4900", f"'rtx-4900' {NEAR_4090} (item 'rtx-4900' of 'rtx-4900', {HW})"),
        ("zzzzz", f"'zzzzz' {UNKNOWN_CARD.format('')} (item 'zzzzz' of 'zzzzz', {HW})"),
        ("h100*2",
         "'h100*2' " + UNKNOWN_CARD.format("did you mean 'h100-sxm', 'h100-pcie', 'h100-nvl'? ")
         + f" (item 'h100*2' of 'h100*2', {HW})"),
        ("0x h100",
         f"'0x h100' is not a GPU count between 1 and 64 (item '0x h100' of '0x h100', {HW})"),
        ("65x h100",
         f"'65x h100' is not a GPU count between 1 and 64 (item '65x h100' of '65x h100', {HW})"),
        ("h100, ram=lots",
         f"'lots' is not {SIZE} (item 'ram=lots' of 'h100, ram=lots', {HW})"),
        ("h100, ram=0",
         f"'0' is not {SIZE}; must be more than 0 (item 'ram=0' of 'h100, ram=0', {HW})"),
        ("h100, ram=",
         f"'' is not {SIZE} (item 'ram=' of 'h100, ram=', {HW})"),
        ("h100, ram=8GB, ram=9GB",
         f"'ram=9GB' is not {SPEC}; ram= is given twice "
         f"(item 'ram=9GB' of 'h100, ram=8GB, ram=9GB', {HW})"),
        ("h100, ram=8GB, RAM=9GB",
         f"'RAM=9GB' is not {SPEC}; ram= is given twice "
         f"(item 'RAM=9GB' of 'h100, ram=8GB, RAM=9GB', {HW})"),
        ("h100, rom=1GB",
         "'rom' is not an option (ram=, ram_bw=, cpu=, used=, free=, vram=); did you mean "
         f"'ram='? (item 'rom=1GB' of 'h100, rom=1GB', {HW})"),
        ("h100, cpu=0",
         f"'0' is not a number of CPU cores like 8; between 1 and 4096 "
         f"(item 'cpu=0' of 'h100, cpu=0', {HW})"),
        ("h100, ram_bw=fast",
         "'fast' is not a bandwidth like '80GB/s', '3.35TB/s' or a number of bytes per second "
         f"(item 'ram_bw=fast' of 'h100, ram_bw=fast', {HW})"),
        ("cpu-only, rtx-4090",
         f"'cpu-only, rtx-4090' is not {SPEC}; 'cpu-only' cannot be mixed with GPUs ({HW})"),
        ("h100,,ram=1GB", f"'h100,,ram=1GB' is not {SPEC}; an item is empty ({HW})"),
        ("h100, used=1GB, free=1GB",
         f"'h100, used=1GB, free=1GB' is not {SPEC}; give used= or free=, not both ({HW})"),
        ("h100, free=200GB",
         "'200.0 GB' is not a free= within GPU 0's total (NVIDIA H100 80GB HBM3, 85.5 GB) "
         f"(hardware spec 'h100, free=200GB', {HW})"),
        ("github-ubuntu-latest, h100",
         f"'github-ubuntu-latest, h100' is not {SPEC}; runner 'github-ubuntu-latest' is a whole "
         f"machine: add only options (ram=, ram_bw=, cpu=, used=, free=, vram=) to it ({HW})"),
        ("m2-max, m2-max",
         f"'m2-max, m2-max' is not {SPEC}; an Apple chip ('m2-max') is the whole machine: one, "
         f"on its own ({HW})"),
        ("", f"'' is not {SPEC} ({HW})"),
        ("nope.toml", f"'nope.toml' is not an existing .toml profile file; no such file ({HW})"),
        pytest.param(
            "h100, ram=1e999GB",
            f"'1e999GB' is not {SIZE}; too large (item 'ram=1e999GB' of 'h100, ram=1e999GB', {HW})",
        ),
    ],
    ids=[
        "unknown-card-close", "unknown-card-far", "count-suffix", "count-zero", "count-65",
        "ram-words", "ram-zero", "ram-empty", "ram-twice", "ram-twice-case", "unknown-option",
        "cpu-zero", "ram-bw-words", "cpu-only-plus-gpu", "empty-item", "used-and-free",
        "free-over-total", "runner-plus-gpu", "two-apple-chips", "empty", "missing-toml",
        "ram-overflow",
    ],
)  # fmt: skip
def test_hardware_spec(spec: str, expected: str) -> None:
    assert raises_line(lambda: resolve_hardware(spec, source=HW)) == expected


# ==================================================================== library: TOML profiles

TOML_CASES: list[Any] = [
    # (file text, expected line with {f} for the file's path)
    (
        "this is not toml [",
        "{f!r} is not a valid TOML file; Expected '=' after a key in a key/value pair "
        "(at line 1, column 6)",
    ),
    (
        '[machine]\nram = "1GB"\n',
        "'machine' is not a table of a profile file ([host] or [[gpu]]) ({f})",
    ),
    ("host = 5\n", "5 is not a [host] table ({f})"),
    (
        '[host]\nrams = "64GB"\n',
        "'rams' is not a field of [host] (profile, ram, ram_bandwidth, cpu_cores, cpu_model, used, "
        "free); did you mean 'ram'? ({f})",
    ),
    ('[host]\nram = "lots"\n', f"'lots' is not {SIZE} ({{f}}, [host], field 'ram')"),
    ("[host]\nram = 0\n", f"0 is not {SIZE}; must be more than 0 ({{f}}, [host], field 'ram')"),
    (
        '[host]\ncpu_cores = "eight"\n',
        "'eight' is not a number of CPU cores like 8 ({f}, [host], field 'cpu_cores')",
    ),
    (
        '[host]\nprofile = "rtx-4090"\n',
        "'rtx-4090' is not a runner or Apple chip profile; put cards in [[gpu]] tables "
        "({f}, [host], field 'profile')",
    ),
    ('[host]\nprofile = "rtx-4900"\n', f"'rtx-4900' {NEAR_4090} ({{f}}, [host], field 'profile')"),
    (
        '[gpu]\nprofile = "rtx-4090"\n',
        "'gpu' is not an array of tables; write [[gpu]], not [gpu] ({f})",
    ),
    ("gpu = [1, 2]\n", "1 is not a [[gpu]] #1 table ({f})"),
    (
        '[[gpu]]\nname = "X"\n',
        "'[[gpu]] #1' is not a complete GPU table; field 'memory' is missing; give 'profile', "
        "or 'name' and 'memory' ({f})",
    ),
    (
        "[[gpu]]\ncount = 2\n",
        "'[[gpu]] #1' is not a complete GPU table; field 'name' is missing; give 'profile', "
        "or 'name' and 'memory' ({f})",
    ),
    (
        '[[gpu]]\nprofile = "h100"\ncount = 0\n',
        "0 is not a GPU count between 1 and 64 ({f}, [[gpu]] #1, field 'count')",
    ),
    (
        '[[gpu]]\nprofile = "h100"\ncount = "2"\n',
        "'2' is not a GPU count between 1 and 64 ({f}, [[gpu]] #1, field 'count')",
    ),
    (
        '[[gpu]]\nname = "X"\nmemory = "big"\n',
        f"'big' is not {SIZE} ({{f}}, [[gpu]] #1, field 'memory')",
    ),
    (
        '[[gpu]]\nname = ""\nmemory = "8GB"\n',
        "'' is not a non-empty string ({f}, [[gpu]] #1, field 'name')",
    ),
    (
        "[[gpu]]\nprofile = 4090\n",
        "4090 is not a non-empty string ({f}, [[gpu]] #1, field 'profile')",
    ),
    (
        '[[gpu]]\nprofile = "h100"\nname = "X"\n',
        "'name' is not a field of a [[gpu]] #1 table that names a profile; use either 'profile' "
        "or 'name' with 'memory' ({f})",
    ),
    (
        '[[gpu]]\nprofile = "github-ubuntu-latest"\n',
        "'github-ubuntu-latest' is not a GPU profile; a runner is a whole machine: put it in "
        "[host] profile ({f}, [[gpu]] #1, field 'profile')",
    ),
    (
        '[[gpu]]\nname = "X"\nmemory = "8GB"\ncompute_capability = "eight"\n',
        "'eight' is not a compute capability like '8.9' ({f}, [[gpu]] #1, field "
        "'compute_capability')",
    ),
    (
        '[[gpu]]\nname = "X"\nmemory = "8GB"\nunified = "yes"\n',
        "'yes' is not true or false ({f}, [[gpu]] #1, field 'unified')",
    ),
    (
        '[[gpu]]\nname = "X"\nmemory = "8GB"\nbandwidth = "fast"\n',
        "'fast' is not a bandwidth like '80GB/s', '3.35TB/s' or a number of bytes per second "
        "({f}, [[gpu]] #1, field 'bandwidth')",
    ),
    (
        '[[gpu]]\nprofile = "h100"\nused = "1GB"\nfree = "1GB"\n',
        "'[[gpu]] #1' is not a GPU table with used or free; not both ({f})",
    ),
    (
        '[[gpu]]\nprofile = "h100"\nmemroy = "1GB"\n',
        "'memroy' is not a field of [[gpu]] #1 (profile, count, name, memory, bandwidth, vendor, "
        "compute_capability, unified, used, free); did you mean 'memory'? ({f})",
    ),
    (
        '[[gpu]]\nprofile = "rtx-4090"\nfree = "100GB"\n',
        "'100.0 GB' is not a free= within GPU 0's total (NVIDIA GeForce RTX 4090, 25.8 GB) ({f})",
    ),
]
TOML_IDS = [
    "not-toml", "unknown-table", "host-not-table", "host-unknown-field", "host-ram-words",
    "host-ram-zero", "host-cores-words", "host-profile-is-a-card", "host-profile-unknown",
    "gpu-not-array", "gpu-not-table", "gpu-missing-memory", "gpu-missing-name", "gpu-count-zero",
    "gpu-count-string", "gpu-memory-words", "gpu-name-empty", "gpu-profile-int",
    "gpu-profile-and-name", "gpu-profile-runner", "gpu-cc-words", "gpu-unified-words",
    "gpu-bandwidth-words", "gpu-used-and-free", "gpu-unknown-field", "gpu-free-over-total",
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), TOML_CASES, ids=TOML_IDS)
def test_toml_profile(tmp_path: pathlib.Path, text: str, expected: str) -> None:
    path = tmp_path / "host.toml"
    path.write_text(text)
    line = raises_line(lambda: resolve_hardware(str(path), source=HW))
    assert line == expected.format(f=str(path))


# ====================================================== library: marker arguments, GGUF files

SRC = "marker requires_model on t.py::test_x"


@pytest.mark.parametrize(
    ("marker", "args", "kwargs", "expected"),
    [
        ("requires_vram", ("16 gigs",), {}, f"'16 gigs' is not {SIZE}; {UNIT.format('gigs')} (S)"),
        ("requires_vram", (), {}, "None is not a size like '24GB'; requires_vram needs a size (S)"),
        ("requires_vram", ("1GB", "2GB"), {},
         "('1GB', '2GB') is not at most 1 positional argument(s) (size) (S)"),
        ("requires_vram", ("1GB",), {"size": "2GB"},
         "'size' is not given once; passed both by position and by name (S)"),
        ("requires_vram", ("1GB",), {"per_gpu": True},
         "'per_gpu' is not an argument of requires_vram (on_nofit, per_device, size) (S)"),
        ("requires_ram", ("1GB",), {"on_nofit": "sometimes"},
         f"'sometimes' is not {CLI_ON_NOFIT} (on_nofit of S)"),
        ("requires_gpu", (0,), {}, "0 is not a GPU count of 1 or more (S)"),
        ("requires_gpu", ("2",), {}, "'2' is not a GPU count of 1 or more (S)"),
        ("requires_gpu", (), {"min_compute_capability": "eight"},
         "'eight' is not a compute capability like '8.0' or (8, 9) (S)"),
        ("requires_model", ("m.gguf",), {"on_offload": "maybe"},
         f"'maybe' is not {OFFLOAD} (on_offload of S)"),
        ("requires_model", ("m.gguf",), {"min_tokens_per_second": -1},
         "-1 is not a positive number of tokens per second (S)"),
        ("requires_model", ("m.gguf",), {"cache_type": "q7"},
         f"'q7' is not {KV_TYPES} (cache_type_k, S)"),
        ("requires_model", ("m.gguf",), {"cache_type_v": "q8_0", "flash_attn": "off"},
         f"'q8_0' {NEEDS_FA} (cache_type_v, S)"),
        ("requires_model", ("m.gguf",), {"n_ctx": "8k"},
         "'8k' is not a whole number >= 0 (n_ctx, S)"),
        ("requires_model", (), {}, "None is not a GGUF file path (S)"),
        ("requires_tpu", (), {},
         "'requires_tpu' is not a pytest-llmfit marker (requires_vram, requires_ram, "
         "requires_gpu, requires_model) (S)"),
        pytest.param(
            "requires_vram", ("30GB",), {"per_device": "no"},
            "'no' is not true or false (per_device, S)",
        ),
        pytest.param(
            "requires_model", ("m.gguf",), {"swa_full": "off"},
            "'off' is not true or false (swa_full, S)",
        ),
        pytest.param(
            "requires_model", ("m.gguf",), {"min_tokens_per_second": float("nan")},
            "nan is not a positive number of tokens per second (S)",
        ),
    ],
    ids=[
        "vram-gigs", "vram-no-size", "vram-two-positional", "vram-size-twice", "vram-unknown-kwarg",
        "ram-on-nofit", "gpu-zero", "gpu-count-string", "gpu-cc-words", "model-on-offload",
        "model-min-tps-negative", "model-cache-q7", "model-q8-v-without-fa", "model-ctx-string",
        "model-no-path", "unknown-marker", "vram-per-device-string", "model-swa-full-string",
        "model-min-tps-nan",
    ],
)  # fmt: skip
def test_parse_requirement(
    marker: str, args: tuple[Any, ...], kwargs: dict[str, Any], expected: str
) -> None:
    line = raises_line(lambda: parse_requirement(marker, args, kwargs, source="S", root="/r"))
    assert line == expected


def test_settings_validated_names_the_field_and_source() -> None:
    bad = Settings(cache_type_k="q8_0", cache_type_v="q8_0", flash_attn="off")
    assert raises_line(lambda: bad.validated(source="S")) == f"'q8_0' {NEEDS_FA} (cache_type_v, S)"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.gguf", None, "{p}: no such file"),
        ("empty.gguf", b"", "{p}: empty file, not GGUF"),
        ("zip.gguf", b"PK\x03\x04 this is a zip file" + bytes(100),
         "{p}: not a GGUF file (starts with b'PK\\x03\\x04', expected b'GGUF') at offset 0"),
        ("truncated.gguf", "truncate",
         "{p}: header claims 292 tensors, whose table needs at least 7008 bytes, but only 4584 "
         "are left in the file after the metadata at offset 8"),
    ],
    ids=["missing", "empty", "not-gguf", "truncated"],
)  # fmt: skip
def test_read_gguf(
    tmp_path: pathlib.Path, stub_8b: pathlib.Path, name: str, content: Any, expected: str
) -> None:
    path = tmp_path / name
    if content == "truncate":
        path.write_bytes(stub_8b.read_bytes()[:5000])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GGUFError) as info:
        read_gguf(path)
    assert one_line(info.value) == expected.format(p=path)


def test_a_directory_is_not_a_model(tmp_path: pathlib.Path) -> None:
    with pytest.raises(GGUFError) as info:
        read_gguf(tmp_path)
    assert one_line(info.value) == f"{tmp_path}: is a directory, not a GGUF file"


# ================================================= pytest: command line, environment and ini

MARKED = "import pytest\n@pytest.mark.requires_ram('1GB')\ndef test_x(): pass\n"


def usage_error_line(result: pytest.RunResult) -> str:
    """A session that stopped at start: exit 4, one stderr line, no traceback anywhere."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    lines = [line for line in result.stderr.lines if line.strip()]
    assert len(lines) == 1, result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert lines[0].startswith("ERROR: pytest-llmfit: "), lines[0]
    return lines[0][len("ERROR: pytest-llmfit: ") :]


OPTION_CASES: list[Any] = [
    (
        "--llmfit-on-nofit",
        "sometimes",
        f"'sometimes' is not {CLI_ON_NOFIT} (command line --llmfit-on-nofit)",
    ),
    (
        "--llmfit-on-offload",
        "maybe",
        f"'maybe' is not {OFFLOAD} (command line --llmfit-on-offload)",
    ),
    ("--llmfit-basis", "both", "'both' is not one of free, total (command line --llmfit-basis)"),
    (
        "--llmfit-headroom",
        "16 gigs",
        f"'16 gigs' is not {SIZE}; {UNIT.format('gigs')} (command line --llmfit-headroom)",
    ),
    (
        "--llmfit-headroom",
        "-5GB",
        f"'-5GB' is not {SIZE}; sizes cannot be negative (command line --llmfit-headroom)",
    ),
    (
        "--llmfit-hardware",
        "rtx-4900",
        f"'rtx-4900' {NEAR_4090} (item 'rtx-4900' of 'rtx-4900', command line --llmfit-hardware)",
    ),
    (
        "--llmfit-hardware",
        "0x h100",
        "'0x h100' is not a GPU count between 1 and 64 (item '0x h100' of '0x h100', command line "
        "--llmfit-hardware)",
    ),
    (
        "--llmfit-hardware",
        "h100, ram=lots",
        f"'lots' is not {SIZE} (item 'ram=lots' of 'h100, ram=lots', command line "
        "--llmfit-hardware)",
    ),
    (
        "--llmfit-hardware",
        "h100, ram=8GB, ram=9GB",
        f"'ram=9GB' is not {SPEC}; ram= is given twice (item 'ram=9GB' of 'h100, ram=8GB, "
        "ram=9GB', command line --llmfit-hardware)",
    ),
    (
        "--llmfit-hardware",
        "cpu-only, h100",
        f"'cpu-only, h100' is not {SPEC}; 'cpu-only' cannot be mixed with GPUs (command line "
        "--llmfit-hardware)",
    ),
    (
        "--llmfit-hardware",
        "nope.toml",
        "'nope.toml' is not an existing .toml profile file; no such file (command line "
        "--llmfit-hardware)",
    ),
    (
        "--llmfit-expect",
        "rtx-4900",
        f"'rtx-4900' {NEAR_4090} (item 'rtx-4900' of 'rtx-4900', command line --llmfit-expect)",
    ),
    pytest.param(
        "--llmfit-hardware",
        "h100, ram=1e999GB",
        f"'1e999GB' is not {SIZE}; too large (item 'ram=1e999GB' of 'h100, ram=1e999GB', "
        "command line --llmfit-hardware)",
    ),
]
OPTION_IDS = [
    "on-nofit", "on-offload", "basis", "headroom-gigs", "headroom-negative", "hardware-unknown",
    "hardware-count-zero", "hardware-ram-words", "hardware-duplicate-option",
    "hardware-cpu-only-plus-gpu", "hardware-missing-toml", "expect-unknown", "hardware-overflow",
]  # fmt: skip


@pytest.mark.parametrize(("flag", "value", "expected"), OPTION_CASES, ids=OPTION_IDS)
def test_command_line_option(
    pytester: pytest.Pytester, flag: str, value: str, expected: str
) -> None:
    pytester.makepyfile(MARKED)
    assert usage_error_line(pytester.runpytest(f"{flag}={value}")) == expected


@pytest.mark.parametrize(
    "setup",
    [
        ["--llmfit-hardware=rtx-4900"],
        ["--llmfit-hardware=nope.toml"],
        ["env:LLMFIT_HARDWARE=rtx-4900"],
        ["ini:llmfit_hardware = rtx-4900"],
    ],
    ids=["cli", "cli-toml", "env", "ini"],
)
def test_bad_hardware_is_a_usage_error_even_with_q(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, setup: list[str]
) -> None:
    pytester.makepyfile(MARKED)
    args = ["-q"]
    for item in setup:
        if item.startswith("env:"):
            name, _, value = item[4:].partition("=")
            monkeypatch.setenv(name, value)
        elif item.startswith("ini:"):
            pytester.makeini(f"[pytest]\n{item[4:]}\n")
        else:
            args.append(item)
    line = usage_error_line(pytester.runpytest(*args))
    assert line.startswith(("'rtx-4900' is not", "'nope.toml' is not"))


ENV_CASES: list[Any] = [
    (
        "LLMFIT_ON_NOFIT",
        "sometimes",
        f"'sometimes' is not {CLI_ON_NOFIT} (environment LLMFIT_ON_NOFIT)",
    ),
    ("LLMFIT_ON_OFFLOAD", "maybe", f"'maybe' is not {OFFLOAD} (environment LLMFIT_ON_OFFLOAD)"),
    ("LLMFIT_BASIS", "maybe", "'maybe' is not one of free, total (environment LLMFIT_BASIS)"),
    ("LLMFIT_STRICT", "perhaps", f"'perhaps' is not {YES_NO} (environment LLMFIT_STRICT)"),
    ("LLMFIT_HEADROOM", "GB", f"'GB' is not {SIZE} (environment LLMFIT_HEADROOM)"),
    (
        "LLMFIT_HARDWARE",
        "2x rtx-4900",
        f"'rtx-4900' {NEAR_4090} (item '2x rtx-4900' of '2x rtx-4900', "
        "environment LLMFIT_HARDWARE)",
    ),
    (
        "LLMFIT_EXPECT",
        "cpu-only, h100",
        f"'cpu-only, h100' is not {SPEC}; 'cpu-only' cannot be mixed with GPUs "
        "(environment LLMFIT_EXPECT)",
    ),
]
ENV_IDS = ["on-nofit", "on-offload", "basis", "strict", "headroom", "hardware", "expect"]


@pytest.mark.parametrize(("name", "value", "expected"), ENV_CASES, ids=ENV_IDS)
def test_environment_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    pytester.makepyfile(MARKED)
    assert usage_error_line(pytester.runpytest()) == expected


INI_CASES: list[Any] = [
    ("llmfit_on_nofit", "sometimes", f"'sometimes' is not {CLI_ON_NOFIT} (ini llmfit_on_nofit)"),
    ("llmfit_on_offload", "maybe", f"'maybe' is not {OFFLOAD} (ini llmfit_on_offload)"),
    ("llmfit_basis", "both", "'both' is not one of free, total (ini llmfit_basis)"),
    ("llmfit_strict", "perhaps", f"'perhaps' is not {YES_NO} (ini llmfit_strict)"),
    ("llmfit_headroom", "1.2.3GB", f"'1.2.3GB' is not {SIZE} (ini llmfit_headroom)"),
    (
        "llmfit_hardware",
        "h100, rom=1GB",
        "'rom' is not an option (ram=, ram_bw=, cpu=, used=, free=, vram=); did you mean 'ram='? "
        "(item 'rom=1GB' of 'h100, rom=1GB', ini llmfit_hardware)",
    ),
]
INI_IDS = ["on-nofit", "on-offload", "basis", "strict", "headroom", "hardware"]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "expected"), INI_CASES, ids=INI_IDS)
def test_ini_value(pytester: pytest.Pytester, key: str, value: str, expected: str) -> None:
    pytester.makeini(f"[pytest]\n{key} = {value}\n")
    pytester.makepyfile(MARKED)
    assert usage_error_line(pytester.runpytest()) == expected


def test_toml_profile_error_through_the_option(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = pytester.path / "ci.toml"
    profile.write_text('[[gpu]]\nprofile = "rtx-4900"\n')
    pytester.makepyfile(MARKED)
    line = usage_error_line(pytester.runpytest(f"--llmfit-hardware={profile}"))
    assert line == f"'rtx-4900' {NEAR_4090} ({profile}, [[gpu]] #1, field 'profile')"


# ================================================================= pytest: marker arguments

MARKER_CASES: list[Any] = [
    ('requires_vram("16 gigs")', f"'16 gigs' is not {SIZE}; {UNIT.format('gigs')} ({{src}})"),
    ("requires_vram()", "None is not a size like '24GB'; requires_vram needs a size ({src})"),
    (
        'requires_vram("1GB", "2GB")',
        "('1GB', '2GB') is not at most 1 positional argument(s) (size) ({src})",
    ),
    (
        'requires_vram("1GB", size="2GB")',
        "'size' is not given once; passed both by position and by name ({src})",
    ),
    (
        'requires_vram("16GB", per_gpu=True)',
        "'per_gpu' is not an argument of requires_vram (on_nofit, per_device, size) ({src})",
    ),
    (
        'requires_vram("1GB", on_nofit="sometimes")',
        f"'sometimes' is not {CLI_ON_NOFIT} (on_nofit of {{src}})",
    ),
    ("requires_ram(True)", f"True is not {SIZE} ({{src}})"),
    ("requires_ram(-5)", f"-5 is not {SIZE}; sizes cannot be negative ({{src}})"),
    ('requires_ram("-5GB")', f"'-5GB' is not {SIZE}; sizes cannot be negative ({{src}})"),
    ("requires_gpu(0)", "0 is not a GPU count of 1 or more ({src})"),
    ("requires_gpu(1, 2)", "(1, 2) is not at most 1 positional argument(s) (count) ({src})"),
    (
        'requires_gpu(min_compute_capability="eight")',
        "'eight' is not a compute capability like '8.0' or (8, 9) ({src})",
    ),
    (
        'requires_gpu(vendr="nvidia")',
        "'vendr' is not an argument of requires_gpu (count, min_compute_capability, name, "
        "on_nofit, vendor) ({src})",
    ),
    ('requires_model(M, on_offload="maybe")', f"'maybe' is not {OFFLOAD} (on_offload of {{src}})"),
    (
        "requires_model(M, min_tokens_per_second=-1)",
        "-1 is not a positive number of tokens per second ({src})",
    ),
    (
        'requires_model(M, min_tokens_per_second="fast")',
        "'fast' is not a positive number of tokens per second ({src})",
    ),
    ('requires_model(M, cache_type="q7")', f"'q7' is not {KV_TYPES} (cache_type_k, {{src}})"),
    (
        'requires_model(M, cache_type="q8_0", flash_attn="off")',
        f"'q8_0' {NEEDS_FA} (cache_type_v, {{src}})",
    ),
    (
        'requires_model(M, flash_attn="sometimes")',
        "'sometimes' is not a flash attention mode (on, off, auto) (flash_attn, {src})",
    ),
    ("requires_model(M, n_ctx=-1)", "-1 is not a whole number >= 0 (n_ctx, {src})"),
    ("requires_model(M, n_ubatch=0)", "0 is not a whole number >= 1 (n_ubatch, {src})"),
    (
        "requires_model(M, ctx=8192)",
        "'ctx' is not an argument of requires_model (cache_type, cache_type_k, cache_type_v, "
        "flash_attn, min_prompt_tokens_per_second, min_tokens_per_second, n_batch, n_cpu_moe, "
        "n_ctx, n_gpu_layers, n_seq, n_ubatch, on_nofit, on_offload, path, swa_full, "
        "tensor_split) ({src})",
    ),
    ("requires_model()", "None is not a GGUF file path ({src})"),
    ("requires_model(42)", "42 is not a GGUF file path ({src})"),
    # The file's problems: the line names the file, why, and the marker and test.
    ('requires_model("missing.gguf")', "{root}/missing.gguf: no such file ({src})"),
    (
        'requires_model("zip.gguf")',
        "{root}/zip.gguf: not a GGUF file (starts with b'PK\\x03\\x04', expected b'GGUF') at "
        "offset 0 ({src})",
    ),
    (
        'requires_model("truncated.gguf")',
        "{root}/truncated.gguf: header claims 292 tensors, whose table needs at least 7008 bytes, "
        "but only 4584 are left in the file after the metadata at offset 8 ({src})",
    ),
    pytest.param(
        'requires_vram("30GB", per_device="no")',
        "'no' is not true or false (per_device, {src})",
    ),
    pytest.param(
        'requires_model(M, swa_full="off")',
        "'off' is not true or false (swa_full, {src})",
    ),
]
MARKER_IDS = [
    "vram-gigs", "vram-no-size", "vram-two-positional", "vram-size-twice", "vram-unknown-kwarg",
    "vram-on-nofit", "ram-bool", "ram-negative-int", "ram-negative-str", "gpu-zero",
    "gpu-two-positional", "gpu-cc-words", "gpu-unknown-kwarg", "model-on-offload",
    "model-min-tps-negative", "model-min-tps-string", "model-cache-q7", "model-q8-without-fa",
    "model-fa-words", "model-ctx-negative", "model-ubatch-zero", "model-unknown-kwarg",
    "model-no-path", "model-path-int", "model-missing-file", "model-not-gguf",
    "model-truncated", "vram-per-device-string",
    "model-swa-full-string",
]  # fmt: skip


@pytest.fixture
def model_files(pytester: pytest.Pytester, stub_8b: pathlib.Path) -> None:
    shutil.copy(stub_8b, pytester.path / "m8b.gguf")
    (pytester.path / "zip.gguf").write_bytes(b"PK\x03\x04 this is a zip file" + bytes(100))
    (pytester.path / "truncated.gguf").write_bytes(stub_8b.read_bytes()[:5000])


@pytest.mark.parametrize(("marker", "expected"), MARKER_CASES, ids=MARKER_IDS)
def test_marker_argument(
    pytester: pytest.Pytester, model_files: None, marker: str, expected: str
) -> None:
    pytester.makepyfile(
        test_case=f"""
        import pytest
        M = "m8b.gguf"
        @pytest.mark.{marker}
        def test_it(): pass
        def test_unrelated(): pass
        """
    )
    reprec = pytester.inline_run(
        "--llmfit-hardware=2x rtx-4090, ram=64GB", "-p", "no:cacheprovider"
    )
    reprec.assertoutcome(passed=1, failed=1)  # failed = the setup error of test_it alone
    (report,) = [r for r in reprec.getreports("pytest_runtest_logreport") if r.failed]
    assert report.when == "setup" and report.nodeid == "test_case.py::test_it"
    src = f"marker {marker.split('(')[0]} on test_case.py::test_it"
    text = report.longreprtext
    assert "\n" not in text.strip() and "Traceback" not in text, text
    assert text.strip() == "pytest-llmfit: " + expected.format(src=src, root=pytester.path)


# ======================================================================= the pytest-llmfit CLI


def cli_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command in this process: exit 2, nothing on stdout, one line on stderr."""
    try:
        code = cli_main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


CLI_CASES: list[Any] = [
    (
        ["plan", "m.gguf", "--hardware", "rtx-4900"],
        f"pytest-llmfit: error: 'rtx-4900' {NEAR_4090} (item 'rtx-4900' of 'rtx-4900', --hardware)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "0x h100"],
        "pytest-llmfit: error: '0x h100' is not a GPU count between 1 and 64 (item '0x h100' of "
        "'0x h100', --hardware)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "cpu-only, rtx-4090"],
        f"pytest-llmfit: error: 'cpu-only, rtx-4090' is not {SPEC}; 'cpu-only' cannot be mixed "
        "with GPUs (--hardware)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "nope.toml"],
        "pytest-llmfit: error: 'nope.toml' is not an existing .toml profile file; no such file "
        "(--hardware)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "bad.toml"],
        "pytest-llmfit: error: 'rams' is not a field of [host] (profile, ram, ram_bandwidth, "
        "cpu_cores, cpu_model, used, free); did you mean 'ram'? (bad.toml)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "h100", "--headroom", "16 gigs"],
        f"pytest-llmfit: error: '16 gigs' is not {SIZE}; {UNIT.format('gigs')} (--headroom)",
    ),
    (
        ["plan", "m.gguf", "--hardware", "h100", "--headroom=-5GB"],
        f"pytest-llmfit: error: '-5GB' is not {SIZE}; sizes cannot be negative (--headroom)",
    ),
    (
        ["plan", "m.gguf", "--cache-type", "q7"],
        "pytest-llmfit plan: error: argument --cache-type: invalid choice: 'q7' (choose from "
        "'f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_1', 'iq4_nl', 'q5_0', 'q5_1')",
    ),
    (
        ["plan", "m.gguf", "--cache-type", "q8_0", "--flash-attn", "off"],
        f"pytest-llmfit: error: 'q8_0' {NEEDS_FA} (cache_type_v, command line)",
    ),
    (
        ["plan", "m.gguf", "--ctx", "lots"],
        "pytest-llmfit plan: error: argument --ctx: 'lots' is not a whole number",
    ),
    (
        ["plan", "m.gguf", "--ctx=-1"],
        "pytest-llmfit plan: error: argument --ctx: '-1' must be 0 or more",
    ),
    (
        ["plan", "m.gguf", "--ubatch", "0"],
        "pytest-llmfit plan: error: argument --ubatch: '0' must be 1 or more",
    ),
    (["plan", "missing.gguf"], "pytest-llmfit: error: missing.gguf: no such file"),
    (
        ["inspect", "zip.gguf"],
        "pytest-llmfit: error: zip.gguf: not a GGUF file (starts with b'PK\\x03\\x04', expected "
        "b'GGUF') at offset 0",
    ),
    (
        ["inspect", "truncated.gguf"],
        "pytest-llmfit: error: truncated.gguf: header claims 292 tensors, whose table needs at "
        "least 7008 bytes, but only 4584 are left in the file after the metadata at offset 8",
    ),
    (["stub", "missing.gguf", "out.gguf"], "pytest-llmfit: error: missing.gguf: no such file"),
    (["plan"], "pytest-llmfit plan: error: the following arguments are required: model"),
    (
        ["frobnicate"],
        "pytest-llmfit: error: argument command: invalid choice: 'frobnicate' (choose from "
        "'probe', 'plan', 'advise', 'inspect', 'stub', 'cache', 'twin', 'merge', 'profiles')",
    ),
    (["plan", "m.gguf", "--bogus"], "pytest-llmfit: error: unrecognized arguments: --bogus"),
    (
        ["twin", "llama-3.1-8b"],
        "pytest-llmfit: error: twin needs an output path: twin llama-3.1-8b OUT",
    ),
    (
        ["twin", "llama-3.1-8b", "out.gguf", "--quant", "q7"],
        "pytest-llmfit: error: 'q7' is not a quantization mix (f32, f16, q4_0, q4_1, q8_0, q5_0, "
        "q5_1, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, q2_k_s, bf16, "
        "mxfp4_moe) (quantization of llama-3.1-8b)",
    ),
    (["merge", "missing.json"], "pytest-llmfit: error: missing.json: no such file"),
    pytest.param(
        ["plan", "m.gguf", "--hardware", "h100, ram=1e999GB"],
        f"pytest-llmfit: error: '1e999GB' is not {SIZE}; too large (item 'ram=1e999GB' of "
        "'h100, ram=1e999GB', --hardware)",
    ),
    pytest.param(
        ["plan", "m.gguf", "--parallel", "0"],
        "pytest-llmfit plan: error: argument --parallel: '0' must be 1 or more",
    ),
]
CLI_IDS = [
    "hardware-unknown", "hardware-count-zero", "hardware-cpu-only-plus-gpu", "hardware-no-toml",
    "hardware-bad-toml", "headroom-gigs", "headroom-negative", "cache-q7", "q8-without-fa",
    "ctx-words", "ctx-negative", "ubatch-zero", "missing-model", "not-gguf", "truncated",
    "stub-missing", "plan-no-model", "unknown-command", "unknown-option", "twin-no-out",
    "twin-bad-quant", "merge-missing", "hardware-overflow", "parallel-zero",
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), CLI_CASES, ids=CLI_IDS)
def test_cli(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stub_8b: pathlib.Path,
    argv: list[str],
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(stub_8b, "m.gguf")
    pathlib.Path("zip.gguf").write_bytes(b"PK\x03\x04 this is a zip file" + bytes(100))
    pathlib.Path("truncated.gguf").write_bytes(stub_8b.read_bytes()[:5000])
    pathlib.Path("bad.toml").write_text('[host]\nrams = "64GB"\n')
    assert cli_line(capsys, *argv) == expected


def test_every_config_error_is_a_value_error() -> None:
    # Callers that catch ValueError around a size keep working.
    with pytest.raises(ValueError):
        parse_size("16 gigs")
    assert issubclass(ConfigError, LlmfitError)
