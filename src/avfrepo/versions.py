"""Arch package versions ([epoch:]pkgver-pkgrel), ordered by libalpm's own vercmp."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import pyalpm

from .formats import archrules


def vercmp(a: str, b: str) -> int:
    """libalpm's comparison: <0, 0, >0. Same answers as pacman's `vercmp` tool."""
    return pyalpm.vercmp(a, b)


def valid_pkgver(pkgver: str) -> bool:
    """makepkg's rule: no colon, slash, hyphen or whitespace (and not empty): archrules'."""
    return archrules.valid_pkgver(pkgver)


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    pkgver: str
    pkgrel: str = "1"
    epoch: int = 0

    @classmethod
    def parse(cls, text: str) -> "Version":
        parts = archrules.split_version(text.strip())
        if parts is None:
            raise ValueError(f"not an Arch package version (epoch:pkgver-pkgrel): {text!r}")
        epoch, pkgver, pkgrel = parts
        return cls(pkgver=pkgver, pkgrel=pkgrel, epoch=epoch)

    def __str__(self) -> str:
        prefix = f"{self.epoch}:" if self.epoch else ""
        return f"{prefix}{self.pkgver}-{self.pkgrel}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return vercmp(str(self), str(other)) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return vercmp(str(self), str(other)) == 0

    def __hash__(self) -> int:
        # Must agree with vercmp equality ("01" == "1", "1_0" == "1.0"): hash the alphanumeric
        # segments only, numbers by value. Versions vercmp tells apart may still collide.
        return hash((self.epoch, _segments(self.pkgver), _segments(self.pkgrel)))


def _segments(text: str) -> tuple[object, ...]:
    return tuple(int(s) if s.isdigit() else s for s in re.findall(r"\d+|[A-Za-z]+", text))
