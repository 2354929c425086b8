"""`avfrepo verify`: is the published repository what pacman with SigLevel=Required accepts?

Served view, as pacman sees it: `<repo>/<arch>` links to this repository's newest snapshot
(the ledger's last switch: an older one served is a replay), `<repo>.db`/`.files` (+ .sig)
resolve to this snapshot's db files, `<repo>.asc` is the repository key, every served file is
a regular file the db accounts for (nothing else, nothing linking out). The lock is held
shared. Published view (`<repo>/<arch>`): the db and files db are present and signed by the
repository key; every db entry's package exists with the size and sha256 the db records, its
.sig verifies with the repository key and equals the db's embedded %PGPSIG%; every ELF object
in it is for the machine of its arch (none in an `any` package: formats/elf.py); no package
file lies there that the db does not list. Dependencies: every dependency of a listed package
on a name [avf]'s own packages provide (pkgbuilds/) is met by the listed packages
(closure.py). Ledger: present once anything is published, not older than the served
snapshot. Pool (the archive): every served package and .sig is there with the same bytes,
every package has a good signature.
Leftovers of an interrupted publish are warnings (the next publish removes them).
With provenance=True (`verify --provenance`), every listed package also needs its provenance
record: present, signed by the repository key, and naming the db entry's package, version,
file name and sha256, which the file itself must have.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import provenance as prov
from .. import signing
from ..config import Config
from ..formats import pkginfo
from ..formats.repodb import read_db, read_files_db
from ..errors import AvfrepoError
from . import closure, layout
from .lock import repo_lock
from .publish import load_ledger
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
    """Check the repository with its lock held shared (no publish switches meanwhile)."""
    if not cfg.repo.path.is_dir():
        return _verify(cfg, provenance=provenance)
    with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, "verify", shared=True):
        return _verify(cfg, provenance=provenance)


def _verify(cfg: Config, *, provenance: bool = False) -> VerifyReport:
    key = signing.verification_key(cfg.signing)
    public = signing.export_public(cfg.signing, key, armor=False)
    pub = cfg.repo.published
    rep = VerifyReport(cfg.repo.path, key)
    add = rep.checks.append
    if not _verify_link(cfg, add):
        return rep

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
        if not problems:
            _verify_arch(entry, pkg, add)
        if sig_check(pkg, entry.filename) and entry.pgpsig:
            if base64.b64decode(entry.pgpsig) != Path(str(pkg) + ".sig").read_bytes():
                add(Check(entry.filename + ".sig", False, "differs from the signature embedded in the db"))
        if provenance:
            _verify_provenance(entry, pkg, sig_check, add)
    _verify_closure(cfg, entries, add)
    listed_files = {e.filename for e in entries.values()}
    for p in sorted(pub.iterdir()):
        if layout.parse_filename(p.name) and p.name not in listed_files:
            add(Check(p.name, False, "orphan: in the published directory but not in the db"))
    _verify_served(cfg, key, listed_files, add)
    _verify_pool(cfg, public, key, add, entries)
    for p in sorted(layout.snapshots(cfg).glob(".tmp-*")) + sorted(layout.pool(cfg).glob("*.part")):
        add(Check(str(p.relative_to(cfg.repo.path)), False, "left by an interrupted publish", "warning"))
    return rep


def _verify_arch(entry, pkg: Path, add) -> None:
    """The package's files are what its arch says (the db's %ARCH%, which its .PKGINFO gave)."""
    info = pkginfo.PkgInfo(entry.name, (entry.fields.get("BASE") or [entry.name])[0], entry.version, entry.arch)
    try:
        wrong = pkginfo.arch_refusal(pkg, info)
    except AvfrepoError as exc:             # bsdtar cannot read it
        wrong = f"{pkg.name}: unreadable: {str(exc).splitlines()[0]}"
    if wrong:
        add(Check(entry.filename, False, wrong.removeprefix(f"{pkg.name}: ")))


def _verify_closure(cfg: Config, entries: dict, add) -> None:
    """Every dependency on one of [avf]'s own names is met inside the db (one check per package
    that misses something, else one that says so)."""
    try:
        own = closure.own_names_of(cfg)
    except AvfrepoError as exc:
        add(Check(cfg.pkgbuilds.name, False, f"cannot tell [{cfg.repo.name}]'s own package names: {exc}"))
        return
    problems = closure.unmet(map(closure.from_db, entries.values()), own)
    for u in problems:
        add(Check(entries[u.package].filename, False,
                  f"{u}: [{cfg.repo.name}]'s own packages make {'these' if len(u.depends) > 1 else 'it'} "
                  f"({', '.join(closure.makers([u], own))}: pkgbuilds/) and [{cfg.repo.name}] does not hold "
                  f"{'them' if len(u.depends) > 1 else 'it'} (pacman: unable to satisfy dependency)"))
    if not problems:
        add(Check("dependencies", True, f"every dependency on a package [{cfg.repo.name}] makes is in "
                                        f"[{cfg.repo.name}] ({len(own)} own names, pkgbuilds/)"))


def _verify_link(cfg: Config, add) -> bool:
    """`<repo>/<arch>` is avfrepo's symlink to one of this repository's snapshots. Returns
    whether there is a served snapshot to look into."""
    link = cfg.repo.published
    name = link.name
    if not os.path.lexists(link):
        return True                    # nothing published: the db check says so
    if not link.is_symlink():
        add(Check(name, False, "a real directory, not the symlink to a snapshot avfrepo publishes"))
        return False
    target = Path(os.path.realpath(link))
    snaps = Path(os.path.realpath(layout.snapshots(cfg)))
    if target.parent != snaps or not target.name.isdigit():
        add(Check(name, False, f"points to {os.readlink(link)}, outside this repository's snapshots"))
        return False
    if not target.is_dir():
        add(Check(name, False, f"points to {os.readlink(link)}, which does not exist (a dangling link)"))
        return False
    gens = sorted(int(p.name) for p in snaps.iterdir() if p.name.isdigit())
    served = int(target.name)
    try:
        known = load_ledger(cfg)             # a missing ledger of a repository that published is an error
    except AvfrepoError as exc:
        add(Check("ledger.json", False, str(exc)))
        known = None
    if gens and served != gens[-1]:
        newer = [g for g in gens if g > served]
        if known is not None and known.exists and known.generation <= served:
            # made and checked, never switched to (a publish killed between the two renames):
            # the ledger records every switch, and it never recorded these
            add(Check(f"snapshots/{newer[-1]}", False, f"snapshot(s) {', '.join(map(str, newer))} never served: left "
                                                       "by an interrupted publish (the next publish removes them)",
                      "warning"))
        else:
            add(Check(name, False, f"serves snapshot {served}, but snapshot {gens[-1]} is newer "
                                    "(an old snapshot replayed: pacman -Suu would downgrade)"))
    if known is None:
        return True
    db = target / f"{cfg.repo.name}.db.tar.gz"
    if known.generation > served:
        add(Check(name, False, f"serves snapshot {served}, but snapshot {known.generation} was published "
                                "(an old snapshot replayed: pacman -Suu would downgrade)"))
    elif known.generation == served and known.db_sha256 and db.is_file() and sha256_file(db) != known.db_sha256:
        add(Check(db.name, False, f"is not the db published as snapshot {served} (replaced or replayed)"))
    elif known.exists and known.generation < served:
        # a publish writes what it switches to before the switch (ledger.py): a ledger behind the
        # served snapshot is an older copy put back, which forgets what was published since
        add(Check("ledger.json", False, f"records snapshot {known.generation}, but snapshot {served} is served "
                                        "(an older copy of the ledger: restore the current one from a backup)"))
    return True


def _verify_served(cfg: Config, key: str, listed: set[str], add) -> None:
    """What pacman reads: the db/files names resolve to this snapshot's files, <repo>.asc is
    the repository key, packages are regular files, and nothing else is served."""
    pub = cfg.repo.published
    snap = os.path.realpath(pub)
    name = cfg.repo.name
    aliases = {f"{name}.db": f"{name}.db.tar.gz", f"{name}.files": f"{name}.files.tar.gz"}
    aliases.update({a + ".sig": t + ".sig" for a, t in list(aliases.items())})
    allowed = set(aliases) | set(aliases.values()) | {f"{name}.asc"}
    for f in listed:
        allowed |= {f, f + ".sig", *prov.companions(f)}
    for alias, target in sorted(aliases.items()):
        p = pub / alias
        if not os.path.lexists(p):
            add(Check(alias, False, f"missing: pacman downloads {alias}"))
        elif os.path.realpath(p) != os.path.join(snap, target):
            add(Check(alias, False, f"is not {target} of this snapshot (pacman reads {alias})"))
    for p in sorted(Path(snap).iterdir()):
        if p.name not in allowed:
            if layout.parse_filename(p.name):
                continue            # named as an orphan already
            add(Check(p.name, False, "unexpected file in the served directory"))
        elif p.is_symlink() and p.name not in aliases:
            add(Check(p.name, False, f"a symbolic link (to {os.readlink(p)}) where a regular file belongs"))
        elif not p.is_symlink() and not p.is_file():
            add(Check(p.name, False, "not a regular file"))
    asc = pub / f"{name}.asc"
    if asc.is_symlink() or not asc.is_file():
        add(Check(asc.name, False, "missing: the repository key users import"))
    else:
        fprs = signing.key_fingerprints(asc.read_bytes())
        add(Check(asc.name, fprs == [key.upper()], "the repository key" if fprs == [key.upper()] else
                  f"holds {', '.join(fprs) or 'no key'}, not the repository key {key}"))


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


def _verify_pool(cfg: Config, public: bytes, key: str, add, entries: dict) -> None:
    pool = layout.pool(cfg)
    files = layout.pool_files(cfg)
    for entry in sorted(entries.values(), key=lambda e: e.name):     # the archive every publish links from
        for f in (entry.filename, entry.filename + ".sig"):
            served = cfg.repo.published / f
            if not (pool / f).is_file() or (pool / f).is_symlink():
                add(Check(f"pool/{f}", False, f"missing from the pool (served for {entry.name} {entry.version}; "
                                              "the next publish links it from there)"))
            elif served.is_file() and not os.path.samefile(pool / f, served) \
                    and sha256_file(pool / f) != sha256_file(served):     # a restored copy may be no hard link
                add(Check(f"pool/{f}", False, "differs from the file served under that name"))
    for f in files:
        res = signing.verify_detached(public, pool / (f.filename + ".sig"), pool / f.filename, key)
        add(Check(f"pool/{f.filename}.sig", res.ok, res.reason))
    if pool.is_dir():
        names = {f.filename for f in files}
        for p in sorted(pool.glob("*.sig")):
            if p.name[:-4] not in names and not prov.is_record_file(p.name):
                add(Check(f"pool/{p.name}", False, "signature without its package", "warning"))
