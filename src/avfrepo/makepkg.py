"""Running makepkg on this host: as an unprivileged user, for the target arch, offline.

makepkg refuses to run as root, so when avfrepo runs as root it copies the package into a
private work directory owned by the configured build user and runs makepkg there through
`runuser`. Debian's /etc/makepkg.conf targets x86_64 and .pkg.tar.gz: a private config
that sources it and overrides CARCH, CHOST and PKGEXT is passed with --config.

makepkg checks signed sources (a `.sig` beside a file, a git tag or commit with `?signed`
through `git verify-tag`/`verify-commit`) with the keyring GNUPGHOME names: source_keyring()
fills a GnuPG home of the build's own with the package's keys/pgp/*.asc (below).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from .config import Config
from .errors import AvfrepoError, ConfigError
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
    base_env = {"HOME": str(pkgdir.parent), "LC_ALL": "C.UTF-8", "GNUPGHOME": str(gnupg_home(pkgdir))}
    base_env.update(env or {})
    return run(_as_builder(cfg, ["makepkg", "--config", str(conf), *args], base_env), cwd=pkgdir, env=base_env,
               log_file=log_file, timeout=timeout, tool="makepkg", hint=f"log: {log_file}" if log_file else "")


def _as_builder(cfg: Config, argv: list[str], env: dict[str, str]) -> list[str]:
    """argv run as the build user when avfrepo runs as root (runuser, env passed explicitly)."""
    if os.geteuid() != 0:
        return argv
    _build_uid(cfg.build.user)
    return ["runuser", "-u", cfg.build.user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *argv]


def gnupg_home(pkgdir: Path) -> Path:
    """The GnuPG home makepkg() gives makepkg for the package in pkgdir: beside it, in the
    build's private work directory (so it goes with it)."""
    return pkgdir.parent / ".gnupg"


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


# --- the keys makepkg checks signed sources with: keys/pgp/<FINGERPRINT>.asc ---------------
#
# Arch packaging keeps, beside the PKGBUILD, the public key of each validpgpkeys=() entry as
# keys/pgp/<FINGERPRINT>.asc (devtools' export-pkgbuild-keys writes them). Nothing imports them
# for a build: makepkg checks a signature with whatever keyring GNUPGHOME names and accepts it
# when the signer's primary fingerprint is in validpgpkeys; devtools' makechrootpkg verifies the
# sources outside the chroot (`makepkg --verifysource` as its -U user, GNUPGHOME passed on) and
# builds inside with --skipinteg. So each build gets a GnuPG home of its own holding exactly the
# package's checked key files, owned by the build user and removed with the build's work
# directory: never the maintainer's ~/.gnupg, never the repository signing key's home.
# The files come from upstream: a name is 40 upper-case hex digits + .asc, a file is a regular
# file (a symbolic link is refused, never followed) of at most MAX_KEY_BYTES holding exactly one
# armored public key whose primary fingerprint is its name.

SOURCE_KEYS_DIR = "keys/pgp"
MAX_KEY_BYTES = 256 * 1024       # ALARM's largest is 42 KB (extra/go); minimal exports are a few KB
_FINGERPRINT = re.compile(r"[0-9A-F]{40}")
_KEY_FILE = re.compile(r"(?P<fpr>[0-9A-F]{40})\.asc")


class SourceKeyError(AvfrepoError):
    """A key file under keys/pgp that cannot be used, or a validpgpkeys entry without one."""


def check_source_keys(keys: Mapping[str, bytes], validpgpkeys: Sequence[str] | None = None) -> None:
    """keys: file name under keys/pgp -> content. Each must be <FPR>.asc holding exactly the
    armored public key FPR (read with gpg in a scratch home); with validpgpkeys (the PKGBUILD's),
    each key must also be listed there and each entry have its file. SourceKeyError naming every
    file and entry that fails."""
    from .signing import key_fingerprints

    problems = []
    listed = list(validpgpkeys or ())
    for entry in listed:
        if not _FINGERPRINT.fullmatch(entry):
            problems.append(f"validpgpkeys entry {entry!r} is not a full fingerprint (40 upper-case hex digits)")
    for name in sorted(keys):
        data, where = keys[name], f"{SOURCE_KEYS_DIR}/{name}"
        m = _KEY_FILE.fullmatch(name)
        if not m:
            problems.append(f"{where}: not a key file name (<FINGERPRINT>.asc, 40 upper-case hex digits)")
            continue
        if len(data) > MAX_KEY_BYTES:
            problems.append(f"{where}: {len(data)} bytes, more than {MAX_KEY_BYTES}")
            continue
        if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" not in data or b"PRIVATE KEY BLOCK" in data:
            problems.append(f"{where}: not an armored OpenPGP public key")
            continue
        found = key_fingerprints(data)
        if found != [m["fpr"]]:
            what = ", ".join(found) if found else "no key"
            problems.append(f"{where} holds {what}, not (only) the key {m['fpr']} its name says")
        elif validpgpkeys is not None and m["fpr"] not in listed:
            problems.append(f"{where} is not listed in validpgpkeys")
    if validpgpkeys is not None:
        for entry in listed:
            if _FINGERPRINT.fullmatch(entry) and f"{entry}.asc" not in keys:
                problems.append(f"validpgpkeys entry {entry} has no key file {SOURCE_KEYS_DIR}/{entry}.asc")
    if problems:
        raise SourceKeyError("; ".join(problems))


def read_source_keys(pkgdir: Path) -> dict[str, bytes]:
    """The key files of pkgdir/keys/pgp by name (none without that folder). Only regular files
    are read: a symbolic link (keys, keys/pgp or a key file), a folder or anything else there is
    a SourceKeyError naming it."""
    out: dict[str, bytes] = {}
    folder = pkgdir
    for part in SOURCE_KEYS_DIR.split("/"):
        folder = folder / part
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            return out
        if not stat.S_ISDIR(st.st_mode):
            raise SourceKeyError(f"{folder.relative_to(pkgdir)}: not a folder (a symbolic link is not followed)")
    for p in sorted(folder.iterdir()):
        where = f"{SOURCE_KEYS_DIR}/{p.name}"
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise SourceKeyError(f"{where}: not a regular file ({exc.strerror}; a symbolic link is not "
                                 "followed)") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise SourceKeyError(f"{where}: not a regular file")
            if st.st_size > MAX_KEY_BYTES:
                raise SourceKeyError(f"{where}: {st.st_size} bytes, more than {MAX_KEY_BYTES}")
            data = fh.read(MAX_KEY_BYTES + 1)
        out[p.name] = data
    return out


def source_keyring(cfg: Config, pkgdir: Path) -> Path:
    """A fresh GnuPG home, gnupg_home(pkgdir), owned by the build user, holding the package's
    checked keys/pgp/*.asc (empty without them): the keyring makepkg() verifies signed sources
    with. SourceKeyError for a key file that cannot be used; nothing is imported then."""
    keys = read_source_keys(pkgdir)
    check_source_keys(keys)
    home = gnupg_home(pkgdir)
    home.mkdir(mode=0o700)
    give_to_builder(cfg, home)
    if keys:
        env = {"LC_ALL": "C.UTF-8"}
        # --no-autostart: an import needs no gpg-agent, and one started would outlive the build
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--no-autostart"]
        run(_as_builder(cfg, [*gpg, "--import"], env), env=env, timeout=120, tool="gpg",
            input=b"".join(keys[n] for n in sorted(keys)).decode("utf-8", errors="replace"))
        listing = run(_as_builder(cfg, [*gpg, "--with-colons", "--list-keys"], env), env=env, timeout=60,
                      tool="gpg").stdout
        held = {f.split(":")[9] for f in listing.splitlines() if f.startswith("fpr:")}
        wanted = {n[:-len(".asc")] for n in keys}
        if not wanted <= held:
            raise SourceKeyError(f"{gnupg_home(pkgdir)}: gpg did not import {', '.join(sorted(wanted - held))}")
    return home
