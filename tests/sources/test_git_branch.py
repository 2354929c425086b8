"""git-branch: the head of a branch of a local git repository (ALARM's PKGBUILDs' shape)."""

from __future__ import annotations

import pytest

from avfrepo.config import GitBranchUpstream
from avfrepo.errors import UpstreamError
from avfrepo.sources import git_branch, query

from .conftest import FAST, git_repo


def test_the_head_of_the_branch_is_the_release(tmp_path):
    repo = git_repo(tmp_path / "PKGBUILDs")
    repo.repo.git.symbolic_ref("HEAD", "refs/heads/master")
    first = repo.commit({"core/a/PKGBUILD": "pkgver=1\n"}, "core/a to 1-1")
    repo.repo.git.branch("other")
    up = GitBranchUpstream("alarm-pkgbuilds", repo.url, net=FAST)
    rel = query(up)
    assert (rel.version, rel.commit, rel.pkgver, rel.url) == (first, first, "0", repo.url)
    second = repo.commit({"core/a/PKGBUILD": "pkgver=2\n"}, "core/a to 2-1")
    assert query(up).commit == second
    assert query(GitBranchUpstream("x", repo.url, branch="other", net=FAST)).commit == first


def test_a_missing_branch_or_repository_is_an_upstream_error(tmp_path):
    repo = git_repo(tmp_path / "PKGBUILDs")
    repo.commit({"f": "x\n"}, "one")
    with pytest.raises(UpstreamError, match="no branch master"):
        query(GitBranchUpstream("alarm-pkgbuilds", repo.url, net=FAST))
    with pytest.raises(UpstreamError, match="ls-remote failed"):
        query(GitBranchUpstream("alarm-pkgbuilds", (tmp_path / "nothing").as_uri(), net=FAST))


def test_an_odd_answer_is_refused():
    up = GitBranchUpstream("u", "file:///x")
    with pytest.raises(UpstreamError, match="not a commit id"):
        git_branch.head(up, "zzz\trefs/heads/master\n")
    assert git_branch.head(up, "a" * 40 + "\trefs/heads/mastery\n" + "b" * 40 + "\trefs/heads/master\n").commit == "b" * 40
