"""`avfrepo verify`: is the published repository what pacman with SigLevel=Required accepts?

For the db and files db: present, signature valid with the repository key. For every db
entry: the package file exists, its size and sha256 match the db, its .sig verifies with the
repository key, and the db's embedded %PGPSIG% (when present) is that .sig.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from .. import signing
from ..config import Config
from ..formats.repodb import read_db


@dataclass(frozen=True)
class Check:
    path: str
    ok: bool
    message: str


@dataclass
class VerifyReport:
    repo: Path
    key: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def bad(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict:
        return {"repo": str(self.repo), "key": self.key, "ok": self.ok,
                "checks": [c.__dict__ for c in self.checks]}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(cfg: Config) -> VerifyReport:
    key = signing.verification_key(cfg.signing)
    public = signing.export_public(cfg.signing, key, armor=False)
    repo = cfg.repo.path
    rep = VerifyReport(repo, key)
    add = rep.checks.append

    def sig_check(path: Path) -> bool:
        res = signing.verify_detached(public, Path(str(path) + ".sig"), path, key)
        add(Check(path.name + ".sig", res.ok, res.reason))
        return res.ok

    db = repo / f"{cfg.repo.name}.db.tar.gz"
    files_db = repo / f"{cfg.repo.name}.files.tar.gz"
    if not db.exists():
        add(Check(db.name, False, "database missing (nothing published yet?)"))
        return rep
    for path in (db, files_db):
        if not path.exists():
            add(Check(path.name, False, "missing"))
            continue
        sig_check(path)
    try:
        entries = read_db(db)
    except ValueError as exc:
        add(Check(db.name, False, str(exc)))
        return rep
    add(Check(db.name, True, f"{len(entries)} packages listed"))
    for entry in sorted(entries.values(), key=lambda e: e.name):
        pkg = repo / entry.filename
        if not pkg.is_file():
            add(Check(entry.filename, False, f"listed for {entry.name} {entry.version} but missing"))
            continue
        problems = []
        if entry.csize is not None and pkg.stat().st_size != entry.csize:
            problems.append(f"size {pkg.stat().st_size} != db {entry.csize}")
        if entry.sha256 and _sha256(pkg) != entry.sha256:
            problems.append("sha256 differs from the db")
        add(Check(entry.filename, not problems, "; ".join(problems) or "size and sha256 match the db"))
        if sig_check(pkg) and entry.pgpsig:
            sig_bytes = Path(str(pkg) + ".sig").read_bytes()
            if base64.b64decode(entry.pgpsig) != sig_bytes:
                add(Check(entry.filename + ".sig", False, "differs from the signature embedded in the db"))
    return rep
