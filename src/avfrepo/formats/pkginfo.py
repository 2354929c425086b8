"""`.PKGINFO` inside a built package (`*.pkg.tar.zst`), read with bsdtar."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..run import run


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


COMPRESSIONS = ("zst", "xz", "gz", "bz2", "lz4", "lzo", "lrz", "lz", "Z")


def check(info: PkgInfo, filename: str) -> None:
    """ValueError unless pkgname, version and arch follow Arch's rules (python-alpm, the ALPM
    project's own parsers, decides) and `filename` is exactly <pkgname>-<version>-<arch>.pkg.tar.<ext>."""
    from alpm import alpm_types as t
    for what, value, parser in (("pkgname", info.pkgname, t.PackageRelation),
                                ("version", info.pkgver, t.FullVersion.from_str),
                                ("arch", info.arch, t.Architecture)):
        try:
            parser(value)
        except Exception as exc:        # ALPMError, or a TypeError from odd input
            first = next((l.strip() for l in str(exc).splitlines() if l.startswith("error:")), str(exc).strip())
            raise ValueError(f".PKGINFO {what} {value!r} is not valid ({first})") from None
        if value != value.strip() or not value.isascii():
            raise ValueError(f".PKGINFO {what} {value!r} is not valid")
    stem = f"{info.pkgname}-{info.pkgver}-{info.arch}.pkg.tar."
    if not (filename.startswith(stem) and filename[len(stem):] in COMPRESSIONS):
        raise ValueError(f"file name does not match its .PKGINFO ({stem}{{{','.join(COMPRESSIONS)}}})")


def read(package: Path) -> PkgInfo:
    out = run(["bsdtar", "-xOf", str(package), ".PKGINFO"], hint=f"is {package.name} a pacman package?").stdout
    return parse(out)
