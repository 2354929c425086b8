"""Fetching only what sync needs from the large AVF tree: shallow, blobless, sparse."""

from __future__ import annotations

import time

import git
import pytest

from avfrepo.checkout import tree_at
from avfrepo.errors import UpstreamError

AVF_PATHS = ("build/debian", "guest", "libs")   # static paths, as a package may declare them


def test_sparse_checkout_holds_only_the_needed_paths(avf, tmp_path):
    commit = avf.repo.commit("android-16.0.0_r10").hexsha
    tree = tree_at("avf", avf.url, "android-16.0.0_r10", commit, AVF_PATHS, tmp_path / "cache")
    assert (tree / "guest/shutdown_runner/debian/service").is_file()
    assert (tree / "libs/debian_service/proto/DebianService.proto").is_file()
    assert (tree / "build/debian/ttyd/cross-build.sh").is_file()
    assert not (tree / "android").exists() and not (tree / "docs").exists()


def test_fetch_is_shallow_and_does_not_download_blobs_outside_the_sparse_paths(avf, tmp_path):
    commit = avf.repo.commit("android-16.0.0_r10").hexsha
    tree = tree_at("avf", avf.url, "android-16.0.0_r10", commit, AVF_PATHS, tmp_path / "cache")
    repo = git.Repo(tree)
    assert repo.git.rev_list("--count", "HEAD") == "1"
    missing = {l[1:] for l in repo.git.rev_list("--objects", "--missing=print", "HEAD").splitlines()
               if l.startswith("?")}
    unrelated = avf.repo.git.rev_parse(f"{commit}:android/virtmgr/src/main.rs")
    needed = avf.repo.git.rev_parse(f"{commit}:guest/shutdown_runner/debian/service")
    assert unrelated in missing
    assert needed not in missing


def test_second_tag_reuses_the_cache_and_moves_the_tree(avf, tmp_path):
    cache = tmp_path / "cache"
    r9 = avf.repo.commit("android-16.0.0_r9").hexsha
    tree_at("avf", avf.url, "android-16.0.0_r9", r9, AVF_PATHS, cache)
    avf.commit({"guest/shutdown_runner/src/main.rs": "fn main() { /* r11 */ }\n"}, "r11 change")
    avf.tag("android-16.0.0_r11")
    tree = tree_at("avf", avf.url, "android-16.0.0_r11", avf.head(), AVF_PATHS, cache)
    assert "r11" in (tree / "guest/shutdown_runner/src/main.rs").read_text()
    assert git.Repo(tree).head.commit.hexsha == avf.head()


def test_tag_resolving_to_another_commit_than_expected_is_refused(avf, tmp_path):
    wrong = avf.repo.commit("android-16.0.0_r9").hexsha
    with pytest.raises(UpstreamError, match="moved"):
        tree_at("avf", avf.url, "android-16.0.0_r10", wrong, AVF_PATHS, tmp_path / "cache")


def test_cached_tree_at_the_same_commit_is_reused_without_fetching(avf, tmp_path):
    commit = avf.repo.commit("android-16.0.0_r10").hexsha
    cache = tmp_path / "cache"
    tree = tree_at("avf", avf.url, "android-16.0.0_r10", commit, ("guest",), cache)
    fetch_head = tree / ".git/FETCH_HEAD"
    stamp = fetch_head.stat().st_mtime_ns
    # the upstream disappears: a reused tree needs no network at all
    moved = avf.path.with_name("gone")
    avf.path.rename(moved)
    assert tree_at("avf", avf.url, "android-16.0.0_r10", commit, ("guest",), cache) == tree
    assert fetch_head.stat().st_mtime_ns == stamp
    # other paths, or a dirty tree, are fetched/checked out again
    moved.rename(avf.path)
    (tree / "guest/stray").write_text("x")
    tree_at("avf", avf.url, "android-16.0.0_r10", commit, ("guest",), cache)
    assert not (tree / "guest/stray").exists()
    tree_at("avf", avf.url, "android-16.0.0_r10", commit, ("guest", "libs"), cache)
    assert (tree / "libs").is_dir()


# --- every transfer bounded by the upstream's NetPolicy (tests/githttp.py) -----------------

@pytest.fixture
def served(avf, tmp_path):
    """The AVF fixture behind a smart-HTTP server; `served(mode)` -> (server, url)."""
    from .githttp import GitHttp, bare_copy
    root = tmp_path / "srv"
    bare_copy(avf.path, root, "Virtualization.git")
    servers: list[GitHttp] = []

    def start(mode: str) -> tuple[GitHttp, str]:
        servers.append(GitHttp(root, mode))
        return servers[-1], servers[-1].url("Virtualization.git")
    yield start
    for s in servers:
        s.close()


def test_a_fetch_that_stalls_ends_after_the_configured_timeout(avf, served, tmp_path, monkeypatch):
    """The listing answers, the fetch never does: left after `timeout` seconds without a byte,
    tried `retries` more times, never the old fixed 900 s."""
    from avfrepo.config import NetPolicy
    from avfrepo.sources import net as netmod
    slept: list[float] = []
    monkeypatch.setattr(netmod, "sleep", slept.append)
    server, url = served("stall")
    commit = avf.repo.commit("android-16.0.0_r10").hexsha
    start = time.monotonic()
    with pytest.raises(UpstreamError) as err:
        tree_at("avf", url, "android-16.0.0_r10", commit, ("guest",), tmp_path / "cache",
                NetPolicy(timeout=1, retries=1, backoff=0.5, deadline=4))
    took = time.monotonic() - start
    assert str(err.value) == (f"upstream avf ({url}): git fetch: no data for 1 s (gave up after 2 attempts)")
    assert server.fetches == 2 and slept == [0.5]
    assert took < 2 * 4, took           # two tries, each ended well before its deadline


def test_a_fetch_that_trickles_ends_at_the_configured_deadline(avf, served, tmp_path):
    """A progress byte every 0.2 s passes any per-read or low-speed limit: the deadline ends it
    (git and its git-remote-http helper killed together)."""
    from avfrepo.config import NetPolicy
    server, url = served("trickle")
    commit = avf.repo.commit("android-16.0.0_r10").hexsha
    start = time.monotonic()
    with pytest.raises(UpstreamError, match=r"git fetch did not finish within 3 s \(the deadline\)$"):
        tree_at("avf", url, "android-16.0.0_r10", commit, ("guest",), tmp_path / "cache",
                NetPolicy(timeout=2, retries=0, deadline=3))
    took = time.monotonic() - start
    assert 3 <= took < 3 * 3, took
    assert server.fetches == 1
