"""images.tar.gz read as the Terminal app reads it: what it accepts and what it refuses."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from avfrepo.boot import archive
from avfrepo.boot.errors import ImageRefused

EFI_GUID = "6f4a1b2c-0d3e-4f50-8a6b-7c8d9e0f1a2b"
ROOT_GUID = "1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d"


def vm_config(**over) -> dict:
    cfg = {"name": "debian", "memory_mib": 1024, "cpu_topology": "match_host", "auto_memory_balloon": True,
           "network": True,
           "disks": [{"partitions": [
               {"label": "EFI", "path": "$PAYLOAD_DIR/efi_part", "writable": True, "guid": EFI_GUID},
               {"label": "ROOT", "path": "$PAYLOAD_DIR/root_part", "writable": True, "guid": ROOT_GUID}],
               "writable": True}],
           "sharedPath": [{"sharedPath": "/storage/emulated"}]}
    cfg.update(over)
    return cfg


def make_archive(path: Path, members: dict[str, bytes], *, sparse: str | None = None) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if name == sparse:
                info.type = tarfile.GNUTYPE_SPARSE
            tf.addfile(info, io.BytesIO(data))
    return path


def good_members(**over) -> dict[str, bytes]:
    m = {"build_id": b"avfrepo archlinuxarm-aarch64 avf-base-1-1 20261201T1200Z 2026\n",
         "vm_config.json": json.dumps(vm_config()).encode(), "README": b"readme\n",
         "efi_part": b"E" * 4096, "root_part": b"R" * 8192}
    m.update(over)
    return m


def test_reads_a_good_archive_and_extracts_the_partitions(tmp_path):
    img = archive.read(make_archive(tmp_path / "images.tar.gz", good_members()), tmp_path / "out")
    assert img.build_id.endswith("2026")
    assert [(p.label, p.member, p.guid, p.writable) for p in img.vm_config.partitions] == [
        ("EFI", "efi_part", EFI_GUID, True), ("ROOT", "root_part", ROOT_GUID, True)]
    assert img.vm_config.memory_mib == 1024 and img.vm_config.balloon and img.vm_config.cpus == "match_host"
    assert img.member("root_part").read_bytes() == b"R" * 8192
    assert not (tmp_path / "out" / "README").exists()       # only what the VM needs


@pytest.mark.parametrize("members, message", [
    ({"build_id": None}, "has no build_id"),
    ({"vm_config.json": None}, "has no vm_config.json"),
    ({"build_id": b"avfrepo build 20241201 2024\n"}, "'2024' is not a 4-digit year >= 2025"),
    ({"build_id": b"avfrepo build 2026 nightly\n"}, "'nightly' is not a 4-digit year"),
    ({"build_id": b"   \n"}, "build_id is empty"),
    ({"vm_config.json": json.dumps(vm_config(name="arch")).encode()}, "\"name\" is 'arch', not \"debian\""),
    ({"vm_config.json": b"{not json"}, "vm_config.json is not JSON"),
    ({"vm_config.json": b"[" * 100_000 + b"]" * 100_000}, "vm_config.json is not JSON avfrepo reads (nested deeper"),
    ({"root_part": None}, "names $PAYLOAD_DIR/root_part (partition ROOT), which images.tar.gz does not have"),
    ({"vm_config.json": json.dumps(vm_config(disks=[{"partitions": [
        {"label": "ROOT", "path": "$PAYLOAD_DIR/../etc/passwd", "guid": ROOT_GUID}]}])).encode()},
     "is not $PAYLOAD_DIR/<file of the archive>"),
    ({"vm_config.json": json.dumps(vm_config(disks=[{"partitions": [
        {"label": "ROOT", "path": "$PAYLOAD_DIR/root_part", "guid": "not-a-guid"}]}])).encode()},
     "\"guid\" 'not-a-guid' is not a GUID"),
    ({"vm_config.json": json.dumps(vm_config(disks=[{"partitions": [
        {"label": "A", "path": "$PAYLOAD_DIR/efi_part", "guid": ROOT_GUID},
        {"label": "B", "path": "$PAYLOAD_DIR/root_part", "guid": ROOT_GUID}]}])).encode()},
     "two partitions have the same GUID"),
    ({"vm_config.json": json.dumps(vm_config(disks=[])).encode()}, "has no \"disks\""),
])
def test_refuses_what_the_app_refuses_in_one_line(tmp_path, members, message):
    m = {k: v for k, v in good_members(**members).items() if v is not None}
    with pytest.raises(ImageRefused) as exc:
        archive.read(make_archive(tmp_path / "images.tar.gz", m), tmp_path / "out")
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "out").exists()          # refused before anything was extracted


def test_refuses_a_sparse_member(tmp_path):
    path = make_archive(tmp_path / "images.tar.gz", good_members(), sparse="root_part")
    with pytest.raises(ImageRefused, match="root_part is a sparse file"):
        archive.read(path, tmp_path / "out")


def test_refuses_what_is_not_a_gzip_tar(tmp_path):
    bad = tmp_path / "images.tar.gz"
    bad.write_bytes(b"PK\x03\x04 a zip, not a tar")
    with pytest.raises(ImageRefused, match="is not a gzip'd tar archive"):
        archive.read(bad, tmp_path / "out")
    with pytest.raises(ImageRefused, match="no such file"):
        archive.read(tmp_path / "missing.tar.gz", tmp_path / "out")


def test_refuses_a_link_member(tmp_path):
    path = tmp_path / "images.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in good_members().items():
            if name == "efi_part":
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, "/dev/sda"
                tf.addfile(info)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageRefused, match="efi_part is not a regular file"):
        archive.read(path, tmp_path / "out")


def test_reads_the_gzip_stream_once_when_the_texts_come_first(tmp_path, monkeypatch):
    import gzip
    rewinds = []
    real = gzip._GzipReader._rewind
    monkeypatch.setattr(gzip._GzipReader, "_rewind", lambda self: (rewinds.append(1), real(self))[1])
    img = archive.read(make_archive(tmp_path / "images.tar.gz", good_members()), tmp_path / "out")
    assert img.member("efi_part").read_bytes() == b"E" * 4096 and rewinds == []
    # a partition ahead of vm_config.json: found by a second pass, the same result
    m = good_members()
    first = {"efi_part": m.pop("efi_part")}
    img = archive.read(make_archive(tmp_path / "late.tar.gz", {**first, **m}), tmp_path / "late")
    assert img.member("efi_part").read_bytes() == b"E" * 4096 and img.member("root_part").read_bytes() == b"R" * 8192
    assert rewinds and sorted(p.name for p in (tmp_path / "late").iterdir()) == [
        "build_id", "efi_part", "root_part", "vm_config.json"]


def test_a_truncated_archive_is_damaged_and_leaves_nothing(tmp_path):
    good = make_archive(tmp_path / "good.tar.gz", good_members(root_part=bytes(range(256)) * 4096))
    cut = tmp_path / "images.tar.gz"
    cut.write_bytes(good.read_bytes()[:good.stat().st_size * 2 // 3])
    with pytest.raises(ImageRefused, match="images.tar.gz: the archive is damaged"):
        archive.read(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_last_member_of_a_name_counts_and_a_refusal_leaves_nothing(tmp_path):
    path = tmp_path / "images.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name, data in [*good_members().items(), ("efi_part", None)]:
            info = tarfile.TarInfo(name)
            if data is None:                          # efi_part again, now a link: the app would get the link
                info.type, info.linkname = tarfile.SYMTYPE, "/dev/sda"
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageRefused, match="efi_part is not a regular file"):
        archive.read(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()            # the first efi_part was written, then taken back
    # a second vm_config.json naming another root file: that one is extracted, not the first one's
    other = vm_config(disks=[{"partitions": [{"label": "ROOT", "path": "$PAYLOAD_DIR/root2", "writable": True,
                                              "guid": ROOT_GUID}]}])
    m = {**good_members(), "root2": b"2" * 512}
    path2 = tmp_path / "two.tar.gz"
    with tarfile.open(path2, "w:gz") as tf:
        for name, data in [*m.items(), ("vm_config.json", json.dumps(other).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    img = archive.read(path2, tmp_path / "out2")
    assert [p.member for p in img.vm_config.partitions] == ["root2"]
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["build_id", "root2", "vm_config.json"]


def test_a_full_disk_is_this_machines_error_not_a_damaged_archive(tmp_path):
    import os
    import subprocess

    from avfrepo.boot.errors import BootError
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        path = make_archive(tmp_path / "images.tar.gz", good_members(root_part=b"R" * (1 << 20)))
        with pytest.raises(BootError) as exc:
            archive.read(path, small / "out")
        assert not isinstance(exc.value, ImageRefused) and "cannot write" in str(exc.value)
        assert "1 MiB for root_part" in str(exc.value) and not (small / "out").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)
