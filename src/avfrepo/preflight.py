"""Checks before work: what a command needs, asked before it builds or writes anything.

Each check takes well under a second and fails with one line that names the fix, as a
PreflightError (a ConfigError: exit 2). Hours of building must never end in "repo-add not
found", and a missing build user must never look like every package failing.

    tools       the external programs on PATH (which Debian/Arch package has each)
    root        commands that need root (pacman --root, mkfs, loop devices) say so
    build_user  the unprivileged user makepkg runs as (when avfrepo runs as root)
    signing     a secret key that can sign (a probe signature, as repo-add would make)
    writable    a folder (or the nearest existing parent) this user can write
    git_tree    `sync --commit` needs pkgbuilds/ inside a git working tree

`for_build` and `for_publish` group them for the commands that build and publish.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from . import run as run_mod
from .config import Config, toml_value
from .errors import ConfigError, SigningError

# where each tool comes from (Debian 12 / Arch Linux)
PACKAGES = {
    "git": "git",
    "makepkg": "makepkg (Debian) / pacman (Arch)",
    "makechrootpkg": "devtools (Arch only)",
    "repo-add": "pacman-package-manager (Debian) / pacman (Arch)",
    "bsdtar": "libarchive-tools (Debian) / libarchive (Arch)",
    "gpg": "gnupg",
    "zstd": "zstd",
    "runuser": "util-linux",
}


class PreflightError(ConfigError):
    """A check before work failed; nothing was built or written (exit 2)."""


class KeyNotUsable(PreflightError, SigningError):
    """No secret key that can sign (still a SigningError for callers that catch those)."""


def tools(*names: str, why: str) -> None:
    missing = [t for t in names if run_mod.which(t) is None]
    if missing:
        raise PreflightError(
            f"{', '.join(missing)} not found on PATH ({why} needs {'them' if len(missing) > 1 else 'it'}): install "
            + "; ".join(f"{t} from {PACKAGES.get(t, t)}" for t in missing)
            + " (bash scripts/setup-debian.sh installs everything)")


def root(command: str, why: str) -> None:
    if os.geteuid() != 0:
        raise PreflightError(f"avfrepo {command} needs root ({why}): run it as root, e.g. `sudo avfrepo {command}`")


def build_user(cfg: Config) -> None:
    """The [build] user exists and is not root (makepkg refuses root; avfrepo runs it as this
    user when it runs as root itself)."""
    if os.geteuid() != 0:
        return                      # makepkg runs as the invoking user
    user = cfg.build.user
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PreflightError(f"[build] user {toml_value(user)}: no such user on this host: create it "
                             f"(`useradd --system --create-home {user}`; scripts/setup-debian.sh creates avfbuild) "
                             f"or set [build] user in {cfg.file}") from None
    if pw.pw_uid == 0:
        raise PreflightError(f"[build] user {toml_value(user)} is root, and makepkg refuses root: set [build] user in "
                             f"{cfg.file} to an unprivileged user")


def signing(cfg: Config):
    """The signing key, after a probe signature shows it can sign (not expired or revoked)."""
    from . import signing as signing_mod
    try:
        key = signing_mod.signing_key(cfg.signing)
        signing_mod.probe_signing(cfg.signing, key)
    except SigningError as exc:
        raise KeyNotUsable(str(exc)) from None
    return key


def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def writable(path: Path, what: str, fix: str) -> None:
    """path (or, when it does not exist yet, the folder it would be made in) can be written;
    else one line: which folder, why (read-only mount, or its owner), and `fix`."""
    p = _existing(path)
    try:
        readonly = bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        readonly = False
    if readonly:
        raise PreflightError(f"{what} {path}: {p} is on a read-only file system: mount it read-write, or {fix}")
    if not os.access(p, os.W_OK | os.X_OK):
        user = pwd.getpwuid(os.geteuid()).pw_name
        try:
            owner = pwd.getpwuid(p.stat().st_uid).pw_name
        except (KeyError, OSError):
            owner = "its owner"
        raise PreflightError(f"{what} {path}: {p} is not writable by {user}: run as {owner}, or {fix}")


def git_tree(path: Path, why: str) -> None:
    p = _existing(path)
    res = run_mod.run(["git", "-C", str(p), "rev-parse", "--show-toplevel"], check=False, timeout=30)
    if res.returncode != 0:
        raise PreflightError(f"{why}: {path} is not inside a git working tree: clone your fork (or `git init` "
                             f"in {p}), or run without --commit")


def for_publish(cfg: Config) -> None:
    """What changing the repository needs (repo add/rollback/remove, build): repo-add, gpg,
    bsdtar and a writable repository (the key: signing())."""
    tools("repo-add", "gpg", "bsdtar", why=f"publishing into [{cfg.repo.name}]")
    writable(cfg.repo.path, "[repo] path", f"set [repo] path in {cfg.file}")


def for_build(cfg: Config, *, backend: str | None, publish: bool, out: Path | None = None) -> None:
    """What `avfrepo build` needs before its first package: the backend's tools, user (and
    root and chroot for makechrootpkg), writable logs and cache (and output folder), and
    when it publishes, for_publish."""
    if backend == "makechrootpkg":
        root("build", "makechrootpkg mounts and enters the build chroot")
        tools("makechrootpkg", "bsdtar", why="the makechrootpkg backend")
        if not (cfg.build.chroot / "root").is_dir():
            raise PreflightError(f"no build chroot at {cfg.build.chroot}/root: create it with `avfrepo chroot init`, "
                                 f"or set [build] chroot in {cfg.file}")
        build_user(cfg)
    elif backend is not None:
        tools(backend, "bsdtar", "zstd", *(["runuser"] if os.geteuid() == 0 else []), why=f"the {backend} backend")
        build_user(cfg)
    writable(cfg.logs, "[paths] logs", f"set [paths] logs in {cfg.file}")
    writable(cfg.cache, "[paths] cache", f"set [paths] cache in {cfg.file}")
    if out is not None:
        writable(out, "--unsigned", "name another folder")
    if publish:
        for_publish(cfg)
