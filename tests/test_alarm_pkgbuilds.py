"""ALARM's PKGBUILDs repository, blobless: versions of a directory's history, one revision's files."""

from __future__ import annotations

import time

import pytest

from avfrepo.alarm_pkgbuilds import PkgbuildsRepo, Revision, matching, nearest_series, pkgbuild_version
from avfrepo.config import GitBranchUpstream
from avfrepo.errors import UpstreamError
from avfrepo.sources import query

from .packages.alarm_fixture import make_alarm


@pytest.fixture
def alarm(tmp_path):
    return make_alarm(tmp_path / "PKGBUILDs")


def opened(alarm, tmp_path):
    up = GitBranchUpstream("alarm-pkgbuilds", alarm.url)
    return PkgbuildsRepo.open(up, query(up).commit, tmp_path / "cache")


@pytest.mark.parametrize("text, version", [
    ("pkgver=261.2\npkgrel=1\n", ("261.2", "1")),
    ("pkgver='6.2.0'\npkgrel=\"3\"  # bump\n", ("6.2.0", "3")),
    ("pkgver=${_v}.1\npkgrel=1\n", None),               # computed: not guessed
    ("pkgver=1\npkgver=2\npkgrel=1\n", None),
    ("pkgver=1-2\npkgrel=1\n", None),
    ("pkgver=1\n", None),
])
def test_versions_are_read_from_plain_lines_only(text, version):
    assert pkgbuild_version(text) == version


def test_the_history_of_a_directory_newest_first(alarm, tmp_path):
    repo = opened(alarm, tmp_path)
    revs = repo.revisions("core/systemd")
    assert [r.version for r in revs] == ["261.2-1", "261.2-1", "261.1-1", "260.1-1"]
    assert revs[0].commit == alarm.commits["systemd 261.2-1 hooks"] and revs[1].commit == alarm.commits["systemd 261.2-1"]
    assert [r.pkgver for r in repo.revisions("core/linux-aarch64")] == ["6.18.1", "6.2.1", "6.2.0", "5.19.8"]


def test_matching_prefers_the_exact_release_then_the_pkgver():
    revs = [Revision("c", "2", "2"), Revision("b", "2", "1"), Revision("a", "1", "1")]
    assert matching(revs, "2", "1").commit == "b"
    assert matching(revs, "2", "5").commit == "c"
    assert matching(revs, "3", "1") is None


def test_the_nearest_series():
    revs = [Revision(v, v, "1") for v in ("6.18.1", "6.2.1", "6.2.0", "6.1.9", "6.1.8", "5.19.8")]
    assert nearest_series(revs, "6.1")[0].pkgver == "6.1.9"
    gap = [r for r in revs if not r.pkgver.startswith("6.1.")]
    rev, why = nearest_series(gap, "6.1")
    assert rev.pkgver == "6.2.0" and "oldest of the next series" in why
    rev, why = nearest_series(revs, "6.30")
    assert rev.pkgver == "6.18.1" and "earlier series" in why
    assert nearest_series([], "6.1")[0] is None


def test_files_of_one_revision_and_nothing_else(alarm, tmp_path):
    repo = opened(alarm, tmp_path)
    c = alarm.commits["systemd 261.1-1"]
    files = repo.files(c, "core/systemd", only=("PKGBUILD", "systemd.install"))
    assert set(files) == {"PKGBUILD", "systemd.install"} and b"pkgver=261.1\n" in files["PKGBUILD"]
    with pytest.raises(ValueError, match="LICENSES/0BSD.txt at .* is not a regular file"):
        repo.files(c, "core/systemd")
    with pytest.raises(ValueError, match="has no nothing.conf"):
        repo.files(c, "core/systemd", only=("nothing.conf",))
    with pytest.raises(ValueError, match="not a package directory"):
        repo.files(c, "../core")


def test_entries_list_links_and_files_without_fetching_a_blob(alarm, tmp_path):
    repo = opened(alarm, tmp_path)
    c = alarm.commits["systemd 261.1-1"]
    before = repo.present()
    entries = repo.entries(c, "core/systemd")
    link = entries["LICENSES/0BSD.txt"]
    assert (link.path, link.mode, link.kind) == ("core/systemd/LICENSES/0BSD.txt", "120000", "blob")
    assert not link.regular
    assert entries["PKGBUILD"].regular and entries["PKGBUILD"].mode == "100644"
    assert any(rel.startswith("keys/pgp/") and e.regular for rel, e in entries.items())
    assert repo.present() == before and repo.fetched_blobs == 0


def test_a_file_larger_than_max_bytes_is_refused_before_it_is_read(alarm, tmp_path, monkeypatch):
    alarm.systemd("261.2", "2", **{"keys/pgp/big.asc": "x" * 5000})
    repo = opened(alarm, tmp_path)
    c = alarm.head()
    read = []
    monkeypatch.setattr(repo, "read", lambda oids: read.append(oids) or {})
    with pytest.raises(ValueError, match=r"core/systemd at [0-9a-f]{12}: larger than 4096 bytes: keys/pgp/big.asc "
                                         r"\(5000 bytes\)"):
        repo.files(c, "core/systemd", only=("keys/pgp/big.asc", "PKGBUILD"), max_bytes=4096)
    assert read == []
    monkeypatch.undo()
    big = repo.files(c, "core/systemd", only=("keys/pgp/big.asc",), max_bytes=5000)
    assert big == {"keys/pgp/big.asc": b"x" * 5000}


def test_a_head_not_on_the_branch_is_refused(alarm, tmp_path):
    up = GitBranchUpstream("alarm-pkgbuilds", alarm.url)
    head = query(up).commit
    alarm.repo.repo.git.reset("--hard", alarm.commits["systemd 260.1-1"])   # history rewritten
    with pytest.raises(UpstreamError, match="is not on branch master"):
        PkgbuildsRepo.open(up, head, tmp_path / "cache2")


def test_a_server_that_cannot_filter_is_refused(alarm, tmp_path):
    alarm.repo.repo.git.config("uploadpack.allowFilter", "false")
    up = GitBranchUpstream("alarm-pkgbuilds", alarm.url)
    with pytest.raises(UpstreamError, match="does not filter blobs"):
        PkgbuildsRepo.open(up, query(up).commit, tmp_path / "cache")
    assert not (tmp_path / "cache" / "git" / "alarm-pkgbuilds.git").exists()


def test_every_file_read_is_bounded_by_the_one_upstream_size_rule(alarm, tmp_path, monkeypatch):
    """Without max_bytes, files() and the history's PKGBUILDs are still capped: at
    fsutil.MAX_UPSTREAM_FILE, the rule every upstream file read follows, sizes read first."""
    from avfrepo import fsutil
    alarm.systemd("261.2", "2", **{"arch.conf": "y" * (fsutil.MAX_UPSTREAM_FILE + 1)})
    repo = opened(alarm, tmp_path)
    with pytest.raises(ValueError, match=rf"larger than {fsutil.MAX_UPSTREAM_FILE} bytes: arch.conf "
                                         rf"\({fsutil.MAX_UPSTREAM_FILE + 1} bytes\)"):
        repo.files(alarm.head(), "core/systemd", only=("arch.conf", "PKGBUILD"))
    alarm.systemd("261.2", "3", PKGBUILD="pkgver=261.2\npkgrel=3\n" + "#" * fsutil.MAX_UPSTREAM_FILE)
    repo = opened(alarm, tmp_path)
    with pytest.raises(ValueError, match=r"core/systemd/PKGBUILD at [0-9a-f]{12} \(\d+ bytes\)"):
        repo.revisions("core/systemd")


# --- every transfer bounded by the upstream's NetPolicy (tests/githttp.py) -----------------

@pytest.fixture
def served(alarm, tmp_path):
    from .githttp import GitHttp, bare_copy
    root = tmp_path / "srv"
    bare_copy(alarm.repo.path, root, "PKGBUILDs.git")
    servers: list[GitHttp] = []

    def start(mode: str) -> tuple[GitHttp, str]:
        servers.append(GitHttp(root, mode))
        return servers[-1], servers[-1].url("PKGBUILDs.git")
    yield start
    for s in servers:
        s.close()


def test_a_clone_that_stalls_ends_after_the_configured_timeout(alarm, served, tmp_path):
    from avfrepo.config import NetPolicy
    server, url = served("stall")
    up = GitBranchUpstream("alarm-pkgbuilds", url, net=NetPolicy(timeout=1, retries=0, deadline=5))
    start = time.monotonic()
    with pytest.raises(UpstreamError, match=r"git clone: no data for 1 s$"):
        PkgbuildsRepo.open(up, alarm.head(), tmp_path / "cache")
    assert time.monotonic() - start < 5, "ended by the timeout, before the deadline"
    assert server.fetches == 1
    assert not list((tmp_path / "cache" / "git").iterdir())      # no half clone left


def test_a_blob_fetch_that_trickles_ends_at_the_configured_deadline(alarm, served, tmp_path):
    """The clone works; the blobs of a revision come one progress byte at a time: the deadline
    ends that fetch, the render sees an UpstreamError (a ToolProblem, tried again next sync)."""
    from avfrepo.config import NetPolicy
    _, good = served("serve")
    net = NetPolicy(timeout=2, retries=0, deadline=3)
    up = GitBranchUpstream("alarm-pkgbuilds", good, net=net)
    repo = PkgbuildsRepo.open(up, alarm.head(), tmp_path / "cache")
    server, slow = served("trickle")
    repo.upstream = GitBranchUpstream("alarm-pkgbuilds", slow, net=net)
    repo.git("remote", "set-url", "origin", slow)
    start = time.monotonic()
    with pytest.raises(UpstreamError, match=r"git fetch did not finish within 3 s \(the deadline\)$"):
        repo.files(alarm.head(), "core/systemd", only=("PKGBUILD",))
    assert 3 <= time.monotonic() - start < 3 * 3
    assert server.fetches == 1
