"""`avfrepo boot` on images built by `avfrepo image` from the stand-in repositories (Debian arm64
binaries; see standins.py): the good image holds every check; each broken one fails with its
reason. Each boot is a real qemu-system-aarch64 UEFI boot (TCG here: about a minute or two)."""

from __future__ import annotations

import json

import pytest

from avfrepo.boot import boot, qemu
from avfrepo.cli import main

from .conftest import FAILING_UNIT, one_cpu, rewrite, set_esp_writable, with_failing_unit, without_kernel, wrong_root_guid

pytestmark = pytest.mark.slow
TIMEOUT = 600
# the defect images are made from the good image, which the good boot's worker makes first (~45 s):
# the other worker runs other slow tests meanwhile instead of waiting on that lock
AFTER_GOOD_BOOT = pytest.mark.after_slow


def checks(report) -> dict[str, object]:
    return {c.name: c for c in report.checks}


def show(report) -> None:
    print("\n" + report.text(), flush=True)


def test_the_standin_image_boots_as_on_a_phone(good_image, boot_repos, tmp_path, capsys):
    _, _, avf_tree = boot_repos
    code = main(["boot", str(good_image), "--json", "--timeout", str(TIMEOUT), "--avf-tree", str(avf_tree),
                 "--keep", str(tmp_path / "keep")])
    data = json.loads(capsys.readouterr().out)
    with capsys.disabled():
        print("\n" + "\n".join(f"  {c['status']:<4} {c['at'] or '':>6} {c['name']:<24} {c['detail']}"
                               for c in data["checks"]))
    assert code == 0 and data["ok"] and data["failed"] == [], data["failed"]
    assert data["cpus"] == qemu.host_cpus()                        # cpu_topology "match_host"
    by = {c["name"]: c for c in data["checks"]}
    at = [by[m]["at"] for m in ("firmware", "systemd-boot", "kernel", "multi-user.target")]
    assert all(a is not None for a in at) and at == sorted(at)
    for name in ("failed units", "mount /mnt/internal", "mount /mnt/shared", "[avf] units", "ttyd TLS + client cert",
                 "ttyd refuses no certificate", "ttyd refuses another CA's cert", "ttyd terminal", "EFI stays read-only",
                 "DebianService agents", "poweroff"):
        assert name not in by or by[name]["status"] == "ok", (name, by.get(name))
    for name in ("failed units", "mount /mnt/internal", "mount /mnt/shared", "[avf] units", "ttyd terminal",
                 "DebianService agents", "poweroff"):
        assert by[name]["status"] == "ok", (name, by[name])
    assert "powered off cleanly" in by["poweroff"]["detail"]
    agents = {entry.split(" at ")[0] for calls in data["agents"].values() for entry in calls}
    assert agents == {"forwarder_guest_launcher", "shutdown_runner", "storage_balloon_agent"}
    assert (tmp_path / "keep" / "console.log").stat().st_size > 0


@AFTER_GOOD_BOOT
def test_no_kernel_on_the_esp(good_image_members, boot_repos, tmp_path):
    img = rewrite(good_image_members, tmp_path / "images.tar.gz", lambda f: (without_kernel(f), one_cpu(f)),
                  copy=("efi_part",))
    report = boot(img, timeout=TIMEOUT, avf_tree=boot_repos[2])     # the app always has DebianService
    show(report)
    by = checks(report)
    assert not report.ok
    assert by["esp"].ok is False and "no kernel on the ESP" in by["esp"].detail
    assert by["systemd-boot"].ok is True and by["kernel"].ok is False
    assert "vmlinuz-linux-avf" in by["kernel"].detail or "systemd-boot" in by["kernel"].detail


@AFTER_GOOD_BOOT
def test_a_vm_config_guid_that_is_not_the_partitions(good_image_members, boot_repos, tmp_path):
    img = rewrite(good_image_members, tmp_path / "images.tar.gz", lambda f: (wrong_root_guid(f), one_cpu(f)))
    report = boot(img, timeout=TIMEOUT, avf_tree=boot_repos[2])     # the app always has DebianService
    show(report)
    by = checks(report)
    assert not report.ok
    assert by["root partition"].ok is False and "no partition has that GUID" in by["root partition"].detail
    assert by["kernel"].ok is True
    assert by["multi-user.target"].ok is False and "initramfs" in by["multi-user.target"].detail


@AFTER_GOOD_BOOT
def test_esp_read_only_while_boot_is_mounted_rw_and_a_failing_unit(good_image_members, boot_repos, tmp_path):
    def edit(folder):
        set_esp_writable(False)(folder)
        with_failing_unit(folder)
        one_cpu(folder)
    img = rewrite(good_image_members, tmp_path / "images.tar.gz", edit, copy=("root_part",))
    report = boot(img, timeout=TIMEOUT, avf_tree=boot_repos[2])     # the app always has DebianService
    show(report)
    by = checks(report)
    assert not report.ok and by["multi-user.target"].ok is True
    assert report.cpus == 1                                         # cpu_topology "one_cpu"
    assert by["EFI stays read-only"].ok is False and "mounted rw at /boot" in by["EFI stays read-only"].detail
    assert by["failed units"].ok is False and FAILING_UNIT in by["failed units"].detail
    assert by["poweroff"].ok is True
