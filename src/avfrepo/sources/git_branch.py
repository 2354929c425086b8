"""The head commit of one branch of a git repository (Arch Linux ARM's PKGBUILDs), read with
`git ls-remote <url> refs/heads/<branch>`.

A branch head has no version order: the release's version is the commit itself and its pkgver
"0", so sync never calls one head "older" than another. What a package takes from the
repository (one directory at one revision) is found by avfrepo.alarm_pkgbuilds.
"""

from __future__ import annotations

import re

from ..config import GitBranchUpstream
from ..errors import UpstreamError
from . import Release
from .git_tags import ls_remote

KIND = "git-branch"
BRANCH_PKGVER = "0"


def head(upstream: GitBranchUpstream, output: str) -> Release:
    """The Release of upstream.branch in `git ls-remote` output."""
    ref = f"refs/heads/{upstream.branch}"
    for line in output.splitlines():
        sha, _, name = line.strip().partition("\t")
        if name == ref:
            if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", sha):
                raise UpstreamError(upstream.name, upstream.url, f"{ref} is not a commit id: {sha!r}")
            return Release(upstream.name, sha, BRANCH_PKGVER, sha, upstream.url)
    raise UpstreamError(upstream.name, upstream.url, f"no branch {upstream.branch}")


def query(upstream: GitBranchUpstream) -> Release:
    """The source interface: the branch's head commit."""
    return head(upstream, ls_remote(upstream.name, upstream.url, upstream.net,
                                   patterns=(f"refs/heads/{upstream.branch}",)))
