"""`avfrepo sync`: upstreams -> rendered PKGBUILDs under pkgbuilds/, by the bump rules.

Order of work, so that a failure leaves pkgbuilds/ as it was:
1. query every upstream (nothing written yet; any failure aborts the whole sync);
2. check recorded tags did not move;
3. fetch the needed upstream trees (into the cache, not pkgbuilds/);
4. render every package, decide its version, generate .SRCINFO in a scratch directory;
5. only then (and not with --dry-run) swap each changed package directory into place and
   write the state file last.

Bump rules, per package:
- inputs (the rendered files, versions left out) unchanged -> nothing, whatever upstream did;
- inputs changed, upstream pkgver newer -> that pkgver, pkgrel 1;
- inputs changed, same upstream pkgver -> pkgrel + 1;
- upstream pkgver older than the recorded one -> refused (never a downgrade).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import packages, render_record, signing, state as state_mod
from .config import Config
from .errors import AvfrepoError, ConfigError, SigningError
from .fsutil import read_tree, remove_swap_leftovers, replace_dir
from .formats import srcinfo
from .makepkg import printsrcinfo
from .packages import Context, RenderProblem
from .sources import Release, query, query_all
from .sources.git_tags import latest, ls_remote_tags, tag_pkgver
from .versions import vercmp

log = logging.getLogger("avfrepo.sync")


@dataclass
class PackageReport:
    name: str
    action: str = "unchanged"            # new | bump | unchanged | restored | refused
    old: str | None = None
    new: str | None = None
    reasons: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"name": self.name, "action": self.action, "old": self.old, "new": self.new,
                "reasons": self.reasons, "problems": self.problems}


@dataclass
class SyncReport:
    upstreams: dict[str, dict] = field(default_factory=dict)
    packages: list[PackageReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # package -> why `sync NAME` left it
    dry_run: bool = False
    written: bool = False

    @property
    def refused(self) -> bool:
        return bool(self.problems) or any(p.action == "refused" for p in self.packages)

    @property
    def changed(self) -> list[PackageReport]:
        return [p for p in self.packages if p.action in ("new", "bump", "restored")]

    def to_json(self) -> dict:
        return {"dry_run": self.dry_run, "written": self.written, "upstreams": self.upstreams,
                "packages": [p.to_json() for p in self.packages], "problems": self.problems,
                "skipped": self.skipped, "refused": self.refused}


def _decide(r: PackageReport, rendered: packages.Rendered, prev: state_mod.PackageState | None,
            on_disk: dict[str, bytes]) -> tuple[str, int] | None:
    """Apply the bump rules; fill the report; return (pkgver, pkgrel) to write, or None."""
    inputs = rendered.inputs_hash()
    if prev is None:
        r.action, r.new = "new", f"{rendered.pkgver}-1"
        r.reasons.append(f"new package at {rendered.pkgver}")
        return rendered.pkgver, 1
    r.old = prev.full_version
    c = vercmp(rendered.pkgver, prev.pkgver)
    if c < 0:
        r.action = "refused"
        r.problems.append(f"upstream version {rendered.pkgver} is older than the packaged {prev.pkgver}: "
                          "refusing a downgrade")
        return None
    if inputs == prev.inputs:
        moved = [f"{u} {prev.upstreams.get(u)} -> {v}" for u, v in rendered.upstreams.items()
                 if prev.upstreams.get(u) != v]
        if moved:
            r.reasons.append("inputs unchanged despite " + ", ".join(moved) + ": no bump")
        expected = rendered.finalize(prev.pkgver, prev.pkgrel)
        if any(on_disk.get(k) != v for k, v in expected.items()):
            r.action, r.new = "restored", prev.full_version
            r.reasons.append("pkgbuilds directory differed from the recorded render: rewritten, same version")
            return prev.pkgver, prev.pkgrel
        return None
    if c > 0:
        r.action, r.new = "bump", f"{rendered.pkgver}-1"
        ups = ", ".join(f"{u} {prev.upstreams.get(u)} -> {v}" for u, v in rendered.upstreams.items()
                        if prev.upstreams.get(u) != v)
        r.reasons.append(f"new upstream version {rendered.pkgver}" + (f" ({ups})" if ups else ""))
        return rendered.pkgver, 1
    r.action, r.new = "bump", f"{prev.pkgver}-{prev.pkgrel + 1}"
    r.reasons.append("inputs changed at the same upstream version: pkgrel + 1")
    return prev.pkgver, prev.pkgrel + 1


def _fetch_trees(cfg: Config, modules, releases: dict[str, Release]) -> tuple[dict[str, Path], dict[str, str]]:
    """Sparse checkouts of the upstreams whose files packages read (module.TREES: upstream ->
    static paths, or a function of the checkout that computes them), each at the release sync
    is about to use, holding exactly the union of what the packages ask for.

    Returns the work trees and, per package, why its paths could not be computed (the
    package is then refused; the others go on)."""
    wanted: dict[str, list] = {}
    for m in modules:
        for upstream, spec in getattr(m, "TREES", {}).items():
            wanted.setdefault(upstream, []).append((m.NAME, spec))
    trees: dict[str, Path] = {}
    problems: dict[str, str] = {}
    for name, specs in sorted(wanted.items()):
        up, rel = cfg.upstream(name), releases[name]
        if up.kind == "git-tags":
            url, tag = up.url, rel.version
        elif getattr(up, "source_git", None) and rel.tag:
            url, tag = up.source_git, rel.tag
        else:
            raise ConfigError(f"[upstreams.{name}]: packages read its source tree, so it needs a git source "
                              "(source_git)")
        from . import checkout
        snap = checkout.Snapshot(name, url, tag, rel.commit or "", cfg.cache)

        def guarded(pkg, spec):
            if not callable(spec):
                return spec

            def paths(s):
                try:
                    return list(spec(s))
                except RenderProblem as exc:
                    problems[pkg] = str(exc)
                    return []
            return paths
        trees[name] = checkout.tree_for(snap, [guarded(pkg, spec) for pkg, spec in specs])
    return trees, problems


def _ask(up):
    """One upstream's newest Release, and for git upstreams the whole tag list (moved tags)."""
    if up.kind == "git-tags":
        tags = ls_remote_tags(up.name, up.url, up.net)
        return latest(up, tags), tags
    return query(up), None


def commit_message(report: SyncReport) -> str:
    changed = report.changed
    head = "sync: " + ", ".join(f"{p.name} {p.new}" for p in changed) if changed else "sync: upstream records"
    lines = [head if len(head) <= 72 else f"sync: {len(changed)} packages updated", ""]
    for p in changed:
        lines.append(f"{p.name} {p.old or '(new)'} -> {p.new}")
        lines += [f"  - {why}" for why in p.reasons]
    for name, info in report.upstreams.items():
        lines.append(f"upstream {name}: {info['version']}" + (f" ({info['commit']})" if info.get("commit") else ""))
    return "\n".join(lines) + "\n"


def commit(cfg: Config, report: SyncReport) -> str | None:
    """Record what sync wrote under pkgbuilds/ as one git commit; returns its sha."""
    import git
    try:
        repo = git.Repo(cfg.pkgbuilds, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ConfigError(f"--commit: {cfg.pkgbuilds} is not inside a git work tree") from None
    remove_swap_leftovers(cfg.pkgbuilds)        # a killed sync's staging copies are never committed
    try:
        repo.git.add("--all", "--", str(cfg.pkgbuilds))
        if not repo.index.diff("HEAD" if repo.head.is_valid() else None) and repo.head.is_valid():
            return None
        identity = []
        if not _git_config(repo, "user.email"):
            # an unattended builder may have no git identity: commit as the configured packager
            m = re.fullmatch(r"\s*(.*?)\s*<([^>]+)>\s*", cfg.build.packager)
            name, email = (m.group(1) or "avfrepo", m.group(2)) if m else ("avfrepo", "avfrepo@example.invalid")
            identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        repo.git.execute(["git", *identity, "commit", "-q", "-m", commit_message(report), "--", str(cfg.pkgbuilds)])
    except git.GitCommandError as exc:
        raise AvfrepoError(f"--commit: git failed: {(exc.stderr or str(exc)).strip().splitlines()[-1]}") from None
    return repo.head.commit.hexsha


def _git_config(repo, key: str) -> str:
    import git
    try:
        return repo.git.config("--get", key)
    except git.GitCommandError:
        return ""


def _select(cfg: Config, registry: dict, only: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The packages `sync NAME...` renders, and the ones it leaves alone with the reason.

    A name is a package or an upstream. The upstreams asked are the named ones and those the
    named packages read; a package is rendered when it is named, or reads a named upstream
    and nothing that is not asked (so `sync avf` asks AVF alone, never GitHub or kernel.org).
    """
    if not only:
        return list(registry), {}
    unknown = [n for n in only if n not in registry and n not in cfg.upstreams]
    if unknown:
        raise ConfigError(f"unknown package or upstream: {', '.join(unknown)} "
                          f"(packages: {', '.join(registry)}; upstreams: {', '.join(cfg.upstreams)})")
    named_ups = {n for n in only if n in cfg.upstreams and n not in registry}
    asked = named_ups | {u for n in only if n in registry for u in registry[n].UPSTREAMS}
    wanted, skipped = [], {}
    for n, m in registry.items():
        reads = set(m.UPSTREAMS)
        if n in only or (reads & named_ups and reads <= asked):
            wanted.append(n)
        elif reads & named_ups:
            skipped[n] = (f"also reads {', '.join(sorted(reads - asked))}, not asked by this sync: "
                          f"`avfrepo sync {n}` or a plain `avfrepo sync` renders it")
    return wanted, skipped


def _rendered_names(cfg: Config, name: str, st: state_mod.State) -> tuple[str, ...] | None:
    """The package names of pkgbuilds/<name>/.SRCINFO when sync wrote it (else None)."""
    if name not in st.packages:
        return None
    try:
        return srcinfo.parse((cfg.pkgbuilds / name / ".SRCINFO").read_text()).pkgnames
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def sync(cfg: Config, *, dry_run: bool = False, only: list[str] | None = None,
         rerender: bool = False) -> SyncReport:
    report = SyncReport(dry_run=dry_run)
    st = state_mod.load(cfg.state_file)
    registry = packages.registry()
    if cfg.enabled is not None:
        unknown = [n for n in cfg.enabled if n not in registry]
        if unknown:
            raise ConfigError(f"{cfg.file}: [packages] enable: unknown package {', '.join(unknown)} "
                              f"(known: {', '.join(registry)})")
        registry = {n: m for n, m in registry.items() if n in cfg.enabled}
    wanted, report.skipped = _select(cfg, registry, only)
    # what the packages read, and an upstream named on the command line even when none reads it
    named = {n for n in only or () if n in cfg.upstreams and n not in registry}
    needed_upstreams = sorted({u for n in wanted for u in registry[n].UPSTREAMS} | named)

    # 1. query upstreams, concurrently, all before writing anything
    answers = query_all([cfg.upstream(n) for n in needed_upstreams], ask=_ask)
    releases: dict[str, Release] = {}
    for name, (rel, tags) in answers.items():
        releases[name] = rel
        info = rel.to_json()
        recorded = st.upstreams.get(name)
        # 2. a recorded tag that now points elsewhere is an alarm, not an update
        moved = tags is not None and recorded is not None and recorded.commit \
            and recorded.version in tags and tags[recorded.version].commit != recorded.commit
        if moved:
            report.problems.append(
                f"upstream {name}: tag {recorded.version} moved from {recorded.commit} to "
                f"{tags[recorded.version].commit}; refusing to sync {name} until a maintainer reviews it")
        elif recorded and vercmp(rel.pkgver, recorded.pkgver or tag_pkgver(recorded.version)) < 0:
            report.problems.append(
                f"upstream {name}: newest release {rel.version} is older than the recorded {recorded.version} "
                "(release withdrawn upstream, or the pattern narrowed?); refusing to go back")
        elif recorded and rel.commit and recorded.commit == rel.commit and recorded.version != rel.version:
            info["note"] = f"new tag {rel.version} is the same commit as {recorded.version}: nothing to rebuild"
        report.upstreams[name] = info
    if report.problems:
        return report

    # 3. which packages need a render at all: the others' inputs are those of their last
    # render (render_record), so their render would say "unchanged"
    record = {} if rerender else render_record.load(cfg.cache)
    config_bytes = cfg.file.read_bytes() if cfg.file and Path(cfg.file).is_file() else b""
    key_id = render_record.key_identity(cfg.signing.gnupg_home)

    def inputs_digest(name: str, avail: dict, tree: dict[str, bytes]) -> str:
        ups = registry[name].UPSTREAMS
        return render_record.digest(
            config_bytes=config_bytes, releases=[releases[u] for u in ups], tree=tree, available=avail,
            state=st.packages.get(name), key=key_id if getattr(registry[name], "READS_KEY", False) else [],
            upstream_state=[[u, st.upstreams.get(u)] for u in ups])

    # what other packages may depend on: every module with a PKGBUILD sync wrote; updated as
    # this sync renders (registry order puts the packages others depend on first)
    available = {n: names for n in registry if (names := _rendered_names(cfg, n, st)) is not None}
    on_disk_all = {n: read_tree(cfg.pkgbuilds / n) for n in wanted}

    def sees(name: str) -> dict:
        """What a package's render is shown of `available`: only modules that declare
        READS_AVAILABLE read it (the others get nothing, so their renders cannot depend on it)."""
        return dict(available) if getattr(registry[name], "READS_AVAILABLE", False) else {}

    cached = {n for n in wanted
              if n in st.packages and record.get(n) == inputs_digest(n, sees(n), on_disk_all[n])}

    # 4. fetch the upstream trees the packages to render read (only the paths they declare)
    trees, tree_problems = _fetch_trees(cfg, [registry[n] for n in wanted if n not in cached], releases)

    key = public = None
    if any(getattr(registry[n], "READS_KEY", False) for n in wanted if n not in cached):
        try:
            key = signing.keyring_key(cfg.signing)       # the public part suffices
            public, _ = signing.public_key_files(cfg.signing, key.fingerprint, cfg.cache)
        except SigningError as exc:
            log.debug("no key for the keyring: %s", exc)

    # 5. render and decide
    staged: dict[str, tuple[dict[str, bytes], packages.Rendered, str, int]] = {}
    seen_available: dict[str, dict] = {}
    for name in wanted:
        r = PackageReport(name)
        report.packages.append(r)
        prev = st.packages.get(name)
        seen_available[name] = sees(name)
        if name in cached and inputs_digest(name, seen_available[name], on_disk_all[name]) == record.get(name):
            r.old = prev.full_version
            log.debug("%s: inputs as at its last render (%s): not rendered", name, render_record.path(cfg.cache))
            continue
        missing = [u for u in getattr(registry[name], "TREES", {}) if u not in trees]
        if missing:     # predicted unchanged, but a package rendered before it changed what it sees
            more, more_problems = _fetch_trees(cfg, [registry[name]], releases)
            trees.update(more)
            tree_problems.update(more_problems)
        if name in tree_problems:
            r.action = "refused"
            r.problems.append(tree_problems[name])
            continue
        reads_key = getattr(registry[name], "READS_KEY", False)
        ctx = Context(cfg, releases, trees, key if reads_key else None, public if reads_key else None,
                      seen_available[name])
        try:
            rendered = registry[name].render(ctx)
            on_disk = {k: v for k, v in on_disk_all[name].items() if k != ".SRCINFO"}
            decision = _decide(r, rendered, prev, on_disk)
            files = rendered.finalize(*decision) if decision else None
        except RenderProblem as exc:
            r.action = "refused"
            r.problems.append(str(exc))
            continue
        r.reasons.extend(rendered.notes if decision else [])
        if decision is None:
            continue
        pkgver, pkgrel = decision
        try:
            files[".SRCINFO"] = printsrcinfo(cfg, files).encode()
        except AvfrepoError as exc:
            r.action = "refused"
            r.problems.append(f"makepkg --printsrcinfo failed: {exc}")
            continue
        staged[name] = (files, rendered, pkgver, pkgrel)
        try:
            available[name] = srcinfo.parse(files[".SRCINFO"].decode()).pkgnames
        except ValueError:
            pass

    # an upstream is recorded as synced only when no package reading it was refused
    refused_upstreams = {u for p in report.packages if p.action == "refused" for u in registry[p.name].UPSTREAMS}
    new_upstreams = {n: state_mod.UpstreamState(rel.version, rel.commit, rel.pkgver) for n, rel in releases.items()
                     if n not in refused_upstreams}
    upstreams_moved = any(st.upstreams.get(n) != u for n, u in new_upstreams.items())
    if dry_run:
        return report
    if staged or upstreams_moved:
        # 6. write: package directories, then the state file last
        for name, (files, rendered, pkgver, pkgrel) in staged.items():
            replace_dir(cfg.pkgbuilds / name, files)
            on_disk_all[name] = files
            st.packages[name] = state_mod.PackageState(pkgver, pkgrel, rendered.inputs_hash(),
                                                       dict(rendered.upstreams))
        st.upstreams.update(new_upstreams)
        state_mod.save(cfg.state_file, st)
        report.written = True
    _remember(cfg, record, report, seen_available, sees, inputs_digest, on_disk_all)
    return report


def _remember(cfg: Config, record: dict[str, str], report: SyncReport, seen_available: dict[str, dict],
              sees, inputs_digest, on_disk: dict[str, dict[str, bytes]]) -> None:
    """Store, per package this sync rendered (or found as at its last render), the digest
    the next sync will compute if nothing changes; a refused package, or one whose render saw
    other package names than the next sync will, is rendered again next time."""
    new = dict(record)
    for p in report.packages:
        if p.action == "refused" or seen_available.get(p.name) != sees(p.name):
            new.pop(p.name, None)
        else:
            new[p.name] = inputs_digest(p.name, sees(p.name), on_disk[p.name])
    if new != record:
        try:
            render_record.save(cfg.cache, new)
        except OSError as exc:      # only a lost shortcut: the next sync renders everything
            log.warning("cannot write %s: %s", render_record.path(cfg.cache), exc)
