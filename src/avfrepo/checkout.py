"""Exactly the paths packages read of a large upstream tree at one tag: shallow, blobless, sparse.

AVF's repository carries the history of many unrelated components, prebuilt kernels of
several MiB and test data; the packages read a few hundred KiB of it. The cache keeps one
git directory per upstream:

1. `git fetch --depth 1 --filter=blob:none` the tag: the commit and its tree objects, no
   file content at all. The tree listing (which directories exist, which files they hold)
   is answered from those objects alone (`Snapshot.listing`).
2. `Snapshot.want(paths)` adds paths to the sparse checkout; git fetches the blobs of just
   those paths, in one batch per call.

Packages declare their paths statically (`TREES = {"avf": ("build/debian/ttyd",)}`) or as a
function of the snapshot (`TREES = {"avf": agent_paths}`), which may list trees and read
what it already asked for before naming more: the guest agents compute their library paths
from their own Cargo.toml and build.rs this way.

Every git command that may reach the remote (the fetch; sparse-checkout and checkout, which
fetch the blobs of a partial clone) runs through sources.net.git, bounded by the upstream's
NetPolicy (`[upstreams.X] timeout`, `deadline`, `retries`, `backoff`). The files of the work
tree are read with fsutil.read_tree_file (packages.tree_file): never through a symbolic link.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Union

if TYPE_CHECKING:
    import git      # GitPython is imported where it is used: a sync that fetches nothing never loads it

from .config import GIT_NET, NetPolicy
from .errors import UpstreamError
from .sources import net as netmod
# every component of a path asked for: plain names only (they become sparse patterns)
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_.+-]+")

PathsFn = Callable[["Snapshot"], Iterable[str]]
TreeSpec = Union[tuple[str, ...], PathsFn]


def check_path(path: str) -> str:
    """A repository-relative path of plain components (no `..`, no glob or shell characters)."""
    parts = path.strip("/").split("/")
    if not path.strip("/") or any(p in (".", "..") or not _SAFE_COMPONENT.fullmatch(p) for p in parts):
        raise ValueError(f"not a plain repository path: {path!r}")
    return "/".join(parts)


def _pattern(path: str) -> str:
    # non-cone sparse patterns follow .gitignore rules: "/a/b" (no trailing slash) is the file
    # or the directory a/b at the top, never a/bc
    return "/" + path


class Snapshot:
    """One commit of one upstream in the cache: its trees, and a sparse work tree."""

    def __init__(self, name: str, url: str, tag: str, commit: str, cache: Path, net: NetPolicy = GIT_NET):
        self.name, self.url, self.tag, self.commit = name, url, tag, commit
        self.net = net                       # the upstream's: bounds every command that may fetch
        self.path = cache / "git" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        self._repo: git.Repo | None = None
        self._wanted: set[str] = set()      # paths asked for in this run
        self._checked_out: set[str] | None = None   # sparse paths in the work tree at `commit`
        self._full = False                            # the whole tree is checked out at `commit`
        self.fetched = False                 # did this run talk to the remote?

    # -- opening ----------------------------------------------------------------------------

    def _error(self, what: str, exc: git.GitCommandError) -> UpstreamError:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        return UpstreamError(self.name, self.url, f"{what}: " + (detail[-1].strip() if detail else "git failed"))

    def open(self) -> "Snapshot":
        """Make the commit's trees available locally (fetching them if the cache lacks them)."""
        import git
        try:
            repo = git.Repo(self.path) if (self.path / ".git").is_dir() else git.Repo.init(self.path)
        except (git.GitError, OSError) as exc:
            raise UpstreamError(self.name, self.url, f"cache {self.path} unusable: {exc}") from None
        self._repo = repo
        if self._at_commit():
            sparse = self._sparse_paths()
            self._full = sparse is None
            self._checked_out = set(sparse) if sparse else None
            return self
        try:
            if "origin" in [r.name for r in repo.remotes]:
                repo.git.remote("set-url", "origin", self.url)
            else:
                repo.git.remote("add", "origin", self.url)
        except git.GitCommandError as exc:
            raise self._error("setting the remote", exc) from None
        self._remote("fetch", "--depth", "1", "--filter=blob:none", "--force", "--no-tags", "origin",
                     f"+refs/tags/{self.tag}:refs/tags/{self.tag}")
        self.fetched = True
        try:
            got = repo.git.rev_parse(f"refs/tags/{self.tag}^{{commit}}")
        except git.GitCommandError as exc:
            raise self._error(f"fetching {self.tag}", exc) from None
        if got != self.commit:
            raise UpstreamError(self.name, self.url, f"tag {self.tag} is commit {got} but ls-remote said "
                                f"{self.commit}: the tag moved while syncing; run sync again and review")
        self._checked_out, self._full = None, False
        return self

    def _remote(self, *args: str) -> str:
        """`git ARGS` in the work tree, for a command that may fetch: bounded by self.net."""
        return netmod.git(self.name, self.url, self.net, args, cwd=self.path).stdout.decode("utf-8", "replace")

    def _at_commit(self) -> bool:
        """The cache already holds this commit of this url (read from .git's files)."""
        import git
        gitdir = self.path / ".git"
        try:
            if (gitdir / "HEAD").read_text().strip() != self.commit:
                return False
            conf = self._repo.config_reader("repository")
            return conf.get_value('remote "origin"', "url", "") == self.url
        except (git.GitError, OSError, ValueError, KeyError):
            return False

    def _sparse_paths(self) -> list[str] | None:
        """The paths of the current sparse checkout; None when the whole tree is checked out."""
        import git
        try:
            wt = git.GitConfigParser(str(self.path / ".git/config.worktree"), read_only=True)
            if str(wt.get_value("core", "sparsecheckout", "false")).lower() != "true":
                return None
            return [p[1:] for p in (self.path / ".git/info/sparse-checkout").read_text().split()
                    if p.startswith("/")]
        except (OSError, ValueError, KeyError, git.GitError):
            return []

    # -- reading ----------------------------------------------------------------------------

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self.open()
        return self._repo

    def listing(self, prefix: str = "") -> list[str]:
        """Every file path under `prefix` at the commit, from tree objects only (no blobs)."""
        import git
        try:
            return listing(self.repo, prefix, self.commit)
        except git.GitCommandError as exc:
            raise self._error(f"listing {prefix or '/'} at {self.tag}", exc) from None

    def content(self, paths: Iterable[str] | None) -> str:
        """A digest of exactly `paths` at the commit (None: the whole tree), from tree objects
        only: git's modes and blob ids, no file read. Equal digests mean byte-identical files."""
        import git
        try:
            if paths is None:
                out = self.repo.git.rev_parse(f"{self.commit}^{{tree}}")
            else:
                wanted = sorted({check_path(p) for p in paths})
                out = self.repo.git.ls_tree("-r", "-z", "--full-tree", self.commit, "--", *wanted) if wanted else ""
        except git.GitCommandError as exc:
            raise self._error(f"reading the trees at {self.tag}", exc) from None
        return hashlib.sha256(out.encode()).hexdigest()

    def want(self, paths: Iterable[str]) -> Path:
        """Add `paths` to the work tree (fetching just their blobs); return the work tree."""
        self._wanted |= {check_path(p) for p in paths}
        if self._checked_out is None or not self._wanted <= self._checked_out:
            # while computing, paths of an earlier run may stay: finish() trims them
            self._apply(sorted(self._wanted | (self._checked_out or set())))
        return self.path

    def _apply(self, paths: list[str]) -> None:
        import git
        repo = self.repo
        # sparse-checkout updates the work tree: with a partial clone it fetches blobs too
        if paths:
            self._remote("sparse-checkout", "set", "--no-cone", *[_pattern(p) for p in paths])
        else:
            self._remote("sparse-checkout", "disable")
        self._remote("checkout", "--force", "--detach", self.commit)
        try:
            repo.git.clean("-ffdx")
        except git.GitCommandError as exc:
            raise self._error(f"checking out {self.tag}", exc) from None
        self._checked_out = set(paths) if paths else None
        self._full = not paths

    def everything(self) -> Path:
        """The whole tree (small upstreams such as ttyd)."""
        if not (self._full and self._clean()):
            self._apply([])
        return self.path

    def finish(self) -> Path:
        """Settle the work tree on exactly the paths wanted in this run, unmodified."""
        if not (self._checked_out == self._wanted and self._clean()):
            self._apply(sorted(self._wanted))
        return self.path

    def _clean(self) -> bool:
        import git
        try:
            return self.repo.git.status("--porcelain", "--untracked-files=all") == ""
        except git.GitCommandError:
            return False


_LISTINGS: dict[tuple[str, str, str], tuple[str, ...]] = {}


def listing(repo: git.Repo | Path, prefix: str = "", rev: str = "HEAD") -> list[str]:
    """Every file path under `prefix` at `rev` of a (sparse, blobless) checkout, read from its
    tree objects: what exists upstream, not just what is checked out.

    A commit's trees never change: listings are kept per (repository, commit, prefix) for
    the process, so computing paths and rendering list guest/ once."""
    import git
    repo = repo if isinstance(repo, git.Repo) else git.Repo(repo)
    commit = rev
    if rev == "HEAD":
        head = (Path(repo.git_dir) / "HEAD").read_text().strip()
        commit = head if re.fullmatch(r"[0-9a-f]{40}", head) else ""
    key = (repo.git_dir, commit, prefix)
    if commit and key in _LISTINGS:
        return list(_LISTINGS[key])
    args = ["-r", "--name-only", "-z", "--full-tree", rev]
    if prefix:
        args += ["--", check_path(prefix) + "/"]
    found = [p for p in repo.git.ls_tree(*args).split("\0") if p]
    if commit and re.fullmatch(r"[0-9a-f]{40}", commit):
        _LISTINGS[key] = tuple(found)
    return found


def tree_for(snapshot: Snapshot, specs: Iterable[TreeSpec]) -> Path:
    """The work tree holding the union of what every spec asks for (static paths or functions)."""
    specs = list(specs)
    if any(spec == () for spec in specs):      # a package reads the whole tree
        return snapshot.open().everything()
    snapshot.open()
    for spec in specs:
        if callable(spec):
            snapshot.want(spec(snapshot))
        else:
            snapshot.want(spec)
    return snapshot.finish()


def tree_at(name: str, url: str, tag: str, commit: str, paths: tuple[str, ...], cache: Path,
            net: NetPolicy = GIT_NET) -> Path:
    """Check out `paths` of `url` at `tag` (no paths: all of it) into the cache; return the work tree.

    Raises UpstreamError if the tag does not resolve to `commit` (it moved between the
    ls-remote and the fetch, or the recorded commit is wrong), or if git cannot fetch it
    within `net` (the upstream's NetPolicy).
    """
    return tree_for(Snapshot(name, url, tag, commit, cache, net), [tuple(paths)])
