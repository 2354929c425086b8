"""Publishing as a transaction.

1. lock the repository (flock, waits up to [repo] lock_timeout, names the holder); sign a
   probe with the key (a revoked, expired or unusable key stops here);
2. read what is published from the served db once its signature verifies (signed_db), and
   the ledger (refused when missing from a repository that has published, or older than the
   served snapshot); validate every incoming package before anything moves: regular files only, signature by
   the repository key, name/version/arch by Arch's rules, file name exactly
   <name>-<version>-<arch>.pkg.tar.<ext>, arch, every ELF object in it for that arch's machine
   (none in an `any` package: formats/elf.py), no downgrade, no version published before
   (ledger.json) with other bytes, a provenance record (if any) regular, signed, naming it;
   then the new set as a whole: every dependency on a name [avf]'s own packages provide is
   met inside it (closure.py: `avf-base` without the agents it depends on is refused);
3. copy packages and signatures into the pool (temporary name, then rename);
4. build the next snapshot in a temporary directory: the current db and files db copied,
   `repo-add -s -v` (or `repo-remove`) run there, hard links to the pool files the new db
   lists, the armored key; check it (check_snapshot: both dbs non-empty and signed, listing
   exactly the intended set, every package there and signed), then rename it to its
   generation number; a bad snapshot is removed and nothing is switched;
5. write ledger.json with what the switch makes true (pending: a rollback's hold), switch
   `<repo>/<arch>` to the new snapshot with one atomic rename of a symlink, then record the
   switch in ledger.json (ledger.py: a kill between the two writes loses nothing);
6. apply retention: keep the last [repo] keep versions of each package in the pool, the
   current and the previous snapshot.
A SIGKILL at any point leaves the old or the new repository, each complete; leftovers of an
interrupted run are removed by the next one.
A package's provenance record (`<file>.provenance.json` + `.sig`, see provenance.py) found
beside an incoming package travels with it: into the pool, linked into every snapshot that
lists the package, deleted with it by retention.

Split builds (CI): build jobs without the key hand over unsigned packages (`avfrepo build
--unsigned DIR`); `sign_and_publish` copies them into a private folder, checks each against
the build plan (`avfrepo build --plan --json`: its pkgbase was planned, its pkgname belongs to
it, its version is the planned one, every package of a pkgbase is there, its provenance
record names it), and only then signs the copies and publishes them in one transaction. A
build job can thus get nothing signed the plan did not name.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import provenance, signing
from ..config import Config
from ..errors import AvfrepoError
from ..formats import archrules, jsondoc, pkginfo
from ..formats.repodb import DbEntry, read_db, read_files_db
from ..fsutil import atomic_write, link_or_copy, sha256_file
from ..run import run
from ..signing import Key
from ..versions import vercmp
from . import closure, layout
from . import ledger as ledger_mod
from .lock import repo_lock


class PublishRefused(AvfrepoError):
    """An incoming package may not be published; nothing was changed."""


@dataclass(frozen=True)
class Incoming:
    path: Path
    info: pkginfo.PkgInfo
    sha256: str
    already: bool       # this exact file is already the published one


@functools.lru_cache(maxsize=None)
def repo_add_version() -> tuple[int, ...]:
    out = run(["repo-add", "--version"], check=False)
    m = re.search(r"\(pacman\)\s+(\d+)\.(\d+)\.?(\d*)", out.stdout + out.stderr)
    if not m:
        raise AvfrepoError("cannot tell the version of repo-add (is pacman installed?)")
    return tuple(int(x) for x in m.groups() if x)


def repo_add_flags(version: tuple[int, ...] | None = None) -> list[str]:
    """pacman 7 embeds %PGPSIG% only when asked; pacman 6.0 always does and knows no such flag."""
    return ["--include-sigs"] if (version or repo_add_version()) >= (7,) else []


class UntrustedDb(AvfrepoError):
    """The served db is not signed by the repository key: nothing is read from it."""


def signed_db(cfg: Config, public: bytes | None = None, fingerprint: str | None = None) -> dict[str, DbEntry]:
    """The entries of `<repo>/<arch>/<name>.db.tar.gz`, read only once its signature by the
    repository key verifies ({} when there is no db). Every decision about what is published
    (downgrade, replay, what to build, status) reads this, never a local copy or index."""
    db = cfg.repo.db
    if not os.path.lexists(db):
        return {}
    if fingerprint is None:                    # the public key suffices (CI's plan job holds no secret)
        fingerprint = signing.keyring_key(cfg.signing).fingerprint
    if public is None:
        public, _ = signing.public_key_files(cfg.signing, fingerprint, cfg.cache)
    res = signing.verify_detached(public, Path(str(db) + ".sig"), db, fingerprint)
    if not res.ok:
        raise UntrustedDb(f"{db}.sig: {res.reason}: the served [{cfg.repo.name}] db is not trusted and nothing "
                          "is read from it (`avfrepo verify` names what is wrong; publish again, or point "
                          f"{cfg.repo.published.name} at a good snapshot)")
    try:
        return read_db(db)
    except ValueError as exc:
        raise AvfrepoError(f"{db}: {exc}") from None


def current_entries(cfg: Config, public: bytes | None = None, fingerprint: str | None = None) -> dict[str, DbEntry]:
    """The published db's entries, from the db itself once its signature verifies (signed_db).
    (Parsing a 500-entry db costs about a tenth of a second: no unsigned index stands in for it.)"""
    link = cfg.repo.published
    if not os.path.lexists(link):
        return {}                       # nothing published yet
    if link.is_symlink():
        target = Path(os.path.realpath(link))
        if target.parent != Path(os.path.realpath(layout.snapshots(cfg))):
            raise AvfrepoError(f"{link} points to {os.readlink(link)}, outside {layout.snapshots(cfg)}; "
                               "point it at the newest snapshot again")
        if not target.is_dir():
            raise AvfrepoError(f"{link} points to {os.readlink(link)}, which does not exist (a dangling link "
                               "is not an empty repository): point it at the newest snapshot again")
    if not cfg.repo.db.is_file():
        raise AvfrepoError(f"{cfg.repo.db}: missing from the published repository; "
                           f"point {link.name} at a complete snapshot again")
    return signed_db(cfg, public, fingerprint)


def _regular(path: Path, what: str) -> None:
    """PublishRefused unless path is a regular file (a symbolic link is refused, not followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise PublishRefused(f"{path}: {what} file missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise PublishRefused(f"{path}: {what} is not a regular file"
                             + (" (a symbolic link)" if stat.S_ISLNK(st.st_mode) else ""))


def _check_record(public: bytes, key: str, pkg: Path, info: pkginfo.PkgInfo, digest: str) -> bool:
    """A provenance record beside pkg, when there is one: both files regular, signed by the key,
    of the expected schema and naming this file. Returns whether there is one."""
    record, sig = (pkg.with_name(c) for c in provenance.companions(pkg.name))
    if not (os.path.lexists(record) or os.path.lexists(sig)):
        return False
    _regular(record, "provenance record")
    _regular(sig, "provenance record signature")
    res = signing.verify_detached(public, sig, record, key)
    if not res.ok:
        raise PublishRefused(f"{record.name}: {res.reason} (records must be signed by the repository key)")
    try:
        rec = provenance.read(record)
    except (OSError, ValueError) as exc:
        raise PublishRefused(f"{record.name}: not a provenance record: {exc}") from None
    wrong = [w for w, got, want in (("pkgname", rec.pkgname, info.pkgname), ("version", rec.version, info.pkgver),
                                    ("filename", rec.filename, pkg.name), ("sha256", rec.sha256, digest))
             if got != want]
    if wrong:
        raise PublishRefused(f"{record.name}: names another package ({', '.join(wrong)} differ)")
    return True


def validate(cfg: Config, key: str, public: bytes, pkg: Path, current: dict[str, DbEntry],
             *, allow_downgrade: bool = False, known: ledger_mod.Ledger | None = None) -> Incoming:
    _regular(pkg, "package")
    _regular(Path(str(pkg) + ".sig"), "package signature")
    sig = signing.verify_detached(public, Path(str(pkg) + ".sig"), pkg, key)
    if not sig.ok:
        raise PublishRefused(f"{pkg.name}: {sig.reason} (packages must be signed by the repository key)")
    try:
        info = pkginfo.read(pkg)
        pkginfo.check(info, pkg.name)
    except ValueError as exc:
        raise PublishRefused(f"{pkg.name}: {exc}") from None
    if info.arch not in (cfg.repo.arch, "any"):
        raise PublishRefused(f"{pkg.name}: arch {info.arch} does not belong in [{cfg.repo.name}] ({cfg.repo.arch})")
    wrong = pkginfo.arch_refusal(pkg, info)
    if wrong:
        raise PublishRefused(wrong)
    digest = sha256_file(pkg)
    if known is not None:
        was = known.digest(info.pkgname, info.pkgver)
        if was is not None and was != digest:
            raise PublishRefused(f"{pkg.name}: {info.pkgname} {info.pkgver} was published before with other "
                                 "content (a version keeps its bytes forever): bump pkgrel instead")
    _check_record(public, key, pkg, info, digest)
    cur = current.get(info.pkgname)
    already = False
    if cur is not None:
        c = vercmp(info.pkgver, cur.version)
        if c < 0 and not allow_downgrade:
            raise PublishRefused(f"{pkg.name}: would downgrade {info.pkgname} from {cur.version} "
                                 f"(use `avfrepo repo rollback` to go back on purpose)")
        if c == 0:
            if cur.sha256 != digest:
                raise PublishRefused(f"{pkg.name}: {info.pkgname} {cur.version} is already published with "
                                     "other content: bump pkgrel instead")
            already = True
    return Incoming(pkg, info, digest, already)


def _copy_into(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / src.name
    if dest.exists() and dest.resolve() == src.resolve():
        return dest
    tmp = dest_dir / f".{src.name}.part"
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return dest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cleanup_leftovers(cfg: Config) -> list[Path]:
    """Remove what an interrupted run left: temporary snapshots, .part files, a stray link."""
    gone = []
    for d in (layout.snapshots(cfg), layout.pool(cfg)):
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(".tmp-") or p.name.endswith(".part"):
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                    gone.append(p)
    for p in cfg.repo.path.glob(".ledger.json.*.tmp") if cfg.repo.path.is_dir() else []:
        p.unlink()                    # an atomic_write of the ledger killed before its rename
        gone.append(p)
    stray = cfg.repo.path / f".{cfg.repo.arch}.new"
    if stray.is_symlink() or stray.exists():
        stray.unlink()
        gone.append(stray)
    gone += _unserved_snapshots(cfg)
    return gone


def _unserved_snapshots(cfg: Config) -> list[Path]:
    """Numbered snapshots newer than the served one that the ledger never recorded as switched
    to: a publish killed between renaming its snapshot into place and switching the link left
    them, and no pacman ever saw them; removed (their numbers are used again)."""
    link, snaps = cfg.repo.published, layout.snapshots(cfg)
    if not link.is_symlink() or not snaps.is_dir():
        return []
    target = Path(os.path.realpath(link))
    if target.parent != Path(os.path.realpath(snaps)) or not target.name.isdigit():
        return []
    try:
        known = load_ledger(cfg)
    except AvfrepoError:
        return []                      # verify names an unreadable ledger; leave everything as it is
    served = int(target.name)
    if not known.exists or known.generation > served:
        return []                      # a replay, not a leftover: verify reports it, nothing is removed
    gone = []
    for p in sorted(snaps.iterdir()):
        if p.name.isdigit() and int(p.name) > served and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
            gone.append(p)
    return gone


def _next_generation(cfg: Config) -> int:
    snaps = layout.snapshots(cfg)
    gens = [int(p.name) for p in snaps.iterdir() if p.name.isdigit()] if snaps.is_dir() else []
    return max(gens, default=0) + 1


class SnapshotBad(AvfrepoError):
    """The snapshot a publish made is not what pacman would accept; it was not switched to."""


def check_snapshot(cfg: Config, fingerprint: str, public: bytes, snap: Path,
                   listed: dict[str, DbEntry], new: set[str] | None = None) -> None:
    """The new snapshot, before anything serves it: the db and the files db are non-empty and
    signed by the repository key, both list exactly `listed` (name, version, file name), and
    every listed package is there with a signature by the key (checked with gpgv for the file
    names in `new`, default all; the others, hard links to pool files checked when they were
    added, must be there with their .sig and the size the db records: one gpgv per carried
    package would make a publish into a 500-package repository 5 s slower). SnapshotBad otherwise.
    (pacman 6.0's repo-add only warns when it cannot sign, and leaves a 0-byte db on a full
    disk with exit 0: nothing repo-add says is trusted.)"""
    name = cfg.repo.name
    where = f"new snapshot of [{name}]"
    want = {n: (e.version, e.filename) for n, e in listed.items()}
    for base in (f"{name}.db.tar.gz", f"{name}.files.tar.gz"):
        f = snap / base
        if not f.is_file() or f.stat().st_size == 0:
            raise SnapshotBad(f"{where}: {base} is {'empty' if f.is_file() else 'missing'} "
                              "(repo-add failed; a full disk?)")
        res = signing.verify_detached(public, snap / (base + ".sig"), f, fingerprint)
        if not res.ok:
            raise SnapshotBad(f"{where}: {base}.sig: {res.reason} (repo-add could not sign it?)")
    for alias, target in ((f"{name}.db", f"{name}.db.tar.gz"), (f"{name}.files", f"{name}.files.tar.gz")):
        for a, t in ((alias, target), (alias + ".sig", target + ".sig")):
            if os.path.lexists(snap / a) and os.path.realpath(snap / a) != os.path.realpath(snap / t):
                raise SnapshotBad(f"{where}: {a} (what pacman downloads) is not {t}")
    try:
        got = {n: (e.version, e.filename) for n, e in read_db(snap / f"{name}.db.tar.gz").items()}
        files = set(read_files_db(snap / f"{name}.files.tar.gz"))
    except ValueError as exc:
        raise SnapshotBad(f"{where}: {exc}") from None
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise SnapshotBad(f"{where}: the db lists other packages than intended: "
                          + ", ".join(f"{n} {v}" for n, (v, _) in diff))
    if files != {f"{n}-{v}" for n, (v, _) in want.items()}:
        raise SnapshotBad(f"{where}: the files db lists other packages than the db")
    for n, (_, filename) in sorted(want.items()):
        pkg = snap / filename
        if pkg.is_symlink() or not pkg.is_file():
            raise SnapshotBad(f"{where}: {filename} (listed for {n}) is missing")
        if new is not None and filename not in new:
            sig = snap / (filename + ".sig")
            size = listed[n].csize
            if not sig.is_file() or sig.stat().st_size == 0 or (size is not None and pkg.stat().st_size != size):
                raise SnapshotBad(f"{where}: {filename} or its .sig differs from what the db records")
            continue
        res = signing.verify_detached(public, snap / (filename + ".sig"), pkg, fingerprint)
        if not res.ok:
            raise SnapshotBad(f"{where}: {filename}.sig: {res.reason}")


def _build_snapshot(cfg: Config, key: Key, add: list[Path], remove: list[str], listed: dict[str, DbEntry],
                    armored_key: Path, public: bytes) -> Path:
    """The next snapshot: db and files db updated by repo-add/repo-remove, hard links to the
    `listed` pool files (what the new db lists) and the armored key; checked by
    check_snapshot before it gets its generation name. A failed or bad snapshot is removed."""
    snaps = layout.snapshots(cfg)
    snaps.mkdir(parents=True, exist_ok=True)
    gen = _next_generation(cfg)
    tmp = snaps / f".tmp-{gen}-{os.getpid()}"
    tmp.mkdir()
    try:
        return _fill_snapshot(cfg, key, add, remove, listed, armored_key, public, tmp, snaps / str(gen))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp.with_name(tmp.name + "-work"), ignore_errors=True)
        raise


def _fill_snapshot(cfg: Config, key: Key, add: list[Path], remove: list[str], listed: dict[str, DbEntry],
                   armored_key: Path, public: bytes, tmp: Path, final: Path) -> Path:
    snaps = final.parent
    name = cfg.repo.name
    for base in (f"{name}.db.tar.gz", f"{name}.files.tar.gz"):
        for f in (base, base + ".sig"):
            src = cfg.repo.published / f
            if src.exists():
                shutil.copy2(src, tmp / f)
    db = tmp / f"{name}.db.tar.gz"
    # repo-add's own work folder (repo-tools.XXXXXXXXXX, under $TMPDIR) beside the snapshot:
    # a killed repo-add cannot remove it, the next run's cleanup_leftovers (.tmp-*) does
    work = tmp.with_name(tmp.name + "-work")
    work.mkdir()
    env = {"GNUPGHOME": str(cfg.signing.gnupg_home), "TMPDIR": str(work)}
    if remove:
        run(["repo-remove", "--nocolor", "-s", "-v", "-k", key.fingerprint, str(db), *remove], env=env)
    if add:
        run(["repo-add", "--nocolor", *repo_add_flags(), "-s", "-v", "-k", key.fingerprint, str(db),
             *map(str, add)], env=env, hint="repo-add signs with the [signing] key and checks the existing db signature")
    for base in (f"{name}.db.tar.gz", f"{name}.files.tar.gz"):     # repo-add's backups: never served
        for f in (base + ".old", base + ".old.sig"):
            (tmp / f).unlink(missing_ok=True)
    shutil.rmtree(work)
    pool = layout.pool(cfg)
    for filename in sorted(e.filename for e in listed.values()):
        for f in (filename, filename + ".sig"):
            os.link(pool / f, tmp / f)
        for f in provenance.companions(filename):
            if (pool / f).is_file():
                os.link(pool / f, tmp / f)
    link_or_copy(armored_key, tmp / f"{name}.asc")     # the key lives in the cache: maybe another fs
    _fsync_dir(tmp)
    check_snapshot(cfg, key.fingerprint, public, tmp, listed, {p.name for p in add})
    os.replace(tmp, final)
    _fsync_dir(snaps)
    return final


def _switch(cfg: Config, snapshot: Path) -> None:
    link = cfg.repo.published
    if link.exists() and not link.is_symlink():
        raise AvfrepoError(f"{link} is a real directory; the published view must be a symlink made by avfrepo "
                           "(move the old repository away and publish again)")
    new = cfg.repo.path / f".{cfg.repo.arch}.new"
    new.unlink(missing_ok=True)
    os.symlink(os.path.relpath(snapshot, cfg.repo.path), new)
    os.replace(new, link)
    _fsync_dir(cfg.repo.path)


def apply_retention(cfg: Config, current: set[str] | None = None) -> list[str]:
    """Keep [repo] keep versions per package in the pool (always the published one, whose
    file names `current` gives, read from the db when not given), and the current and
    previous snapshots. Returns the removed file names."""
    if current is None:
        current = {e.filename for e in current_entries(cfg).values()}
    by_name: dict[str, list[layout.PkgFile]] = {}
    for f in layout.pool_files(cfg):
        by_name.setdefault(f.name, []).append(f)
    removed = []
    pool = layout.pool(cfg)
    for files in by_name.values():
        files.sort(key=functools.cmp_to_key(lambda a, b: vercmp(a.version, b.version)), reverse=True)
        for f in files[cfg.repo.keep:]:
            if f.filename in current:
                continue
            for p in (pool / f.filename, pool / (f.filename + ".sig"),
                      *(pool / c for c in provenance.companions(f.filename))):
                p.unlink(missing_ok=True)
            removed.append(f.filename)
    if pool.is_dir():       # records whose package left the pool another way (repo remove)
        for p in pool.iterdir():
            if provenance.is_record_file(p.name) and not (pool / provenance.package_of(p.name)).exists():
                p.unlink(missing_ok=True)
    snaps = layout.snapshots(cfg)
    cur = layout.current_snapshot(cfg)
    gens = sorted((int(p.name) for p in snaps.iterdir() if p.name.isdigit()), reverse=True) if snaps.is_dir() else []
    keep = {cur.name if cur else None}
    older = [g for g in gens if cur is None or g < int(cur.name)]
    if older:
        keep.add(str(older[0]))
    for g in gens:
        if str(g) not in keep:
            shutil.rmtree(snaps / str(g), ignore_errors=True)
    return removed


def _served(cfg: Config) -> tuple[int | None, str | None]:
    """The served snapshot's generation and db sha256 (None, None when nothing is served)."""
    link = cfg.repo.published
    if not link.is_symlink():
        return None, None
    target = Path(os.path.realpath(link))
    db = target / f"{cfg.repo.name}.db.tar.gz"
    return (int(target.name) if target.name.isdigit() else None), (sha256_file(db) if db.is_file() else None)


def load_ledger(cfg: Config) -> ledger_mod.Ledger:
    """The ledger as of the served snapshot: refused when missing from a repository that has
    published (ledger.require), its pending part applied or dropped (ledger.settle)."""
    known = ledger_mod.require(cfg, ledger_mod.load(cfg))
    known.settle(*_served(cfg))
    return known


def _catch_up(cfg: Config, known: ledger_mod.Ledger, current: dict[str, DbEntry]) -> None:
    """Record in the ledger what is served (signed db): those versions were published."""
    for e in current.values():
        if e.sha256:
            known.record(e.name, e.version, e.filename, e.sha256)


def check_closure(cfg: Config, listed: dict[str, DbEntry], *, added: set[str] = frozenset(),
                  removed: set[str] = frozenset()) -> None:
    """PublishRefused when a package of the new set depends on one of [avf]'s own names
    (closure.py) that the set does not satisfy, naming the package, what it misses and the
    pkgbases that make it."""
    own = closure.own_names_of(cfg)
    problems = closure.unmet(map(closure.from_db, listed.values()), own)
    if not problems:
        return
    old = sorted(u.package for u in problems if u.package not in added)
    kept = sorted(removed & {d.name for u in problems for d in u.depends})
    repo = cfg.repo.name
    raise PublishRefused(
        f"[{repo}] would not be installable: {'; '.join(map(str, problems))}. [{repo}]'s own packages make "
        f"these ({', '.join(closure.makers(problems, own))}: pkgbuilds/) and the new [{repo}] would not hold "
        f"them (pacman: unable to satisfy dependency): "
        + (f"keep {', '.join(kept)}" if kept else "publish them with it")
        + (f", or take {', '.join(old)} out (`avfrepo repo remove`)" if old else ""))


def transaction(cfg: Config, key: Key, *, add: list[Path] = (), remove: list[str] = (),
                allow_downgrade: bool = False, hold: dict[str, str] | None = None,
                progress: Callable[[str], None] = lambda s: None) -> list[Incoming]:
    """Validate, then publish `add` and drop `remove` in one switch. Call with the lock held.
    `hold` (from a rollback): name -> version rolled back from, which later publishes skip."""
    public, armored = signing.public_key_files(cfg.signing, key.fingerprint, cfg.cache)
    signing.probe_signing(cfg.signing, key, public)
    cleanup_leftovers(cfg)
    current = current_entries(cfg, public, key.fingerprint)
    known = load_ledger(cfg)
    served, _ = _served(cfg)
    if known.exists and served is not None and known.generation < served:
        raise PublishRefused(f"{ledger_mod.path(cfg)} records snapshot {known.generation}, but snapshot {served} "
                             "is served: the ledger was replaced by an older copy (versions published since "
                             "would be forgotten); restore the current one from a backup")
    if not known.exists:
        ledger_mod.save(cfg, known)     # before anything is published: from now on it must be there
    _catch_up(cfg, known, current)
    incoming = [validate(cfg, key.fingerprint, public, Path(p), current, allow_downgrade=allow_downgrade,
                         known=known) for p in add]
    names = [i.info.pkgname for i in incoming]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PublishRefused(f"more than one file for {', '.join(sorted(dup))} in one publish")
    missing = [n for n in remove if n not in current]
    if missing:
        raise PublishRefused(f"not in [{cfg.repo.name}]: {', '.join(missing)}")
    held = [i for i in incoming if not i.already and not allow_downgrade and i.info.pkgname in known.holds
            and vercmp(i.info.pkgver, known.holds[i.info.pkgname]) <= 0]
    for i in held:
        progress(f"not publishing {i.path.name}: {i.info.pkgname} was rolled back from "
                 f"{known.holds[i.info.pkgname]}; held until a newer version is synced")
    todo = [i for i in incoming if not i.already and i not in held]
    if not todo and not remove:
        progress("nothing to publish: every package is already the published one")
        return []
    # what the new db lists, as repo-add/repo-remove make it: the current set, minus the
    # removed, with each added package replacing its name's entry
    listed = {n: e for n, e in current.items() if n not in remove}
    listed.update({i.info.pkgname: DbEntry(i.info.pkgname, i.info.pkgver, i.path.name, i.info.arch,
                                           i.path.stat().st_size, i.sha256, None, closure.db_fields(i.info))
                   for i in todo})
    check_closure(cfg, listed, added={i.info.pkgname for i in todo}, removed=set(remove))
    pool = layout.pool(cfg)
    pool.mkdir(parents=True, exist_ok=True)
    pooled = []
    for i in todo:
        record = [i.path.with_name(c) for c in provenance.companions(i.path.name)]
        if os.path.lexists(record[0]):          # checked by validate: both regular and good
            for r in reversed(record):          # the signature first, then the record
                _copy_into(r, pool)
        _copy_into(Path(str(i.path) + ".sig"), pool)
        pooled.append(_copy_into(i.path, pool))
    _fsync_dir(pool)
    filenames = sorted(e.filename for e in listed.values())
    snapshot = _build_snapshot(cfg, key, pooled, list(remove), listed, armored, public)
    holds = dict(known.holds)
    for i in todo:
        if i.info.pkgname in holds and vercmp(i.info.pkgver, holds[i.info.pkgname]) > 0:
            del holds[i.info.pkgname]
    for name, version in (hold or {}).items():
        if name not in holds or vercmp(version, holds[name]) > 0:
            holds[name] = version
    # the holds (a rollback's above all) are on disk before the switch, in force once it is
    # served: a kill between the switch and the second write loses none (ledger.settle)
    known.pending = {"generation": int(snapshot.name),
                     "db_sha256": sha256_file(snapshot / f"{cfg.repo.name}.db.tar.gz"), "holds": holds}
    ledger_mod.save(cfg, known)
    _switch(cfg, snapshot)
    for i in todo:
        known.record(i.info.pkgname, i.info.pkgver, i.path.name, i.sha256)
    known.settle(int(snapshot.name), known.pending["db_sha256"])
    ledger_mod.save(cfg, known)
    progress(f"published snapshot {snapshot.name}: " + ", ".join(
        [f"+{i.path.name}" for i in todo] + [f"-{n}" for n in remove]))
    apply_retention(cfg, set(filenames))
    return todo


def publish(cfg: Config, key: Key, packages: list[Path], *, allow_downgrade: bool = False,
            progress: Callable[[str], None] = lambda s: None) -> list[Path]:
    """Add signed packages (each with its .sig beside it) to the repository, atomically."""
    with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, "publish", progress):
        done = transaction(cfg, key, add=list(packages), allow_downgrade=allow_downgrade, progress=progress)
    return [layout.pool(cfg) / i.path.name for i in done]


@dataclass(frozen=True)
class PlannedBase:
    pkgbase: str
    version: str
    pkgnames: tuple[str, ...]


def read_plan(path: Path) -> dict[str, PlannedBase]:
    """The build plan `avfrepo build --plan --json` printed: pkgbase -> what it must build."""
    try:
        obj = jsondoc.read(path)
    except OSError as exc:
        raise PublishRefused(f"{path}: cannot read the build plan: {exc.strerror}") from None
    except ValueError as exc:
        raise PublishRefused(f"{path}: corrupt build plan ({exc})") from None
    rows = obj.get("results") if isinstance(obj, dict) else None
    if not isinstance(rows, list):
        raise PublishRefused(f"{path}: not a build plan (no \"results\" list; make it with `avfrepo build --plan --json`)")
    plan: dict[str, PlannedBase] = {}
    for n, row in enumerate(rows):
        ok = (isinstance(row, dict) and isinstance(row.get("pkgbase"), str) and isinstance(row.get("version"), str)
              and isinstance(row.get("pkgnames"), list) and row["pkgnames"]
              and all(archrules.valid_pkgname(x) for x in row["pkgnames"])
              and archrules.valid_pkgname(row["pkgbase"]) and archrules.valid_version(row["version"]))
        if not ok:
            raise PublishRefused(f"{path}: entry {n} of the build plan is not a pkgbase with a version and pkgnames")
        if row["pkgbase"] in plan:
            raise PublishRefused(f"{path}: {row['pkgbase']} is planned twice")
        plan[row["pkgbase"]] = PlannedBase(row["pkgbase"], row["version"], tuple(row["pkgnames"]))
    return plan


@dataclass
class PlanCheck:
    """What the plan check found: the checked copies, and what was planned but not handed over."""
    packages: list[Path]
    missing: list[str]          # planned pkgbases with no package at all (their build failed)

    def to_json(self) -> dict:
        return {"packages": [p.name for p in self.packages], "missing": self.missing}


def check_against_plan(cfg: Config, plan: dict[str, PlannedBase], packages: list[Path]) -> PlanCheck:
    """Refuse any unsigned package the plan does not account for (names, version, arch, file
    name, completeness of its pkgbase, its provenance record). Reads, writes nothing."""
    seen: dict[str, Path] = {}
    by_base: dict[str, set[str]] = {}
    for pkg in packages:
        if pkg.is_symlink() or not pkg.is_file():
            raise PublishRefused(f"{pkg}: not a regular file")
        if ".pkg.tar" not in pkg.name:
            raise PublishRefused(f"{pkg.name}: not a package file (*.pkg.tar.*)")
        try:
            info = pkginfo.read(pkg)
        except (AvfrepoError, ValueError) as exc:
            raise PublishRefused(f"{pkg.name}: unreadable .PKGINFO: {str(exc).splitlines()[0]}") from None
        planned = plan.get(info.pkgbase)
        if planned is None:
            raise PublishRefused(f"{pkg.name}: pkgbase {info.pkgbase!r} is not in the build plan "
                                 f"(planned: {', '.join(plan) or 'nothing'})")
        if info.pkgname not in planned.pkgnames:
            raise PublishRefused(f"{pkg.name}: {info.pkgname!r} is not one of the packages the plan has "
                                 f"{planned.pkgbase} build ({', '.join(planned.pkgnames)})")
        if info.pkgver != planned.version:
            raise PublishRefused(f"{pkg.name}: version {info.pkgver}, the plan builds {planned.pkgbase} {planned.version}")
        if info.arch not in (cfg.repo.arch, "any"):
            raise PublishRefused(f"{pkg.name}: arch {info.arch} does not belong in [{cfg.repo.name}] ({cfg.repo.arch})")
        try:
            pkginfo.check(info, pkg.name)
        except ValueError as exc:
            raise PublishRefused(f"{pkg.name}: {exc}") from None
        wrong = pkginfo.arch_refusal(pkg, info)          # before anything is signed
        if wrong:
            raise PublishRefused(wrong)
        if info.pkgname in seen:
            raise PublishRefused(f"{pkg.name}: a second file for {info.pkgname} (also {seen[info.pkgname].name})")
        record = provenance.path_for(pkg)
        try:
            rec = provenance.read(record)
        except OSError:
            raise PublishRefused(f"{pkg.name}: no provenance record beside it ({record.name})") from None
        except ValueError as exc:
            raise PublishRefused(f"{record.name}: {exc}") from None
        wrong = [k for k, want in (("pkgname", info.pkgname), ("pkgbase", info.pkgbase), ("version", info.pkgver),
                                   ("arch", info.arch), ("filename", pkg.name), ("sha256", sha256_file(pkg)),
                                   ("size", pkg.stat().st_size)) if getattr(rec, k) != want]
        if wrong:
            raise PublishRefused(f"{record.name}: {', '.join(wrong)} do(es) not match {pkg.name}")
        seen[info.pkgname] = pkg
        by_base.setdefault(info.pkgbase, set()).add(info.pkgname)
    for base, names in sorted(by_base.items()):
        absent = [n for n in plan[base].pkgnames if n not in names]
        if absent:
            raise PublishRefused(f"{base} is incomplete: no package for {', '.join(absent)}")
    return PlanCheck(list(seen.values()), [b for b in plan if b not in by_base])


def sign_and_publish(cfg: Config, key: Key, plan_file: Path, packages: list[Path], *, dry_run: bool = False,
                     progress: Callable[[str], None] = lambda s: None) -> PlanCheck:
    """Unsigned packages from build jobs: copy them (and their records) into a private
    folder, check the copies against the plan, sign them and publish them in one
    transaction. Anything refused leaves the repository as it was; dry_run checks only."""
    plan = read_plan(plan_file)
    if not packages:
        raise PublishRefused("no packages given")
    cfg.cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="signoff-", dir=cfg.cache) as tmp:
        staged: list[Path] = []
        for n, pkg in enumerate(packages):
            if pkg.is_symlink() or not pkg.is_file():
                raise PublishRefused(f"{pkg}: not a regular file")
            d = Path(tmp) / str(n)             # one folder each: equal names are caught by the check
            d.mkdir()
            shutil.copyfile(pkg, d / pkg.name)
            record = provenance.path_for(pkg)
            if record.is_file() and not record.is_symlink():
                shutil.copyfile(record, d / record.name)
            staged.append(d / pkg.name)
        checked = check_against_plan(cfg, plan, staged)
        progress(f"{len(checked.packages)} package(s) match the build plan"
                 + (f"; planned but not built: {', '.join(checked.missing)}" if checked.missing else ""))
        if dry_run:
            return checked
        public = signing.export_public(cfg.signing, key.fingerprint, armor=False)
        for pkg in checked.packages:
            for f in (pkg, provenance.path_for(pkg)):
                signing.detach_sign(cfg.signing, key, f)
                sig = signing.verify_detached(public, Path(f"{f}.sig"), f, key.fingerprint)
                if not sig.ok:
                    raise PublishRefused(f"{f.name}: signature check failed after signing: {sig.reason}")
        with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, "publish", progress):
            transaction(cfg, key, add=checked.packages, progress=progress)
        checked.packages = [layout.pool(cfg) / p.name for p in checked.packages]
    return checked
