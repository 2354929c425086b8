"""`avfrepo sync`: upstreams -> rendered PKGBUILDs under pkgbuilds/, by the bump rules.

Order of work, so that a failure leaves pkgbuilds/ as it was:
1. query every upstream (nothing written yet);
2. check that no release seen before moved (every tag ever seen is kept with its commit:
   trust on first use) and that the newest is not older than the newest seen;
3. fetch the needed upstream trees (into the cache, not pkgbuilds/);
4. render every package, decide its version, generate .SRCINFO in a scratch directory;
5. only then (and not with --dry-run) swap each changed package directory into place and
   write the state file last.
A failure refuses only what depends on it: an upstream that cannot be asked, or whose tag
moved, refuses the packages that read it; a tree or download that cannot be had refuses the
packages that read it; the others render, and the report is complete either way.

Bump rules, per package:
- inputs (the rendered files, versions left out) unchanged -> nothing, whatever upstream did;
- every file it reads of an upstream tree byte-identical at the new tag (git's blob ids; an
  AOSP "Snap for ..." commit carries the tree of the commit it snaps) -> it stays pinned to
  the release it was rendered from, so nothing changes: no rebuild for the same bytes;
- inputs changed, upstream pkgver newer -> that pkgver, pkgrel 1;
- inputs changed, same upstream pkgver -> pkgrel + 1;
- upstream pkgver older than the recorded one -> refused (never a downgrade).

A package directory is sync's output: a file changed or added there since sync wrote it (a
hand edit, hand_edits.py) is never overwritten or deleted, by a rewrite or a bump: the package
is refused with the diff until the edit is dropped, or `sync --discard-edits NAME` lets sync
rewrite it. A file that is only missing is written again ("restored", same version).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import hand_edits, packages, render_record, signing, state as state_mod
from .config import Config
from .errors import AvfrepoError, ConfigError, SigningError, UpstreamError
from .fsutil import read_tree, remove_swap_leftovers, replace_dir
from .formats import srcinfo
from .makepkg import printsrcinfo
from .packages import Context, RenderProblem, ToolProblem
from .sources import Release, query, query_each
from .sources.git_tags import latest, ls_remote_tags, matching, tag_pkgver
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
    # refused only because something failed that the next sync tries again (an upstream, a
    # fetch, a download, a tool), not by a verdict on its inputs
    transient: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "action": self.action, "old": self.old, "new": self.new,
                "reasons": self.reasons, "problems": self.problems, "transient": self.transient}


@dataclass
class SyncReport:
    upstreams: dict[str, dict] = field(default_factory=dict)
    packages: list[PackageReport] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # package -> why `sync NAME` left it
    dry_run: bool = False
    written: bool = False
    error: str | None = None          # set when sync stopped on an error (the report says how far it got)

    @property
    def refused(self) -> bool:
        return bool(self.problems or self.error) or any(p.action == "refused" for p in self.packages)

    @property
    def changed(self) -> list[PackageReport]:
        return [p for p in self.packages if p.action in ("new", "bump", "restored")]

    def to_json(self) -> dict:
        # "unreachable": the upstreams that could not be asked (an outage: the next sync retries);
        # "refusals": every problem that is not one of those, nor of a package refused only for a
        # failed fetch, download or tool (transient): a verdict a maintainer must read.
        # `refused` stays true for both; scripts tell them apart with these two keys.
        unreachable = {n: i["error"] for n, i in self.upstreams.items() if "error" in i}
        outage = set(unreachable.values())
        refusals = [x for x in self.problems if x not in outage]
        refusals += [f"{p.name}: {x}" for p in self.packages if not p.transient for x in p.problems
                     if x not in outage and x not in self.problems]
        return {"dry_run": self.dry_run, "written": self.written, "upstreams": self.upstreams,
                "packages": [p.to_json() for p in self.packages], "problems": self.problems,
                "skipped": self.skipped, "refused": self.refused, "error": self.error,
                "unreachable": unreachable, "refusals": refusals}


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
        if differ := sorted(k for k, v in expected.items() if on_disk.get(k) != v):
            r.action, r.new = "restored", prev.full_version
            r.reasons.append(f"{', '.join(differ)} not as rendered at {prev.full_version} (missing, or the state "
                             "file changed): written again, same version")
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


def _edits_since_written(cfg: Config, module, rendered: packages.Rendered, prev: state_mod.PackageState,
                         on_disk: dict[str, bytes], files: dict[str, bytes] | None):
    """(the hand edits writing `files` would lose, the render at the recorded version, the
    sha256 of the files sync wrote or None)."""
    before = rendered.finalize(prev.pkgver, prev.pkgrel)
    # a state from before the files were recorded: the render at the recorded version is what
    # sync wrote when the inputs are those of that render
    wrote = prev.files or (hand_edits.written(before) if rendered.inputs_hash() == prev.inputs else None)
    kept = functools.partial(getattr(module, "kept_inputs", lambda config, rel: False), cfg)
    return hand_edits.find(wrote, on_disk, files or before, before, kept), before, wrote


@dataclass
class Trees:
    """What _fetch_trees got: the work trees, and per package why it cannot render (a
    RenderProblem from its paths, or the UpstreamError of a fetch) and the digest of exactly
    what it reads of each git-tags upstream's tree."""
    paths: dict[str, Path] = field(default_factory=dict)
    problems: dict[str, Exception] = field(default_factory=dict)
    contents: dict[tuple[str, str], str] = field(default_factory=dict)    # (package, upstream) -> digest


def _fetch_trees(cfg: Config, modules, releases: dict[str, Release]) -> Trees:
    """Sparse checkouts of the upstreams whose files packages read (module.TREES: upstream ->
    static paths, or a function of the checkout that computes them), each at the release sync
    is about to use, holding exactly the union of what the packages ask for.

    A package whose paths cannot be computed, or whose upstream tree cannot be fetched, is
    refused (the others go on)."""
    wanted: dict[str, list] = {}
    for m in modules:
        for upstream, spec in getattr(m, "TREES", {}).items():
            wanted.setdefault(upstream, []).append((m.NAME, spec))
    out = Trees()
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
        snap = checkout.Snapshot(name, url, tag, rel.commit or "", cfg.cache, up.net)
        read: dict[str, list[str] | None] = {}      # package -> the paths it read (None: all)

        def guarded(pkg, spec):
            if not callable(spec):
                read[pkg] = list(spec) or None
                return spec

            def paths(s):
                try:
                    read[pkg] = list(spec(s))
                except RenderProblem as exc:
                    out.problems[pkg] = exc
                    return []
                return read[pkg]
            return paths
        try:
            out.paths[name] = checkout.tree_for(snap, [guarded(pkg, spec) for pkg, spec in specs])
            if up.kind == "git-tags":
                for pkg, paths in read.items():
                    out.contents[(pkg, name)] = snap.content(paths)
        except UpstreamError as exc:
            for pkg, _ in specs:
                out.problems.setdefault(pkg, exc)
    return out


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
        if "version" in info:
            lines.append(f"upstream {name}: {info['version']}" + (f" ({info['commit']})" if info.get("commit") else ""))
    return "\n".join(lines) + "\n"


def commit(cfg: Config, report: SyncReport) -> str | None:
    """Record what this sync wrote under pkgbuilds/ as one git commit; returns its sha.

    Only the state file and the directories of the packages it wrote are committed: never a
    killed run's temporary files or staging copies (removed first anyway), nor a refused
    package's hand edits."""
    import git
    try:
        repo = git.Repo(cfg.pkgbuilds, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ConfigError(f"--commit: {cfg.pkgbuilds} is not inside a git work tree") from None
    remove_swap_leftovers(cfg.pkgbuilds)        # a killed sync's staging copies and temporary files
    paths = [str(cfg.state_file), *(str(cfg.pkgbuilds / p.name) for p in report.changed)]
    try:
        repo.git.add("--all", "--", *paths)
        if repo.head.is_valid() and not repo.index.diff("HEAD", paths=paths):
            return None
        identity = []
        if not _git_config(repo, "user.email"):
            # an unattended builder may have no git identity: commit as the configured packager
            m = re.fullmatch(r"\s*(.*?)\s*<([^>]+)>\s*", cfg.build.packager)
            name, email = (m.group(1) or "avfrepo", m.group(2)) if m else ("avfrepo", "avfrepo@example.invalid")
            identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
        repo.git.execute(["git", *identity, "commit", "-q", "-m", commit_message(report), "--", *paths])
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


def _enabled(cfg: Config) -> dict:
    registry = packages.registry()
    if cfg.enabled is None:
        return registry
    unknown = [n for n in cfg.enabled if n not in registry]
    if unknown:
        raise ConfigError(f"{cfg.file}: [packages] enable: unknown package {', '.join(unknown)} "
                          f"(known: {', '.join(registry)})")
    return {n: m for n, m in registry.items() if n in cfg.enabled}


def _seen(st: state_mod.State, name: str) -> dict[str, state_mod.SeenRelease]:
    """The releases of `name` seen so far; a state written before they were kept starts from
    its record of what was applied."""
    seen = st.seen.setdefault(name, {})
    recorded = st.upstreams.get(name)
    if not seen and recorded:
        seen[recorded.version] = state_mod.SeenRelease(recorded.commit,
                                                       recorded.pkgver or tag_pkgver(recorded.version))
    return seen


def _check_upstream(cfg: Config, st: state_mod.State, name: str, rel: Release, tags) -> str | None:
    """Why the packages reading `name` must not sync now (None: they may), and on success the
    releases of this answer recorded as seen (first sight wins: trust on first use). A branch
    head (its version is its commit) names nothing to trust and has no order: not recorded."""
    if tags is None and rel.version == rel.commit:
        return None
    seen = _seen(st, name)
    up = cfg.upstream(name)
    now = {t: ref.commit for t, ref in tags.items()} if tags is not None else {rel.version: rel.commit}
    moved = [(v, r.commit, now[v]) for v, r in sorted(seen.items()) if r.commit and now.get(v, r.commit) != r.commit]
    if moved:
        return "; ".join(f"upstream {name}: tag {v} moved from {a} to {b}" for v, a, b in moved) + \
            f"; refusing to sync {name} until a maintainer reviews it"
    if getattr(up, "pin", None) or getattr(up, "max_version", None):
        # a maintainer's hold: compared with what was applied, not with what upstream has shown
        recorded = st.upstreams.get(name)
        newest = (recorded.version, recorded.pkgver or tag_pkgver(recorded.version)) if recorded else None
    else:
        newest = max(((v, r.pkgver) for v, r in seen.items()), key=functools.cmp_to_key(
            lambda a, b: vercmp(a[1], b[1])), default=None)
    if newest and vercmp(rel.pkgver, newest[1]) < 0:
        return (f"upstream {name}: newest release {rel.version} is older than the recorded {newest[0]} "
                "(release withdrawn upstream, or the pattern narrowed?); refusing to go back")
    found = {t.name: (t.commit, tag_pkgver(t.name)) for t in matching(up, tags)} if tags is not None \
        else {rel.version: (rel.commit, rel.pkgver)}
    for v, (commit, pkgver) in found.items():
        seen.setdefault(v, state_mod.SeenRelease(commit, pkgver))
    return None


def _query(cfg: Config, st: state_mod.State, names: list[str], report: SyncReport) -> tuple[dict[str, Release], dict[str, str]]:
    """Ask the upstreams; returns the usable releases and, per upstream that failed or raised
    an alarm, why the packages reading it are refused."""
    releases: dict[str, Release] = {}
    blocked: dict[str, str] = {}
    for name, answer in query_each([cfg.upstream(n) for n in names], ask=_ask).items():
        if isinstance(answer, UpstreamError):
            report.upstreams[name] = {"error": str(answer)}
            blocked[name] = str(answer)
            report.problems.append(str(answer))
            continue
        rel, tags = answer
        info = rel.to_json()
        report.upstreams[name] = info
        recorded = st.upstreams.get(name)
        why = _check_upstream(cfg, st, name, rel, tags)
        if why:
            blocked[name] = why
            report.problems.append(why)
            continue
        if recorded and rel.commit and recorded.commit == rel.commit and recorded.version != rel.version:
            info["note"] = f"new tag {rel.version} is the same commit as {recorded.version}: nothing to rebuild"
        releases[name] = rel
    return releases, blocked


def _pinned(name: str, prev: state_mod.PackageState | None, releases: dict[str, Release],
            contents: dict[tuple[str, str], str]) -> tuple[dict[str, Release], list[str]]:
    """The releases a package keeps because every file it reads there is byte-identical to what
    its last render read (an AOSP snap commit, a tag on a commit that changed nothing of it),
    and the reasons the report gives."""
    keep: dict[str, Release] = {}
    reasons: list[str] = []
    for u, rec in (prev.trees.items() if prev else ()):
        rel = releases.get(u)
        if rel is None or rel.commit == rec.commit or contents.get((name, u)) != rec.content:
            continue
        keep[u] = Release(u, rec.version, tag_pkgver(rec.version), rec.commit, rel.url)
        reasons.append(f"{u} {rec.version} -> {rel.version}: every file {name} reads there is byte-identical "
                       f"(same git blobs at {rel.commit[:12]}), so it stays at {rec.version} ({rec.commit[:12]}): "
                       "nothing to rebuild")
    return keep, reasons


def _refuse(r: PackageReport, exc: Exception, lasting: dict[str, list[str]]) -> None:
    """Refuse a package for `exc`: a RenderProblem is a verdict on its inputs, kept in `lasting`
    (the render record keeps it); a failed tool, fetch or download is transient, retried."""
    r.action = "refused"
    r.problems.append(str(exc))
    if isinstance(exc, RenderProblem) and not isinstance(exc, ToolProblem):
        lasting[r.name] = r.problems
    else:
        r.transient = True


def sync(cfg: Config, *, dry_run: bool = False, only: list[str] | None = None,
         rerender: bool = False, discard_edits: tuple[str, ...] | list[str] = ()) -> SyncReport:
    """discard_edits: packages whose directory sync may rewrite even where it was edited by hand."""
    report = SyncReport(dry_run=dry_run)
    st = state_mod.load(cfg.state_file)
    seen_before = {u: dict(t) for u, t in st.seen.items()}
    registry = _enabled(cfg)
    wanted, report.skipped = _select(cfg, registry, only)
    if stray := [n for n in discard_edits if n not in wanted]:
        raise ConfigError(f"--discard-edits: {', '.join(stray)} is not a package this sync renders "
                          f"({', '.join(wanted) or 'none'})")
    # what the packages read, and an upstream named on the command line even when none reads it
    named = {n for n in only or () if n in cfg.upstreams and n not in registry}
    needed_upstreams = sorted({u for n in wanted for u in registry[n].UPSTREAMS} | named)

    # 1-2. query upstreams, concurrently; one that fails or whose tags moved refuses the
    # packages that read it (nothing is written before every package was decided)
    releases, blocked = _query(cfg, st, needed_upstreams, report)
    reports = {n: PackageReport(n) for n in wanted}
    report.packages = list(reports.values())
    for n in wanted:
        if reads := [u for u in registry[n].UPSTREAMS if u in blocked]:
            prev = st.packages.get(n)
            reports[n].action, reports[n].old = "refused", prev.full_version if prev else None
            reports[n].problems += [blocked[u] for u in reads]
            reports[n].transient = all(blocked[u] == report.upstreams[u].get("error") for u in reads)
    todo = [n for n in wanted if reports[n].action != "refused"]

    # 3. which packages need a render at all: the others' inputs are those of their last
    # render (render_record), so their render would say "unchanged" (or refuse as it did)
    record = render_record.Record() if rerender else render_record.load(cfg.cache)
    config_bytes = cfg.file.read_bytes() if cfg.file and Path(cfg.file).is_file() else b""
    key_id = render_record.key_identity(cfg.signing.gnupg_home)

    def inputs_digest(name: str, avail: dict, tree: dict[str, bytes], rels: dict[str, Release] | None = None) -> str:
        ups = registry[name].UPSTREAMS
        rels = rels or releases
        return render_record.digest(
            config_bytes=config_bytes, releases=[rels[u] for u in ups], tree=tree, available=avail,
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

    def as_last_time(name: str, avail: dict, rels: dict[str, Release] | None = None) -> str | None:
        """'render' or 'refusal' when the package's inputs are those of its last sync."""
        d = inputs_digest(name, avail, on_disk_all[name], rels)
        if name in st.packages and record.renders.get(name) == d:
            return "render"
        return "refusal" if name in record.refusals and record.refusals[name][0] == d else None

    cached = {n for n in todo if n not in discard_edits and as_last_time(n, sees(n))}

    # 4. fetch the upstream trees the packages to render read (only the paths they declare)
    trees = _fetch_trees(cfg, [registry[n] for n in todo if n not in cached], releases)

    key = public = None
    if any(getattr(registry[n], "READS_KEY", False) for n in todo if n not in cached):
        try:
            key = signing.keyring_key(cfg.signing)       # the public part suffices
            public, _ = signing.public_key_files(cfg.signing, key.fingerprint, cfg.cache)
        except SigningError as exc:
            log.debug("no key for the keyring: %s", exc)

    # 5. render and decide
    staged: dict[str, tuple[dict[str, bytes], packages.Rendered, str, int]] = {}
    seen_available: dict[str, dict] = {}
    lasting: dict[str, list[str]] = {}            # refusals that are verdicts on the inputs
    trees_read: dict[str, dict[str, state_mod.TreeRecord]] = {}
    files_found: dict[str, dict[str, str]] = {}   # unchanged packages: what sync wrote, where unrecorded
    for name in todo:
        r = reports[name]
        prev = st.packages.get(name)
        seen_available[name] = sees(name)
        def as_before(last: str | None) -> bool:
            """Report the package as its last sync left it, when its inputs are the same."""
            if last == "render":
                r.old = prev.full_version
                log.debug("%s: inputs as at its last render (%s): not rendered", name, render_record.path(cfg.cache))
            elif last == "refusal":
                r.old = prev.full_version if prev else None
                r.action, r.problems = "refused", list(record.refusals[name][1])
                lasting[name] = r.problems
                r.reasons.append("refused as at the last sync: its inputs did not change since, so it was not "
                                 "rendered again (`sync --rerender` renders it)")
            return last is not None

        if as_before(as_last_time(name, seen_available[name]) if name in cached else None):
            continue
        missing = [u for u in getattr(registry[name], "TREES", {}) if u not in trees.paths]
        if missing:     # predicted unchanged, but a package rendered before it changed what it sees
            more = _fetch_trees(cfg, [registry[name]], releases)
            trees.paths.update(more.paths)
            trees.problems.update(more.problems)
            trees.contents.update(more.contents)
        if name in trees.problems:
            _refuse(r, trees.problems[name], lasting)
            continue
        keep, kept_why = _pinned(name, prev, releases, trees.contents)
        rels = {**releases, **keep}
        # byte-identical at the new tag: its inputs may be those of its last sync after all
        if keep and not rerender and name not in discard_edits \
                and as_before(as_last_time(name, seen_available[name], rels)):
            r.reasons[:0] = kept_why
            continue
        reads_key = getattr(registry[name], "READS_KEY", False)
        ctx = Context(cfg, rels, trees.paths, key if reads_key else None, public if reads_key else None,
                      seen_available[name])
        try:
            rendered = registry[name].render(ctx)
            on_disk = {k: v for k, v in on_disk_all[name].items() if k != ".SRCINFO"}
            said = len(r.reasons)
            decision = _decide(r, rendered, prev, on_disk)
            files = rendered.finalize(*decision) if decision else None
            if prev is not None and r.action != "refused":
                edits, before, wrote = _edits_since_written(cfg, registry[name], rendered, prev, on_disk, files)
                if edits and name not in discard_edits:
                    r.action, r.new = "refused", None
                    del r.reasons[said:]                # what _decide would have done: not done
                    r.problems.append(hand_edits.refusal(cfg.pkgbuilds / name, name, edits))
                    lasting[name] = r.problems
                    continue
                if edits:
                    if decision is None or r.action == "restored":
                        del r.reasons[said:]
                        decision = prev.pkgver, prev.pkgrel
                        r.action, r.new, files = "restored", prev.full_version, before
                    r.reasons.append(f"--discard-edits: {edits.summary()} dropped, written as sync renders it")
                elif decision is None and not prev.files and wrote:
                    files_found[name] = wrote
        except (RenderProblem, UpstreamError) as exc:
            _refuse(r, exc, lasting)
            continue
        r.reasons[:0] = kept_why
        trees_read[name] = {u: state_mod.TreeRecord(rels[u].version, rels[u].commit, trees.contents[(name, u)])
                            for u in getattr(registry[name], "TREES", {}) if (name, u) in trees.contents}
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

    # an upstream is recorded as synced only when no package reading it was refused (what was
    # SEEN of it is recorded in any case: the moved-tag and older-release checks read that)
    refused_upstreams = {u for p in report.packages if p.action == "refused" for u in registry[p.name].UPSTREAMS}
    new_upstreams = {n: state_mod.UpstreamState(rel.version, rel.commit, rel.pkgver) for n, rel in releases.items()
                     if n not in refused_upstreams}
    upstreams_moved = any(st.upstreams.get(n) != u for n, u in new_upstreams.items())
    # the files an unchanged package read, recorded where its state did not have them yet
    for name, got in trees_read.items():
        if name not in staged and name in st.packages and st.packages[name].trees != got \
                and reports[name].action == "unchanged":
            st.packages[name] = dataclasses.replace(st.packages[name], trees=got)
            upstreams_moved = True
    for name, got in files_found.items():       # recorded once for a state from before they were
        if name not in staged and reports[name].action == "unchanged":
            st.packages[name] = dataclasses.replace(st.packages[name], files=got)
            upstreams_moved = True
    seen_moved = st.seen != seen_before
    if dry_run:
        return report
    if staged or upstreams_moved or seen_moved:
        # 6. write: package directories, then the state file last
        for name, (files, rendered, pkgver, pkgrel) in staged.items():
            replace_dir(cfg.pkgbuilds / name, files)
            on_disk_all[name] = files
            st.packages[name] = state_mod.PackageState(pkgver, pkgrel, rendered.inputs_hash(),
                                                       dict(rendered.upstreams), trees_read.get(name, {}),
                                                       hand_edits.written(files))
        st.upstreams.update(new_upstreams)
        state_mod.save(cfg.state_file, st)
        report.written = True
    _remember(cfg, record, report, seen_available, sees, inputs_digest, on_disk_all, lasting)
    return report


def _remember(cfg: Config, record: render_record.Record, report: SyncReport, seen_available: dict[str, dict],
              sees, inputs_digest, on_disk: dict[str, dict[str, bytes]], lasting: dict[str, list[str]]) -> None:
    """Store, per package this sync rendered (or found as at its last render), the digest
    the next sync will compute if nothing changes, and per package refused by a verdict on its
    inputs that digest and the refusal; a package refused for another reason (an upstream or a
    tool that failed), or whose render saw other package names than the next sync will, is
    rendered again next time."""
    new = render_record.Record(dict(record.renders), dict(record.refusals))
    for p in report.packages:
        if p.name not in seen_available:        # refused for an upstream: its record stays as it was
            continue
        new.renders.pop(p.name, None)
        new.refusals.pop(p.name, None)
        if seen_available[p.name] != sees(p.name):
            continue
        digest = inputs_digest(p.name, sees(p.name), on_disk[p.name])
        if p.action != "refused":
            new.renders[p.name] = digest
        elif p.name in lasting:
            new.refusals[p.name] = (digest, lasting[p.name])
    if new != record:
        try:
            render_record.save(cfg.cache, new)
        except OSError as exc:      # only a lost shortcut: the next sync renders everything
            log.warning("cannot write %s: %s", render_record.path(cfg.cache), exc)
