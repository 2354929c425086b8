"""Arch Linux ARM's PKGBUILDs repository: one package directory at one revision, fetched alone.

systemd-avf is ALARM's core/systemd at the revision whose PKGBUILD has the version ALARM's core
database carries; linux-avf starts from core/linux-aarch64's `config` of the tracked series.
The repository holds every ALARM package and ten years of history, so it is cloned blobless
(`--filter=blob:none`, a bare partial clone under cache/git/<upstream>.git: commits and trees,
~22 MB for ALARM's) and the only blobs ever fetched are the PKGBUILDs of the directory's
history (to read their versions) and the files of the one revision used, each batch in one
`git fetch` of exactly those object ids. A blob already in the clone is not asked for again, and
a head that is already the branch's tip fetches nothing.

Versions are read from the PKGBUILD text (`pkgver=`, `pkgrel=` lines), never by running it:
the file is untrusted input. Every blob read is at most fsutil.MAX_UPSTREAM_FILE (the rule
for every upstream file; its size is read before its content), and a symbolic link or
submodule where a file is expected is refused, never read.

The clone and every fetch (and a cat-file that could fetch a missing blob) run through
sources.net.git, bounded by the upstream's NetPolicy (`[upstreams.alarm-pkgbuilds] timeout`,
`deadline`, `retries`, `backoff`); local commands by its deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import fsutil
from .config import GitBranchUpstream
from .errors import UpstreamError
from .sources import net
from .versions import valid_pkgver

_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ASSIGN = r"^{name}=(?P<q>['\"]?)(?P<value>[A-Za-z0-9._+]+)(?P=q)[ \t]*(?:#.*)?$"


@dataclass(frozen=True)
class Revision:
    """A commit of a package directory and the version its PKGBUILD has there."""

    commit: str
    pkgver: str
    pkgrel: str

    @property
    def version(self) -> str:
        return f"{self.pkgver}-{self.pkgrel}"


def pkgbuild_version(text: str) -> tuple[str, str] | None:
    """(pkgver, pkgrel) of a PKGBUILD's plain `pkgver=`/`pkgrel=` lines, else None (a computed
    or missing version is not guessed)."""
    found = []
    for name in ("pkgver", "pkgrel"):
        hits = re.findall(_ASSIGN.format(name=name), text, re.M)
        if len(hits) != 1:
            return None
        found.append(hits[0][1])
    pkgver, pkgrel = found
    if not valid_pkgver(pkgver) or not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", pkgrel):
        return None
    return pkgver, pkgrel


class PkgbuildsRepo:
    """The blobless clone of one git-branch upstream, at a head commit sync was told about."""

    def __init__(self, upstream: GitBranchUpstream, path: Path, head: str):
        self.upstream = upstream
        self.path = path
        self.head = head
        self.fetched_blobs = 0          # how many blobs this object asked the remote for

    # --- git ------------------------------------------------------------------------------

    def git(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """A local git command (no transfer), bounded by the upstream's deadline."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        deadline = self.upstream.net.deadline
        try:
            res = subprocess.run(["git", "--git-dir", str(self.path), *args], input=input, capture_output=True,
                                 text=True, env=env, timeout=deadline)
        except subprocess.TimeoutExpired:
            raise UpstreamError(self.upstream.name, self.upstream.url,
                                f"git {args[0]} did not finish within {deadline:g} s (the deadline)") from None
        if check and res.returncode != 0:
            detail = [ln for ln in res.stderr.splitlines() if ln.strip()]
            raise UpstreamError(self.upstream.name, self.upstream.url,
                                f"git {args[0]} failed: {(detail or ['no message'])[-1].strip()}")
        return res

    def remote(self, *args: str, input: bytes | None = None) -> bytes:
        """A git command that may transfer from the remote, bounded by the upstream's NetPolicy."""
        up = self.upstream
        return net.git(up.name, up.url, up.net, ["--git-dir", str(self.path), *args], input=input).stdout

    @classmethod
    def open(cls, upstream: GitBranchUpstream, head: str, cache: Path) -> "PkgbuildsRepo":
        """The clone with `head` in it: cloned blobless on first use, fetched when the branch
        moved, untouched when `head` is already its tip."""
        if not _OID.fullmatch(head or ""):
            raise UpstreamError(upstream.name, upstream.url, f"not a commit id: {head!r}")
        dest = cache / "git" / (re.sub(r"[^A-Za-z0-9._-]+", "_", upstream.name) + ".git")
        ref = f"refs/heads/{upstream.branch}"
        repo = cls(upstream, dest, head)
        if not (dest / "HEAD").is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".new")
            try:
                res = net.git(upstream.name, upstream.url, upstream.net,
                              ["clone", "--quiet", "--bare", "--single-branch", "--branch", upstream.branch,
                               "--filter=blob:none", "--", upstream.url, str(tmp)],
                              before=lambda: shutil.rmtree(tmp, ignore_errors=True))
            except UpstreamError:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if "filtering not recognized" in res.stderr:
                shutil.rmtree(tmp, ignore_errors=True)
                raise UpstreamError(upstream.name, upstream.url, "the server does not filter blobs "
                                    "(uploadpack.allowFilter): refusing to download every file of the repository")
            tmp.rename(dest)
        else:
            repo.git("remote", "set-url", "origin", upstream.url)
            tip = repo.git("rev-parse", "--verify", "-q", ref, check=False).stdout.strip()
            if tip != head:
                repo.remote("fetch", "--quiet", "--no-tags", "--filter=blob:none", "origin", f"+{ref}:{ref}")
        if repo.git("merge-base", "--is-ancestor", head, ref, check=False).returncode != 0:
            raise UpstreamError(upstream.name, upstream.url,
                                f"commit {head} is not on branch {upstream.branch} after fetching it "
                                "(the branch was rewritten?)")
        return repo

    def present(self) -> set[str]:
        """Object ids already in the clone (without fetching anything)."""
        out = self.git("cat-file", "--batch-all-objects", "--batch-check=%(objectname)").stdout
        return set(out.split())

    def prefetch(self, oids: set[str]) -> None:
        """Fetch the blobs among oids the clone lacks, in one request."""
        missing = sorted(oids - self.present())
        if not missing:
            return
        self.remote("-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags", "--no-write-fetch-head",
                    "--recurse-submodules=no", "--filter=blob:none", "--stdin", "origin",
                    input="".join(f"{o}\n" for o in missing).encode())
        self.fetched_blobs += len(missing)

    def read(self, oids: list[str]) -> dict[str, bytes]:
        """Blob contents by id (prefetched in one batch first), each at most
        fsutil.MAX_UPSTREAM_FILE: its size is read first, a larger blob is a ValueError."""
        if not oids:
            return {}
        sizes = self.sizes(set(oids))
        big = sorted(f"{o} ({sizes[o]} bytes)" for o in set(oids) if sizes[o] > fsutil.MAX_UPSTREAM_FILE)
        if big:
            raise ValueError(f"larger than the {fsutil.MAX_UPSTREAM_FILE} bytes an upstream file may have: "
                             f"blob {', '.join(big)}")
        out = self.remote("cat-file", "--batch", input="".join(f"{o}\n" for o in oids).encode())
        blobs: dict[str, bytes] = {}
        pos = 0
        for _ in oids:
            nl = out.index(b"\n", pos)
            header = out[pos:nl].decode().split()
            if len(header) != 3 or header[1] != "blob":
                raise UpstreamError(self.upstream.name, self.upstream.url, f"not a blob: {' '.join(header)}")
            size = int(header[2])
            blobs[header[0]] = out[nl + 1:nl + 1 + size]
            pos = nl + 1 + size + 1
        return blobs

    # --- package directories ----------------------------------------------------------------

    def revisions(self, directory: str) -> list[Revision]:
        """Every commit of `directory`'s history up to head, newest first, with its PKGBUILD's
        version (commits where it has none that can be read are left out)."""
        directory = _clean_dir(directory)
        log = self.git("log", "--reverse", "--format=commit %H", "--raw", "--no-abbrev", "--no-renames",
                       self.head, "--", f"{directory}/").stdout
        pkgbuild = f"{directory}/PKGBUILD"
        at: list[tuple[str, str | None]] = []
        blob: str | None = None
        for line in log.splitlines():
            if line.startswith("commit "):
                at.append((line.split()[1], blob))
            elif line.startswith(":") and "\t" in line:
                meta, path = line.split("\t", 1)
                if path == pkgbuild:
                    new, status = meta.split()[3], meta.split()[4]
                    blob = None if status.startswith("D") else new
                    at[-1] = (at[-1][0], blob)
        blobs = {b for _, b in at if b}
        sizes = self.sizes(blobs)
        big = [f"{pkgbuild} at {c[:12]} ({sizes[b]} bytes)" for c, b in at if b and sizes[b] > fsutil.MAX_UPSTREAM_FILE]
        if big:
            raise ValueError(f"larger than the {fsutil.MAX_UPSTREAM_FILE} bytes an upstream file may have: "
                             + ", ".join(big))
        texts = self.read(sorted(blobs))
        out = []
        for commit, b in reversed(at):
            v = pkgbuild_version(texts[b].decode(errors="replace")) if b else None
            if v:
                out.append(Revision(commit, *v))
        return out

    def entries(self, commit: str, directory: str) -> dict[str, Entry]:
        """Every entry below `directory` at `commit` (paths relative to it), read from the trees
        only (no blob is fetched): regular files, symbolic links and submodules alike."""
        directory = _clean_dir(directory)
        out = self.git("ls-tree", "-r", "-z", "--full-tree", commit, "--", f"{directory}/").stdout
        entries: dict[str, Entry] = {}
        for item in filter(None, out.split("\0")):
            meta, path = item.split("\t", 1)
            mode, kind, oid = meta.split()
            rel = path[len(directory) + 1:]
            if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
                raise ValueError(f"{path} at {commit[:12]}: not a plain relative path")
            entries[rel] = Entry(path, mode, kind, oid)
        return entries

    def files(self, commit: str, directory: str, *, only: tuple[str, ...] | None = None,
              max_bytes: int | None = None) -> dict[str, bytes]:
        """The files of `directory` at `commit` (paths relative to it), or just `only` of them.
        Regular files only: a symbolic link or submodule is an error naming it, and so is a file
        larger than max_bytes (default and at most fsutil.MAX_UPSTREAM_FILE: the one rule for
        every upstream file; its size is read before its content)."""
        limit = min(max_bytes or fsutil.MAX_UPSTREAM_FILE, fsutil.MAX_UPSTREAM_FILE)
        entries: dict[str, str] = {}
        for rel, e in self.entries(commit, directory).items():
            if only is not None and rel not in only:
                continue
            if not e.regular:
                raise ValueError(f"{e.path} at {commit[:12]} is not a regular file (mode {e.mode})")
            entries[rel] = e.oid
        if only is not None:
            missing = [n for n in only if n not in entries]
            if missing:
                raise ValueError(f"{_clean_dir(directory)} at {commit[:12]} has no {', '.join(missing)}")
        sizes = self.sizes(set(entries.values()))
        big = [f"{rel} ({sizes[oid]} bytes)" for rel, oid in sorted(entries.items()) if sizes[oid] > limit]
        if big:
            raise ValueError(f"{_clean_dir(directory)} at {commit[:12]}: larger than {limit} bytes: "
                             f"{', '.join(big)}")
        blobs = self.read(sorted(set(entries.values())))
        return {rel: blobs[oid] for rel, oid in sorted(entries.items())}

    def sizes(self, oids: set[str]) -> dict[str, int]:
        """The sizes of blobs (prefetched in one batch first), without reading their contents."""
        self.prefetch(oids)
        if not oids:
            return {}
        out = self.remote("cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                          input="".join(f"{o}\n" for o in sorted(oids)).encode()).decode()
        sizes = {}
        for line in out.splitlines():
            oid, kind, size = line.split()
            if kind != "blob":
                raise UpstreamError(self.upstream.name, self.upstream.url, f"not a blob: {line}")
            sizes[oid] = int(size)
        return sizes


@dataclass(frozen=True)
class Entry:
    """One entry of a tree listing: its full path, git mode, object kind and id."""

    path: str
    mode: str
    kind: str
    oid: str

    @property
    def regular(self) -> bool:
        return self.kind == "blob" and self.mode in ("100644", "100755")


def _clean_dir(directory: str) -> str:
    d = directory.strip("/")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*", d) or ".." in d.split("/"):
        raise ValueError(f"not a package directory: {directory!r}")
    return d


def matching(revisions: list[Revision], pkgver: str, pkgrel: str | None) -> Revision | None:
    """The newest revision at pkgver-pkgrel; without that exact one, the newest at pkgver."""
    exact = [r for r in revisions if r.pkgver == pkgver and (pkgrel is None or r.pkgrel == pkgrel)]
    loose = [r for r in revisions if r.pkgver == pkgver]
    return (exact or loose or [None])[0]


def _series(pkgver: str) -> tuple[int, int] | None:
    m = re.match(r"(\d+)\.(\d+)(?:\.|$)", pkgver)
    return (int(m.group(1)), int(m.group(2))) if m else None


def nearest_series(revisions: list[Revision], series: str) -> tuple[Revision | None, str]:
    """The revision whose config suits kernel `series` (e.g. "6.1"), and how it was chosen:
    the newest one of that series; else the oldest of the first later series (the first config
    ALARM made that knows the series' options); else the newest of an earlier series."""
    want = _series(series + ".0")
    known = [(s, r) for r in revisions if (s := _series(r.pkgver))]
    same = [r for s, r in known if s == want]
    if same:
        return same[0], f"newest revision of the {series} series"
    later = [(s, r) for s, r in known if s > want]
    if later:
        first = min(s for s, _ in later)
        r = [r for s, r in later if s == first][-1]
        return r, f"no {series} revision in the history: the oldest of the next series ({r.pkgver})"
    earlier = [r for s, r in known if s < want]
    if earlier:
        return earlier[0], f"no {series} revision in the history: the newest of an earlier series ({earlier[0].pkgver})"
    return None, f"no revision with a readable version"
