"""query() dispatches one upstream by its kind; query_all() asks several at once, and gives
nothing back when any of them failed."""

from __future__ import annotations

import json
import threading

import pytest

from avfrepo.config import AlpmDbUpstream, GitTagsUpstream, KernelOrgUpstream, NetPolicy
from avfrepo.errors import ConfigError, UpstreamError
from avfrepo.sources import Release, UpstreamErrors, kernel_org, query, query_all, source_for

from ..conftest import require_tools
from .conftest import DB_PATH, FAST, Answer, desc_db, git_repo

FEED = "/releases.json"
RELEASES = json.dumps({"releases": [
    {"moniker": "longterm", "version": "6.1.158", "iseol": False,
     "source": "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"},
]}).encode()


@pytest.fixture
def ttyd(tmp_path):
    require_tools("git")
    repo = git_repo(tmp_path / "ttyd")
    repo.commit({"README.md": "ttyd\n"}, "1.7.7")
    repo.tag("1.7.7")
    return repo


def configs(srv, ttyd_repo) -> dict:
    return {
        "ttyd": GitTagsUpstream("ttyd", ttyd_repo.url, r"^(\d+)\.(\d+)\.(\d+)$", net=FAST),
        "systemd": AlpmDbUpstream("systemd", server=srv.base, net=FAST),
        "kernel": KernelOrgUpstream("kernel", url=srv.url(FEED), net=FAST),
    }


def test_query_dispatches_each_kind_to_its_source(http_server, ttyd):
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"}), FEED: RELEASES})
    ups = configs(srv, ttyd)
    assert query(ups["ttyd"]) == Release("ttyd", "1.7.7", "1.7.7", ttyd.head(), ttyd.url)
    assert query(ups["systemd"]) == Release("systemd", "261.2-1", "261.2", None, srv.url(DB_PATH), pkgrel="1")
    assert query(ups["kernel"]).version == "6.1.158"
    assert sorted(srv.requests) == sorted([DB_PATH, FEED])


def test_every_kind_has_a_source_module_declaring_it():
    for kind in ("git-tags", "alpm-db", "kernel-org"):
        module = source_for(kind)
        assert module.KIND == kind and callable(module.query)


def test_an_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="no source for upstream kind 'svn'"):
        query(GitTagsUpstream("x", "file:///x", "(x)", kind="svn"))


def test_query_all_answers_every_upstream_by_name_in_order(http_server, ttyd):
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"}), FEED: RELEASES})
    ups = configs(srv, ttyd)
    got = query_all(ups)
    assert list(got) == ["ttyd", "systemd", "kernel"]
    assert {n: r.pkgver for n, r in got.items()} == {"ttyd": "1.7.7", "systemd": "261.2", "kernel": "6.1.158"}
    assert all(got[n].upstream == n for n in got)
    assert list(query_all(list(ups.values())[::-1])) == ["kernel", "systemd", "ttyd"]


def test_query_all_of_nothing_is_nothing():
    assert query_all({}) == {}


class Meeting:
    """Requests wait (up to `patience` s) until `parties` of them are in flight together;
    records the most seen at once. Served one after another, it never exceeds 1."""

    def __init__(self, parties: int, patience: float = 10.0):
        self.parties = parties
        self.patience = patience
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.all_here = threading.Event()

    def route(self, body: bytes):
        def answer(server, path) -> Answer:
            with self.lock:
                self.inside += 1
                self.most = max(self.most, self.inside)
                if self.inside >= self.parties:
                    self.all_here.set()
            self.all_here.wait(self.patience)
            with self.lock:
                self.inside -= 1
            return Answer(200, body)
        return answer


def test_query_all_asks_independent_upstreams_at_the_same_time(http_server):
    meeting = Meeting(parties=3)
    db, feed = meeting.route(desc_db({"systemd": "261.2-1"})), meeting.route(RELEASES)
    a, b = http_server({DB_PATH: db}), http_server({FEED: feed, "/other" + FEED: feed})
    net = NetPolicy(timeout=30, retries=0, backoff=0)
    got = query_all([AlpmDbUpstream("systemd", server=a.base, net=net),
                     KernelOrgUpstream("kernel", url=b.url(FEED), net=net),
                     KernelOrgUpstream("kernel-mirror", url=b.url("/other" + FEED), net=net)])
    assert meeting.most == 3            # all three requests were in flight at once
    assert set(got) == {"systemd", "kernel", "kernel-mirror"}


def test_query_all_with_max_workers_1_asks_one_after_another(http_server):
    meeting = Meeting(parties=2, patience=0.3)
    srv = http_server({FEED: meeting.route(RELEASES), "/b" + FEED: meeting.route(RELEASES)})
    got = query_all([KernelOrgUpstream("k1", url=srv.url(FEED), net=FAST),
                     KernelOrgUpstream("k2", url=srv.url("/b" + FEED), net=FAST)], max_workers=1)
    assert meeting.most == 1 and len(got) == 2


def test_one_failure_fails_the_whole_query_with_that_upstreams_error(http_server, ttyd):
    srv = http_server({FEED: RELEASES})          # no core.db: 404
    ups = configs(srv, ttyd)
    with pytest.raises(UpstreamError) as err:
        query_all(ups)
    assert type(err.value) is UpstreamError
    assert err.value.upstream == "systemd" and err.value.url == srv.url(DB_PATH)
    assert FEED in srv.requests                  # the others still ran to their end


def test_several_failures_are_all_reported(http_server, ttyd, tmp_path):
    srv = http_server({})
    ups = configs(srv, ttyd)
    ups["ttyd"] = GitTagsUpstream("ttyd", (tmp_path / "gone").as_uri(), r"^(\d+)$", net=FAST)
    with pytest.raises(UpstreamErrors) as err:
        query_all(ups)
    assert isinstance(err.value, UpstreamError)   # callers catching UpstreamError see it too
    assert set(err.value.errors) == {"ttyd", "systemd", "kernel"}
    msg = str(err.value)
    assert msg.startswith("3 upstreams failed")
    for url in ((tmp_path / "gone").as_uri(), srv.url(DB_PATH), srv.url(FEED)):
        assert url in msg


def test_an_unknown_kind_fails_before_any_upstream_is_asked(http_server, ttyd):
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"}), FEED: RELEASES})
    ups = configs(srv, ttyd)
    ups["odd"] = GitTagsUpstream("odd", "file:///x", "(x)", kind="svn")
    with pytest.raises(ConfigError, match="svn"):
        query_all(ups)
    assert srv.requests == []


def test_the_same_upstream_twice_is_a_config_error():
    up = KernelOrgUpstream("kernel")
    with pytest.raises(ConfigError, match="queried twice"):
        query_all([up, up])


def test_a_bug_in_a_source_is_not_disguised_as_an_upstream_failure(http_server, monkeypatch):
    def broken(upstream):
        raise RuntimeError("bug in the source")

    monkeypatch.setattr(kernel_org, "query", broken)
    srv = http_server({DB_PATH: desc_db({"systemd": "261.2-1"}), FEED: RELEASES})
    with pytest.raises(RuntimeError, match="bug in the source"):
        query_all([KernelOrgUpstream("kernel", url=srv.url(FEED), net=FAST),
                   AlpmDbUpstream("systemd", server=srv.base, net=FAST)])
    assert srv.requests == [DB_PATH]
