"""What to build, why, and in which order.

Each package to build carries its list of reasons (the lilac way): the same list orders the
work, fills the progress lines and the report.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import AvfrepoError, ConfigError
from ..formats import srcinfo
from ..formats.repodb import DbEntry, read_db
from ..versions import vercmp


@dataclass
class PlannedBuild:
    pkgbase: str
    version: str
    pkgdir: Path
    info: srcinfo.SrcInfo
    reasons: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)        # other [avf] pkgbases it needs

    def to_json(self) -> dict:
        return {"pkgbase": self.pkgbase, "version": self.version, "reasons": self.reasons,
                "pkgnames": list(self.info.pkgnames), "depends_on": self.deps}


def db_path(cfg: Config) -> Path:
    return cfg.repo.path / f"{cfg.repo.name}.db.tar.gz"


def published(cfg: Config) -> dict[str, DbEntry]:
    path = db_path(cfg)
    if not path.exists():
        return {}
    try:
        return read_db(path)
    except ValueError as exc:
        raise AvfrepoError(f"{path}: {exc}") from None


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


def plan(cfg: Config, requested: list[str] | None = None) -> list[PlannedBuild]:
    """Packages whose PKGBUILD is newer than the repository's, plus the requested ones,
    in dependency order."""
    requested = requested or []
    infos = load_srcinfos(cfg)
    unknown = [n for n in requested if n not in infos]
    if unknown:
        raise ConfigError(f"no PKGBUILD for {', '.join(unknown)} under {cfg.pkgbuilds} "
                          f"(known: {', '.join(infos) or 'none; run avfrepo sync'})")
    repo = published(cfg)
    provider = {name: base for base, (_, info) in infos.items() for name in info.pkgnames}
    items: dict[str, PlannedBuild] = {}
    for base, (pkgdir, info) in infos.items():
        item = PlannedBuild(base, info.version, pkgdir, info)
        for name in info.pkgnames:
            entry = repo.get(name)
            if entry is None:
                item.reasons.append(f"{name} is not in [{cfg.repo.name}]")
            elif vercmp(info.version, entry.version) > 0:
                item.reasons.append(f"{name}: [{cfg.repo.name}] has {entry.version}, PKGBUILD is {info.version}")
        if base in requested:
            item.reasons.append("requested")
        item.deps = sorted({provider[d] for d in info.all_depends() if d in provider and provider[d] != base})
        if item.reasons:
            items[base] = item
    graph = graphlib.TopologicalSorter({b: [d for d in it.deps if d in items] for b, it in items.items()})
    try:
        order = list(graph.static_order())
    except graphlib.CycleError as exc:
        raise AvfrepoError(f"dependency cycle among [{cfg.repo.name}] packages: {' -> '.join(exc.args[1])}") from None
    return [items[b] for b in order]
