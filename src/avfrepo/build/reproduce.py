"""`avfrepo build --reproduce PKG`: rebuild a published package and compare the bytes.

PKG is a pkgname or a pkgbase. Its PKGBUILD under pkgbuilds/ must be the published version
(or the version a subrelease 1.1 was built from); the build runs with the backend of the
configuration and the SOURCE_DATE_EPOCH of the package's signed provenance record, into
CACHE/reproduce/<pkgbase>/ (emptied first), and is never signed or published. Every
published package of the pkgbase is compared by sha256 with its rebuilt file; on a
mismatch the `bsdtar -tvf` listings and the .PKGINFO, .BUILDINFO and .MTREE members are
compared and their differing lines reported.
"""

from __future__ import annotations

import difflib
import gzip
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import provenance, signing
from ..config import Config, did_you_mean
from ..errors import AvfrepoError, ConfigError
from ..fsutil import sha256_file
from ..repo.publish import current_entries
from ..run import run
from .backends import backend_for
from .plan import PlannedBuild, load_srcinfos

MEMBERS = (".PKGINFO", ".BUILDINFO", ".MTREE")
MAX_LINES = 40


@dataclass
class FileResult:
    filename: str
    published_sha256: str
    rebuilt_sha256: str | None
    match: bool
    differences: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ReproduceReport:
    pkgbase: str
    version: str
    source_date_epoch: int
    backend: str
    scratch: str
    log: str
    files: list[FileResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def reproducible(self) -> bool:
        return bool(self.files) and all(f.match for f in self.files)

    def to_json(self) -> dict:
        return {"pkgbase": self.pkgbase, "version": self.version, "source_date_epoch": self.source_date_epoch,
                "backend": self.backend, "scratch": self.scratch, "log": self.log, "notes": self.notes,
                "reproducible": self.reproducible, "files": [f.to_json() for f in self.files]}


def _pkgrel_override(base: str, pkgbuild_version: str, published: str, cfg: Config) -> str | None:
    """None when the PKGBUILD is the published version; the subrelease pkgrel when the
    published version is a subrelease (1.0-1.2) of it; else a clear error."""
    if published == pkgbuild_version:
        return None
    head, rel = pkgbuild_version.rsplit("-", 1)
    phead, prel = published.rsplit("-", 1)
    if phead == head and "." not in rel and prel.startswith(rel + "."):
        return prel
    raise AvfrepoError(f"{base}: {cfg.pkgbuilds / base / 'PKGBUILD'} is version {pkgbuild_version}, "
                       f"[{cfg.repo.name}] publishes {published}: check out the pkgbuilds/ revision it was "
                       "built from (its provenance record names the PKGBUILD's sha256)")


def _members(pkg: Path, dest: Path) -> dict[str, list[str]]:
    """The listing and the metadata members of a package, as lines."""
    dest.mkdir(parents=True)
    out = {"bsdtar -tvf": run(["bsdtar", "-tvf", str(pkg)]).stdout.splitlines()}
    run(["bsdtar", "-xf", str(pkg), "-C", str(dest), *MEMBERS], check=False)
    for m in MEMBERS:
        f = dest / m
        if not f.is_file():
            out[m] = ["(absent)"]
            continue
        data = f.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out[m] = data.decode("utf-8", "replace").splitlines()
    return out


def differences(published: Path, rebuilt: Path) -> list[str]:
    """Which parts of two package files differ, with their differing lines."""
    with tempfile.TemporaryDirectory(prefix="avfrepo-compare-") as tmp:
        a = _members(published, Path(tmp) / "published")
        b = _members(rebuilt, Path(tmp) / "rebuilt")
    out = []
    for part in a:
        if a[part] == b[part]:
            continue
        out.append(f"{part} differs:")
        diff = [l for l in difflib.unified_diff(a[part], b[part], "published", "rebuilt", lineterm="", n=0)
                if not l.startswith(("---", "+++", "@@"))]
        out += ["  " + l for l in diff[:MAX_LINES]]
        if len(diff) > MAX_LINES:
            out.append(f"  ... {len(diff) - MAX_LINES} more line(s)")
    if not out:
        out.append("the listings and .PKGINFO, .BUILDINFO, .MTREE agree: the archive encoding or "
                   "compression differs")
    return out


def reproduce(cfg: Config, name: str, *, backend=None,
              progress: Callable[[str], None] = lambda s: None) -> ReproduceReport:
    infos = load_srcinfos(cfg)
    base = name if name in infos else next((b for b, (_, i) in infos.items() if name in i.pkgnames), None)
    if base is None:
        known = [*infos, *(n for _, i in infos.values() for n in i.pkgnames)]
        raise ConfigError(f"{name}: no PKGBUILD under {cfg.pkgbuilds} has this pkgbase or pkgname"
                          f"{did_you_mean(name, set(known))}")     # an unknown name: exit 2
    pkgdir, info = infos[base]
    entries = current_entries(cfg)
    published = [entries[n] for n in info.pkgnames if n in entries]
    if not published:
        raise AvfrepoError(f"{name}: not published in [{cfg.repo.name}], nothing to reproduce")
    versions = sorted({e.version for e in published})
    if len(versions) > 1:
        raise AvfrepoError(f"{base}: its packages are published at different versions ({', '.join(versions)})")
    version = versions[0]
    pkgrel = _pkgrel_override(base, info.version, version, cfg)

    key = signing.verification_key(cfg.signing)
    public = signing.export_public(cfg.signing, key, armor=False)
    sdes = set()
    recorded_pkgbuild = set()
    for e in published:
        pkg = cfg.repo.published / e.filename
        rec_path = provenance.path_for(pkg)
        if not rec_path.is_file():
            raise AvfrepoError(f"{e.filename}: no provenance record ({rec_path.name}), so its SOURCE_DATE_EPOCH "
                               "is unknown (published before provenance records existed?)")
        sig = signing.verify_detached(public, Path(str(rec_path) + ".sig"), rec_path, key)
        if not sig.ok:
            raise AvfrepoError(f"{rec_path.name}: {sig.reason}; not rebuilding from an unverified record")
        try:
            rec = provenance.read(rec_path)
        except ValueError as exc:
            raise AvfrepoError(f"{rec_path.name}: {exc}") from None
        if (rec.filename, rec.version) != (e.filename, e.version):
            raise AvfrepoError(f"{rec_path.name}: records {rec.filename} {rec.version}, the db lists "
                               f"{e.filename} {e.version}")
        sdes.add(rec.source_date_epoch)
        recorded_pkgbuild.add(rec.pkgbuild_sha256)
    if len(sdes) > 1:
        raise AvfrepoError(f"{base}: its provenance records name different SOURCE_DATE_EPOCHs {sorted(sdes)}")
    sde = sdes.pop()

    backend = backend or backend_for(cfg)
    backend.preflight([PlannedBuild(base, version, pkgdir, info)])     # a rebuild of host code proves nothing
    scratch = cfg.cache / "reproduce" / base
    log = cfg.logs / base / f"{version}.reproduce.log"
    report = ReproduceReport(base, version, sde, backend.name, str(scratch), str(log))
    current = sha256_file(pkgdir / "PKGBUILD")
    if current not in recorded_pkgbuild:
        report.notes.append(f"{pkgdir / 'PKGBUILD'} (sha256 {current[:12]}) is not the PKGBUILD the package was "
                            f"built from (sha256 {', '.join(sorted(h[:12] for h in recorded_pkgbuild))})")
    shutil.rmtree(scratch, ignore_errors=True)
    log.unlink(missing_ok=True)
    progress(f"{base} {version}: rebuilding with {backend.name}, SOURCE_DATE_EPOCH={sde}, into {scratch} "
             f"(log {log})")
    built = backend.build(pkgdir, [], log, scratch, pkgrel=pkgrel, env={"SOURCE_DATE_EPOCH": str(sde)})
    by_name = {p.name: p for p in built}
    for e in published:
        pub = cfg.repo.published / e.filename
        theirs = sha256_file(pub)
        mine = by_name.get(e.filename)
        if mine is None:
            report.files.append(FileResult(e.filename, theirs, None, False,
                                           [f"the rebuild made no {e.filename} (made: "
                                            f"{', '.join(sorted(by_name)) or 'nothing'})"]))
            continue
        ours = sha256_file(mine)
        res = FileResult(e.filename, theirs, ours, ours == theirs)
        if not res.match:
            res.differences = differences(pub, mine)
        report.files.append(res)
    return report


def format_report(report: ReproduceReport) -> str:
    lines = [f"{report.pkgbase} {report.version}: rebuilt with {report.backend}, "
             f"SOURCE_DATE_EPOCH={report.source_date_epoch}, in {report.scratch}"]
    lines += [f"  note: {n}" for n in report.notes]
    for f in report.files:
        if f.match:
            lines.append(f"  MATCH     {f.filename}  sha256 {f.published_sha256}")
        else:
            lines.append(f"  MISMATCH  {f.filename}  published {f.published_sha256}, rebuilt {f.rebuilt_sha256 or '-'}")
            lines += ["    " + d for d in f.differences]
    lines.append(f"{report.pkgbase} {report.version}: " + ("reproducible" if report.reproducible else "NOT reproducible"))
    return "\n".join(lines)
