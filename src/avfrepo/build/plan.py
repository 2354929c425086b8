"""What to build, why, and in which order.

Each package to build carries its list of reasons (the lilac way): the same list orders the
work, fills the progress lines, the summary table and the JSON report. A reason starts with
its kind:

    new package: X is not in [avf]
    new upstream version: X 1.0-1 -> 2.0-1        (epoch:pkgver changed)
    inputs changed: X 1.0-1 -> 1.0-2              (same pkgver, pkgrel bumped by sync)
    dependency rebuilt: D (libd.so=1-64 -> libd.so=2-64)
    requested
    retry after failure: 1.0-1 failed (makepkg exited 4 ...)

"Soname-relevant" (when a dependency's rebuild also rebuilds its reverse dependencies):
a dependency D in this run whose epoch:pkgver differs from the version [avf] holds (a new
upstream release may change its ABI), or whose `lib*.so` provides differ from what [avf]
records for it (declared in the PKGBUILD at plan time, or found in the built .PKGINFO after
D is built: makepkg fills in `libfoo.so=2-64` itself). A pkgrel-only change is not: the same
upstream source packaged again keeps its ABI. Only direct reverse dependencies are rebuilt;
a rebuilt package whose own sonames then change brings in its own reverse dependencies.

A package rebuilt at a version [avf] already holds (requested, dependency rebuilt, retry)
is built with the next subrelease pkgrel (1 -> 1.1 -> 1.2), as Arch Linux ARM does, so pacman
sees an upgrade and no published file is ever replaced by other bytes of the same name.
"""

from __future__ import annotations

import functools
import graphlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import AvfrepoError, ConfigError
from ..formats import srcinfo
from ..formats.repodb import DbEntry, read_db
from ..repo import closure
from ..versions import vercmp

SONAME = re.compile(r"^lib[^=<>]*\.so(\.[^=<>]*)?$")


@dataclass
class PlannedBuild:
    pkgbase: str
    version: str                                          # what will be built
    pkgdir: Path
    info: srcinfo.SrcInfo
    reasons: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)        # other [avf] pkgbases it needs
    layer: int = 0                                        # dependency layer within this run

    @property
    def pkgbuild_version(self) -> str:
        return self.info.version

    @property
    def pkgrel(self) -> str | None:
        """The pkgrel to build with when it differs from the PKGBUILD's (a subrelease)."""
        return self.version.rsplit("-", 1)[1] if self.version != self.info.version else None

    def to_json(self) -> dict:
        return {"pkgbase": self.pkgbase, "version": self.version, "pkgbuild_version": self.pkgbuild_version,
                "reasons": self.reasons, "pkgnames": list(self.info.pkgnames), "depends_on": self.deps,
                "layer": self.layer}


def published(cfg: Config) -> dict[str, DbEntry]:
    """What [avf] serves, read from its db once the db's signature by the repository key
    verifies (a db with a bad or missing signature is an error, never a plan's input)."""
    from ..repo.publish import signed_db      # here: keeps `import avfrepo.build.plan` light
    return signed_db(cfg)


def synced(cfg: Config) -> bool:
    """Whether `avfrepo sync` has written any package under pkgbuilds/."""
    return cfg.pkgbuilds.is_dir() and any(cfg.pkgbuilds.glob("*/.SRCINFO"))


def load_srcinfos(cfg: Config) -> dict[str, tuple[Path, srcinfo.SrcInfo]]:
    out = {}
    if not cfg.pkgbuilds.is_dir():
        return out
    for f in sorted(cfg.pkgbuilds.glob("*/.SRCINFO")):
        try:
            info = srcinfo.parse(f.read_text())
        except ValueError as exc:
            raise AvfrepoError(f"{f}: {exc} (run `avfrepo sync` to regenerate it)") from None
        out[info.pkgbase] = (f.parent, info)
    return out


def _upstream_part(version: str) -> str:
    """[epoch:]pkgver without the pkgrel."""
    return version.rsplit("-", 1)[0]


def _split(dep: str) -> tuple[str, str | None]:
    name, sep, ver = dep.partition("=")
    return name, (ver if sep else None)


def sonames(values: list[str]) -> dict[str, str | None]:
    """`lib*.so` provides -> their version (None when unversioned, as a PKGBUILD may say)."""
    return {n: v for n, v in map(_split, values) if SONAME.match(n)}


def soname_change(old: dict[str, str | None], new: dict[str, str | None]) -> str | None:
    """Describe how soname provides changed; an unversioned new entry matches any version."""
    if set(old) == set(new) and all(new[n] is None or new[n] == old[n] for n in new):
        return None
    fmt = lambda d: ", ".join(f"{n}={v}" if v else n for n, v in sorted(d.items())) or "none"
    return f"{fmt(old)} -> {fmt(new)}"


def next_subrelease(version: str) -> str:
    """1.0-1 -> 1.0-1.1, 1.0-1.1 -> 1.0-1.2."""
    head, rel = version.rsplit("-", 1)
    major, _, minor = rel.partition(".")
    return f"{head}-{major}.{int(minor or 0) + 1}"


class Planner:
    """The packages under pkgbuilds/, the repository, and how they relate."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.infos = load_srcinfos(cfg)
        self.repo = published(cfg)
        # who provides a name: pkgnames first, then their provides (libfoo.so, virtual names)
        self.provider: dict[str, str] = {}
        for base, (_, info) in self.infos.items():
            for name in info.pkgnames:
                for prov in info.get("provides", name):
                    self.provider.setdefault(_split(prov)[0], base)
        for base, (_, info) in self.infos.items():
            for name in info.pkgnames:
                self.provider[name] = base

    def deps(self, base: str) -> list[str]:
        info = self.infos[base][1]
        return sorted({self.provider[d] for d in info.all_depends() if d in self.provider and self.provider[d] != base})

    def reverse_deps(self, base: str) -> list[str]:
        return sorted(b for b in self.infos if base in self.deps(b))

    def item(self, base: str) -> PlannedBuild:
        pkgdir, info = self.infos[base]
        return PlannedBuild(base, info.version, pkgdir, info, deps=self.deps(base))

    def version_reasons(self, base: str) -> list[str]:
        info = self.infos[base][1]
        out = []
        for name in info.pkgnames:
            entry = self.repo.get(name)
            if entry is None:
                out.append(f"new package: {name} is not in [{self.cfg.repo.name}]")
            elif vercmp(info.version, entry.version) > 0:
                kind = ("inputs changed" if vercmp(_upstream_part(info.version), _upstream_part(entry.version)) == 0
                        else "new upstream version")
                out.append(f"{kind}: {name} {entry.version} -> {info.version}")
        return out

    def abi_change(self, base: str) -> str | None:
        """Why base's reverse dependencies need a rebuild once base is rebuilt, if they do
        (judged from its PKGBUILD against [avf])."""
        info = self.infos[base][1]
        for name in info.pkgnames:
            entry = self.repo.get(name)
            if entry is None:
                continue
            if vercmp(_upstream_part(info.version), _upstream_part(entry.version)) != 0:
                return f"{name} {entry.version} -> {info.version}"
            change = soname_change(sonames(entry.fields.get("PROVIDES", [])), sonames(info.get("provides", name)))
            if change:
                return change
        return None

    def built_abi_change(self, provides: dict[str, list[str]]) -> str | None:
        """Like abi_change, from what was actually built: pkgname -> .PKGINFO provides."""
        for name, values in sorted(provides.items()):
            entry = self.repo.get(name)
            if entry is None:
                continue
            change = soname_change(sonames(entry.fields.get("PROVIDES", [])), sonames(values))
            if change:
                return change
        return None

    def holds(self, base: str, version: str) -> bool:
        """[avf] already has every package of base at version or newer."""
        names = self.infos[base][1].pkgnames
        return bool(version) and all(n in self.repo and vercmp(self.repo[n].version, version) >= 0 for n in names)

    def retry_due(self, base: str, failed: str) -> bool:
        """A recorded failure of version `failed` still concerns base: [avf] does not hold
        it yet and the PKGBUILD has not gone back to an older upstream version."""
        info = self.infos[base][1]
        return (bool(failed) and not self.holds(base, failed)
                and vercmp(_upstream_part(failed), _upstream_part(info.version)) <= 0)

    def unmet(self, items: list[PlannedBuild]) -> tuple[list[closure.Unmet], dict[str, str]]:
        """What [avf] would miss once `items` are built and published over what it holds: the
        packages with a dependency on one of [avf]'s own names (closure.py) nothing satisfies;
        and those own names (name -> pkgbase)."""
        own = closure.own_names(info for _, info in self.infos.values())
        after = {n: closure.from_db(e) for n, e in self.repo.items()}
        for item in items:
            for name in item.info.pkgnames:
                after[name] = closure.from_srcinfo(item.info, name, item.version)
        return closure.unmet(after.values(), own), own

    def set_build_version(self, item: PlannedBuild) -> None:
        """A rebuild of a version [avf] already holds gets the next subrelease."""
        held = [self.repo[n].version for n in item.info.pkgnames if n in self.repo]
        if not held:
            return
        newest = max(held, key=functools.cmp_to_key(vercmp))
        if (vercmp(item.info.version, newest) <= 0
                and vercmp(_upstream_part(item.info.version), _upstream_part(newest)) == 0):
            item.version = next_subrelease(newest)


def compute(cfg: Config, requested: list[str] | None = None, *, only: list[str] | None = None,
            failures: dict[str, dict] | None = None) -> tuple[Planner, list[PlannedBuild]]:
    """The planner and the ordered build set.

    requested: build these even if current (plus whatever is due); only: build exactly
    these (no other package, no reverse dependencies); failures: what the last runs could
    not build (pkgbase -> record), retried.
    """
    requested = list(requested or [])
    planner = Planner(cfg)
    infos = planner.infos
    unknown = [n for n in [*requested, *(only or [])] if n not in infos]
    if unknown:
        raise ConfigError(f"no PKGBUILD for {', '.join(unknown)} under {cfg.pkgbuilds} "
                          f"(known: {', '.join(infos) or 'none; run avfrepo sync'})")
    items: dict[str, PlannedBuild] = {}
    for base in infos:
        item = planner.item(base)
        item.reasons += planner.version_reasons(base)
        if base in requested or (only and base in only):
            item.reasons.append("requested")
        rec = (failures or {}).get(base)
        if rec and planner.retry_due(base, str(rec.get("version") or "")):
            error = (rec.get("error") or "").splitlines()[0][:100] if rec.get("error") else ""
            item.reasons.append(f"retry after failure: {rec.get('version')} {rec.get('status', 'failed')}"
                                + (f" ({error})" if error else ""))
        if item.reasons:
            items[base] = item
    # reverse dependencies of packages whose soname-relevant version changes
    changed = {b: c for b in items if (c := planner.abi_change(b))}
    for base in infos:
        for dep in planner.deps(base):
            if dep in changed:
                item = items.setdefault(base, planner.item(base))
                item.reasons.append(f"dependency rebuilt: {dep} ({changed[dep]})")
    if only is not None:
        items = {b: it for b, it in items.items() if b in only}
    for item in items.values():
        planner.set_build_version(item)
    return planner, order(cfg, items)


def order(cfg: Config, items: dict[str, PlannedBuild]) -> list[PlannedBuild]:
    """Dependency order; sets each item's layer (0: needs nothing else in this run)."""
    graph = graphlib.TopologicalSorter({b: [d for d in it.deps if d in items] for b, it in items.items()})
    try:
        graph.prepare()
    except graphlib.CycleError as exc:
        raise AvfrepoError(f"dependency cycle among [{cfg.repo.name}] packages: {' -> '.join(exc.args[1])}") from None
    out: list[PlannedBuild] = []
    layer = 0
    while graph.is_active():
        ready = sorted(graph.get_ready())
        for b in ready:
            items[b].layer = layer
            out.append(items[b])
        graph.done(*ready)
        layer += 1
    return out


def plan(cfg: Config, requested: list[str] | None = None, *, only: list[str] | None = None,
         failures: dict[str, dict] | None = None) -> list[PlannedBuild]:
    """Packages whose PKGBUILD is newer than the repository's, plus the requested ones, plus
    reverse dependencies of soname-relevant changes, plus earlier failures, in dependency
    order."""
    return compute(cfg, requested, only=only, failures=failures)[1]


def layers(items: list[PlannedBuild]) -> list[list[str]]:
    out: list[list[str]] = []
    for it in items:
        while len(out) <= it.layer:
            out.append([])
        out[it.layer].append(it.pkgbase)
    return out


def github_matrix(items: list[PlannedBuild]) -> dict:
    """The dependency layers as a GitHub Actions matrix: one entry per layer, in order.

    {"include": [{"layer": 0, "packages": "a d", "pkgbases": ["a", "d"]}, ...]}
    Layer N+1 needs only packages of layers <= N.
    """
    return {"include": [{"layer": n, "packages": " ".join(bases), "pkgbases": bases}
                        for n, bases in enumerate(layers(items))]}
