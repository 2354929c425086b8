"""`avfrepo verify`: is the published repository what pacman with SigLevel=Required accepts?

Published view (`<repo>/<arch>`): the db and files db are present and signed by the
repository key; every db entry's package exists with the size and sha256 the db records, its
.sig verifies with the repository key and equals the db's embedded %PGPSIG%; no package file
lies there that the db does not list. Pool (the archive): every package has a good signature.
Leftovers of an interrupted publish are warnings (the next publish removes them).
With provenance=True (`verify --provenance`), every listed package also needs its provenance
record: present, signed by the repository key, and naming the db entry's package, version,
file name and sha256, which the file itself must have.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

from .. import provenance as prov
from .. import signing
from ..config import Config
from ..formats.repodb import read_db, read_files_db
from . import layout
from ..fsutil import sha256_file


@dataclass(frozen=True)
class Check:
    path: str
    ok: bool
    message: str
    level: str = "error"     # a failed "warning" does not make the repository bad


@dataclass
class VerifyReport:
    repo: Path
    key: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.bad()

    def bad(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.level == "error"]

    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.level == "warning"]

    def to_json(self) -> dict:
        return {"repo": str(self.repo), "key": self.key, "ok": self.ok,
                "checks": [c.__dict__ for c in self.checks]}


def verify(cfg: Config, *, provenance: bool = False) -> VerifyReport:
    key = signing.verification_key(cfg.signing)
    public = signing.export_public(cfg.signing, key, armor=False)
    pub = cfg.repo.published
    rep = VerifyReport(cfg.repo.path, key)
    add = rep.checks.append

    def sig_check(path: Path, shown: str) -> bool:
        res = signing.verify_detached(public, Path(str(path) + ".sig"), path, key)
        add(Check(shown + ".sig", res.ok, res.reason))
        return res.ok

    if not cfg.repo.db.exists():
        add(Check(cfg.repo.db.name, False, f"database missing in {pub} (nothing published yet?)"))
        return rep
    for path in (cfg.repo.db, cfg.repo.files_db):
        if path.exists():
            sig_check(path, path.name)
        else:
            add(Check(path.name, False, "missing"))
    try:
        entries = read_db(cfg.repo.db)
    except ValueError as exc:
        add(Check(cfg.repo.db.name, False, str(exc)))
        return rep
    add(Check(cfg.repo.db.name, True, f"{len(entries)} packages listed"))
    if cfg.repo.files_db.exists():
        try:
            listed = set(read_files_db(cfg.repo.files_db))
            want = {f"{e.name}-{e.version}" for e in entries.values()}
            add(Check(cfg.repo.files_db.name, listed == want,
                      "lists the same packages as the db" if listed == want else
                      f"differs from the db: {', '.join(sorted(listed ^ want))}"))
        except ValueError as exc:
            add(Check(cfg.repo.files_db.name, False, str(exc)))
    for entry in sorted(entries.values(), key=lambda e: e.name):
        pkg = pub / entry.filename
        if not pkg.is_file():
            add(Check(entry.filename, False, f"listed for {entry.name} {entry.version} but missing"))
            continue
        problems = []
        if entry.csize is not None and pkg.stat().st_size != entry.csize:
            problems.append(f"size {pkg.stat().st_size} != db {entry.csize}")
        if entry.sha256 and sha256_file(pkg) != entry.sha256:
            problems.append("sha256 differs from the db")
        add(Check(entry.filename, not problems, "; ".join(problems) or "size and sha256 match the db"))
        if sig_check(pkg, entry.filename) and entry.pgpsig:
            if base64.b64decode(entry.pgpsig) != Path(str(pkg) + ".sig").read_bytes():
                add(Check(entry.filename + ".sig", False, "differs from the signature embedded in the db"))
        if provenance:
            _verify_provenance(entry, pkg, sig_check, add)
    listed_files = {e.filename for e in entries.values()}
    for p in sorted(pub.iterdir()):
        if layout.parse_filename(p.name) and p.name not in listed_files:
            add(Check(p.name, False, "orphan: in the published directory but not in the db"))
    _verify_pool(cfg, public, key, add)
    for p in sorted(layout.snapshots(cfg).glob(".tmp-*")) + sorted(layout.pool(cfg).glob("*.part")):
        add(Check(str(p.relative_to(cfg.repo.path)), False, "left by an interrupted publish", "warning"))
    return rep


def _verify_provenance(entry, pkg: Path, sig_check, add) -> None:
    record = prov.path_for(pkg)
    if not record.is_file():
        add(Check(record.name, False, f"provenance record of {entry.name} {entry.version} missing"))
        return
    sig_check(record, record.name)
    try:
        rec = prov.read(record)
    except (OSError, ValueError) as exc:
        add(Check(record.name, False, f"unreadable provenance record: {exc}"))
        return
    problems = [f"{what} {got!r} != db {want!r}" for what, got, want in (
        ("pkgname", rec.pkgname, entry.name), ("version", rec.version, entry.version),
        ("filename", rec.filename, entry.filename)) if got != want]
    if entry.sha256 and rec.sha256 != entry.sha256:
        problems.append("sha256 differs from the db")
    if rec.sha256 != sha256_file(pkg):
        problems.append("sha256 differs from the package file")
    add(Check(record.name, not problems, "; ".join(problems) or
              f"names this file, version and sha256 (built {rec.build_finished} on {rec.builder_host}, "
              f"SOURCE_DATE_EPOCH {rec.source_date_epoch})"))


def _verify_pool(cfg: Config, public: bytes, key: str, add) -> None:
    pool = layout.pool(cfg)
    files = layout.pool_files(cfg)
    for f in files:
        res = signing.verify_detached(public, pool / (f.filename + ".sig"), pool / f.filename, key)
        add(Check(f"pool/{f.filename}.sig", res.ok, res.reason))
    if pool.is_dir():
        names = {f.filename for f in files}
        for p in sorted(pool.glob("*.sig")):
            if p.name[:-4] not in names and not prov.is_record_file(p.name):
                add(Check(f"pool/{p.name}", False, "signature without its package", "warning"))
