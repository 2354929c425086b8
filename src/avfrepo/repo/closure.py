"""Dependency closure: every dependency of a published package on a name that only [avf]
provides is satisfied inside [avf].

[avf]'s own names are what its packages (the .SRCINFO under pkgbuilds/, which sync renders
from the package registry) are called and what they provide, except the provides of a
package that stands in for another repository's package: one that provides a name it also
conflicts with (systemd-avf provides and conflicts with `systemd`, ttyd-avf with `ttyd`) stands
in for a package Arch Linux ARM has, and everything it provides that package provides too, so
those names are satisfied outside [avf]. A dependency on any other name (glibc, systemd,
libwebsockets...) is Arch Linux ARM's business, not [avf]'s.

A dependency is satisfied the way pacman satisfies it: by a package of that name whose version
meets the constraint, or by a provide of that name (a versioned dependency needs a versioned
provide that meets it; an unversioned dependency takes any). Versions compare with libalpm's
vercmp, which leaves out the pkgrel when one side has none (`systemd-avf=261.2` matches
261.2-3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..config import Config
from ..formats import pkginfo, srcinfo
from ..formats.repodb import DbEntry
from ..versions import vercmp

_DEP = re.compile(r"^(?P<name>[^<>=]+)(?:(?P<op><=|>=|=|<|>)(?P<version>.+))?$")


@dataclass(frozen=True)
class Relation:
    """`name`, `name=1.0`, `name>=1.0-2` (a depends, provides or conflicts entry)."""
    name: str
    op: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Relation":
        m = _DEP.match(text.strip())
        if not m:
            return cls(text.strip())
        return cls(m["name"], m["op"], m["version"])

    def __str__(self) -> str:
        return self.name + (f"{self.op}{self.version}" if self.op else "")

    def allows(self, version: str) -> bool:
        if self.op is None:
            return True
        c = vercmp(version, self.version)
        return {"=": c == 0, ">=": c >= 0, "<=": c <= 0, ">": c > 0, "<": c < 0}[self.op]


@dataclass(frozen=True)
class Package:
    """What a package says about its relations to others."""
    name: str
    version: str
    depends: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    def satisfies(self, dep: Relation) -> bool:
        if self.name == dep.name and dep.allows(self.version):
            return True
        for p in map(Relation.parse, self.provides):
            if p.name != dep.name:
                continue
            if dep.op is None or (p.op == "=" and dep.allows(p.version)):
                return True
        return False

    @property
    def stands_in(self) -> bool:
        """Provides a name it conflicts with: a replacement for another repository's package."""
        return bool({Relation.parse(p).name for p in self.provides} & {Relation.parse(c).name for c in self.conflicts})


def from_db(entry: DbEntry) -> Package:
    f = entry.fields
    return Package(entry.name, entry.version, tuple(f.get("DEPENDS", ())), tuple(f.get("PROVIDES", ())),
                   tuple(f.get("CONFLICTS", ())))


def from_pkginfo(info: pkginfo.PkgInfo) -> Package:
    f = info.fields
    return Package(info.pkgname, info.pkgver, tuple(f.get("depend", ())), tuple(f.get("provides", ())),
                   tuple(f.get("conflict", ())))


def db_fields(info: pkginfo.PkgInfo) -> dict[str, list[str]]:
    """The relation fields of a db entry (`%DEPENDS%`...) as repo-add writes them from .PKGINFO."""
    p = from_pkginfo(info)
    return {k: list(v) for k, v in (("DEPENDS", p.depends), ("PROVIDES", p.provides), ("CONFLICTS", p.conflicts)) if v}


def from_srcinfo(info: srcinfo.SrcInfo, pkgname: str, version: str | None = None) -> Package:
    """A split package of a .SRCINFO as makepkg will build it (at `version`, default the PKGBUILD's)."""
    return Package(pkgname, version or info.version, tuple(info.get("depends", pkgname)),
                   tuple(info.get("provides", pkgname)), tuple(info.get("conflicts", pkgname)))


def own_names_of(cfg: Config) -> dict[str, str]:
    """own_names() of the packages rendered under cfg's pkgbuilds/."""
    from ..build.plan import load_srcinfos          # here: build imports repo.publish at load time
    return own_names(info for _, info in load_srcinfos(cfg).values())


def own_names(infos: Iterable[srcinfo.SrcInfo]) -> dict[str, str]:
    """name -> the [avf] pkgbase that makes it: every pkgname, and the provides of every
    package that does not stand in for another repository's package."""
    out: dict[str, str] = {}
    for info in infos:
        for name in info.pkgnames:
            out[name] = info.pkgbase
            pkg = from_srcinfo(info, name)
            if not pkg.stands_in:
                for p in pkg.provides:
                    out.setdefault(Relation.parse(p).name, info.pkgbase)
    return out


@dataclass(frozen=True)
class Unmet:
    package: str                 # the package whose dependency is not met
    version: str
    depends: tuple[Relation, ...]   # its dependencies on [avf]'s names that nothing satisfies
    holds: tuple[str | None, ...]   # for each: the version of that name the snapshot has, if any

    def __str__(self) -> str:
        return f"{self.package} {self.version} depends on " + ", ".join(
            str(d) + (f" ({d.name} {h} is there)" if h else "") for d, h in zip(self.depends, self.holds))


def unmet(snapshot: Iterable[Package], own: Mapping[str, str]) -> list[Unmet]:
    """Every package of `snapshot` with a dependency on one of [avf]'s `own` names that no
    package of the snapshot satisfies."""
    pkgs = sorted(snapshot, key=lambda p: p.name)
    by_name = {p.name: p for p in pkgs}
    out = []
    for pkg in pkgs:
        deps = [d for d in map(Relation.parse, pkg.depends)
                if d.name in own and not any(other.satisfies(d) for other in pkgs)]
        if deps:
            out.append(Unmet(pkg.name, pkg.version, tuple(deps),
                             tuple(by_name[d.name].version if d.name in by_name else None for d in deps)))
    return out


def makers(problems: list[Unmet], own: Mapping[str, str]) -> list[str]:
    """The [avf] pkgbases that make the names `problems` miss."""
    return sorted({own[d.name] for u in problems for d in u.depends})
