"""One real image from the stand-in repositories, checked with the real tools:
e2fsck/debugfs/dumpe2fs on root_part, fsck.fat/mtools on efi_part, tar/gzip on the archive."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tarfile
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from avfrepo.image import manifest_path, signature_paths
from avfrepo.signing import export_public

from .standins import KERNEL_RELEASE, KERNEL_STANDIN, SYSTEMD_BOOT_STANDIN

pytestmark = pytest.mark.slow

MEMBERS = ["build_id", "vm_config.json", "README", "efi_part", "root_part"]


def sh(*argv: str, check: bool = True) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if check and res.returncode != 0:
        raise AssertionError(f"{argv} exited {res.returncode}: {res.stdout}{res.stderr}")
    return res.stdout


@pytest.fixture(scope="module")
def extracted(built_image, tmp_path_factory) -> Path:
    cfg, result, _ = built_image
    dest = tmp_path_factory.mktemp("extracted")
    sh("tar", "-xzf", result.output, "-C", str(dest))
    return dest


def debugfs(image: Path, request: str) -> str:
    return sh("debugfs", "-R", request, str(image))


def test_archive_is_gzip_with_exactly_the_app_members_none_sparse(built_image):
    cfg, result, _ = built_image
    out = Path(result.output)
    assert out == cfg.image.output and out.is_file()
    assert out.read_bytes()[:2] == b"\x1f\x8b"              # gzip, what the app reads
    with tarfile.open(out, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == MEMBERS
    for m in members:
        assert m.type == tarfile.REGTYPE and not m.issparse(), m.name
        assert not any(k.startswith("GNU.sparse") for k in m.pax_headers), m.name
    assert result.compressor in ("pigz", "gzip")


def test_nothing_but_archive_and_manifest_left_next_to_it(built_image):
    _, result, _ = built_image
    out = Path(result.output)
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        [out.name, manifest_path(out).name, out.name + ".sig", manifest_path(out).name + ".sig"])


def test_archive_and_manifest_are_signed_by_the_repository_key(built_image, tmp_path):
    """What docs/image.md has the user run: gpg --import avf.asc; gpg --verify FILE.sig FILE."""
    cfg, result, lines = built_image
    out = Path(result.output)
    assert result.signatures == [str(p) for p in signature_paths(out)]
    home = tmp_path / "user-gnupg"
    home.mkdir(mode=0o700)
    (home / "avf.asc").write_bytes(export_public(cfg.signing, result.signing_key, armor=True))
    sh("gpg", "--homedir", str(home), "--batch", "--import", str(home / "avf.asc"))
    for data in (out, manifest_path(out)):
        status = sh("gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify", f"{data}.sig", str(data))
        assert f"VALIDSIG {result.signing_key}" in status, data
    assert json.loads(manifest_path(out).read_text())["signing_key"] == result.signing_key
    assert any("signing the archive and the manifest" in ln for ln in lines)


def test_root_part_checks_clean_and_has_no_orphan_file(extracted, built_image):
    _, result, _ = built_image
    root = extracted / "root_part"
    sh("e2fsck", "-fn", str(root))
    features = debugfs(root, "features")
    assert "orphan_file" not in features and "extent" in features
    head = sh("dumpe2fs", "-h", str(root))
    assert re.search(r"Filesystem volume name:\s+ROOT\n", head)
    assert re.search(rf"Filesystem UUID:\s+{result.partitions['root_part']['guid']}\n", head)


def test_root_part_is_shrunk_to_content_plus_headroom(extracted, built_image):
    cfg, result, _ = built_image
    rp = result.partitions["root_part"]
    size = (extracted / "root_part").stat().st_size
    assert size == rp["bytes"] == rp["minimum_bytes"] + cfg.image.headroom_mib * (1 << 20)
    assert size < 64 * (1 << 20)     # the generous first mkfs size was shrunk


def test_root_part_holds_the_installed_packages(extracted):
    root = extracted / "root_part"
    local = debugfs(root, "ls -p /var/lib/pacman/local")
    for name in ("avf-base-1.0-1", "avf-config-1.0-1", "linux-avf-1.0-1", "filesystem-1.0-1", "systemd-1.0-1"):
        assert f"/{name}/" in local
    assert debugfs(root, f"cat /usr/lib/modules/{KERNEL_RELEASE}/vmlinuz").encode() == KERNEL_STANDIN
    assert debugfs(root, "cat /etc/avf/config") == "stand-in\n"
    # --noscriptlet: avf-config's post_install did not run
    assert "SCRIPTLET-RAN" not in debugfs(root, "ls /etc/avf")
    # sync dbs are not shipped; /boot is an empty mount point for the ESP
    assert "/sync/" not in local and "sync" not in debugfs(root, "ls /var/lib/pacman")
    assert set(re.findall(r"\(\d+\)\s+(\S+)", debugfs(root, "ls /boot"))) == {".", ".."}


def test_root_part_per_image_files_and_presets(extracted):
    root = extracted / "root_part"
    assert debugfs(root, "cat /etc/machine-id") == "uninitialized\n"
    fstab = debugfs(root, "cat /etc/fstab")
    assert re.search(r"^LABEL=ROOT\s+/\s+ext4", fstab, re.M)
    assert re.search(r"^LABEL=EFI\s+/boot\s+vfat", fstab, re.M)
    link = debugfs(root, "stat /etc/systemd/system/multi-user.target.wants/standin-agent.service")
    assert "Type: symlink" in link and "standin-agent.service" in link
    # user units' presets too (avf-desktop's weston.socket), applied at build time
    user = debugfs(root, "stat /etc/systemd/user/sockets.target.wants/standin-display.socket")
    assert "Type: symlink" in user and "/usr/lib/systemd/user/standin-display.socket" in user


def test_efi_part_checks_clean_and_boots_linux_avf_by_partuuid(extracted, built_image):
    _, result, _ = built_image
    efi = str(extracted / "efi_part")
    sh("fsck.fat", "-n", efi)
    assert "BOOTAA64 EFI" in sh("mdir", "-i", efi, "::/EFI/BOOT")
    assert "systemd-bootaa64.efi" in sh("mdir", "-i", efi, "::/EFI/systemd")
    assert sh("mtype", "-i", efi, "::/EFI/BOOT/BOOTAA64.EFI").encode() == SYSTEMD_BOOT_STANDIN
    assert sh("mtype", "-i", efi, "::/vmlinuz-linux-avf").encode() == KERNEL_STANDIN
    entry = sh("mtype", "-i", efi, "::/loader/entries/linux-avf.conf")
    assert re.search(r"^linux\s+/vmlinuz-linux-avf$", entry, re.M)
    options = re.search(r"^options\s+(.*)$", entry, re.M).group(1)
    assert "console=tty1 console=ttyS0" in options
    assert f"root=PARTUUID={result.partitions['root_part']['guid']}" in options.split()
    assert "initrd" not in entry          # no initramfs at build time: none is referenced
    assert "default linux-avf.conf" in sh("mtype", "-i", efi, "::/loader/loader.conf")
    info = sh("minfo", "-i", efi, "::")
    assert f"serial number: {result.partitions['efi_part']['volume_id'].upper()}" in info
    assert 'disk label="EFI' in info
    assert (extracted / "efi_part").stat().st_size == 40 << 20


def test_vm_config_fields_and_real_guids(extracted, built_image):
    cfg, result, _ = built_image
    vm = json.loads((extracted / "vm_config.json").read_text())
    assert vm["name"] == "debian"
    assert vm["memory_mib"] == cfg.image.memory_mib == 2048
    assert vm["network"] is True and vm["auto_memory_balloon"] is True
    assert vm["gpu"]["backend"] and vm["console_input_device"] == "ttyS0"
    assert {p["sharedPath"] for p in vm["sharedPath"]} == {"/storage/emulated", "$APP_DATA_DIR/files"}
    parts, = [d["partitions"] for d in vm["disks"]]
    # the ESP is /boot, mounted rw: read-only, kernel upgrades would fail (nixos-avf: true too)
    assert [(p["label"], p["path"], p["writable"]) for p in parts] == [
        ("EFI", "$PAYLOAD_DIR/efi_part", True), ("ROOT", "$PAYLOAD_DIR/root_part", True)]
    efi_guid, root_guid = (p["guid"] for p in parts)
    assert efi_guid != root_guid
    assert str(uuid.UUID(efi_guid)) == efi_guid and str(uuid.UUID(root_guid)) == root_guid
    assert efi_guid == result.partitions["efi_part"]["guid"]
    assert root_guid == result.partitions["root_part"]["guid"]
    # the real ones: ext4's UUID is the root GUID, vfat's volume id is the ESP GUID's first 32 bits
    assert root_guid in sh("dumpe2fs", "-h", str(extracted / "root_part"))
    serial = efi_guid.replace("-", "")[:8].upper()
    assert f"serial number: {serial}" in sh("minfo", "-i", str(extracted / "efi_part"), "::")


def test_build_id_ends_with_the_year(extracted, built_image):
    _, result, _ = built_image
    text = (extracted / "build_id").read_text()
    assert text == result.build_id
    year = text.split()[-1]
    assert re.fullmatch(r"\d{4}", year) and int(year) >= 2025
    assert int(year) == datetime.now(timezone.utc).year
    assert "avf-base-1.0-1" in text.split()


def test_readme_names_guids_and_first_boot_tasks(extracted, built_image):
    _, result, _ = built_image
    readme = (extracted / "README").read_text()
    assert result.partitions["root_part"]["guid"] in readme and result.partitions["efi_part"]["guid"] in readme
    assert "pacman-key --init" in readme and "/sdcard/linux/images.tar.gz" in readme
    # the phone path: debuggable, removing an old install, sudo, the automatic keyring, the logs
    assert "getprop\n     ro.debuggable` prints 1" in readme and "Retail phones are not" in readme
    assert "Settings -> Recovery -> Reset to initial version" in readme
    assert "sudo pacman -Syu" in readme and "avf-keyring-init.service" in readme
    assert "/data/data/com.android.virtualization.terminal/files/debian.log" in readme
    assert f"signed by: {result.signing_key}" in readme
    assert "avf-enable-display" not in readme          # the stand-in image has no avf-desktop


def test_manifest_lists_packages_repos_and_member_hashes(extracted, built_image):
    _, result, _ = built_image
    man = json.loads(manifest_path(Path(result.output)).read_text())
    assert {(p["name"], p["version"], p["repo"]) for p in man["packages"]} == {
        ("filesystem", "1.0-1", "core"), ("systemd", "1.0-1", "core"), ("avf-base", "1.0-1", "avf"),
        ("avf-config", "1.0-1", "avf"), ("linux-avf", "1.0-1", "avf")}
    assert [r["name"] for r in man["repos"]] == ["core", "avf"]
    assert man["repos"][1]["server"].startswith("file://")
    assert set(man["members"]) == set(MEMBERS)
    for name, info in man["members"].items():
        data = (extracted / name).read_bytes()
        assert info["bytes"] == len(data) and info["sha256"] == hashlib.sha256(data).hexdigest(), name
    assert man["sha256"] == hashlib.sha256(Path(result.output).read_bytes()).hexdigest()
    assert man["bytes"] == Path(result.output).stat().st_size
    assert man["first_boot"] and man["build_time"]["presets"].startswith("applied")


def test_hooks_the_host_cannot_run_are_reported_as_first_boot_work(built_image):
    _, result, _ = built_image
    msgs = result.build_time["pacman_messages"]
    assert any("stand-in hook the build host cannot run" in m for m in msgs), msgs
    assert any("pacman -S $(pacman -Qq)" in t for t in result.first_boot)
