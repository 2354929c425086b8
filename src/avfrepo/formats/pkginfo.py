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


def read(package: Path) -> PkgInfo:
    out = run(["bsdtar", "-xOf", str(package), ".PKGINFO"], hint=f"is {package.name} a pacman package?").stdout
    return parse(out)
