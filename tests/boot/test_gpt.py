"""The GPT disk as AVF's VM manager assembles it, checked with sgdisk (gdisk) and blkid."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from avfrepo.boot import gpt

from ..conftest import require_tools


def parts(tmp_path, sizes=(3 * 1024 * 1024 + 512, 5 * 1024 * 1024)):
    out = []
    for i, (label, size) in enumerate(zip(("EFI", "ROOT"), sizes)):
        f = tmp_path / f"{label.lower()}_part"
        f.write_bytes(bytes([65 + i]) * 4096 + b"\0" * (size - 8192) + bytes([97 + i]) * 4096)
        out.append(gpt.Part(label, str(uuid.uuid4()), f, writable=label == "ROOT"))
    return out


def test_partitions_in_order_with_their_guids_and_the_generic_linux_type(tmp_path):
    ps = parts(tmp_path)
    placed = gpt.assemble(ps, tmp_path / "disk.img")
    table = gpt.read_table(tmp_path / "disk.img")
    assert [(e["number"], e["name"], e["guid"], e["type"]) for e in table] == [
        (1, "EFI", ps[0].guid, gpt.LINUX_FS_TYPE), (2, "ROOT", ps[1].guid, gpt.LINUX_FS_TYPE)]
    assert all(e["type"] != gpt.ESP_TYPE for e in table)          # not even the ESP has the ESP type
    data = (tmp_path / "disk.img").read_bytes()
    for p, spec in zip(placed, ps):
        assert p.offset % gpt.ALIGN == 0
        assert data[p.offset:p.offset + spec.image.stat().st_size] == spec.image.read_bytes()
    assert placed[0].last_lba < placed[1].first_lba


def test_sgdisk_reads_the_disk_as_valid(tmp_path):
    require_tools("sgdisk")
    ps = parts(tmp_path)
    gpt.assemble(ps, tmp_path / "disk.img")
    verify = subprocess.run(["sgdisk", "--verify", str(tmp_path / "disk.img")], capture_output=True, text=True)
    assert verify.returncode == 0 and "No problems found" in verify.stdout, verify.stdout
    for n, p in enumerate(ps, 1):
        info = subprocess.run(["sgdisk", "-i", str(n), str(tmp_path / "disk.img")], capture_output=True,
                              text=True).stdout
        assert p.guid.upper() in info and "0FC63DAF-8483-4772-8E79-3D69D8477DE4" in info
        assert f"Partition name: '{p.label}'" in info


def test_layout_rejects_an_empty_partition(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        gpt.layout([gpt.Part("EFI", str(uuid.uuid4()), tmp_path / "e", False)])


def test_read_table_detects_damage(tmp_path):
    gpt.assemble(parts(tmp_path), tmp_path / "disk.img")
    with open(tmp_path / "disk.img", "r+b") as f:
        f.seek(2 * 512 + 60)
        f.write(b"X")
    with pytest.raises(ValueError, match="entries CRC mismatch"):
        gpt.read_table(tmp_path / "disk.img")
