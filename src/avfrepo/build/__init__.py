"""`avfrepo build`: plan, build with a backend, check, sign, publish."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import signing
from ..config import Config
from ..errors import AvfrepoError
from ..formats import pkginfo
from ..repo.publish import publish
from ..versions import vercmp
from .backends import backend_for
from .plan import PlannedBuild, plan, published


@dataclass
class BuildResult:
    pkgbase: str
    version: str
    reasons: list[str]
    status: str = "planned"           # planned | built | failed | skipped | published
    packages: list[str] = field(default_factory=list)
    log: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BuildReport:
    results: list[BuildResult] = field(default_factory=list)
    dry_run: bool = False

    @property
    def failed(self) -> bool:
        return any(r.status in ("failed", "skipped") for r in self.results)

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "failed": self.failed, "results": [r.to_json() for r in self.results]}


def check_artifact(cfg: Config, item: PlannedBuild, pkg: Path) -> None:
    """A built file must be what its PKGBUILD says, for our arch, and not a downgrade."""
    if pkg.is_symlink() or not pkg.is_file():
        raise AvfrepoError(f"{pkg.name}: not a regular file")
    info = pkginfo.read(pkg)
    if info.pkgname not in item.info.pkgnames:
        raise AvfrepoError(f"{pkg.name}: .PKGINFO names {info.pkgname}, not one of {', '.join(item.info.pkgnames)}")
    if info.pkgver != item.version:
        raise AvfrepoError(f"{pkg.name}: .PKGINFO version {info.pkgver} != PKGBUILD {item.version}")
    if info.arch not in (cfg.repo.arch, "any"):
        raise AvfrepoError(f"{pkg.name}: built for {info.arch}, [{cfg.repo.name}] is {cfg.repo.arch}")
    expected = f"{info.pkgname}-{info.pkgver}-{info.arch}.pkg.tar"
    if not pkg.name.startswith(expected):
        raise AvfrepoError(f"{pkg.name}: file name does not match its .PKGINFO ({expected}.*)")
    current = published(cfg).get(info.pkgname)
    if current is not None and vercmp(info.pkgver, current.version) < 0:
        raise AvfrepoError(f"{pkg.name}: would downgrade [{cfg.repo.name}] from {current.version}")


def build(cfg: Config, requested: list[str] | None = None, *, dry_run: bool = False,
          progress: Callable[[str], None] = lambda s: None) -> BuildReport:
    key = signing.signing_key(cfg.signing)          # a missing key fails before any build
    items = plan(cfg, requested)
    report = BuildReport(dry_run=dry_run)
    results = {it.pkgbase: BuildResult(it.pkgbase, it.version, list(it.reasons)) for it in items}
    report.results = list(results.values())
    if dry_run or not items:
        return report
    backend = backend_for(cfg)
    out = cfg.cache / "built"
    built: dict[str, list[Path]] = {}
    for n, item in enumerate(items, 1):
        res = results[item.pkgbase]
        failed_deps = [d for d in item.deps if results.get(d) and results[d].status in ("failed", "skipped")]
        if failed_deps:
            res.status, res.error = "skipped", f"dependency failed: {', '.join(failed_deps)}"
            progress(f"[{n}/{len(items)}] {item.pkgbase} {item.version}: skipped ({res.error})")
            continue
        log = cfg.logs / item.pkgbase / f"{item.version}.log"
        log.unlink(missing_ok=True)
        res.log = str(log)
        progress(f"[{n}/{len(items)}] {item.pkgbase} {item.version}: building with {backend.name} "
                 f"({'; '.join(item.reasons)}), log {log}")
        start = time.monotonic()
        try:
            deps = [p for d in item.deps for p in built.get(d, [])]
            pkgs = backend.build(item.pkgdir, deps, log, out)
            for p in pkgs:
                check_artifact(cfg, item, p)
                signing.detach_sign(cfg.signing, key, p)
        except AvfrepoError as exc:
            res.status, res.error = "failed", str(exc).splitlines()[0]
            res.seconds = round(time.monotonic() - start, 2)
            progress(f"[{n}/{len(items)}] {item.pkgbase}: FAILED after {res.seconds} s: {res.error}")
            continue
        res.seconds = round(time.monotonic() - start, 2)
        res.status, res.packages = "built", [p.name for p in pkgs]
        built[item.pkgbase] = pkgs
        progress(f"[{n}/{len(items)}] {item.pkgbase}: built {', '.join(res.packages)} in {res.seconds} s")
    to_publish = [p for pkgs in built.values() for p in pkgs]
    if to_publish:
        progress(f"publishing {len(to_publish)} package(s) into {cfg.repo.path}")
        publish(cfg, key, to_publish)
        for r in report.results:
            if r.status == "built":
                r.status = "published"
    return report
