"""Build backends: turn a PKGBUILD directory into package files.

- makechrootpkg (production): a clean Arch Linux ARM chroot per build,
  `makechrootpkg -c -r CHROOT -l avfrepo-N -U USER [-I dep.pkg.tar.zst ...] -- --noconfirm`;
  worker N of `--jobs` builds in its own working copy CHROOT/avfrepo-N of CHROOT/root.
- makepkg (hosts without devtools, e.g. Debian): plain makepkg as the unprivileged build
  user in a private copy, `--nodeps` since the host's pacman db knows no Arch packages.
  makepkg compiles with the host's toolchain: on a host whose CPU is not [repo] arch
  (aarch64) it would make x86-64 code labelled aarch64. preflight() refuses such a run before
  anything is built, for every package of the plan that is not arch=any, naming what can
  build it; `[build] makepkg_cross = true` says this host's makepkg does produce aarch64 code
  (a cross toolchain, or PKGBUILDs that only package prebuilt aarch64 files). Every built
  package's ELF objects are checked against its arch all the same (build.check_artifact).

Both build from a private copy of the PKGBUILD directory; a subrelease rebuild (pkgrel 1.1)
rewrites the pkgrel line of that copy only, never pkgbuilds/. `env` (SOURCE_DATE_EPOCH) is
passed to makepkg; makechrootpkg forwards SOURCE_DATE_EPOCH into the chroot itself.

Reproducibility: makepkg writes the build's `builddir` and `startdir` into .BUILDINFO, so
the makepkg backend builds every pkgbase at one fixed path, STABLE_ROOT/<pkgbase>
(`/var/tmp/avfrepo-build/<pkgbase>`; `-<uid>` appended when not root), one build of a
pkgbase at a time (flock). The chroot builds in /startdir and /build already.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import re
import shutil
import stat
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .. import makepkg as mk
from ..config import Config
from ..errors import AvfrepoError, ConfigError
from ..formats import archrules
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
    """Copy the PKGBUILD directory to work (keys/pgp included; symbolic links stay links,
    never followed); with pkgrel, build that pkgrel instead."""
    shutil.copytree(pkgdir, work, symlinks=True)
    if pkgrel is None:
        return
    if not archrules.valid_pkgrel(pkgrel):
        raise AvfrepoError(f"{pkgdir.name}: invalid pkgrel {pkgrel!r}")
    pkgbuild = work / "PKGBUILD"
    text, n = re.subn(r"(?m)^pkgrel=\S*$", f"pkgrel={pkgrel}", pkgbuild.read_text())
    if n != 1:
        raise AvfrepoError(f"{pkgdir / 'PKGBUILD'}: needs exactly one `pkgrel=` line to build subrelease {pkgrel}")
    pkgbuild.write_text(text)


STABLE_ROOT = Path("/var/tmp/avfrepo-build")


def stable_root() -> Path:
    return STABLE_ROOT if os.geteuid() == 0 else STABLE_ROOT.with_name(f"{STABLE_ROOT.name}-{os.geteuid()}")


@contextlib.contextmanager
def stable_workdir(cfg: Config, name: str) -> Iterator[Path]:
    """STABLE_ROOT/<name>, emptied, owned by the build user, held under an exclusive lock
    (another build of the same name, in this or another run, waits), removed afterwards."""
    if not archrules.valid_pkgname(name):                # a pkgbase: Arch's name rule
        raise AvfrepoError(f"{name!r}: not usable as a build directory name")
    root = stable_root()
    try:
        root.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        raise AvfrepoError(f"{root}: cannot create the build directory: {exc.strerror}") from None
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise AvfrepoError(f"{root}: must be a directory of uid {os.geteuid()} that only it can write "
                           "(remove it; avfrepo creates it)")
    fd = os.open(root / f".{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    path = root / name
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.is_symlink() or path.is_file():
            path.unlink()
        shutil.rmtree(path, ignore_errors=True)      # left by an interrupted build
        path.mkdir(mode=0o700)
        mk.give_to_builder(cfg, path)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def host_machine() -> str:
    """This host's CPU as pacman names it (`uname -m`; arm64 is aarch64)."""
    m = platform.machine()
    return {"arm64": "aarch64", "amd64": "x86_64"}.get(m, m)


def machine_code_packages(items: Iterable) -> dict[str, list[str]]:
    """pkgbase -> its package names that are not arch=any (planned items: .SRCINFO arch per
    split package, as makepkg resolves it)."""
    out: dict[str, list[str]] = {}
    for item in items:
        names = [n for n in item.info.pkgnames if item.info.get("arch", n) != ["any"]]
        if names:
            out[item.pkgbase] = names
    return out


class MakepkgBackend:
    name = "makepkg"

    def __init__(self, cfg: Config, machine: str | None = None):
        self.cfg = cfg
        self.machine = machine or host_machine()

    def preflight(self, items: Iterable) -> None:
        """Before anything is built: ConfigError when a planned package is not arch=any and
        this host's CPU is not [repo] arch (makepkg would compile host code and label it
        aarch64), unless [build] makepkg_cross says the host makes that code."""
        arch = self.cfg.repo.arch
        if self.machine == arch or arch == "any" or self.cfg.build.makepkg_cross:
            return
        native = machine_code_packages(items)
        if not native:
            return
        where = self.cfg.file or "avfrepo.toml"
        raise ConfigError(
            f"the makepkg backend cannot build {', '.join(native)} (arch={arch}) on this {self.machine} host: "
            f"makepkg compiles with the host's toolchain, which makes {self.machine} code, and would label it "
            f"{arch}. Nothing was built. {arch} packages are built by:\n"
            f"  - the makechrootpkg backend on an Arch Linux x86_64 host with qemu-user-static-binfmt "
            f"(scripts/setup-arch.sh; [build] backend = \"makechrootpkg\", then `avfrepo chroot init`), or\n"
            f"  - the makepkg backend on a native {arch} host or runner (GitHub's ubuntu-24.04-arm in an "
            f"Arch Linux ARM container: .github/workflows/build-one.yml).\n"
            f"If this host's makepkg does make {arch} code (a cross toolchain in its makepkg.conf, or PKGBUILDs "
            f"that only package prebuilt {arch} files), set [build] makepkg_cross = true in {where}: every "
            f"package's ELF objects are still checked against its arch.")

    def build(self, pkgdir: Path, deps: list[Path], log: Path, dest: Path, *, worker: int = 1,
              pkgrel: str | None = None, env: dict[str, str] | None = None) -> list[Path]:
        # deps are not installable on a Debian host; makepkg builds with --nodeps. Each
        # pkgbase has its own (fixed) work directory, so workers never share anything.
        with stable_workdir(self.cfg, pkgdir.name) as tmp:
            work = tmp / "pkg"
            prepare_copy(pkgdir, work, pkgrel)
            out = tmp / "out"
            out.mkdir()
            mk.give_to_builder(self.cfg, work)
            mk.give_to_builder(self.cfg, out)
            mk.source_keyring(self.cfg, work)      # keys/pgp, in the GnuPG home makepkg() uses
            env = {"PKGDEST": str(out), "SRCDEST": str(tmp / "src"), "BUILDDIR": str(tmp / "build"),
                   "LOGDEST": str(tmp / "logs"), **(env or {})}
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

    def preflight(self, items: Iterable) -> None:
        """Nothing to refuse up front: the chroot is an aarch64 root (qemu-user on x86_64,
        checked by `avfrepo chroot init`), so its compilers make aarch64 code."""

    def command(self, deps: list[Path], worker: int | None = None) -> list[str]:
        argv = ["makechrootpkg", "-c", "-r", str(self.cfg.build.chroot)]
        if worker is not None:
            argv += ["-l", f"avfrepo-{worker}"]
        argv += ["-U", self.cfg.build.user]
        for dep in deps:
            argv += ["-I", str(dep)]
        return argv + ["--", "--noconfirm", "--noprogressbar"]

    def build(self, pkgdir: Path, deps: list[Path], log: Path, dest: Path, *, worker: int = 1,
              pkgrel: str | None = None, env: dict[str, str] | None = None) -> list[Path]:
        if os.geteuid() != 0:
            raise AvfrepoError("makechrootpkg needs root (it mounts and enters the chroot)")
        if not (self.cfg.build.chroot / "root").is_dir():
            raise AvfrepoError(f"no build chroot at {self.cfg.build.chroot}/root: create it with "
                               f"`avfrepo chroot init` (mkarchroot, see README) or set [build] chroot")
        with mk.workdir(self.cfg, "avfrepo-chroot-") as tmp:
            work = tmp / "pkg"
            prepare_copy(pkgdir, work, pkgrel)
            mk.give_to_builder(self.cfg, work)
            # makechrootpkg verifies the sources outside the chroot as -U's user with our GNUPGHOME
            keyring = mk.source_keyring(self.cfg, work)
            self.runner(self.command(deps, worker), cwd=work,
                        env={"PKGDEST": str(work), **(env or {}), "GNUPGHOME": str(keyring)},
                        log_file=log, timeout=6 * 3600)
            pkgs = _collect(work, dest)
        if not pkgs:
            raise AvfrepoError(f"makechrootpkg produced no package for {pkgdir.name} (log: {log})")
        return pkgs


def backend_for(cfg: Config):
    return {"makepkg": MakepkgBackend, "makechrootpkg": MakechrootpkgBackend}[cfg.build.backend](cfg)
