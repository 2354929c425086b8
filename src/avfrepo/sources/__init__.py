"""Upstream version sources: one module per kind, each returning a Release.

Sources know nothing about PKGBUILDs: they answer "what is the newest release of this
upstream, and which commit (if any) is it".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    upstream: str
    version: str          # as upstream names it, e.g. the tag "android-16.0.0_r3"
    pkgver: str           # the same, spelled as an Arch pkgver, e.g. "16.0.0.r3"
    commit: str | None    # peeled commit for git sources
    url: str

    def to_json(self) -> dict[str, str | None]:
        return {"version": self.version, "pkgver": self.pkgver, "commit": self.commit, "url": self.url}
