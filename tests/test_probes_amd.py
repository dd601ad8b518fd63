"""The AMD probe against a fake sysfs tree in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_llmfit.hardware.probes import ProbeResult, amd

GIB = 2**30


def add_card(
    sysfs: Path,
    card: str,
    pci: str,
    *,
    vendor: str = "0x1002",
    device: str = "0x744c",
    total: int | None = 24 * GIB,
    used: int | None = GIB,
    product: str | None = None,
    unique_id: str | None = None,
) -> None:
    real = sysfs / "devices" / "pci0000:00" / pci
    real.mkdir(parents=True)
    (real / "vendor").write_text(vendor + "\n")
    (real / "device").write_text(device + "\n")
    if total is not None:
        (real / "mem_info_vram_total").write_text(f"{total}\n")
    if used is not None:
        (real / "mem_info_vram_used").write_text(f"{used}\n")
    if product is not None:
        (real / "product_name").write_text(product + "\n")
    if unique_id is not None:
        (real / "unique_id").write_text(unique_id + "\n")
    node = sysfs / "class" / "drm" / card
    node.mkdir(parents=True)
    (node / "device").symlink_to(real)


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    (root / "class" / "drm").mkdir(parents=True)
    (root / "class" / "drm" / "card0-DP-1").mkdir()  # a connector, not a card
    (root / "class" / "drm" / "renderD128").mkdir()
    return root


def test_no_drm_directory_is_silent(tmp_path: Path) -> None:
    result = amd.probe({}, sysfs_root=tmp_path / "nothing")
    assert result == ProbeResult()


def test_reads_vram_and_names(sysfs: Path) -> None:
    add_card(sysfs, "card0", "0000:03:00.0", total=24 * GIB, used=2 * GIB)
    add_card(
        sysfs,
        "card1",
        "0000:04:00.0",
        device="0x74a1",
        total=192 * GIB,
        used=0,
        product="AMD Instinct MI300X OAM",
        unique_id="e2b4e0a3c25f4e29",
    )
    result = amd.probe({}, sysfs_root=sysfs)
    assert result.problems == ()
    first, second = result.gpus
    assert (first.vendor, first.name, first.index) == ("amd", "AMD Radeon RX 7900 XTX/XT", 0)
    assert (first.memory_total, first.memory_free) == (24 * GIB, 22 * GIB)
    assert first.bandwidth is None and first.cuda_index is None
    assert (second.name, second.index, second.uuid) == (
        "AMD Instinct MI300X OAM",
        1,
        "GPU-e2b4e0a3c25f4e29",
    )


def test_other_vendors_are_ignored(sysfs: Path) -> None:
    add_card(sysfs, "card0", "0000:01:00.0", vendor="0x10de")  # NVIDIA
    add_card(sysfs, "card1", "0000:00:02.0", vendor="0x8086")  # Intel
    assert amd.probe({}, sysfs_root=sysfs).gpus == ()


def test_unknown_device_id_is_named_by_id(sysfs: Path) -> None:
    add_card(sysfs, "card0", "0000:03:00.0", device="0x1234")
    assert amd.probe({}, sysfs_root=sysfs).gpus[0].name == "AMD GPU 0x1234"


def test_ordered_by_pci_address_not_card_number(sysfs: Path) -> None:
    add_card(sysfs, "card0", "0000:83:00.0", total=8 * GIB)
    add_card(sysfs, "card1", "0000:03:00.0", total=16 * GIB)
    gpus = amd.probe({}, sysfs_root=sysfs).gpus
    assert [(g.memory_total, g.index) for g in gpus] == [(16 * GIB, 0), (8 * GIB, 1)]


def test_missing_vram_files(sysfs: Path) -> None:
    add_card(sysfs, "card0", "0000:03:00.0", total=None)
    add_card(sysfs, "card1", "0000:04:00.0", used=None, total=16 * GIB)
    result = amd.probe({}, sysfs_root=sysfs)
    (gpu,) = result.gpus
    assert gpu.memory_free == 16 * GIB
    assert len(result.problems) == 2
    assert "VRAM size unreadable; skipped" in result.problems[0]
    assert "VRAM use unreadable" in result.problems[1]


@pytest.fixture
def three(sysfs: Path) -> Path:
    for n, size in enumerate((8, 16, 24)):
        add_card(
            sysfs,
            f"card{n}",
            f"0000:0{n + 3}:00.0",
            total=size * GIB,
            used=0,
            unique_id=f"{n}{n}{n}{n}abcd",
        )
    return sysfs


def sizes(result: ProbeResult) -> list[int]:
    assert [g.index for g in result.gpus] == list(range(len(result.gpus)))
    return [g.memory_total // GIB for g in result.gpus]


def test_hip_visible_devices(three: Path) -> None:
    assert sizes(amd.probe({"HIP_VISIBLE_DEVICES": "2,0"}, sysfs_root=three)) == [24, 8]


def test_rocr_then_hip_indices_compose(three: Path) -> None:
    env = {"ROCR_VISIBLE_DEVICES": "1,2", "HIP_VISIBLE_DEVICES": "1"}
    assert sizes(amd.probe(env, sysfs_root=three)) == [24]


def test_rocr_visible_devices_by_uuid(three: Path) -> None:
    assert sizes(amd.probe({"ROCR_VISIBLE_DEVICES": "GPU-1111"}, sysfs_root=three)) == [16]


def test_invalid_entry_stops_the_list(three: Path) -> None:
    result = amd.probe({"HIP_VISIBLE_DEVICES": "1,5,0"}, sysfs_root=three)
    assert sizes(result) == [16]
    assert result.problems == (
        "HIP_VISIBLE_DEVICES='1,5,0': entry '5' matches no AMD GPU; the list stops there "
        "(1 device(s) visible)",
    )


def test_empty_visible_devices_hides_all(three: Path) -> None:
    result = amd.probe({"HIP_VISIBLE_DEVICES": ""}, sysfs_root=three)
    assert result.gpus == () and result.problems == ()
