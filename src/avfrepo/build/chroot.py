"""`avfrepo chroot init|update`: the clean Arch Linux ARM (aarch64) build root for makechrootpkg.

    init:   mkarchroot -C CHROOT/pacman.conf -M CHROOT/makepkg.conf CHROOT/root base-devel
    update: arch-nspawn -C CHROOT/pacman.conf -M CHROOT/makepkg.conf CHROOT/root pacman -Syu --noconfirm

pacman.conf and makepkg.conf are the ones avfrepo ships (templates/chroot/), written next to
the root so every worker copy (CHROOT/avfrepo-N, made by makechrootpkg -l) shares them.
The host needs root, Arch's devtools (mkarchroot, arch-nspawn, makechrootpkg), the Arch
Linux ARM signing keys in the host's pacman keyring, and on a non-aarch64 host
qemu-user-static with its aarch64 binfmt handler registered (so the chroot's aarch64
binaries run). Every check happens before anything is written.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

from ..config import Config
from ..errors import AvfrepoError
from ..fsutil import atomic_write
from ..run import run as default_runner

BINFMT = Path("/proc/sys/fs/binfmt_misc")


@dataclass
class ChrootResult:
    action: str
    chroot: Path
    commands: list[list[str]] = field(default_factory=list)
    log: Path | None = None

    def to_json(self) -> dict:
        return {"action": self.action, "chroot": str(self.chroot), "commands": self.commands,
                "log": str(self.log) if self.log else None}


def template(name: str) -> str:
    return resources.files("avfrepo").joinpath("templates", "chroot", name).read_text()


def render_makepkg_conf(cfg: Config) -> str:
    packager = cfg.build.packager
    if any(c in packager for c in '"$`\\\n'):
        raise AvfrepoError(f"[build] packager {packager!r}: must not contain \", $, `, \\ or a newline "
                           "(it goes into the chroot's makepkg.conf)")
    return template("makepkg.conf").replace("@PACKAGER@", packager)


def host_problems(*, which: Callable[[str], str | None], tools: list[str], machine: str | None = None,
                  binfmt: Path = BINFMT, euid: int | None = None) -> list[str]:
    """What this host lacks to build an aarch64 chroot, each with how to fix it."""
    problems = []
    if (os.geteuid() if euid is None else euid) != 0:
        problems.append("needs root (mkarchroot and arch-nspawn mount and enter the chroot)")
    missing = [t for t in tools if which(t) is None]
    if missing:
        problems.append(f"{', '.join(missing)} not found: install Arch's devtools (an Arch Linux or Arch Linux "
                        "ARM host; Debian does not package it)")
    machine = machine or platform.machine()
    if machine not in ("aarch64", "arm64"):
        handler = binfmt / "qemu-aarch64"
        enabled = handler.is_file() and handler.read_text().splitlines()[:1] == ["enabled"]
        if not enabled:
            problems.append(f"this {machine} host cannot run aarch64 binaries: install qemu-user-static and "
                            f"register its binfmt handler ({handler} missing or disabled)")
    return problems


def _check(problems: list[str], what: str) -> None:
    if problems:
        raise AvfrepoError(f"cannot {what}:\n  - " + "\n  - ".join(problems))


def _write_confs(cfg: Config) -> tuple[Path, Path]:
    chroot = cfg.build.chroot
    makepkg_conf = render_makepkg_conf(cfg)          # validates before anything is written
    chroot.mkdir(parents=True, exist_ok=True)
    pac, mk = chroot / "pacman.conf", chroot / "makepkg.conf"
    atomic_write(pac, template("pacman.conf").encode())
    atomic_write(mk, makepkg_conf.encode())
    return pac, mk


def init(cfg: Config, *, runner: Callable[..., object] = default_runner,
         which: Callable[[str], str | None] = shutil.which, machine: str | None = None,
         binfmt: Path = BINFMT, euid: int | None = None,
         progress: Callable[[str], None] = lambda s: None) -> ChrootResult:
    """Create CHROOT/root with base-devel from the shipped Arch Linux ARM configuration."""
    chroot = cfg.build.chroot
    root = chroot / "root"
    problems = host_problems(which=which, tools=["mkarchroot"], machine=machine, binfmt=binfmt, euid=euid)
    if root.exists():
        problems.append(f"{root} already exists: refresh it with `avfrepo chroot update`, or remove it to start over")
    render_makepkg_conf(cfg)
    _check(problems, f"create the build chroot {root}")
    pac, mk = _write_confs(cfg)
    argv = ["mkarchroot", "-C", str(pac), "-M", str(mk), str(root), "base-devel"]
    log = cfg.logs / ".chroot" / "init.log"
    log.unlink(missing_ok=True)
    progress(f"creating {root} (Arch Linux ARM aarch64, base-devel), log {log}")
    try:
        runner(argv, log_file=log, timeout=3 * 3600, hint=f"log: {log}")
    except AvfrepoError as exc:
        raise AvfrepoError(f"{exc}\n  remove {root} before running `avfrepo chroot init` again") from None
    return ChrootResult("init", chroot, [argv], log)


def update(cfg: Config, *, runner: Callable[..., object] = default_runner,
           which: Callable[[str], str | None] = shutil.which, machine: str | None = None,
           binfmt: Path = BINFMT, euid: int | None = None,
           progress: Callable[[str], None] = lambda s: None) -> ChrootResult:
    """Bring CHROOT/root up to date (and up to the shipped configuration)."""
    chroot = cfg.build.chroot
    root = chroot / "root"
    problems = host_problems(which=which, tools=["arch-nspawn"], machine=machine, binfmt=binfmt, euid=euid)
    if not root.is_dir():
        problems.append(f"no build chroot at {root}: create it with `avfrepo chroot init`")
    render_makepkg_conf(cfg)
    _check(problems, f"update the build chroot {root}")
    pac, mk = _write_confs(cfg)
    argv = ["arch-nspawn", "-C", str(pac), "-M", str(mk), str(root), "pacman", "-Syu", "--noconfirm"]
    log = cfg.logs / ".chroot" / "update.log"
    log.unlink(missing_ok=True)
    progress(f"updating {root}, log {log}")
    runner(argv, log_file=log, timeout=3600, hint=f"log: {log}")
    return ChrootResult("update", chroot, [argv], log)
