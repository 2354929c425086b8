"""Where things live in a published repository, and how a package file name reads.

    <repo>/pool/                 every kept package file and its .sig (current + archived)
    <repo>/snapshots/<N>/        one complete repository: db, files db, their .sig,
                                 <name>.asc, hard links to the pool files the db lists
    <repo>/<arch> -> snapshots/N the published view (pacman's `Server = <url>/$arch`),
                                 switched by one atomic rename of a symlink
    <repo>/.lock                 the run lock (exclusive to publish, shared to verify)
    <repo>/ledger.json           every version ever published with its sha256, the last
                                 switched generation and db, rollback holds (ledger.py)

A crash at any instant leaves <arch> pointing at a complete snapshot, old or new.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..formats import archrules



def pool(cfg: Config) -> Path:
    return cfg.repo.path / "pool"


def snapshots(cfg: Config) -> Path:
    return cfg.repo.path / "snapshots"


def current_snapshot(cfg: Config) -> Path | None:
    link = cfg.repo.published
    if not link.is_symlink():
        return None
    return link.resolve()


@dataclass(frozen=True)
class PkgFile:
    name: str
    version: str      # [epoch:]pkgver-pkgrel
    arch: str
    filename: str


def parse_filename(filename: str) -> PkgFile | None:
    parts = archrules.split_package_filename(filename)
    if parts is None or parts.ext == "sig":       # <pkg>.pkg.tar.sig: an uncompressed package's signature
        return None
    return PkgFile(parts.name, parts.version, parts.arch, filename)


def pool_files(cfg: Config) -> list[PkgFile]:
    d = pool(cfg)
    if not d.is_dir():
        return []
    return [f for p in sorted(d.iterdir()) if (f := parse_filename(p.name)) is not None]
