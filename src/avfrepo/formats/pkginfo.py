"""A built package (`*.pkg.tar.zst`): its `.PKGINFO`, and what its files are, read with bsdtar.

arch_problems() is "what a package IS" against what it says: every ELF object in it is for
the machine of its .PKGINFO arch (formats/elf.py has the rule).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from ..run import run, stream
from . import archrules, elf


@dataclass(frozen=True)
class PkgInfo:
    pkgname: str
    pkgbase: str
    pkgver: str          # full version as makepkg writes it: [epoch:]pkgver-pkgrel
    arch: str
    fields: dict[str, list[str]] = field(default_factory=dict, compare=False)


def parse(text: str) -> PkgInfo:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(" = ")
        if sep:
            fields.setdefault(key, []).append(value)

    def one(k: str) -> str:
        v = fields.get(k)
        if not v:
            raise ValueError(f".PKGINFO has no {k}")
        return v[0]
    return PkgInfo(one("pkgname"), fields.get("pkgbase", [one("pkgname")])[0], one("pkgver"), one("arch"), fields)


def check(info: PkgInfo, filename: str) -> None:
    """ValueError unless pkgname, version and arch follow Arch's rules and `filename` is exactly
    <pkgname>-<version>-<arch>.pkg.tar.<ext> (archrules.check_package_file: the one rule)."""
    archrules.check_package_file(info.pkgname, info.pkgver, info.arch, filename)


def read(package: Path) -> PkgInfo:
    out = run(["bsdtar", "-xOf", str(package), ".PKGINFO"], hint=f"is {package.name} a pacman package?").stdout
    return parse(out)


# the package's own metadata files at the top of the archive (makepkg writes these)
METADATA = frozenset({".PKGINFO", ".BUILDINFO", ".MTREE", ".INSTALL", ".CHANGELOG"})


def member_heads(package: Path, size: int = elf.HEAD_BYTES) -> list[tuple[str, bytes]]:
    """(path, first `size` bytes) of every regular file of the package but its metadata, in
    archive order. One pass: bsdtar decompresses (any compression pacman knows) and hands an
    uncompressed tar stream to Python's tarfile, which reads the first bytes of each member."""
    def heads(pipe: IO[bytes]) -> list[tuple[str, bytes]]:
        out = []
        try:
            with tarfile.open(fileobj=pipe, mode="r|", bufsize=1 << 20) as tar:
                for member in tar:
                    name = member.name.removeprefix("./")
                    if member.isreg() and name not in METADATA:
                        fh = tar.extractfile(member)
                        assert fh is not None
                        out.append((name, fh.read(size)))
        except tarfile.TarError as exc:
            raise ValueError(f"{package.name}: unreadable archive: {exc}") from None
        return out
    return stream(["bsdtar", "-cf", "-", f"@{package}"], heads, hint=f"is {package.name} a pacman package?")


def arch_problems(package: Path, arch: str) -> list[str]:
    """What in the package contradicts `arch` (its .PKGINFO's): members holding code for another
    machine, ELF objects in an `any` package; one message per member (elf.problems)."""
    return elf.problems(arch, member_heads(package))


def arch_refusal(package: Path, info: PkgInfo, shown: int = 3) -> str | None:
    """None when every file of the package fits its arch; else one line naming the package,
    the first `shown` members that do not and their machines."""
    try:
        wrong = arch_problems(package, info.arch)
    except ValueError as exc:
        return f"{package.name}: {exc}"
    if not wrong:
        return None
    more = f"; and {len(wrong) - shown} more" if len(wrong) > shown else ""
    return (f"{package.name}: the files of {info.pkgname} contradict its arch={info.arch}: "
            + "; ".join(wrong[:shown]) + more)
