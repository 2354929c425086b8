"""Publishing as a transaction.

1. lock the repository (flock, waits up to [repo] lock_timeout, names the holder);
2. validate every incoming package before anything moves: signature by the repository key,
   file name matching its .PKGINFO, arch, no downgrade, no second build of a published
   version with other bytes;
3. copy packages and signatures into the pool (temporary name, then rename);
4. build the next snapshot in a temporary directory: the current db and files db copied,
   `repo-add -s -v` (or `repo-remove`) run there, hard links to the pool files the new db
   lists, the armored key; then rename it to its generation number;
5. switch `<repo>/<arch>` to the new snapshot with one atomic rename of a symlink;
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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import provenance, signing
from ..config import Config
from ..errors import AvfrepoError
from ..formats import pkginfo
from ..formats.repodb import DbEntry, read_db
from ..fsutil import atomic_write, sha256_file
from ..run import run
from ..signing import Key
from ..versions import vercmp
from . import layout
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


def _index_path(cfg: Config, db_sha256: str) -> Path:
    return cfg.cache / "db-index" / f"{db_sha256}.json"


def current_entries(cfg: Config) -> dict[str, DbEntry]:
    """The published db's entries. Parsing a 500-entry db costs about a tenth of a second, so
    each publish leaves an index of the db it made in the local cache, keyed by the db's
    sha256: a db changed by anyone else simply misses the index and is parsed."""
    if not cfg.repo.db.exists():
        return {}
    index = _index_path(cfg, sha256_file(cfg.repo.db))
    try:
        rows = json.loads(index.read_text())
        return {r["name"]: DbEntry(r["name"], r["version"], r["filename"], r["arch"], r["csize"], r["sha256"], None)
                for r in rows}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        return read_db(cfg.repo.db)
    except ValueError as exc:
        raise AvfrepoError(f"{cfg.repo.db}: {exc}") from None


def _write_index(cfg: Config, entries: dict[str, DbEntry]) -> None:
    rows = [{"name": e.name, "version": e.version, "filename": e.filename, "arch": e.arch,
             "csize": e.csize, "sha256": e.sha256} for e in entries.values()]
    index = _index_path(cfg, sha256_file(cfg.repo.db))
    for old in index.parent.glob("*.json") if index.parent.is_dir() else []:
        old.unlink(missing_ok=True)
    atomic_write(index, json.dumps(rows).encode())


def validate(cfg: Config, key: str, public: bytes, pkg: Path, current: dict[str, DbEntry],
             *, allow_downgrade: bool = False) -> Incoming:
    if pkg.is_symlink() or not pkg.is_file():
        raise PublishRefused(f"{pkg}: not a regular file")
    sig = signing.verify_detached(public, Path(str(pkg) + ".sig"), pkg, key)
    if not sig.ok:
        raise PublishRefused(f"{pkg.name}: {sig.reason} (packages must be signed by the repository key)")
    info = pkginfo.read(pkg)
    expected = f"{info.pkgname}-{info.pkgver}-{info.arch}.pkg.tar"
    if not pkg.name.startswith(expected):
        raise PublishRefused(f"{pkg.name}: file name does not match its .PKGINFO ({expected}.*)")
    if info.arch not in (cfg.repo.arch, "any"):
        raise PublishRefused(f"{pkg.name}: arch {info.arch} does not belong in [{cfg.repo.name}] ({cfg.repo.arch})")
    digest = sha256_file(pkg)
    pooled = layout.pool(cfg) / pkg.name
    if pooled.exists() and pooled.resolve() != pkg.resolve() and sha256_file(pooled) != digest:
        raise PublishRefused(f"{pkg.name}: a different file of that name was published before "
                             "(same version, other content): bump pkgrel instead")
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
    stray = cfg.repo.path / f".{cfg.repo.arch}.new"
    if stray.is_symlink() or stray.exists():
        stray.unlink()
        gone.append(stray)
    return gone


def _next_generation(cfg: Config) -> int:
    snaps = layout.snapshots(cfg)
    gens = [int(p.name) for p in snaps.iterdir() if p.name.isdigit()] if snaps.is_dir() else []
    return max(gens, default=0) + 1


def _build_snapshot(cfg: Config, key: Key, add: list[Path], remove: list[str], listed: list[str],
                    armored_key: Path) -> Path:
    """The next snapshot: db and files db updated by repo-add/repo-remove, hard links to the
    `listed` pool files (what the new db lists) and the armored key."""
    snaps = layout.snapshots(cfg)
    snaps.mkdir(parents=True, exist_ok=True)
    gen = _next_generation(cfg)
    tmp = snaps / f".tmp-{gen}-{os.getpid()}"
    tmp.mkdir()
    name = cfg.repo.name
    for base in (f"{name}.db.tar.gz", f"{name}.files.tar.gz"):
        for f in (base, base + ".sig"):
            src = cfg.repo.published / f
            if src.exists():
                shutil.copy2(src, tmp / f)
    db = tmp / f"{name}.db.tar.gz"
    env = {"GNUPGHOME": str(cfg.signing.gnupg_home)}
    if remove:
        run(["repo-remove", "--nocolor", "-s", "-v", "-k", key.fingerprint, str(db), *remove], env=env)
    if add:
        run(["repo-add", "--nocolor", *repo_add_flags(), "-s", "-v", "-k", key.fingerprint, str(db),
             *map(str, add)], env=env, hint="repo-add signs with the [signing] key and checks the existing db signature")
    pool = layout.pool(cfg)
    for filename in listed:
        for f in (filename, filename + ".sig"):
            os.link(pool / f, tmp / f)
        for f in provenance.companions(filename):
            if (pool / f).is_file():
                os.link(pool / f, tmp / f)
    os.link(armored_key, tmp / f"{name}.asc")
    _fsync_dir(tmp)
    final = snaps / str(gen)
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


def transaction(cfg: Config, key: Key, *, add: list[Path] = (), remove: list[str] = (),
                allow_downgrade: bool = False, progress: Callable[[str], None] = lambda s: None) -> list[Incoming]:
    """Validate, then publish `add` and drop `remove` in one switch. Call with the lock held."""
    cleanup_leftovers(cfg)
    current = current_entries(cfg)
    public, armored = signing.public_key_files(cfg.signing, key.fingerprint, cfg.cache)
    incoming = [validate(cfg, key.fingerprint, public, Path(p), current, allow_downgrade=allow_downgrade)
                for p in add]
    names = [i.info.pkgname for i in incoming]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise PublishRefused(f"more than one file for {', '.join(sorted(dup))} in one publish")
    missing = [n for n in remove if n not in current]
    if missing:
        raise PublishRefused(f"not in [{cfg.repo.name}]: {', '.join(missing)}")
    todo = [i for i in incoming if not i.already]
    if not todo and not remove:
        progress("nothing to publish: every package is already the published one")
        return []
    pool = layout.pool(cfg)
    pool.mkdir(parents=True, exist_ok=True)
    pooled = []
    for i in todo:
        record = [i.path.with_name(c) for c in provenance.companions(i.path.name)]
        if all(r.is_file() for r in record):
            for r in reversed(record):          # the signature first, then the record
                _copy_into(r, pool)
        _copy_into(Path(str(i.path) + ".sig"), pool)
        pooled.append(_copy_into(i.path, pool))
    _fsync_dir(pool)
    # what the new db lists, as repo-add/repo-remove make it: the current set, minus the
    # removed, with each added package replacing its name's entry
    listed = {n: e for n, e in current.items() if n not in remove}
    listed.update({i.info.pkgname: DbEntry(i.info.pkgname, i.info.pkgver, i.path.name, i.info.arch,
                                           i.path.stat().st_size, i.sha256, None) for i in todo})
    filenames = sorted(e.filename for e in listed.values())
    snapshot = _build_snapshot(cfg, key, pooled, list(remove), filenames, armored)
    _switch(cfg, snapshot)
    progress(f"published snapshot {snapshot.name}: " + ", ".join(
        [f"+{i.path.name}" for i in todo] + [f"-{n}" for n in remove]))
    _write_index(cfg, listed)
    apply_retention(cfg, set(filenames))
    return todo


def publish(cfg: Config, key: Key, packages: list[Path], *, allow_downgrade: bool = False,
            progress: Callable[[str], None] = lambda s: None) -> list[Path]:
    """Add signed packages (each with its .sig beside it) to the repository, atomically."""
    with repo_lock(cfg.repo.path, cfg.repo.lock_timeout, "publish", progress):
        done = transaction(cfg, key, add=list(packages), allow_downgrade=allow_downgrade, progress=progress)
    return [layout.pool(cfg) / i.path.name for i in done]


_NAME = re.compile(r"^[a-z0-9@_+][a-z0-9@._+-]*$")            # pacman's package name rules
_VERSION = re.compile(r"^([0-9]+:)?[A-Za-z0-9._+]+-[0-9]+(\.[0-9]+)?$")


@dataclass(frozen=True)
class PlannedBase:
    pkgbase: str
    version: str
    pkgnames: tuple[str, ...]


def read_plan(path: Path) -> dict[str, PlannedBase]:
    """The build plan `avfrepo build --plan --json` printed: pkgbase -> what it must build."""
    try:
        obj = json.loads(path.read_bytes())
    except OSError as exc:
        raise PublishRefused(f"{path}: cannot read the build plan: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PublishRefused(f"{path}: the build plan is not JSON: {exc}") from None
    rows = obj.get("results") if isinstance(obj, dict) else None
    if not isinstance(rows, list):
        raise PublishRefused(f"{path}: not a build plan (no \"results\" list; make it with `avfrepo build --plan --json`)")
    plan: dict[str, PlannedBase] = {}
    for n, row in enumerate(rows):
        ok = (isinstance(row, dict) and isinstance(row.get("pkgbase"), str) and isinstance(row.get("version"), str)
              and isinstance(row.get("pkgnames"), list) and row["pkgnames"]
              and all(isinstance(x, str) and _NAME.match(x) for x in row["pkgnames"])
              and _NAME.match(row["pkgbase"]) and _VERSION.match(row["version"]))
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
        expected = f"{info.pkgname}-{info.pkgver}-{info.arch}.pkg.tar"
        if not pkg.name.startswith(expected):
            raise PublishRefused(f"{pkg.name}: file name does not match its .PKGINFO ({expected}.*)")
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
