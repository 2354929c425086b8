"""`avfrepo repo list|rollback|remove`: what is published and archived, going back, taking out."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import provenance, signing
from ..config import Config
from ..errors import AvfrepoError, ConfigError
from ..versions import vercmp
from . import layout
from .lock import repo_lock
from .publish import current_entries, transaction


@dataclass
class PackageRow:
    name: str
    published: str | None
    archived: list[str] = field(default_factory=list)     # newest first, published excluded

    def to_json(self) -> dict:
        return {"name": self.name, "published": self.published, "archived": self.archived}


def _newest_first(versions: list[str]) -> list[str]:
    return sorted(versions, key=functools.cmp_to_key(vercmp), reverse=True)


def list_packages(cfg: Config) -> list[PackageRow]:
    current = current_entries(cfg)
    rows: dict[str, PackageRow] = {n: PackageRow(n, e.version) for n, e in current.items()}
    for f in layout.pool_files(cfg):
        row = rows.setdefault(f.name, PackageRow(f.name, None))
        if f.version != row.published:
            row.archived.append(f.version)
    for row in rows.values():
        row.archived = _newest_first(row.archived)
    return [rows[n] for n in sorted(rows)]


def unknown_name(cfg: Config, name: str, known: set[str]) -> ConfigError:
    """A package name the repository has never held (published or archived): a usage error
    (exit 2), with the closest names it does hold."""
    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return ConfigError(f"{name}: no such package in [{cfg.repo.name}] ({hint}`avfrepo repo list` shows what is there)")


def _known(cfg: Config, current: dict) -> set[str]:
    return set(current) | {f.name for f in layout.pool_files(cfg)}


def _require_known(cfg: Config, name: str) -> None:
    """Before the lock (which creates the repository folder): a name the repository never
    held changes nothing on disk."""
    if not cfg.repo.path.is_dir():
        raise unknown_name(cfg, name, set())
    known = _known(cfg, current_entries(cfg))
    if name not in known:
        raise unknown_name(cfg, name, known)


def rollback(cfg: Config, name: str, version: str | None = None,
             progress: Callable[[str], None] = lambda s: None) -> str:
    """Publish an archived version of `name` again (default: the newest older one)."""
    key = signing.signing_key(cfg.signing)
    _require_known(cfg, name)
    with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, f"rollback {name}", progress):
        entries = current_entries(cfg)
        if name not in _known(cfg, entries):
            raise unknown_name(cfg, name, _known(cfg, entries))
        current = entries.get(name)
        candidates = [f for f in layout.pool_files(cfg) if f.name == name
                      and (current is None or f.version != current.version)]
        if version is not None:
            chosen = [f for f in candidates if f.version == version]
            if not chosen:
                have = ", ".join(_newest_first([f.version for f in candidates])) or "none"
                raise AvfrepoError(f"no archived {name} {version} (archived: {have})")
        else:
            older = [f for f in candidates if current is None or vercmp(f.version, current.version) < 0]
            chosen = sorted(older, key=functools.cmp_to_key(lambda a, b: vercmp(a.version, b.version)))[-1:]
            if not chosen and current is None:
                raise AvfrepoError(f"{name} is not in [{cfg.repo.name}] and has no archived version "
                                   "(`avfrepo repo list` shows what is there)")
            if not chosen:
                have = ", ".join(_newest_first([f.version for f in candidates])) or "none"
                raise AvfrepoError(f"no archived version of {name} older than {current.version} (the published one) "
                                   f"to roll back to; archived: {have}")
        f = chosen[0]
        transaction(cfg, key, add=[layout.pool(cfg) / f.filename], allow_downgrade=True, progress=progress,
                    hold={name: current.version} if current is not None and vercmp(f.version, current.version) < 0 else None)
    return f.version


def remove(cfg: Config, name: str, progress: Callable[[str], None] = lambda s: None) -> str:
    """Drop `name` from the db; its published file, signature and provenance record leave
    the pool together."""
    key = signing.signing_key(cfg.signing)
    _require_known(cfg, name)
    with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, f"remove {name}", progress):
        entries = current_entries(cfg)
        entry = entries.get(name)
        if entry is None and name not in _known(cfg, entries):
            raise unknown_name(cfg, name, _known(cfg, entries))
        if entry is None:
            raise AvfrepoError(f"{name} is not published in [{cfg.repo.name}] (only archived versions are kept: "
                               f"`avfrepo repo rollback {name}` publishes one again)")
        transaction(cfg, key, remove=[name], progress=progress)
        pool = layout.pool(cfg)
        for p in (pool / entry.filename, pool / (entry.filename + ".sig"),
                  *(pool / c for c in provenance.companions(entry.filename))):
            p.unlink(missing_ok=True)
    return entry.version
