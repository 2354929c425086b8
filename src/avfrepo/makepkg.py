"""Running makepkg on this host: as an unprivileged user, for the target arch, offline.

makepkg refuses to run as root, so when avfrepo runs as root it copies the package into a
private work directory owned by the configured build user and runs makepkg there through
`runuser`. Debian's /etc/makepkg.conf targets x86_64 and .pkg.tar.gz: a private config
that sources it and overrides CARCH, CHOST and PKGEXT is passed with --config.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .config import Config
from .errors import ConfigError
from .run import Result, run

CHOST = {"aarch64": "aarch64-unknown-linux-gnu", "x86_64": "x86_64-pc-linux-gnu", "any": "aarch64-unknown-linux-gnu"}


def makepkg_conf(cfg: Config) -> str:
    carch = "aarch64" if cfg.repo.arch == "any" else cfg.repo.arch
    return "\n".join([
        "# written by avfrepo: the host's makepkg.conf, retargeted",
        "[ -r /etc/makepkg.conf ] && source /etc/makepkg.conf",
        f"CARCH='{carch}'",
        f"CHOST='{CHOST[cfg.repo.arch]}'",
        "PKGEXT='.pkg.tar.zst'",
        "SRCEXT='.src.tar.gz'",
        "COMPRESSZST=(zstd -c -T0 -)",
        # the host's strip cannot handle aarch64 ELF; debug packages are not published
        "OPTIONS=(!strip docs !libtool !staticlibs emptydirs zipman purge !debug !lto)",
        f"PACKAGER={_sh_quote(cfg.build.packager)}",
        "",
    ])


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _build_uid(user: str) -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"[build] user: no such user {user!r} (makepkg refuses root; "
                          f"create it, e.g. with scripts/setup-debian.sh)") from None
    if pw.pw_uid == 0:
        raise ConfigError(f"[build] user: {user!r} is root; makepkg needs an unprivileged user")
    return pw.pw_uid, pw.pw_gid


@contextlib.contextmanager
def workdir(cfg: Config, prefix: str = "avfrepo-") -> Iterator[Path]:
    """A private temporary directory the makepkg user can write (removed afterwards)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if os.geteuid() == 0:
            uid, gid = _build_uid(cfg.build.user)
            os.chown(path, uid, gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def give_to_builder(cfg: Config, path: Path) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = _build_uid(cfg.build.user)
    for p in [path, *path.rglob("*")]:
        os.lchown(p, uid, gid)


def makepkg(cfg: Config, pkgdir: Path, args: list[str], *, env: dict[str, str] | None = None,
            log_file: Path | None = None, timeout: float | None = 3600) -> Result:
    """Run makepkg in pkgdir (which the build user must own) with the retargeted config."""
    conf = pkgdir.parent / "makepkg.conf"
    conf.write_text(makepkg_conf(cfg))
    os.chmod(conf, 0o644)
    argv = ["makepkg", "--config", str(conf), *args]
    base_env = {"HOME": str(pkgdir.parent), "LC_ALL": "C.UTF-8", "GNUPGHOME": str(pkgdir.parent / ".gnupg")}
    base_env.update(env or {})
    if os.geteuid() == 0:
        _build_uid(cfg.build.user)
        envargs = [f"{k}={v}" for k, v in base_env.items()]
        argv = ["runuser", "-u", cfg.build.user, "--", "env", *envargs, *argv]
    return run(argv, cwd=pkgdir, env=base_env, log_file=log_file, timeout=timeout, tool="makepkg",
               hint=f"log: {log_file}" if log_file else "")


def printsrcinfo(cfg: Config, files: dict[str, bytes]) -> str:
    """`makepkg --printsrcinfo` for a package given as its files."""
    with workdir(cfg, "avfrepo-srcinfo-") as tmp:
        pkg = tmp / "pkg"
        pkg.mkdir()
        for rel, data in files.items():
            (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
            (pkg / rel).write_bytes(data)
        give_to_builder(cfg, pkg)
        return makepkg(cfg, pkg, ["--printsrcinfo"], timeout=120).stdout
