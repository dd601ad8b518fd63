"""The catalog as data: the built-in data/catalog.toml, and user catalog files through the
library, the pytest plugin (--llmfit-catalog, LLMFIT_CATALOG, ini llmfit_catalog) and the
command line (--catalog)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from pytest_llmfit.errors import LlmfitError, ProfileError
from pytest_llmfit.hardware.catalog import builtin_catalog, catalog, find_profile, load_catalog
from pytest_llmfit.hardware.render import render_catalog
from pytest_llmfit.hardware.specs import host_from_spec, resolve_hardware

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

MiB = 2**20
GiB = 2**30
GB = 10**9

LAB = """
[hosts.lab]
ram = "512GiB"
ram_bandwidth = "300GB/s"
cpu_cores = 32

[[gpu]]
id = "my-card"
name = "ACME Accelerator 96GB"
vendor = "NVIDIA"
memory_mib = 98304
bandwidth = "4TB/s"
compute_capability = "9.0"
host = "lab"
aliases = ["acme-96"]
fp16_tflops = 400.0
int8_tops = 1600
source = "measured: nvidia-smi on our lab machine"

[[runner]]
id = "lab-box"
name = "Our lab box: 2x ACME"
ram = "1TiB"
ram_bandwidth = "400GB/s"
cpu_cores = 64
gpus = [{ profile = "my-card", count = 2 }]
"""


def _lab(tmp_path: pathlib.Path, text: str = LAB, name: str = "lab.toml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- built in


@pytest.mark.parametrize(
    ("card", "mib", "gbps", "cc", "ram_gib"),
    [
        ("rtx-3090", 24576, 936, (8, 6), 64),
        ("rtx-4090", 24564, 1008, (8, 9), 64),
        ("rtx-5090", 32607, 1792, (12, 0), 64),
        ("t4", 15360, 320, (7, 5), 32),
        ("a10g", 23028, 600, (8, 6), 32),
        ("l40s", 46068, 864, (8, 9), 128),
        ("a100-80gb-pcie", 81920, 1935, (8, 0), 128),
        ("h100-sxm", 81559, 3350, (9, 0), 256),
        ("h200", 143771, 4800, (9, 0), 256),
        ("b200", 183359, 8000, (10, 0), 256),
        ("mi300x", 196288, 5300, None, 256),
    ],
)
def test_builtin_cards_keep_the_figures_of_the_old_tables(
    card: str, mib: int, gbps: int, cc: tuple[int, int] | None, ram_gib: int
) -> None:
    profile = find_profile(card)
    assert (profile.kind, profile.memory, profile.bandwidth) == ("gpu", mib * MiB, gbps * GB)
    assert profile.compute_capability == cc
    assert profile.host.ram == ram_gib * GiB
    assert profile.catalog_file is None
    # Throughput is optional in the schema: unset (None) or a positive datasheet figure.
    for figure in (profile.fp16_tflops, profile.fp32_tflops, profile.int8_tops):
        assert figure is None or figure > 0


def test_builtin_catalog_has_every_entry_in_order() -> None:
    ids = [p.id for p in catalog()]
    assert ids[:3] == ["rtx-3090", "rtx-4090", "rtx-5090"]
    kinds = [p.kind for p in catalog()]
    assert kinds == sorted(kinds, key=("gpu", "soc", "runner").index)  # cards, chips, runners
    old_runners = ["github-ubuntu-latest", "github-gpu-t4", "colab-t4", "aws-g5-xlarge",
                   "aws-g6-xlarge", "aws-p4d-24xlarge", "aws-p5-48xlarge"]  # fmt: skip
    assert [i for i in ids if i in old_runners] == old_runners
    old_socs = ["m2-max", "m2-ultra", "m3-max", "m4-max", "m3-ultra"]
    assert [i for i in ids if i in old_socs] == old_socs
    m2 = find_profile("m2-max")
    assert (m2.memory, m2.host.ram, m2.host.cpu_cores) == (72 * GiB, 96 * GiB, 12)
    colab = find_profile("colab-t4")
    assert (colab.host.ram, colab.host.cpu_threads, colab.memory) == (
        12_700 * 10**6,
        2,
        15360 * MiB,
    )
    assert find_profile("aws-p5-48xlarge").memory == 8 * 81559 * MiB
    assert find_profile("github-ubuntu-latest").vendor == ""
    assert builtin_catalog().files == ()


def test_the_catalog_is_package_data() -> None:
    from importlib import resources

    text = (resources.files("pytest_llmfit.hardware") / "data" / "catalog.toml").read_text()
    tables = sum(text.count(f"\n[[{kind}]]\n") for kind in ("gpu", "soc", "runner"))
    assert tables == len(catalog())
    root = pathlib.Path(__file__).parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    assert '"pytest_llmfit.hardware" = ["data/*.toml"]' in pyproject


# ----------------------------------------------------------------------------- user files


def test_a_user_card_is_usable_in_specs_and_files(tmp_path: pathlib.Path) -> None:
    cat = load_catalog([_lab(tmp_path)])
    host = host_from_spec("2x my-card", catalog=cat)
    assert [g.name for g in host.gpus] == ["ACME Accelerator 96GB"] * 2
    assert host.gpus[0].memory_total == 96 * GiB and host.gpus[0].vendor == "nvidia"
    assert host.gpus[0].bandwidth == 4e12 and host.gpus[0].compute_capability == (9, 0)
    assert host.ram.total == 2 * 512 * GiB  # the user's host class, per card
    card = cat.find("ACME Accelerator 96GB")  # the driver's name, as for built-in cards
    assert (card.fp16_tflops, card.fp32_tflops, card.int8_tops) == (400.0, None, 1600.0)
    assert card.to_dict()["catalog_file"] == str(tmp_path / "lab.toml")
    assert cat.find("acme-96") is card
    box = resolve_hardware("lab-box", catalog=cat)
    assert len(box.gpus) == 2 and box.ram.total == 2**40
    assert cat.find("lab-box").memory == 2 * 96 * GiB
    hostfile = tmp_path / "hw.toml"
    hostfile.write_text('[[gpu]]\nprofile = "my-card"\ncount = 3\n')
    assert len(resolve_hardware(str(hostfile), catalog=cat).gpus) == 3
    # Built-in names still work, and the built-in catalog is untouched.
    assert host_from_spec("rtx-4090, my-card", catalog=cat).vram_total == (24564 + 98304) * MiB
    with pytest.raises(ProfileError, match="'my-card' is not a known GPU"):
        host_from_spec("my-card")


def test_a_user_entry_replaces_a_builtin_id(tmp_path: pathlib.Path) -> None:
    path = _lab(
        tmp_path,
        '[[gpu]]\nid = "t4"\nname = "Tesla T4 (our firmware)"\nvendor = "nvidia"\n'
        'memory_mib = 16000\nbandwidth = "320GB/s"\nhost = "cloud"\naliases = ["tesla-t4"]\n',
        "t4.toml",
    )
    cat = load_catalog([path])
    t4 = cat.find("t4")
    assert t4.memory == 16000 * MiB and t4.catalog_file == str(path)
    assert [p.id for p in cat.profiles] == [p.id for p in catalog()]  # same place in the list
    assert cat.replaces_builtin(t4)
    # Runners built on the card follow it.
    assert cat.find("colab-t4").memory == 16000 * MiB
    assert resolve_hardware("github-gpu-t4", catalog=cat).gpus[0].memory_total == 16000 * MiB
    # The replaced entry's other names went with it; the ones the user lists stay.
    assert cat.find("tesla-t4") is t4
    with pytest.raises(ProfileError, match="'nvidia-t4' is not a known GPU"):
        cat.find("nvidia-t4")
    assert find_profile("t4").memory == 15360 * MiB  # the built-in catalog is unchanged


def test_later_user_files_win(tmp_path: pathlib.Path) -> None:
    first = _lab(tmp_path)
    second = _lab(tmp_path, LAB.replace("98304", "49152").split("[[runner]]")[0], "b.toml")
    second.write_text(
        second.read_text()
        .replace("[hosts.lab]", "[hosts.lab2]")
        .replace('host = "lab"', 'host = "lab2"')
    )
    cat = load_catalog([first, second])
    assert cat.find("my-card").memory == 48 * GiB
    assert cat.find("lab-box").memory == 2 * 48 * GiB
    assert cat.files == (str(first), str(second))


def test_render_marks_user_entries(tmp_path: pathlib.Path) -> None:
    path = _lab(tmp_path)
    path.write_text(
        LAB + '\n[[gpu]]\nid = "h200"\nname = "NVIDIA H200"\nvendor = "nvidia"\n'
        'memory_mib = 143000\nbandwidth = "4.8TB/s"\nhost = "hpc"\n'
    )
    text = render_catalog(load_catalog([path]))
    lines = text.splitlines()
    mine = next(line for line in lines if line.startswith("my-card "))
    assert mine.split()[:5] == ["my-card", "gpu", "98304", "MiB", "4000"]
    assert mine.endswith(f"ACME Accelerator 96GB  [user catalog {path}]")
    h200 = next(line for line in lines if line.startswith("h200 "))
    assert h200.endswith(f"NVIDIA H200  [user catalog {path}, replaces built-in]")
    box = next(line for line in lines if line.startswith("lab-box "))
    assert "2x 98304 MiB" in box
    rtx = next(line for line in lines if line.startswith("rtx-4090 "))
    assert rtx.endswith("NVIDIA GeForce RTX 4090")  # built-in rows are not marked
    assert lines[-1] == f"user catalog: {path}"
    assert render_catalog() == render_catalog(builtin_catalog())
    assert "user catalog" not in render_catalog()


# ----------------------------------------------------------------------------- bad files

GPU = '[[gpu]]\nid = "my-card"\nname = "X"\nvendor = "nvidia"\nbandwidth = "1TB/s"\n'
NAME = "a name like 'rtx-4090' (lowercase letters, digits, '.', '-', '_')"

BAD: list[tuple[str, str, str]] = [
    (
        "missing-field",
        '[[gpu]]\nid = "my-card"\nname = "X"\nvendor = "nvidia"\nmemory_mib = 1024\n',
        "'my-card' is not a complete [[gpu]] entry; field 'bandwidth' is missing; an entry "
        "needs id, name, vendor, bandwidth and memory_mib or memory ({f}, [[gpu]] #1 'my-card')",
    ),
    (
        "missing-memory",
        GPU,
        "'my-card' is not a complete [[gpu]] entry; field 'memory_mib' is missing; an entry "
        "needs id, name, vendor, bandwidth and memory_mib or memory ({f}, [[gpu]] #1 'my-card')",
    ),
    (
        "missing-id",
        '[[gpu]]\nname = "X"\n',
        "'[[gpu]] #1' is not a complete [[gpu]] entry; field 'id' is missing; an entry needs "
        "id, name, vendor, bandwidth and memory_mib or memory ({f}, [[gpu]] #1)",
    ),
    (
        "wrong-type",
        GPU + 'memory_mib = "lots"\n',
        "'lots' is not a whole number of MiB like 24564 ({f}, [[gpu]] #1 'my-card', field "
        "'memory_mib')",
    ),
    (
        "negative-memory",
        GPU + "memory_mib = -5\n",
        "-5 is not a whole number of MiB like 24564; must be more than 0 ({f}, [[gpu]] #1 "
        "'my-card', field 'memory_mib')",
    ),
    (
        "negative-memory-size",
        GPU + 'memory = "-5GB"\n',
        "'-5GB' is not a size like '24GB', '16GiB', '512 MiB', '1.5TB' or a number of bytes; "
        "sizes cannot be negative ({f}, [[gpu]] #1 'my-card', field 'memory')",
    ),
    (
        "unknown-key",
        GPU + "memory_mib = 1024\nmemroy = 5\n",
        "'memroy' is not a field of [[gpu]] #1 (id, name, vendor, memory_mib, memory, "
        "bandwidth, compute_capability, host, aliases, source, fp16_tflops, fp32_tflops, "
        "int8_tops); did you mean 'memory'? ({f})",
    ),
    (
        "unknown-table",
        '[[card]]\nid = "x"\n',
        "'card' is not a table of a catalog file ([hosts.NAME], [[gpu]], [[soc]], [[runner]], "
        "[families]) ({f})",
    ),
    (
        "unknown-table-close",
        '[[gpus]]\nid = "x"\n',
        "'gpus' is not a table of a catalog file ([hosts.NAME], [[gpu]], [[soc]], [[runner]], "
        "[families]); did you mean 'gpu'? ({f})",
    ),
    (
        "not-an-array",
        '[gpu]\nid = "x"\n',
        "'gpu' is not an array of tables; write [[gpu]], not [gpu] ({f})",
    ),
    (
        "bad-bandwidth",
        GPU.replace('"1TB/s"', '"fast"') + "memory_mib = 1024\n",
        "'fast' is not a bandwidth like '80GB/s', '3.35TB/s' or a number of bytes per second "
        "({f}, [[gpu]] #1 'my-card', field 'bandwidth')",
    ),
    (
        "bad-tflops",
        GPU + 'memory_mib = 1024\nfp16_tflops = "many"\n',
        "'many' is not a number like 82.6 (datasheet, dense) ({f}, [[gpu]] #1 'my-card', "
        "field 'fp16_tflops')",
    ),
    (
        "bad-id",
        GPU.replace('"my-card"', '"My Card"') + "memory_mib = 1024\n",
        f"'My Card' is not {NAME} ({{f}}, [[gpu]] #1, field 'id')",
    ),
    (
        "id-reads-as-count",
        GPU.replace('"my-card"', '"2x-card"') + "memory_mib = 1024\n",
        f"'2x-card' is not {NAME}; '2x ...' reads as a count ({{f}}, [[gpu]] #1, field 'id')",
    ),
    (
        "aliases-not-a-list",
        GPU + 'memory_mib = 1024\naliases = "mc"\n',
        '\'mc\' is not a list of names like ["4090", "geforce-rtx-4090"] ({f}, [[gpu]] #1 '
        "'my-card', field 'aliases')",
    ),
    (
        "duplicate-id",
        GPU + "memory_mib = 1024\n" + GPU + "memory_mib = 2048\n",
        "'my-card' is not an id used once in a catalog file; [[gpu]] #1 'my-card' has it too "
        "({f}, [[gpu]] #2 'my-card', field 'id')",
    ),
    (
        "alias-clash",
        GPU + 'memory_mib = 1024\naliases = ["4090"]\n',
        "'4090' is not a name no other catalog entry has; 'rtx-4090' (built in) is already "
        "called that ({f}, [[gpu]] #1 'my-card')",
    ),
    (
        "unknown-host-class",
        GPU + 'memory_mib = 1024\nhost = "lab"\n',
        "'lab' is not a host class (desktop, cloud, server, hpc); define others in "
        "[hosts.NAME] tables ({f}, [[gpu]] #1 'my-card', field 'host')",
    ),
    (
        "redefined-host-class",
        '[hosts.desktop]\nram = "1GB"\nram_bandwidth = "1GB/s"\ncpu_cores = 1\n',
        "'desktop' is not a new host class; a host class cannot be redefined; give it another "
        "name ({f}, [hosts.desktop])",
    ),
    (
        "runner-unknown-card",
        '[[runner]]\nid = "box"\nname = "Box"\nram = "1TB"\nram_bandwidth = "1TB/s"\n'
        'cpu_cores = 8\ngpus = [{ profile = "h900", count = 2 }]\n',
        "'h900' is not the id of a [[gpu]] entry of the catalog ({f}, [[runner]] #1 'box', "
        "gpus #1, field 'profile')",
    ),
    (
        "family-unknown-variant",
        '[families]\nacme = ["acme-1"]\n',
        "'acme-1' is not the id of a catalog entry ({f}, [families], field 'acme')",
    ),
    (
        "not-toml",
        "[[gpu]\n",
        "{f!r} is not a valid TOML file; Expected ']]' at the end of an array declaration "
        "(at line 1, column 6)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_user_catalogs_are_one_clear_line(
    tmp_path: pathlib.Path, text: str, expected: str
) -> None:
    path = _lab(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_catalog([path])
    line = str(info.value)
    assert "\n" not in line
    assert line == expected.format(f=str(path))


def test_a_missing_user_catalog_names_its_source(tmp_path: pathlib.Path) -> None:
    with pytest.raises(LlmfitError) as info:
        load_catalog([tmp_path / "nope.toml"], source="environment LLMFIT_CATALOG")
    assert str(info.value) == (
        f"{str(tmp_path / 'nope.toml')!r} is not an existing .toml catalog file; no such file "
        "(environment LLMFIT_CATALOG)"
    )


# ----------------------------------------------------------------------------- the plugin

TESTS = """
import pytest
@pytest.mark.requires_vram("200GB")
def test_fits(): pass
@pytest.mark.requires_vram("250GB")
def test_too_big(): pass
"""


def test_plugin_option_adds_a_card(pytester: pytest.Pytester) -> None:
    _lab(pytester.path)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-rs", "--llmfit-catalog=lab.toml", "--llmfit-hardware=2x my-card")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * requires_vram 250GB: needs 250.0 GB VRAM; have 206.2 GB VRAM "
         "(2x ACME Accelerator 96GB)*"]
    )  # fmt: skip


def test_plugin_env_and_ini_catalogs(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "hw").mkdir()
    _lab(pytester.path / "hw")
    pytester.makepyfile(TESTS)
    # An ini path is relative to the ini file, wherever pytest runs from.
    pytester.makeini("[pytest]\nllmfit_catalog = hw/lab.toml\nllmfit_hardware = lab-box\n")
    pytester.runpytest().assert_outcomes(passed=1, skipped=1)
    monkeypatch.setenv("LLMFIT_CATALOG", str(pytester.path / "nope.toml"))
    result = pytester.runpytest()  # the environment beats the ini file
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-llmfit: '*nope.toml' is not an existing .toml catalog file; no such "
         "file (environment LLMFIT_CATALOG)"]
    )  # fmt: skip


def test_plugin_bad_catalog_is_a_usage_error_even_without_hardware(
    pytester: pytest.Pytester,
) -> None:
    _lab(pytester.path, GPU + "memory_mib = -5\n")
    pytester.makepyfile("def test_x(): pass\n")
    result = pytester.runpytest("--llmfit-catalog=lab.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-llmfit: -5 is not a whole number of MiB like 24564; must be more than "
         "0 (lab.toml, [[gpu]] #1 'my-card', field 'memory_mib')"]
    )  # fmt: skip


def test_plugin_expect_uses_the_catalog(pytester: pytest.Pytester) -> None:
    _lab(pytester.path)
    pytester.makepyfile("def test_x(): pass\n")
    result = pytester.runpytest(
        "--llmfit-catalog=lab.toml", "--llmfit-hardware=2x acme-96", "--llmfit-expect=lab-box"
    )
    result.assert_outcomes(passed=1)


# ----------------------------------------------------------------------------- the CLI


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "pytest_llmfit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_profiles_lists_the_user_catalog(tmp_path: pathlib.Path) -> None:
    path = _lab(tmp_path)
    for args in (("--catalog", str(path), "profiles"), ("profiles", "--catalog", str(path))):
        done = _cli(*args)
        assert done.returncode == 0, done.stderr
        assert f"ACME Accelerator 96GB  [user catalog {path}]" in done.stdout
        assert "rtx-4090" in done.stdout
    done = _cli("profiles", "--json", env={"LLMFIT_CATALOG": str(path)})
    data = {p["id"]: p for p in json.loads(done.stdout)}
    assert data["my-card"]["catalog_file"] == str(path)
    assert data["my-card"]["fp16_tflops"] == 400.0
    assert data["rtx-4090"]["catalog_file"] is None


def test_cli_plan_on_a_user_card(tmp_path: pathlib.Path, stub_8b: pathlib.Path) -> None:
    path = _lab(tmp_path)
    done = _cli("plan", str(stub_8b), "--hardware", "2x my-card", "--catalog", str(path), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["fits"] is True
    assert data["plan"]["mode"] == "gpu"
    unknown = _cli("plan", str(stub_8b), "--hardware", "2x my-card")
    assert unknown.returncode == 2
    assert "'my-card' is not a known GPU" in unknown.stderr


def test_cli_bad_catalog_is_one_line(tmp_path: pathlib.Path) -> None:
    path = _lab(tmp_path, GPU + "memory_mib = 1024\nmemroy = 5\n")
    done = _cli("--catalog", str(path), "profiles")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pytest-llmfit: error: 'memroy' is not a field of [[gpu]] #1")
    missing = _cli("profiles", env={"LLMFIT_CATALOG": str(tmp_path / "nope.toml")})
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("no such file (environment LLMFIT_CATALOG)")
