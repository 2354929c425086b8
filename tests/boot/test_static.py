"""What `avfrepo boot` reads off the assembled disk before starting the VM (mtools on the ESP),
the report's text/JSON, and the command's exit codes for refused archives and bad usage."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from avfrepo.boot import BootReport, Check, checks, gpt
from avfrepo.cli import main

from ..conftest import require_tools
from .test_archive import good_members, make_archive

ENV = {"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def esp(tmp_path, root_guid: str, kernel: bool = True):
    require_tools("mkfs.vfat", "mmd", "mcopy", "mtype")
    img = tmp_path / "efi_part"
    with open(img, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.vfat", "-n", "EFI", str(img)], check=True, capture_output=True)
    files = {"EFI/BOOT/BOOTAA64.EFI": "MZ stand-in loader", "loader/loader.conf": "default linux-avf.conf\ntimeout 0\n",
             "loader/entries/linux-avf.conf": f"title t\nlinux /vmlinuz-linux-avf\ninitrd /initramfs-linux-avf.img\n"
                                              f"options root=PARTUUID={root_guid} rw\n",
             "initramfs-linux-avf.img": "initrd"}
    if kernel:
        files["vmlinuz-linux-avf"] = "kernel"
    for d in ("EFI", "EFI/BOOT", "loader", "loader/entries"):
        subprocess.run(["mmd", "-i", str(img), f"::/{d}"], check=True, env=ENV)
    for name, text in files.items():
        src = tmp_path / "src"
        src.write_text(text)
        subprocess.run(["mcopy", "-i", str(img), str(src), f"::/{name}"], check=True, env=ENV)
    return img


def disk(tmp_path, kernel=True, entry_guid=None):
    root_guid = str(uuid.uuid4())
    efi = esp(tmp_path, entry_guid or root_guid, kernel)
    root = tmp_path / "root_part"
    root.write_bytes(b"\0" * (1 << 20))
    placed = gpt.assemble([gpt.Part("EFI", str(uuid.uuid4()), efi, True), gpt.Part("ROOT", root_guid, root, True)],
                          tmp_path / "disk.img")
    return tmp_path / "disk.img", placed


def test_a_good_esp_passes(tmp_path):
    d, placed = disk(tmp_path)
    by = {c.name: c for c in checks.static(d, placed)}
    assert by["esp"].ok and "/vmlinuz-linux-avf + /initramfs-linux-avf.img" in by["esp"].detail
    assert by["root partition"].ok and "vda2 (ROOT)" in by["root partition"].detail


def test_no_kernel_on_the_esp_is_named(tmp_path):
    d, placed = disk(tmp_path, kernel=False)
    by = {c.name: c for c in checks.static(d, placed)}
    assert by["esp"].ok is False and "no kernel on the ESP: entry linux-avf.conf boots /vmlinuz-linux-avf" \
        in by["esp"].detail


def test_a_root_guid_no_partition_has_is_named(tmp_path):
    wrong = str(uuid.uuid4())
    d, placed = disk(tmp_path, entry_guid=wrong)
    by = {c.name: c for c in checks.static(d, placed)}
    assert by["root partition"].ok is False and f"root=PARTUUID={wrong}, but no partition has that GUID" \
        in by["root partition"].detail


def test_a_disk_without_a_boot_loader(tmp_path):
    root = tmp_path / "root_part"
    root.write_bytes(b"\0" * (1 << 20))
    placed = gpt.assemble([gpt.Part("ROOT", str(uuid.uuid4()), root, True)], tmp_path / "disk.img")
    (c,) = checks.static(tmp_path / "disk.img", placed)
    assert c.ok is False and "BOOTAA64.EFI" in c.detail


def test_report_text_and_json_name_the_failures():
    r = BootReport("/x/images.tar.gz", build_id="b 2026", accel="tcg", cpus=2, memory_mib=1024,
                   checks=[Check("firmware", True, "+0.5s", at=0.5), Check("failed units", False, "failed: a.service"),
                           Check("DebianService agents", None, "no checkout")])
    assert not r.ok and [c.name for c in r.failed] == ["failed units"]
    text = r.text()
    assert text.splitlines()[0] == "avfrepo boot images.tar.gz: FAILED: failed units"
    assert "FAIL" in text and "skip" in text
    j = json.loads(json.dumps(r.to_json()))
    assert j["ok"] is False and j["failed"] == ["failed units"] and j["checks"][2]["status"] == "skip"
    assert BootReport("a", checks=[Check("x", True)]).ok and not BootReport("a").ok


def test_cli_refused_archive_exits_1_with_one_line(tmp_path, capsys):
    m = good_members(build_id=b"build 2019\n")
    code = main(["boot", str(make_archive(tmp_path / "images.tar.gz", m))])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "not a 4-digit year >= 2025" in err


@pytest.mark.parametrize("argv", [["boot"], ["boot", "x.tar.gz", "--timeout", "0"], ["boot", "x", "--bogus"]])
def test_cli_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
