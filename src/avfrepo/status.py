"""`avfrepo status`: where every package stands, from upstream to the published repository.

Per package: the upstream versions and commits it was rendered from (state file), the
PKGBUILD version (.SRCINFO), the published version (repository db), the last build's
result and log, and the reasons it is still pending (the build plan). Read-only; nothing is
queried over the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import state as state_mod
from .build import history
from .build.plan import load_srcinfos, plan, published
from .config import Config


@dataclass
class PackageStatus:
    pkgbase: str
    upstreams: dict[str, dict] = field(default_factory=dict)   # name -> {version, commit}
    inputs: str | None = None
    pkgbuild: str | None = None
    published: dict[str, str | None] = field(default_factory=dict)   # pkgname -> version
    last_build: dict | None = None       # {"status", "version", "error", "log", "at"}
    pending: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return not self.pending and bool(self.published) and all(self.published.values())

    def to_json(self) -> dict:
        return {**self.__dict__, "current": self.current}


@dataclass
class StatusReport:
    packages: list[PackageStatus]
    synced: bool = True          # False: no package under pkgbuilds/ and none in the state file

    @property
    def pending(self) -> list[PackageStatus]:
        return [p for p in self.packages if not p.current]

    @property
    def current(self) -> bool:
        return self.synced and not self.pending

    def to_json(self) -> dict:
        return {"current": self.current, "synced": self.synced, "packages": [p.to_json() for p in self.packages]}


def status(cfg: Config) -> StatusReport:
    st = state_mod.load(cfg.state_file)
    infos = load_srcinfos(cfg)
    repo = published(cfg)
    failures = history.load(cfg)
    pending = {item.pkgbase: item.reasons for item in plan(cfg, failures=failures)}
    rows = []
    for base in sorted(set(infos) | set(st.packages)):
        row = PackageStatus(base)
        rec = st.packages.get(base)
        if rec is not None:
            row.inputs = rec.inputs
            for up, version in rec.upstreams.items():
                commit = st.upstreams[up].commit if up in st.upstreams and st.upstreams[up].version == version else None
                row.upstreams[up] = {"version": version, "commit": commit}
        if base in infos:
            pkgdir, info = infos[base]
            row.pkgbuild = info.version
            row.published = {n: (repo[n].version if n in repo else None) for n in info.pkgnames}
            log = cfg.logs / base / f"{info.version}.log"
            if base in failures:
                row.last_build = dict(failures[base])
            elif log.exists():
                row.last_build = {"status": "published" if all(row.published.values()) else "built",
                                  "version": info.version, "log": str(log)}
        else:
            row.pending.append("no PKGBUILD under pkgbuilds/ (run avfrepo sync)")
        row.pending += pending.get(base, [])
        rows.append(row)
    return StatusReport(rows, synced=bool(rows))
