"""`<repo>/ledger.json`: what the repository has ever published, kept beside the pool.

    {
      "format": 1,
      "versions": {"t-a 1.0-1": {"filename": "t-a-1.0-1-any.pkg.tar.zst", "sha256": "..."}},
      "latest": {"generation": 7, "db_sha256": "..."},
      "holds": {"t-a": "1.0-2"}
    }

- versions: every package version ever switched to, with its file's sha256. A version once
  published keeps its bytes forever: `repo remove` + `repo add` of the same version with other
  bytes is refused, even after the pool forgot the file. Only switched-to versions are
  recorded, so pool copies left by a killed run never block a rebuild.
- latest: the snapshot generation and db sha256 of the last switch. `verify` fails when the
  served snapshot is older (a replay of an old, validly signed snapshot).
- holds: after `repo rollback`, the version rolled back from; publishing that version (or an
  older one) again is skipped until a newer version comes.

- pending (only between the two writes of a publish): the generation and db sha256 of the
  snapshot about to be switched to, and the holds that hold once it is served.

Written twice per publish, atomically: before the switch with `pending`, after it without. A
kill between the switch and the second write leaves `pending` naming the served snapshot: it
is applied (its holds too: a rollback's hold is never lost). A kill before the switch leaves a
`pending` that names no served snapshot: it is dropped. Versions are recorded after the
switch only (and caught up from the served db), so pool copies of a killed run never block a
rebuild.

The ledger is the repository's memory: once anything is published (the served link, a
snapshot, a pool file) a missing ledger.json is refused, not started afresh (`require`), and a
ledger older than the served snapshot is named (publish refuses, verify fails).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import AvfrepoError
from ..formats import jsondoc
from ..fsutil import atomic_write

FORMAT = 1


class LedgerError(AvfrepoError):
    """The ledger file is unreadable."""


@dataclass
class Ledger:
    versions: dict[str, dict[str, str]] = field(default_factory=dict)
    generation: int = 0
    db_sha256: str | None = None
    holds: dict[str, str] = field(default_factory=dict)
    exists: bool = False
    pending: dict | None = None     # {"generation", "db_sha256", "holds"}: see the module docstring

    @staticmethod
    def key(name: str, version: str) -> str:
        return f"{name} {version}"

    def digest(self, name: str, version: str) -> str | None:
        row = self.versions.get(self.key(name, version))
        return row["sha256"] if row else None

    def record(self, name: str, version: str, filename: str, sha256: str) -> None:
        self.versions.setdefault(self.key(name, version), {"filename": filename, "sha256": sha256})

    def settle(self, served_generation: int | None, served_db_sha256: str | None) -> None:
        """Apply `pending` when the snapshot it names is the served one (the switch happened),
        else drop it (the run was killed before the switch)."""
        p, self.pending = self.pending, None
        if p is not None and p["generation"] == served_generation and p["db_sha256"] == served_db_sha256:
            self.generation, self.db_sha256, self.holds = p["generation"], p["db_sha256"], dict(p["holds"])

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, "versions": dict(sorted(self.versions.items())),
                "latest": {"generation": self.generation, "db_sha256": self.db_sha256},
                "holds": dict(sorted(self.holds.items()))}
        if self.pending is not None:
            data["pending"] = self.pending
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def path(cfg: Config) -> Path:
    return cfg.repo.path / "ledger.json"


def parse(data: bytes, where: str = "ledger.json") -> Ledger:
    try:
        obj = jsondoc.parse(data)
    except ValueError as exc:
        raise LedgerError(f"{where}: corrupt ledger ({exc}); restore it from a backup") from None
    try:
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise TypeError("format " + jsondoc.one_line(repr(obj.get("format") if isinstance(obj, dict) else None), 40))
        versions, latest, holds = obj["versions"], obj["latest"], obj["holds"]
        if not (isinstance(versions, dict) and all(
                isinstance(k, str) and isinstance(v, dict) and isinstance(v.get("filename"), str)
                and isinstance(v.get("sha256"), str) for k, v in versions.items())):
            raise TypeError("versions")
        if not (isinstance(holds, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in holds.items())):
            raise TypeError("holds")
        gen, db = latest["generation"], latest["db_sha256"]
        if not isinstance(gen, int) or isinstance(gen, bool) or gen < 0 or not (db is None or isinstance(db, str)):
            raise TypeError("latest")
        pending = obj.get("pending")
        if pending is not None and not (
                isinstance(pending, dict) and isinstance(pending.get("generation"), int)
                and not isinstance(pending["generation"], bool) and isinstance(pending.get("db_sha256"), str)
                and isinstance(pending.get("holds"), dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in pending["holds"].items())):
            raise TypeError("pending")
    except (TypeError, KeyError, AttributeError) as exc:
        raise LedgerError(f"{where}: corrupt ledger (unexpected content: {jsondoc.one_line(exc)}); "
                          "restore it from a backup") from None
    return Ledger({k: {"filename": v["filename"], "sha256": v["sha256"]} for k, v in versions.items()},
                  gen, db, dict(holds), True, pending)


def load(cfg: Config) -> Ledger:
    p = path(cfg)
    if p.is_symlink():
        raise LedgerError(f"{p}: a symbolic link where avfrepo keeps a regular file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return Ledger()
    return parse(data, str(p))


def published_anything(cfg: Config) -> str | None:
    """What shows that this repository has published before (the served link, a numbered
    snapshot, a package in the pool), or None for a repository that never did."""
    from . import layout
    if os.path.lexists(cfg.repo.published):
        return f"{cfg.repo.published.name} is served"
    snaps = layout.snapshots(cfg)
    if snaps.is_dir() and any(p.name.isdigit() for p in snaps.iterdir()):
        return f"{snaps.name}/ holds snapshots"
    if layout.pool_files(cfg):
        return f"{layout.pool(cfg).name}/ holds packages"
    return None


def require(cfg: Config, ledger: Ledger) -> Ledger:
    """LedgerError when the ledger is missing from a repository that has published before:
    without it a version once published could be published again with other bytes."""
    if not ledger.exists:
        shown = published_anything(cfg)
        if shown:
            raise LedgerError(f"{path(cfg)}: missing, but [{cfg.repo.name}] has published ({shown}): the ledger "
                              "remembers every version ever published and its bytes, and is not started afresh; "
                              "restore it from a backup")
    return ledger


def save(cfg: Config, ledger: Ledger) -> None:
    atomic_write(path(cfg), ledger.to_bytes())
    ledger.exists = True
