"""The hardware catalog, spec strings and TOML host files (pytest_llmfit.hardware: catalog,
specs, hostfile, render). User catalog files are tested in test_catalog.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_llmfit.errors import ConfigError, ProfileError
from pytest_llmfit.hardware.catalog import (
    FAMILIES,
    HOST_DEFAULTS,
    Profile,
    apple_gpu_share,
    catalog,
    find_profile,
    lookup,
)
from pytest_llmfit.hardware.hostfile import host_from_toml
from pytest_llmfit.hardware.render import render_catalog, render_profiles
from pytest_llmfit.hardware.specs import (
    host_from_profile,
    host_from_spec,
    parse_bandwidth,
    resolve_hardware,
)
from pytest_llmfit.hardware.types import Host
from pytest_llmfit.units import parse_size

MiB = 2**20
GiB = 2**30

# ----------------------------------------------------------------------------- catalog


@pytest.mark.parametrize("profile", catalog(), ids=lambda p: p.id)
def test_every_catalog_entry_is_sane(profile: Profile) -> None:
    assert profile.id == profile.id.lower().strip()
    assert profile.memory > 0
    assert profile.bandwidth > 0
    assert profile.kind in ("gpu", "soc", "runner")
    assert profile.host.ram > 0 and profile.host.ram_bandwidth > 0 and profile.host.cpu_cores > 0
    assert profile.source.startswith(("measured", "derived", "GitHub", "AWS", "Colab"))
    if profile.kind == "gpu":
        # driver totals are whole MiB and above the marketing GB figure's GiB floor
        assert profile.memory % MiB == 0
        assert profile.vendor in ("nvidia", "amd", "intel")
        assert not profile.unified
    if profile.kind == "gpu" and profile.vendor == "nvidia":
        assert profile.compute_capability is not None
    # every entry builds a host on its own
    host = host_from_spec(profile.id)
    assert host.simulated


def test_catalog_ids_and_aliases_are_unique() -> None:
    seen: set[str] = set()
    for profile in catalog():
        for name in (profile.id, *profile.aliases):
            assert name not in seen, name
            seen.add(name)
    assert not seen & set(FAMILIES)


def test_catalog_covers_the_cards_people_ask_about() -> None:
    ids = {p.id for p in catalog()}
    assert {
        "rtx-3090", "rtx-4090", "rtx-5090", "t4", "l4", "a10g", "l40s",
        "a100-40gb-pcie", "a100-40gb-sxm", "a100-80gb", "h100-pcie", "h100-sxm",
        "h100-nvl", "h200", "b200", "mi300x",
        "m2-max", "m2-ultra", "m3-max", "m4-max", "m3-ultra",
        "github-ubuntu-latest",
    } <= ids  # fmt: skip


def test_rtx_4090_as_the_driver_reports_it() -> None:
    card = find_profile("rtx-4090")
    assert card.memory == 24564 * MiB
    assert card.memory_mib == 24564
    assert card.bandwidth == 1008e9
    assert card.name == "NVIDIA GeForce RTX 4090"
    assert card.compute_capability == (8, 9)


@pytest.mark.parametrize(
    ("card", "mib"),
    [("h100-sxm", 81559), ("h100-pcie", 81559), ("h200", 143771), ("rtx-3090", 24576),
     ("a100-80gb", 81920), ("t4", 15360), ("mi300x", 196288)],
)  # fmt: skip
def test_driver_reported_totals(card: str, mib: int) -> None:
    assert find_profile(card).memory == mib * MiB


def test_a_24gb_card_passes_requires_vram_24gb() -> None:
    need = parse_size("24GB")
    host = host_from_spec("rtx-4090")
    assert host.gpus[0].memory_total > need  # 25.76e9 > 24e9
    assert host.gpus[0].memory_total > 24e9
    # but NOT over 24 GiB: 24564 MiB is 12 MiB short of 24576 MiB, so "24GiB" fails on a 4090
    assert host.gpus[0].memory_total < parse_size("24GiB")
    assert host.vram_total > need


def test_profile_to_dict() -> None:
    assert json.loads(json.dumps([p.to_dict() for p in catalog()]))  # plain data for --json
    data = find_profile("h100-sxm").to_dict()
    assert data["id"] == "h100-sxm"
    assert data["memory"] == 81559 * MiB
    assert data["compute_capability"] == [9, 0]
    assert data["kind"] == "gpu"


def test_render_profiles_table() -> None:
    text = render_profiles()
    lines = text.splitlines()
    assert lines[0].split() == ["ID", "KIND", "MEMORY", "BANDWIDTH", "NAME"]
    row = next(line for line in lines if line.startswith("rtx-4090 "))
    assert row.split()[:5] == ["rtx-4090", "gpu", "24564", "MiB", "1008"]
    assert row.endswith("NVIDIA GeForce RTX 4090")
    assert "families: h100 -> h100-sxm" in text
    assert "RAM 16 GiB" in next(line for line in lines if line.startswith("github-ubuntu"))
    assert render_catalog() == text  # the CLI's name for it
    subset = render_profiles([find_profile("t4")])
    assert len(subset.splitlines()) == 4  # header, row, blank, families


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    ["rtx-4090", "RTX 4090", "rtx_4090", "4090", "NVIDIA GeForce RTX 4090", " Rtx4090 "],
)
def test_names_are_flexible(name: str) -> None:
    assert find_profile(name).id == "rtx-4090"


@pytest.mark.parametrize(
    ("family", "chosen"),
    [("h100", "h100-sxm"), ("A100", "a100-80gb"), ("a100-40gb", "a100-40gb-sxm"),
     ("mi300", "mi300x")],
)  # fmt: skip
def test_family_resolves_to_its_common_variant_and_says_so(family: str, chosen: str) -> None:
    profile, note = lookup(family)
    assert profile.id == chosen
    assert note is not None and repr(chosen) in note


def test_family_note_reaches_the_host() -> None:
    host = host_from_spec("h100")
    assert host.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert host.notes[0] == (
        "'h100' is a family: using its most common variant 'h100-sxm' "
        "(NVIDIA H100 80GB HBM3); others: 'h100-pcie', 'h100-nvl'"
    )


def test_exact_names_have_no_note() -> None:
    assert lookup("h100-pcie") == (find_profile("h100-pcie"), None)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ProfileError) as info:
        host_from_spec("2x h100x", source="--llmfit-hardware")
    assert str(info.value) == (
        "'h100x' is not a known GPU, Apple chip or runner profile; "
        "did you mean 'h100-sxm', 'h100-pcie', 'h100-nvl'? "
        "a GPU item is '[N x] NAME' with NAME an id or alias such as '2x h100-sxm'; "
        "`pytest-llmfit profiles` lists them "
        "(item '2x h100x' of '2x h100x', --llmfit-hardware)"
    )
    assert isinstance(info.value, ConfigError)  # callers may catch the broader class


def test_unknown_name_close_matches_on_squashed_forms() -> None:
    near = r"did you mean 'rtx-4090', 'rtx-4090-laptop', 'rtx-5090'"
    with pytest.raises(ProfileError, match=near):
        find_profile("rtx4090x")


def test_unknown_name_without_close_matches() -> None:
    with pytest.raises(ProfileError) as info:
        find_profile("xyz")
    assert "did you mean" not in str(info.value)
    assert "`pytest-llmfit profiles` lists them" in str(info.value)


# ----------------------------------------------------------------------------- spec strings


@pytest.mark.parametrize("spec", ["2x h100-sxm", "2 x h100-sxm", "2X H100-SXM", "2*h100-sxm",
                                  "2xh100-sxm", "2 × h100 sxm", "h100-sxm, h100-sxm"])  # fmt: skip
def test_count_forms(spec: str) -> None:
    host = host_from_spec(spec)
    assert [g.name for g in host.gpus] == ["NVIDIA H100 80GB HBM3"] * 2


def test_spec_builds_a_simulated_host() -> None:
    host = host_from_spec("2x a100-80gb, ram=256GB", source="marker")
    assert host.simulated
    assert host.source == "2x a100-80gb, ram=256GB"
    assert [g.index for g in host.gpus] == [0, 1]
    assert [g.cuda_index for g in host.gpus] == [0, 1]
    assert [g.uuid for g in host.gpus] == ["SIM-GPU-0", "SIM-GPU-1"]
    assert all(g.memory_total == 81920 * MiB for g in host.gpus)
    assert all(g.memory_free == g.memory_total for g in host.gpus)  # simulated = idle
    assert all(g.compute_capability == (8, 0) for g in host.gpus)
    assert host.ram.total == 256 * 10**9
    assert host.ram.available == host.ram.total
    assert host.vram_total == 2 * 81920 * MiB


def test_mixed_cards_keep_the_written_order() -> None:
    host = host_from_spec("rtx-4090, rtx-3090")
    assert [g.name for g in host.gpus] == ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 3090"]
    assert [g.bandwidth for g in host.gpus] == [1008e9, 936e9]


def test_host_defaults_for_cards_alone_are_documented_in_notes() -> None:
    host = host_from_spec("rtx-4090")
    desktop = HOST_DEFAULTS["desktop"]
    assert host.ram.total == desktop.ram == 64 * GiB
    assert host.ram.bandwidth == desktop.ram_bandwidth == 60e9
    assert host.cpu.cores_physical == desktop.cpu_cores == 8
    assert host.notes == (
        "assumed host defaults: RAM 64.0 GiB (ram=), RAM bandwidth 60 GB/s (ram_bw=), "
        "8 CPU cores (cpu=)",
    )


def test_host_defaults_add_up_per_card() -> None:
    host = host_from_spec("8x h100-sxm")
    assert host.ram.total == 8 * 256 * GiB
    assert host.cpu.cores_physical == 8 * 24
    assert host.ram.bandwidth == 300e9  # the largest, not a sum


def test_options_replace_defaults() -> None:
    host = host_from_spec("rtx-4090, ram=128GiB, ram_bw=89.6GB/s, cpu=16")
    assert host.ram.total == 128 * GiB
    assert host.ram.bandwidth == 89.6e9
    assert host.cpu.cores_physical == host.cpu.cores_logical == 16
    assert host.notes == ()


def test_option_spellings() -> None:
    host = host_from_spec("t4, RAM = 32GB, ram_bandwidth=50GB, cores=4")
    assert (host.ram.total, host.ram.bandwidth, host.cpu.cores_physical) == (32e9, 50e9, 4)


def test_used_and_free_apply_to_every_gpu() -> None:
    used = host_from_spec("2x rtx-4090, used=1GiB")
    assert all(g.memory_free == 24564 * MiB - GiB for g in used.gpus)
    free = host_from_spec("2x rtx-4090, free=20GB")
    assert all(g.memory_free == 20 * 10**9 for g in free.gpus)
    assert free.vram_free == 40 * 10**9


def test_vram_overrides_the_total() -> None:
    host = host_from_spec("rtx-4090, vram=48GB")
    assert host.gpus[0].memory_total == host.gpus[0].memory_free == 48 * 10**9


@pytest.mark.parametrize("spec", ["cpu-only", "none", "CPU only", "cpu-only, ram=32GB", "ram=32GB"])
def test_cpu_only(spec: str) -> None:
    host = host_from_spec(spec)
    assert host.gpus == ()
    assert host.vram_total == 0
    assert "no GPU" in host.describe()


def test_runner_profile() -> None:
    host = host_from_spec("github-ubuntu-latest")
    assert host.gpus == ()
    assert host.ram.total == 16 * GiB
    assert (host.cpu.cores_physical, host.cpu.cores_logical) == (2, 4)
    assert host.notes == ()  # a runner is fully described
    assert host_from_spec("ubuntu-latest, ram=8GB").ram.total == 8 * 10**9


def test_gpu_runner_profile() -> None:
    host = host_from_spec("aws-p5-48xlarge")
    assert len(host.gpus) == 8
    assert host.gpus[7].uuid == "SIM-GPU-7"
    assert host.ram.total == 2048 * GiB


def test_apple_gpu_is_a_share_of_unified_memory() -> None:
    host = host_from_spec("m2-max")
    gpu = host.gpus[0]
    assert gpu.unified and gpu.vendor == "apple" and gpu.cuda_index is None
    assert host.ram.total == 96 * GiB
    assert gpu.memory_total == 72 * GiB == 73728 * MiB  # llama.cpp's recommendedMaxWorkingSetSize
    assert host.vram_total == 0  # unified memory is not counted as discrete VRAM
    smaller = host_from_spec("m3-max, ram=64GiB")
    assert smaller.gpus[0].memory_total == 48 * GiB


def test_apple_gpu_share_rule() -> None:
    assert apple_gpu_share(32 * GiB) == 32 * GiB * 2 // 3
    assert apple_gpu_share(36 * GiB) == 24 * GiB
    assert apple_gpu_share(192 * GiB) == 144 * GiB


def test_host_from_profile() -> None:
    assert len(host_from_profile("l40s", count=4).gpus) == 4
    assert host_from_profile(find_profile("t4")).gpus[0].name == "Tesla T4"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "'' is not a hardware spec like"),
        ("   ", "is not a hardware spec like"),
        ("h100,", "an item is empty"),
        ("0x h100", "'0x h100' is not a GPU count between 1 and 64 (item '0x h100' of '0x h100')"),
        ("65x h100", "is not a GPU count between 1 and 64"),
        (
            "4090, ram=16 gigs",
            "'16 gigs' is not a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of "
            "bytes; unknown unit 'gigs' (use B, KB..TB, KiB..TiB) "
            "(item 'ram=16 gigs' of '4090, ram=16 gigs')",
        ),
        ("4090, ram=0", "must be more than 0 (item 'ram=0' of '4090, ram=0')"),
        ("4090, ram_bw=fast", "'fast' is not a bandwidth like '80GB/s'"),
        ("4090, cpu=many", "'many' is not a number of CPU cores like 8"),
        ("4090, cpu=0", "between 1 and 4096"),
        ("4090, rams=1GB", "'rams' is not an option (ram=, ram_bw=, cpu=, used=, free=, vram=); "
                           "did you mean 'ram='?"),
        ("4090, ram=1GB, ram=2GB", "ram= is given twice"),
        ("h100, cpu-only", "'cpu-only' cannot be mixed with GPUs"),
        ("github-ubuntu-latest, h100", "runner 'github-ubuntu-latest' is a whole machine"),
        ("2x github-ubuntu-latest", "a runner is one whole machine"),
        ("2x m2-max", "an Apple chip ('m2-max') is the whole machine"),
        ("m2-max, rtx-4090", "an Apple chip ('m2-max') is the whole machine"),
        ("4090, used=1GB, free=2GB", "give used= or free=, not both"),
        (
            "rtx-4090, used=30GB",
            "'30.0 GB' is not a used= within GPU 0's total (NVIDIA GeForce RTX 4090, 25.8 GB) "
            "(hardware spec 'rtx-4090, used=30GB')",
        ),
        ("rtx-4090, free=30GB", "is not a free= within GPU 0's total"),
    ],
)  # fmt: skip
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        host_from_spec(spec)
    assert message in str(info.value)


def test_host_to_dict_round_trip() -> None:
    for spec in ("2x a100-80gb, ram=256GB", "m3-ultra", "github-ubuntu-latest", "h100, used=1GB"):
        host = host_from_spec(spec)
        assert Host.from_dict(host.to_dict()) == host


def test_parse_bandwidth() -> None:
    assert parse_bandwidth("3.35TB/s") == 3.35e12
    assert parse_bandwidth("80 GB/s") == 80e9
    assert parse_bandwidth("80gb/sec") == 80e9
    assert parse_bandwidth("80GB") == 80e9
    assert parse_bandwidth(1e9) == 1e9
    for bad in ("fast", "-1GB/s", 0, True, None):
        with pytest.raises(ProfileError):
            parse_bandwidth(bad)


# ----------------------------------------------------------------------------- TOML files


def _write(tmp_path: Path, text: str, name: str = "hw.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_profile_and_custom_cards(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[host]
ram = "256GB"
ram_bandwidth = "80GB/s"
cpu_cores = 32

[[gpu]]
profile = "h100-sxm"
count = 2

[[gpu]]
name = "Lab Accelerator"
memory = "80GB"
bandwidth = "3.35TB/s"
vendor = "NVIDIA"
compute_capability = "9.0"
used = "1GB"
""",
    )
    host = host_from_toml(path)
    assert host.simulated and host.source == str(path)
    assert [g.name for g in host.gpus] == ["NVIDIA H100 80GB HBM3"] * 2 + ["Lab Accelerator"]
    custom = host.gpus[2]
    assert (custom.memory_total, custom.memory_free) == (80 * 10**9, 79 * 10**9)
    assert custom.bandwidth == 3.35e12 and custom.vendor == "nvidia"
    assert custom.compute_capability == (9, 0) and custom.uuid == "SIM-GPU-2"
    assert (host.ram.total, host.ram.bandwidth, host.cpu.cores_physical) == (256e9, 80e9, 32)
    assert host.notes == ()
    assert resolve_hardware(str(path)) == host


def test_toml_runner_and_family(tmp_path: Path) -> None:
    runner = host_from_toml(_write(tmp_path, '[host]\nprofile = "aws-g6-xlarge"\n', "a.toml"))
    assert [g.name for g in runner.gpus] == ["NVIDIA L4"]
    family = host_from_toml(_write(tmp_path, '[[gpu]]\nprofile = "a100"\n', "b.toml"))
    assert family.gpus[0].name == "NVIDIA A100-SXM4-80GB"
    assert family.notes[0].startswith("'a100' is a family")
    apple = host_from_toml(
        _write(tmp_path, '[host]\nprofile = "m4-max"\nram = "64GiB"\n', "c.toml")
    )
    assert apple.gpus[0].memory_total == 48 * GiB
    modded = host_from_toml(
        _write(tmp_path, '[[gpu]]\nprofile = "rtx-4090"\nmemory = "48GB"\n', "d.toml")
    )
    assert modded.gpus[0].memory_total == 48 * 10**9
    assert modded.gpus[0].bandwidth == 1008e9
    cpu_only = host_from_toml(_write(tmp_path, '[host]\nram = "32GB"\n', "e.toml"))
    assert cpu_only.gpus == () and cpu_only.ram.total == 32 * 10**9


@pytest.mark.parametrize(
    "text", ["", "[host]\n", "gpu = []\n", '[host]\ncpu_cores = 8\nused = "1GB"\n']
)
def test_a_host_file_that_describes_nothing_is_an_error(tmp_path: Path, text: str) -> None:
    # It used to simulate a 64 GiB desktop without a word: an empty file is a mistake.
    path = _write(tmp_path, text, "empty.toml")
    with pytest.raises(ProfileError) as info:
        resolve_hardware(str(path), source="--llmfit-hardware")
    assert str(info.value) == (
        f"{str(path)!r} is not a hardware profile file; it describes no machine: give [[gpu]] "
        'tables (profile = "rtx-4090", or name and memory), a [host] profile (a runner or '
        'Apple chip such as "github-ubuntu-latest") or, for a CPU-only host, [host] ram'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[gpu]]\nname = "X"\n',
         "'[[gpu]] #1' is not a complete GPU table; field 'memory' is missing; "
         "give 'profile', or 'name' and 'memory' ({path})"),
        ('[[gpu]]\nprofile = "h100-sxm"\n[[gpu]]\nmemory = "8GB"\n',
         "'[[gpu]] #2' is not a complete GPU table; field 'name' is missing"),
        ('[[gpu]]\nname = "X"\nmemory = "lots"\n',
         "'lots' is not a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of bytes "
         "({path}, [[gpu]] #1, field 'memory')"),
        ('[[gpu]]\nprofile = "h100x"\n',
         "'h100x' is not a known GPU, Apple chip or runner profile; did you mean 'h100-sxm', "
         "'h100-pcie', 'h100-nvl'?"),
        ('[[gpu]]\nprofile = "rtx-4090"\ncount = 0\n',
         "0 is not a GPU count between 1 and 64 ({path}, [[gpu]] #1, field 'count')"),
        ('[[gpu]]\nprofile = "rtx-4090"\ncont = 2\n',
         "'cont' is not a field of [[gpu]] #1 (profile, count, name, memory, bandwidth, vendor, "
         "compute_capability, unified, used, free); did you mean 'count'? ({path})"),
        ('[host]\nram = "1TB"\nram_bw = "1GB/s"\n',
         "'ram_bw' is not a field of [host]"),
        ('[host]\ncpu_cores = "lots"\n',
         "'lots' is not a number of CPU cores like 8 ({path}, [host], field 'cpu_cores')"),
        ('[host]\nram_bandwidth = "quick"\n',
         "({path}, [host], field 'ram_bandwidth')"),
        ('[host]\nprofile = "rtx-4090"\n',
         "'rtx-4090' is not a runner or Apple chip profile; put cards in [[gpu]] tables"),
        ('[[gpu]]\nprofile = "colab-t4"\n', "'colab-t4' is not a GPU profile"),
        ('[[gpu]]\nprofile = "t4"\nname = "T"\n', "use either 'profile' or 'name' with 'memory'"),
        ('[[gpu]]\nname = "X"\nmemory = "1GB"\ncompute_capability = "nine"\n',
         "'nine' is not a compute capability like '8.9'"),
        ('[[gpu]]\nname = "X"\nmemory = "1GB"\nunified = "yes"\n', "'yes' is not true or false"),
        ('[[gpu]]\nprofile = "t4"\nused = "1GB"\nfree = "1GB"\n', "not both"),
        ('[gpu]\nprofile = "t4"\n', "'gpu' is not an array of tables; write [[gpu]], not [gpu]"),
        ('[machine]\nram = "1GB"\n', "'machine' is not a table of a profile file"),
        ('[host]\nprofile = "aws-p5-48xlarge"\n[[gpu]]\nprofile = "t4"\n', "is a whole machine"),
        ("[host\n", "is not a valid TOML file"),
    ],
)  # fmt: skip
def test_bad_toml_files(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        host_from_toml(path)
    assert message.format(path=path) in str(info.value)


def test_missing_toml_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ProfileError, match=r"is not an existing \.toml profile file; no such file"):
        host_from_toml(missing)
    with pytest.raises(ProfileError, match=r"no such file \(--llmfit-hardware\)"):
        resolve_hardware(str(missing), source="--llmfit-hardware")


def test_resolve_hardware_spec_or_file(tmp_path: Path) -> None:
    assert resolve_hardware("2x rtx-4090").source == "2x rtx-4090"
    assert len(resolve_hardware(" l4 ").gpus) == 1
    path = _write(tmp_path, '[[gpu]]\nprofile = "t4"\n', "ci")  # a file without .toml suffix
    assert resolve_hardware(str(path)).gpus[0].name == "Tesla T4"
    with pytest.raises(ProfileError, match="is not a hardware spec"):
        resolve_hardware("")
