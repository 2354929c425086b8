"""Just the needed paths of a large upstream tree at one tag: shallow, blobless, sparse.

AVF's repository carries the history of many unrelated components; the tool needs only
`build/debian/`, `guest/` and `libs/`. The cache keeps one git directory per upstream and
fetches `--depth 1 --filter=blob:none` the tag asked for, then checks out only the sparse
paths (git fetches the blobs of those paths alone, on demand).
"""

from __future__ import annotations

import re
from pathlib import Path

import git

from .errors import UpstreamError

AVF_PATHS = ("build/debian", "guest", "libs")
FETCH_TIMEOUT = 900


def _sparse_patterns(paths: tuple[str, ...]) -> list[str]:
    return [f"/{p}/" for p in paths]


def _already_at(dest: Path, url: str, commit: str, paths: tuple[str, ...]) -> bool:
    """The cached work tree is this commit of this url, with exactly these paths, unmodified.
    Read from .git's files, with one `git status` for local changes: a no-op sync runs it
    on every upstream."""
    gitdir = dest / ".git"
    try:
        if (gitdir / "HEAD").read_text().strip() != commit:       # detached at the release
            return False
        conf = git.Repo(dest).config_reader("repository")
        if conf.get_value('remote "origin"', "url", "") != url:
            return False
        # `git sparse-checkout` keeps its switch in the worktree config
        wt = git.GitConfigParser(str(gitdir / "config.worktree"), read_only=True)
        enabled = str(wt.get_value("core", "sparsecheckout", "false")).lower() == "true"
        if paths:
            sparse = (gitdir / "info/sparse-checkout").read_text().split()
            if not enabled or sparse != _sparse_patterns(paths):
                return False
        elif enabled:
            return False
        return git.Repo(dest).git.status("--porcelain", "--untracked-files=all") == ""
    except (git.GitError, OSError, ValueError, KeyError):
        return False


def tree_at(name: str, url: str, tag: str, commit: str, paths: tuple[str, ...], cache: Path) -> Path:
    """Check out `paths` of `url` at `tag` (no paths: all of it) into the cache; return the work tree.

    Raises UpstreamError if the tag does not resolve to `commit` (it moved between the
    ls-remote and the fetch, or the recorded commit is wrong).
    """
    dest = cache / "git" / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    if _already_at(dest, url, commit, paths):
        return dest       # a no-op sync asks the network nothing beyond ls-remote
    try:
        repo = git.Repo(dest) if (dest / ".git").is_dir() else git.Repo.init(dest)
        if "origin" in [r.name for r in repo.remotes]:
            repo.git.remote("set-url", "origin", url)
        else:
            repo.git.remote("add", "origin", url)
        repo.git.fetch("--depth", "1", "--filter=blob:none", "--force", "--no-tags", "origin",
                       f"+refs/tags/{tag}:refs/tags/{tag}", kill_after_timeout=FETCH_TIMEOUT)
        got = repo.git.rev_parse(f"refs/tags/{tag}^{{commit}}")
        if got != commit:
            raise UpstreamError(name, url, f"tag {tag} is commit {got} but ls-remote said {commit}: "
                                "the tag moved while syncing; run sync again and review")
        if paths:
            repo.git.sparse_checkout("set", "--no-cone", *_sparse_patterns(paths))
        else:   # the whole tree (small upstreams such as ttyd)
            repo.git.sparse_checkout("disable")
        repo.git.checkout("--force", "--detach", commit, kill_after_timeout=FETCH_TIMEOUT)
        repo.git.clean("-ffdx")
    except git.GitCommandError as exc:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        raise UpstreamError(name, url, f"fetching {tag}: " + (detail[-1] if detail else "git failed")) from None
    return dest
