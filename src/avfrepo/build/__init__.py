"""`avfrepo build`: plan, build with a backend (N workers), check, sign, publish.

The run is a ready-queue over the dependency graph of the build set: a package starts as
soon as every [avf] package it needs that is in this run has been built, on one of `jobs`
worker threads (each makechrootpkg worker in its own chroot copy, each makepkg build in its
own work directory). A failure marks its dependents skipped ("dependency failed") and the
rest goes on. Every artifact is checked and signed by its worker; everything built is
published at the end in one transaction, so nothing of a failed package reaches the repo.
Every package is built with SOURCE_DATE_EPOCH set (provenance.source_date_epoch) and gets a
signed provenance record beside it (provenance.py), published with it.

Before anything is built, a run is refused (nothing built, nothing published) when its
backend cannot make the planned packages' code on this host (backend.preflight: makepkg on an
x86_64 host for arch=(aarch64) packages), and, when the run publishes, when [avf] would miss a
package it depends on afterwards (plan.Planner.unmet: `build --only avf-base` while its agents
are neither in [avf] nor in the run). Each artifact's ELF objects must be for its arch
(check_artifact).

`unsigned_to` splits building from signing (CI: build jobs never see the key): the run needs
no key, checks each artifact, writes it and its unsigned provenance record into that folder
and publishes nothing; the job holding the key checks them against the build plan, signs and
publishes (repo.publish.sign_and_publish, `avfrepo repo add --plan`).
"""

from __future__ import annotations

import calendar
import concurrent.futures as cf
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import preflight, provenance, signing
from .. import state as state_mod
from ..config import Config
from ..errors import AvfrepoError, ConfigError, NothingSynced
from ..formats import pkginfo
from ..repo.publish import load_ledger, publish
from ..versions import vercmp
from . import history
from .backends import backend_for
from . import plan as plan_mod
from .plan import PlannedBuild, compute, plan, published

__all__ = ["BuildReport", "BuildResult", "build", "check_artifact", "format_summary", "plan"]


@dataclass
class BuildResult:
    pkgbase: str
    version: str
    reasons: list[str]
    # planned | building | built | failed | skipped, and after the publish step: published (the
    # switch published every package of it), held (a `repo rollback` holds the version: nothing
    # of it published), unchanged (identical to what is published: nothing to switch)
    status: str = "planned"
    packages: list[str] = field(default_factory=list)
    log: str | None = None
    error: str | None = None
    seconds: float = 0.0
    layer: int = 0
    depends_on: list[str] = field(default_factory=list)
    pkgbuild_version: str | None = None
    pkgnames: list[str] = field(default_factory=list)     # what the pkgbase builds (the plan names them)
    held: list[str] = field(default_factory=list)         # its packages the publish step held back
    note: str | None = None                               # why it was held / not switched

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BuildReport:
    results: list[BuildResult] = field(default_factory=list)
    dry_run: bool = False
    jobs: int = 1
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(r.status in ("failed", "skipped") for r in self.results)

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "failed": self.failed, "jobs": self.jobs, "seconds": self.seconds,
                "results": [r.to_json() for r in self.results]}

    def github_matrix(self) -> dict:
        """The plan's dependency layers as a GitHub Actions matrix (see plan.github_matrix)."""
        layers: dict[int, list[str]] = {}
        for r in self.results:
            layers.setdefault(r.layer, []).append(r.pkgbase)
        return {"include": [{"layer": n, "packages": " ".join(layers[n]), "pkgbases": layers[n]}
                            for n in sorted(layers)]}


def _result(item: PlannedBuild) -> BuildResult:
    return BuildResult(item.pkgbase, item.version, list(item.reasons), layer=item.layer,
                       depends_on=list(item.deps), pkgbuild_version=item.pkgbuild_version,
                       pkgnames=list(item.info.pkgnames))


def check_artifact(cfg: Config, item: PlannedBuild, pkg: Path, repo: dict | None = None) -> pkginfo.PkgInfo:
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
    try:
        pkginfo.check(info, pkg.name)
    except ValueError as exc:
        raise AvfrepoError(f"{pkg.name}: {exc}") from None
    wrong = pkginfo.arch_refusal(pkg, info)
    if wrong:
        raise AvfrepoError(wrong)
    current = (published(cfg) if repo is None else repo).get(info.pkgname)
    if current is not None and vercmp(info.pkgver, current.version) < 0:
        raise AvfrepoError(f"{pkg.name}: would downgrade [{cfg.repo.name}] from {current.version}")
    return info


def check_signature(public: bytes, fingerprint: str, pkg: Path) -> None:
    sig = signing.verify_detached(public, Path(str(pkg) + ".sig"), pkg, fingerprint)
    if not sig.ok:
        raise AvfrepoError(f"{pkg.name}: signature check failed after signing: {sig.reason}")


def refuse_unmet(cfg: Config, planner, ordered: list[PlannedBuild], only: list[str] | None) -> None:
    """AvfrepoError, before anything is built, when [avf] after this run would hold a package
    whose dependency on one of [avf]'s own names nothing in it satisfies."""
    problems, own = planner.unmet(ordered)
    if not problems:
        return
    from ..repo import closure
    makers = closure.makers(problems, own)
    repo = cfg.repo.name
    hint = (f"`avfrepo build --only {' '.join(dict.fromkeys([*only, *makers]))}`" if only is not None
            else f"`avfrepo build {' '.join(makers)}`")
    raise AvfrepoError(
        f"refused before building anything: [{repo}] would not be installable after this run: "
        f"{'; '.join(map(str, problems))}. [{repo}]'s own packages make these ({', '.join(makers)}: pkgbuilds/), "
        f"and neither [{repo}] nor this run has them (pacman: unable to satisfy dependency): build them in the "
        f"same run ({hint})")


def _closure(items: dict[str, PlannedBuild], base: str) -> list[str]:
    """Every package of this run that base needs, directly or through others."""
    seen: list[str] = []
    todo = [d for d in items[base].deps if d in items]
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.append(d)
            todo += [x for x in items[d].deps if x in items]
    return seen


def build(cfg: Config, requested: list[str] | None = None, *, dry_run: bool = False,
          progress: Callable[[str], None] = lambda s: None, jobs: int | None = None,
          only: list[str] | None = None, heartbeat: float = 60.0, backend=None,
          unsigned_to: Path | None = None, tracker=None) -> BuildReport:
    """Build what is due (see plan.py for the reasons), `jobs` at a time, and publish it.

    requested: also build these; only: build exactly these; heartbeat: seconds between
    "still building" progress lines; backend: a backend object (default: [build] backend);
    unsigned_to: sign and publish nothing, no key needed: leave each checked package and its
    unsigned provenance record in this folder (status "built"); tracker: told which package
    starts, its phase and when it ends (progress.Reporter: the live status line, `build -v`).
    """
    jobs = cfg.build.jobs if jobs is None else jobs
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    if not plan_mod.synced(cfg):
        raise NothingSynced(cfg.pkgbuilds)           # not "nothing to build": nothing was ever synced
    if unsigned_to is not None and unsigned_to.exists() and not unsigned_to.is_dir():
        raise ConfigError(f"{unsigned_to}: not a folder")
    sign = unsigned_to is None and not dry_run
    key = preflight.signing(cfg) if sign else None   # no usable key: refused before any build (exit 2)
    failures = history.load(cfg)
    planner, ordered = compute(cfg, requested, only=only, failures=failures)
    report = BuildReport(dry_run=dry_run, jobs=jobs)
    items = {it.pkgbase: it for it in ordered}
    results = {it.pkgbase: _result(it) for it in ordered}
    report.results = list(results.values())
    if dry_run or not items:
        return report

    # tools, build user, writable folders: checked before the first package (exit 2), never
    # found missing after hours of building
    preflight.for_build(cfg, backend=None if backend is not None else cfg.build.backend, publish=sign,
                        out=unsigned_to)
    backend = backend or backend_for(cfg)
    backend.preflight(ordered)                       # e.g. makepkg on x86_64 for aarch64: refused here
    if sign:
        refuse_unmet(cfg, planner, ordered, only)
    public = signing.export_public(cfg.signing, key.fingerprint, armor=False) if sign else b""
    state = state_mod.load(cfg.state_file)           # upstreams and inputs for the provenance records
    provenance.tool_versions()                       # asked once, before the workers start
    out = cfg.cache / "built" if sign else unsigned_to
    built: dict[str, list[Path]] = {}
    started = time.monotonic()
    lock = threading.Lock()
    if tracker is None:
        from ..progress import Reporter
        tracker = Reporter(live=False)              # tells nobody

    def say(msg: str) -> None:
        with lock:
            progress(msg)

    def total() -> int:
        return len(items)

    def work(item: PlannedBuild, slot: int, deps: list[Path], log: Path) -> tuple[list[Path], dict[str, list[str]]]:
        sde = provenance.source_date_epoch(item.pkgdir)
        started = provenance.utc_now()
        pkgs = backend.build(item.pkgdir, deps, log, out, worker=slot, pkgrel=item.pkgrel,
                             env={"SOURCE_DATE_EPOCH": str(sde)})
        finished = provenance.utc_now()
        tracker.phase(item.pkgbase, "checking and signing" if sign else "checking")
        provides = {}
        for p in pkgs:
            record = provenance.path_for(p)
            for stale in (record, Path(f"{record}.sig"), Path(f"{p}.sig")):
                stale.unlink(missing_ok=True)        # never hand on an older run's record or signature
            info = check_artifact(cfg, item, p, planner.repo)
            if sign:
                signing.detach_sign(cfg.signing, key, p)
                check_signature(public, key.fingerprint, p)
            provenance.write(p, provenance.make(
                package=p, info=info, pkgdir=item.pkgdir, state=state, backend=backend.name,
                started=started, finished=finished, sde=sde))
            if sign:
                signing.detach_sign(cfg.signing, key, record)
                check_signature(public, key.fingerprint, record)
            provides[info.pkgname] = info.fields.get("provides", [])
        return pkgs, provides

    pending = [it.pkgbase for it in ordered]
    running: dict[cf.Future, tuple[str, int, float]] = {}
    free = list(range(jobs, 0, -1))
    n_started = 0

    def add_dependents(base: str, why: str) -> None:
        """base was built with other sonames than [avf] has: rebuild its reverse deps too."""
        if only is not None:
            return
        for rdep in planner.reverse_deps(base):
            reason = f"dependency rebuilt: {base} ({why})"
            if rdep in items:
                res = results[rdep]
                if res.status == "planned" and not any(r.startswith(f"dependency rebuilt: {base} ") for r in res.reasons):
                    res.reasons.append(reason)
                    items[rdep].reasons.append(reason)
                continue
            item = planner.item(rdep)
            item.reasons.append(reason)
            planner.set_build_version(item)
            item.layer = max((items[d].layer + 1 for d in item.deps if d in items), default=0)
            items[rdep] = item
            results[rdep] = _result(item)
            report.results.append(results[rdep])
            pending.append(rdep)
            say(f"{rdep}: added to the run ({reason})")

    with cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="avfrepo-build") as pool:
        while pending or running:
            changed = True
            while changed:                      # skip what depends on a failure
                changed = False
                for base in list(pending):
                    bad = [d for d in items[base].deps if d in results and results[d].status in ("failed", "skipped")]
                    if bad:
                        res = results[base]
                        res.status, res.error = "skipped", f"dependency failed: {', '.join(bad)}"
                        pending.remove(base)
                        changed = True
                        say(f"{base} {res.version}: skipped ({res.error})")
            for base in list(pending):
                if not free:
                    break
                item = items[base]
                if any(d in items and results[d].status != "built" for d in item.deps):
                    continue
                pending.remove(base)
                slot = free.pop()
                n_started += 1
                res = results[base]
                log = cfg.logs / base / f"{item.version}.log"
                log.unlink(missing_ok=True)
                res.log, res.status = str(log), "building"
                deps = [p for d in _closure(items, base) for p in built.get(d, [])]
                say(f"[{n_started}/{total()}] {base} {item.version}: building with {backend.name} "
                    f"(worker {slot}; {'; '.join(item.reasons)}), log {log}")
                tracker.start(base, f"[{n_started}/{total()}] {base} {item.version}", log=log,
                              estimate=_last_duration(cfg, planner.repo, item), phase=backend.name)
                running[pool.submit(work, item, slot, deps, log)] = (base, slot, time.monotonic())
            if not running:
                for base in pending:            # only a cycle among added packages gets here
                    res = results[base]
                    res.status, res.error = "failed", "dependency cycle among packages added to the run"
                pending.clear()
                break
            done, _ = cf.wait(running, timeout=heartbeat, return_when=cf.FIRST_COMPLETED)
            if not done:
                for base, slot, t0 in running.values():
                    say(f"  ... {base} still building on worker {slot}: {time.monotonic() - t0:.0f} s, "
                        f"log {results[base].log}")
            for fut in done:
                base, slot, t0 = running.pop(fut)
                tracker.finish(base)
                free.append(slot)
                res = results[base]
                res.seconds = round(time.monotonic() - t0, 2)
                try:
                    pkgs, provides = fut.result()
                except (AvfrepoError, OSError) as exc:
                    res.status, res.error = "failed", str(exc).splitlines()[0]
                    say(f"{base}: FAILED after {res.seconds} s: {res.error}"
                        + ("" if res.log in res.error else f" (log {res.log})"))
                    continue
                res.status, res.packages = "built", [p.name for p in pkgs]
                built[base] = pkgs
                say(f"{base}: built {', '.join(res.packages)} in {res.seconds} s")
                why = planner.built_abi_change(provides)
                if why:
                    add_dependents(base, why)

    to_publish = [p for base in items for p in built.get(base, [])] if sign else []
    if to_publish:
        say(f"publishing {len(to_publish)} package(s) into {cfg.repo.path}")
        tracker.start("publish", f"publishing {len(to_publish)} package(s)", phase="repo-add")
        try:
            switched = {p.name for p in publish(cfg, key, to_publish, progress=say)}
        except AvfrepoError as exc:
            tracker.finish("publish")
            for r in report.results:
                if r.status == "built":
                    r.status, r.error = "failed", f"publish failed: {str(exc).splitlines()[0]}"
            say(f"publishing FAILED: {exc}")
        else:
            tracker.finish("publish")
            holds = load_ledger(cfg).holds       # as of the served snapshot
            for r in report.results:
                if r.status == "built":
                    _outcome(r, built[r.pkgbase], switched, holds)
    report.seconds = round(time.monotonic() - started, 2)
    history.update(cfg, failures, report.results, set(planner.infos))
    return report


def _last_duration(cfg: Config, repo: dict, item: PlannedBuild) -> float | None:
    """Seconds the published build of item's pkgbase took (its provenance record in the pool:
    build_finished - build_started), the estimate on the status line; None when unknown."""
    from ..repo import layout
    for name in item.info.pkgnames:
        entry = repo.get(name)
        if entry is None:
            continue
        try:
            rec = provenance.read(layout.pool(cfg) / (entry.filename + provenance.SUFFIX))
            fmt = "%Y-%m-%dT%H:%M:%SZ"
            took = (calendar.timegm(time.strptime(rec.build_finished, fmt))
                    - calendar.timegm(time.strptime(rec.build_started, fmt)))
        except (OSError, ValueError):
            continue
        if took >= 0:
            return took
    return None


def _outcome(res: BuildResult, files: list[Path], switched: set[str], holds: dict[str, str]) -> None:
    """What the publish step did with a built pkgbase: "published" only when the switch
    published every one of its files; "held" when `repo rollback` held any of them back (the
    ledger's holds); "unchanged" when what was built is byte for byte the published version."""
    names = {}
    for f in files:
        names[f.name] = next((n for n in sorted(res.pkgnames, key=len, reverse=True)
                              if f.name.startswith(f"{n}-{res.version}-")), f.name)
    left = [names[f.name] for f in files if f.name not in switched]
    res.held = [n for n in left if n in holds and vercmp(res.version, holds[n]) <= 0]
    if res.held:
        res.status = "held" if len(left) == len(files) else "published"
        res.note = (f"not published: {', '.join(f'{n} (rolled back from {holds[n]})' for n in res.held)}; "
                    "held until a newer version is synced")
    elif left:
        res.status = "unchanged" if len(left) == len(files) else "published"
        res.note = f"already published, byte for byte: {', '.join(left)}"
    else:
        res.status = "published"


def format_summary(report: BuildReport) -> str:
    """The table printed at the end of a run (and for a dry run, the plan)."""
    rows = [("package", "version", "status", "time", "reasons")]
    for r in report.results:
        rows.append((r.pkgbase, r.version, r.status, f"{r.seconds:.1f}s" if r.seconds else "-", "; ".join(r.reasons)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4])
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    for r in report.results:
        if r.error:
            lines.append(f"{r.pkgbase}: {r.error}"
                         + (f" (log: {r.log})" if r.log and r.status == "failed" and r.log not in r.error else ""))
        if r.note:
            lines.append(f"{r.pkgbase}: {r.note}")
    statuses = ["published", "held", "unchanged", "built", "failed", "skipped", "planned"]
    statuses += sorted({r.status for r in report.results} - set(statuses))
    counts = {s: sum(r.status == s for r in report.results) for s in statuses}
    tail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if report.dry_run:
        lines.append(f"dry run: {len(report.results)} package(s) planned, nothing built")
    else:
        lines.append(f"{tail} in {report.seconds:.1f} s with {report.jobs} job(s)")
    return "\n".join(lines)
