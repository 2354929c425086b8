"""Build backends: turn a PKGBUILD directory into package files.

- makechrootpkg (production): a clean Arch Linux ARM chroot per build,
  `makechrootpkg -c -r CHROOT -l avfrepo-N -U USER [-I dep.pkg.tar.zst ...] -- --noconfirm`;
  worker N of `--jobs` builds in its own working copy CHROOT/avfrepo-N of CHROOT/root.
- makepkg (hosts without devtools, e.g. Debian): plain makepkg as the unprivileged build
  user in a private copy, `--nodeps` since the host's pacman db knows no Arch packages.

Both build from a private copy of the PKGBUILD directory; a subrelease rebuild (pkgrel 1.1)
rewrites the pkgrel line of that copy only, never pkgbuilds/.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Callable

from .. import makepkg as mk
from ..config import Config
from ..errors import AvfrepoError
from ..run import run as default_runner


def _collect(outdir: Path, dest: Path) -> list[Path]:
    pkgs = sorted(p for p in outdir.glob("*.pkg.tar.*") if not p.name.endswith(".sig"))
    dest.mkdir(parents=True, exist_ok=True)
    moved = []
    for p in pkgs:
        if p.is_symlink():
            raise AvfrepoError(f"build produced a symlink instead of a package: {p.name}")
        target = dest / p.name
        shutil.copy2(p, target)
        moved.append(target)
    return moved


def prepare_copy(pkgdir: Path, work: Path, pkgrel: str | None) -> None:
    """Copy the PKGBUILD directory to work; with pkgrel, build that pkgrel instead."""
    shutil.copytree(pkgdir, work)
    if pkgrel is None:
        return
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", pkgrel):
        raise AvfrepoError(f"{pkgdir.name}: invalid pkgrel {pkgrel!r}")
    pkgbuild = work / "PKGBUILD"
    text, n = re.subn(r"(?m)^pkgrel=\S*$", f"pkgrel={pkgrel}", pkgbuild.read_text())
    if n != 1:
        raise AvfrepoError(f"{pkgdir / 'PKGBUILD'}: needs exactly one `pkgrel=` line to build subrelease {pkgrel}")
    pkgbuild.write_text(text)


class MakepkgBackend:
    name = "makepkg"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def build(self, pkgdir: Path, deps: list[Path], log: Path, dest: Path, *, worker: int = 1,
              pkgrel: str | None = None) -> list[Path]:
        # deps are not installable on a Debian host; makepkg builds with --nodeps. Each
        # build has its own work directory, so workers never share anything.
        with mk.workdir(self.cfg, "avfrepo-build-") as tmp:
            work = tmp / "pkg"
            prepare_copy(pkgdir, work, pkgrel)
            out = tmp / "out"
            out.mkdir()
            mk.give_to_builder(self.cfg, work)
            mk.give_to_builder(self.cfg, out)
            env = {"PKGDEST": str(out), "SRCDEST": str(tmp / "src"), "BUILDDIR": str(tmp / "build"),
                   "LOGDEST": str(tmp / "logs")}
            mk.makepkg(self.cfg, work, ["--force", "--nodeps", "--noconfirm", "--noprogressbar"],
                       env=env, log_file=log)
            pkgs = _collect(out, dest)
        if not pkgs:
            raise AvfrepoError(f"makepkg produced no package for {pkgdir.name} (log: {log})")
        return pkgs


class MakechrootpkgBackend:
    name = "makechrootpkg"

    def __init__(self, cfg: Config, runner: Callable[..., object] = default_runner):
        self.cfg = cfg
        self.runner = runner

    def command(self, deps: list[Path], worker: int | None = None) -> list[str]:
        argv = ["makechrootpkg", "-c", "-r", str(self.cfg.build.chroot)]
        if worker is not None:
            argv += ["-l", f"avfrepo-{worker}"]
        argv += ["-U", self.cfg.build.user]
        for dep in deps:
            argv += ["-I", str(dep)]
        return argv + ["--", "--noconfirm", "--noprogressbar"]

    def build(self, pkgdir: Path, deps: list[Path], log: Path, dest: Path, *, worker: int = 1,
              pkgrel: str | None = None) -> list[Path]:
        if os.geteuid() != 0:
            raise AvfrepoError("makechrootpkg needs root (it mounts and enters the chroot)")
        if not (self.cfg.build.chroot / "root").is_dir():
            raise AvfrepoError(f"no build chroot at {self.cfg.build.chroot}/root: create it with "
                               f"`avfrepo chroot init` (mkarchroot, see README) or set [build] chroot")
        with mk.workdir(self.cfg, "avfrepo-chroot-") as tmp:
            work = tmp / "pkg"
            prepare_copy(pkgdir, work, pkgrel)
            mk.give_to_builder(self.cfg, work)
            self.runner(self.command(deps, worker), cwd=work, env={"PKGDEST": str(work)}, log_file=log, timeout=6 * 3600)
            pkgs = _collect(work, dest)
        if not pkgs:
            raise AvfrepoError(f"makechrootpkg produced no package for {pkgdir.name} (log: {log})")
        return pkgs


def backend_for(cfg: Config):
    return {"makepkg": MakepkgBackend, "makechrootpkg": MakechrootpkgBackend}[cfg.build.backend](cfg)
