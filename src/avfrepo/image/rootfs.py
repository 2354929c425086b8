"""The image's root directory: installed by the real pacman, then the few per-image files.

pacman runs with `--root ROOT --dbpath ROOT/var/lib/pacman` (the image keeps its local db,
so `pacman -Syu` in the VM knows what is installed), a private pacman.conf listing the
configured system repositories and [avf], the configured keyring (`--gpgdir`, outside the
image) and a package cache outside the image. `--noscriptlet`: install scriptlets would run
aarch64 binaries inside ROOT, which this host cannot; what they and the hooks would do is
done here where a host tool can do it offline (systemd presets), or left to the first boot
(see FIRST_BOOT and the image README).

Written by hand, because no package can own them: /etc/machine-id ("uninitialized": the
first boot generates the id and applies the presets) and /etc/fstab (partitions by label).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import Config, ImageConfig, ImageRepo
from ..errors import ToolError
from ..run import run, which
from .errors import ImageError

ROOT_LABEL = "ROOT"
EFI_LABEL = "EFI"

# what the first boot of the VM does (systemd units that run on their own unless noted)
FIRST_BOOT = [
    "systemd-machine-id-setup: /etc/machine-id is 'uninitialized'; systemd generates the id and, as on "
    "every first boot, applies the unit presets (preset-all)",
    "systemd-sysusers.service, systemd-tmpfiles-setup.service, ldconfig.service, systemd-hwdb-update.service "
    "(ConditionNeedsUpdate=/etc: /etc/.updated does not exist yet): users such as droid, directories, "
    "the linker cache, the hwdb",
    "avf-keyring-init.service (avf-config): `pacman-key --init` and `pacman-key --populate` (Arch Linux ARM's "
    "and the [avf] keys); the image carries no keyring, as its local key must be the device's own. Check it "
    "with `systemctl status avf-keyring-init`; by hand if it failed: `sudo pacman-key --init && "
    "sudo pacman-key --populate`",
    "by hand, once, if wanted: `mkinitcpio -P` (the image boots without an initramfs: linux-avf has "
    "virtio_blk and ext4 built in; the next linux-avf upgrade builds one through its hooks)",
]

# added when pacman reported errors/warnings (typically: the target's hooks cannot run on this host)
HOOKS_TASK = ("by hand, once: what the pacman hooks the build host could not run would have done (the "
              "manifest's build_time.pacman_messages names them; e.g. `update-ca-trust`); "
              "`pacman -S $(pacman -Qq)` runs every hook and scriptlet again")


@dataclass(frozen=True)
class Installed:
    name: str
    version: str
    repo: str


def avf_repo(cfg: Config, img: ImageConfig) -> ImageRepo:
    if img.avf_source == "local":
        server = cfg.repo.path.as_uri() + "/$arch"
    else:
        server = cfg.repo.server + "/$arch"
    return ImageRepo(cfg.repo.name, server, "Required")


def repos(cfg: Config, img: ImageConfig) -> list[ImageRepo]:
    """The system repositories, then [avf] (pacman takes a package from the first repo having it)."""
    out = [r for r in img.repos if r.name != cfg.repo.name]
    return out + [avf_repo(cfg, img)]


def pacman_conf(cfg: Config, img: ImageConfig) -> str:
    lines = ["# written by avfrepo image (build-time only; not part of the image)", "[options]",
             f"Architecture = {cfg.repo.arch}", "CheckSpace", "SigLevel = Required", "LocalFileSigLevel = Optional", ""]
    for r in repos(cfg, img):
        lines += [f"[{r.name}]", f"SigLevel = {r.siglevel}", f"Server = {r.server}", ""]
    return "\n".join(lines)


class Pacman:
    """pacman on the image root, with the build's private config, log and hook-free defaults."""

    def __init__(self, cfg: Config, img: ImageConfig, root: Path, work: Path):
        self.root = root
        self.dbpath = root / "var/lib/pacman"
        self.conf = work / "pacman.conf"
        self.log = work / "pacman.log"
        self.img = img
        self.dbpath.mkdir(parents=True, exist_ok=True)
        img.cachedir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(pacman_conf(cfg, img))

    def argv(self, *args: str) -> list[str]:
        return ["pacman", "--config", str(self.conf), "--root", str(self.root), "--dbpath", str(self.dbpath),
                "--cachedir", str(self.img.cachedir), "--gpgdir", str(self.img.gpgdir),
                "--logfile", str(self.log), *args]

    def install(self, packages: tuple[str, ...]) -> str:
        try:
            res = run(self.argv("-Sy", "--noconfirm", "--noprogressbar", "--noscriptlet", *packages), timeout=3600)
        except ToolError as exc:
            raise _explain(exc, self) from None
        return res.stdout + res.stderr

    def installed(self) -> list[Installed]:
        """Every installed package with its version and the repository db it came from."""
        local = {}
        for line in run(self.argv("-Q")).stdout.splitlines():
            name, version = line.split()
            local[name] = version
        origin: dict[str, str] = {}
        for line in run(self.argv("-Sl"), check=False).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3 and local.get(parts[1]) == parts[2]:
                origin.setdefault(parts[1], parts[0])     # -Sl lists repos in pacman.conf order
        return [Installed(n, v, origin.get(n, "(unknown)")) for n, v in sorted(local.items())]


def _explain(exc: ToolError, pm: Pacman) -> ImageError:
    out = exc.output
    missing = re.findall(r"target not found: (\S+)", out)
    if missing:
        names = ", ".join(f"[{n}]" for n in _conf_repos(pm.conf))
        return ImageError(f"package(s) not in the configured repositories {names}: {', '.join(missing)}")
    dep = re.findall(r"unable to satisfy dependency '([^']+)' required by (\S+)", out)
    if dep:
        return ImageError("missing in the configured repositories: "
                          + ", ".join(f"{d} (needed by {by})" for d, by in dep))
    if "not enough free disk space" in out or "No space left on device" in out:
        return ImageError(f"no space left on the device of {pm.root.parent.parent} (the image is built beside "
                          "the output; pacman: not enough free disk space)")
    if "failed to retrieve some files" in out or "failed to synchronize" in out or "failed retrieving file" in out:
        return ImageError("cannot download from the configured repositories:\n  " + _tail(out))
    return ImageError(f"pacman could not install the image packages:\n  {_tail(out)}\n  (log: {pm.log})")


def _tail(out: str) -> str:
    return "\n  ".join(out.strip().splitlines()[-8:])


def _conf_repos(conf: Path) -> list[str]:
    return [m for m in re.findall(r"^\[([^\]]+)\]", conf.read_text(), re.M) if m != "options"]


def messages(output: str) -> list[str]:
    """pacman's error:/warning: lines (e.g. a hook the host could not run in the target)."""
    out, step = [], ""
    for ln in output.splitlines():
        m = re.match(r"^\(\s*\d+/\d+\)\s+(.*)$", ln.strip())
        if m:
            step = m.group(1).strip()
        elif ln.startswith(("error:", "warning:")):
            out.append(ln.strip() + (f" [during: {step}]" if step else ""))
    return out


def finish(root: Path, pm: Pacman, progress: Callable[[str], None]) -> dict[str, object]:
    """The per-image files and the build-time equivalents of scriptlets/hooks; returns what was done."""
    done: dict[str, object] = {}
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    mid = etc / "machine-id"
    mid.unlink(missing_ok=True)
    mid.write_text("uninitialized\n")
    os.chmod(mid, 0o444)
    for stale in ("var/lib/systemd/random-seed", "var/lib/dbus/machine-id"):
        (root / stale).unlink(missing_ok=True)
    fstab = etc / "fstab"
    fstab.unlink(missing_ok=True)   # filesystem's template: replaced (pacman treats it as a changed backup file)
    fstab.write_text("# written by avfrepo image: the partitions by filesystem label\n"
                     "# <device>    <dir>  <type> <options>                           <dump> <fsck>\n"
                     f"LABEL={ROOT_LABEL}   /      ext4   rw,relatime                         0      1\n"
                     f"LABEL={EFI_LABEL}    /boot  vfat   rw,relatime,fmask=0077,dmask=0077   0      2\n")
    done["written"] = ["/etc/machine-id", "/etc/fstab"]
    if (root / "usr/lib/systemd/system").is_dir() and which("systemctl"):
        progress("image: systemctl --root preset-all")
        res = run(["systemctl", f"--root={root}", "preset-all"], check=False)
        if res.returncode == 0:
            done["presets"] = "applied at build time (systemctl --root preset-all)"
        else:   # the first boot applies them anyway (machine-id 'uninitialized')
            done["presets"] = ("first boot (the host's systemctl --root preset-all failed: "
                               + " ".join((res.stdout + res.stderr).split())[-200:] + ")")
    else:
        done["presets"] = "first boot (no systemctl here, or no units in the root)"
    if (root / "usr/lib/systemd/user-preset").is_dir() and which("systemctl"):
        # the user units' presets (avf-desktop's Wayland socket), not left to the first boot, whose
        # preset-all is the system manager's
        res = run(["systemctl", f"--root={root}", "--global", "preset-all"], check=False)
        done["user_presets"] = ("applied at build time (systemctl --root --global preset-all)" if res.returncode == 0
                                else "not applied: " + " ".join((res.stdout + res.stderr).split())[-200:])
    # the sync dbs are stale the moment the image ships (pacman -Syu fetches them again)
    shutil.rmtree(root / "var/lib/pacman/sync", ignore_errors=True)
    return done


def move_boot(root: Path, esp: Path) -> list[str]:
    """/boot is the ESP's mount point: what packages put there belongs on the ESP."""
    boot = root / "boot"
    moved = []
    if boot.is_dir():
        for entry in sorted(boot.iterdir()):
            moved.append(entry.name)
            shutil.move(str(entry), esp / entry.name)
    boot.mkdir(exist_ok=True)
    os.chmod(boot, 0o755)
    return moved


def tree_bytes(root: Path, block: int = 4096) -> tuple[int, int]:
    """(bytes the files take in `block`-sized blocks, number of inodes) of a tree, hard links once."""
    total, inodes, seen = 0, 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        total += block
        inodes += 1
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            inodes += 1
            total += -(-st.st_size // block) * block
    return total, inodes
