"""Arch's rules for package names, versions, architectures and package file names: each once.

Every check of a pkgname, pkgver, pkgrel, epoch, arch or `*.pkg.tar.*` file name in avfrepo
calls a function of this module; nothing else writes these character classes.

    pkgname   [a-z0-9@._+-], not empty, not starting with '-' or '.'   (makepkg's lint, lowercase)
    pkgver    [A-Za-z0-9._+], not empty. makepkg only forbids '-', ':', '/' and whitespace;
              avfrepo keeps the narrower class every value it writes into a PKGBUILD, a path
              or a file name has always had (an upstream's version is untrusted text)
    pkgrel    integer[.integer]                                     (makepkg: 1, 2, 1.1)
    epoch     integer
    version   [epoch:]pkgver-pkgrel
    arch      [A-Za-z0-9_], not empty                               (makepkg: alnum and _)
    file      <pkgname>-<version>-<arch>.pkg.tar[.<compression>]

Plain `re` (config.py reads names before anything heavy loads); check_package_file, the
gate before a package is signed or published, also has python-alpm (the ALPM project's own
parsers) accept the three values: a value both agree on is the only one that passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PKGNAME = re.compile(r"[a-z0-9@_+][a-z0-9@._+-]*")
_PKGVER = re.compile(r"[A-Za-z0-9._+]+")
_PKGREL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_EPOCH = re.compile(r"[0-9]+")
_VERSION = re.compile(rf"(?:(?P<epoch>{_EPOCH.pattern}):)?(?P<pkgver>{_PKGVER.pattern})-(?P<pkgrel>{_PKGREL.pattern})")
_ARCH = re.compile(r"[A-Za-z0-9_]+")
# the shape only (split at the last three hyphens); the parts' own rules are checked apart
_FILENAME = re.compile(r"(?P<name>.+)-(?P<ver>[^-]+)-(?P<rel>[^-]+)-(?P<arch>[^-]+)\.pkg\.tar(?:\.(?P<ext>[A-Za-z0-9]+))?")

# the compressions makepkg's PKGEXT knows (what a published package may end in)
COMPRESSIONS = ("zst", "xz", "gz", "bz2", "lz4", "lzo", "lrz", "lz", "Z")


def _full(rx: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and rx.fullmatch(value) is not None


def valid_pkgname(name: object) -> bool:
    """A pkgname (or pkgbase): [a-z0-9@._+-], not empty, not starting with '-' or '.'."""
    return _full(_PKGNAME, name)


def valid_pkgver(pkgver: object) -> bool:
    """A pkgver: [A-Za-z0-9._+] and not empty (so no '-', ':', '/' or whitespace)."""
    return _full(_PKGVER, pkgver)


def valid_pkgrel(pkgrel: object) -> bool:
    """A pkgrel: integer[.integer]."""
    return _full(_PKGREL, pkgrel)


def valid_epoch(epoch: object) -> bool:
    """An epoch as written before the colon: digits."""
    return _full(_EPOCH, epoch)


def valid_arch(arch: object) -> bool:
    """An architecture name: [A-Za-z0-9_] and not empty (aarch64, x86_64, any)."""
    return _full(_ARCH, arch)


def split_version(text: str) -> tuple[int, str, str] | None:
    """(epoch, pkgver, pkgrel) of a full [epoch:]pkgver-pkgrel version, or None if it is not one."""
    m = _VERSION.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        return None
    return int(m["epoch"] or 0), m["pkgver"], m["pkgrel"]


def valid_version(text: object) -> bool:
    """A full version: [epoch:]pkgver-pkgrel."""
    return _full(_VERSION, text)


@dataclass(frozen=True)
class PackageFileName:
    name: str
    version: str         # [epoch:]pkgver-pkgrel
    arch: str
    ext: str             # the compression ("zst"), "" for an uncompressed .pkg.tar


def split_package_filename(filename: str) -> PackageFileName | None:
    """The parts of <name>-<version>-<arch>.pkg.tar[.<ext>], or None when the name has not
    that shape. Only the shape: the parts may still break their rules (check_package_file)."""
    m = _FILENAME.fullmatch(filename)
    if m is None:
        return None
    return PackageFileName(m["name"], f"{m['ver']}-{m['rel']}", m["arch"], m["ext"] or "")


def check_package_file(pkgname: str, version: str, arch: str, filename: str) -> None:
    """ValueError unless pkgname, version and arch follow their rules and `filename` is exactly
    <pkgname>-<version>-<arch>.pkg.tar.<one of COMPRESSIONS>: what a package's .PKGINFO says
    and what its file is called must agree."""
    for what, value, ok in (("pkgname", pkgname, valid_pkgname), ("version", version, valid_version),
                            ("arch", arch, valid_arch)):
        if not ok(value):
            raise ValueError(f".PKGINFO {what} {value!r} is not valid (Arch's {what} rule)")
    _alpm_agrees(pkgname, version, arch)
    stem = f"{pkgname}-{version}-{arch}.pkg.tar."
    if not (filename.startswith(stem) and filename[len(stem):] in COMPRESSIONS):
        raise ValueError(f"file name does not match its .PKGINFO ({stem}{{{','.join(COMPRESSIONS)}}})")


def _alpm_agrees(pkgname: str, version: str, arch: str) -> None:
    from alpm import alpm_types as t
    for what, value, parser in (("pkgname", pkgname, t.PackageRelation),
                                ("version", version, t.FullVersion.from_str),
                                ("arch", arch, t.Architecture)):
        try:
            parser(value)
        except Exception as exc:        # ALPMError, or a TypeError from odd input
            first = next((l.strip() for l in str(exc).splitlines() if l.startswith("error:")), str(exc).strip())
            raise ValueError(f".PKGINFO {what} {value!r} is not valid ({first})") from None
