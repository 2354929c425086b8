"""What the Terminal app reads besides the partitions: vm_config.json, build_id, README; and
the boot files on the ESP (systemd-boot, loader entry, kernel).

Partition identity (one GUID per partition, made fresh for every image):
- vm_config.json `guid` is the GPT *unique partition GUID* the app gives the partition on the
  composite disk it builds from the listed partition files, i.e. the PARTUUID the guest sees;
  the loader entry boots `root=PARTUUID=<root guid>`;
- the ext4 filesystem UUID is the same GUID (`mkfs.ext4 -U`), so UUID= works as well;
- the vfat volume id is the ESP GUID's first 8 hex digits (`mkfs.vfat -i`, 32 bits);
- /etc/fstab mounts by filesystem label (ROOT, EFI), which are also the partition labels
  (PARTLABEL) vm_config.json gives.
Partition order: the ESP first (vda1), root second (vda2), as avf-guest-agents expects.
"""

from __future__ import annotations

import json
import shutil
import uuid as uuid_mod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from .errors import ImageError

_env = jinja2.Environment(loader=jinja2.PackageLoader("avfrepo", "templates/image"),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                          trim_blocks=True, lstrip_blocks=True)

KERNEL_PKGBASE = "linux-avf"
CMDLINE = "console=tty1 console=ttyS0"
UEFI_ARCH = {"aarch64": "aa64", "x86_64": "x64"}


@dataclass(frozen=True)
class Partition:
    label: str
    guid: str

    @property
    def volume_id(self) -> str:
        return self.guid.replace("-", "")[:8]


def new_partition(label: str) -> Partition:
    return Partition(label, str(uuid_mod.uuid4()))


def render_vm_config(efi: Partition, root: Partition, memory_mib: int) -> str:
    text = _env.get_template("vm_config.json.j2").render(efi=efi, root=root, memory_mib=memory_mib)
    data = json.loads(text)     # the template must stay valid JSON
    assert data["name"] == "debian"
    return text


def build_id(avf_base_version: str | None, arch: str, now: datetime | None = None) -> str:
    """`avfrepo archlinuxarm-aarch64 avf-base-1-3 20261123T1150Z 2026`: the last token is the year."""
    now = now or datetime.now(timezone.utc)
    if now.year < 2025:
        raise ImageError(f"the clock says {now.year}: build_id needs a year >= 2025 (the Terminal app checks it)")
    base = f"avf-base-{avf_base_version}" if avf_base_version else "avf-base-absent"
    return f"avfrepo archlinuxarm-{arch} {base} {now:%Y%m%dT%H%MZ} {now.year:04d}\n"


def render_readme(**values: object) -> str:
    return _env.get_template("README.j2").render(**values)


def kernel_image(root: Path) -> tuple[Path, str]:
    """(vmlinuz, kernel release) of linux-avf: usr/lib/modules/<release>/vmlinuz with pkgbase linux-avf."""
    found = []
    for vmlinuz in sorted((root / "usr/lib/modules").glob("*/vmlinuz")):
        pkgbase = vmlinuz.parent / "pkgbase"
        if pkgbase.is_file() and pkgbase.read_text().strip() == KERNEL_PKGBASE:
            found.append(vmlinuz)
    if not found:
        raise ImageError(f"no kernel: no usr/lib/modules/*/vmlinuz with pkgbase {KERNEL_PKGBASE} in the installed "
                         f"root (is {KERNEL_PKGBASE} among the image packages' dependencies?)")
    if len(found) > 1:
        raise ImageError(f"more than one {KERNEL_PKGBASE} kernel installed: {', '.join(p.parent.name for p in found)}")
    return found[0], found[0].parent.name


def populate_esp(root: Path, esp: Path, arch: str, root_part: Partition) -> dict[str, object]:
    """systemd-boot, loader.conf, the linux-avf entry and kernel (+ initramfs when one exists)."""
    uefi = UEFI_ARCH.get(arch)
    if uefi is None:
        raise ImageError(f"no UEFI boot file name known for architecture {arch}")
    boot_efi = root / f"usr/lib/systemd/boot/efi/systemd-boot{uefi}.efi"
    if not boot_efi.is_file():
        raise ImageError(f"no systemd-boot in the installed root: {boot_efi.relative_to(root)} is missing "
                         "(systemd must be among the image packages' dependencies)")
    for dest in (f"EFI/BOOT/BOOT{uefi.upper()}.EFI", f"EFI/systemd/systemd-boot{uefi}.efi"):
        (esp / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(boot_efi, esp / dest)
    vmlinuz, release = kernel_image(root)
    kernel = f"vmlinuz-{KERNEL_PKGBASE}"
    shutil.copyfile(vmlinuz, esp / kernel)
    initrd = f"initramfs-{KERNEL_PKGBASE}.img"
    has_initrd = (esp / initrd).is_file()       # only when a package or hook left one in /boot
    options = f"root=PARTUUID={root_part.guid} rw rootwait {CMDLINE}"
    entry = (f"title   Arch Linux ARM ({KERNEL_PKGBASE} {release})\n"
             f"linux   /{kernel}\n"
             + (f"initrd  /{initrd}\n" if has_initrd else "")
             + f"options {options}\n")
    (esp / "loader/entries").mkdir(parents=True, exist_ok=True)
    (esp / "loader/entries" / f"{KERNEL_PKGBASE}.conf").write_text(entry)
    (esp / "loader/loader.conf").write_text(f"default {KERNEL_PKGBASE}.conf\ntimeout 0\nconsole-mode keep\n")
    return {"kernel": f"/{kernel}", "kernel_release": release, "initrd": f"/{initrd}" if has_initrd else None,
            "options": options, "systemd_boot": str(boot_efi.relative_to(root))}
