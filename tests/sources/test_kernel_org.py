"""The kernel-org source: the newest point release of an LTS series, from a releases.json
feed served on 127.0.0.1 (shaped like kernel.org's) or from stable-tree-shaped git tags."""

from __future__ import annotations

import json

import pytest

from avfrepo.config import KernelOrgUpstream, NetPolicy
from avfrepo.errors import UpstreamError
from avfrepo.sources import kernel_org, query
from avfrepo.sources.kernel_org import tarball_url

from ..conftest import require_tools
from .conftest import FAST, Answer, flaky, git_repo

FEED = "/releases.json"


def release(moniker: str, version: str, *, source: str | None = "", eol: bool = False) -> dict:
    """One entry the way kernel.org writes them (source "" = the usual cdn tarball)."""
    major = version.split(".")[0]
    if source == "":
        source = f"https://cdn.kernel.org/pub/linux/kernel/v{major}.x/linux-{version}.tar.xz"
    return {
        "moniker": moniker,
        "version": version,
        "iseol": eol,
        "released": {"timestamp": 1763600000, "isodate": "2025-11-20"},
        "source": source,
        "pgp": None if source is None else source.replace(".tar.xz", ".tar.sign"),
        "patch": {"full": None, "incremental": None},
        "changelog": None,
        "gitweb": f"https://git.kernel.org/stable/h/v{version}",
        "diffview": None,
    }


def feed(*releases: dict) -> bytes:
    return json.dumps({"latest_stable": {"version": "6.17.9"}, "releases": list(releases)}).encode()


REAL_SHAPE = feed(
    release("mainline", "6.18-rc7", source="https://git.kernel.org/torvalds/t/linux-6.18-rc7.tar.gz"),
    release("stable", "6.17.9"),
    release("longterm", "6.12.59"),
    release("longterm", "6.6.117"),
    release("longterm", "6.1.158"),
    release("longterm", "5.15.196"),
    release("longterm", "5.10.246"),
    release("longterm", "5.4.301", eol=True),
    release("linux-next", "next-20251121", source=None),
)


def upstream(srv, series: str = "6.1", **kw) -> KernelOrgUpstream:
    kw.setdefault("net", FAST)
    return KernelOrgUpstream("kernel", series=series, url=srv.url(FEED), **kw)


# --- releases.json -----------------------------------------------------------------------------

def test_newest_6_1_release_and_its_tarball(http_server):
    srv = http_server({FEED: REAL_SHAPE})
    rel = kernel_org.query(upstream(srv))
    assert (rel.upstream, rel.version, rel.pkgver, rel.commit) == ("kernel", "6.1.158", "6.1.158", None)
    assert rel.url == "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"
    assert srv.requests == [FEED]
    assert "json" in srv.headers[0]["Accept"]


@pytest.mark.parametrize("series, version", [("6.12", "6.12.59"), ("5.15", "5.15.196"), ("6.17", "6.17.9")])
def test_any_listed_series_can_be_followed(http_server, series, version):
    srv = http_server({FEED: REAL_SHAPE})
    assert query(upstream(srv, series)).version == version


def test_series_6_1_is_not_confused_with_6_10(http_server):
    srv = http_server({FEED: feed(release("stable", "6.10.14"), release("longterm", "6.1.158"))})
    assert kernel_org.query(upstream(srv)).version == "6.1.158"
    srv2 = http_server({FEED: feed(release("stable", "6.10.14"))})
    with pytest.raises(UpstreamError, match="series 6.1 is not listed"):
        kernel_org.query(upstream(srv2))


def test_several_entries_of_one_series_give_the_newest_numerically(http_server):
    srv = http_server({FEED: feed(release("longterm", "6.1.99"), release("longterm", "6.1.158"),
                                  release("longterm", "6.1.100"))})
    assert kernel_org.query(upstream(srv)).version == "6.1.158"


def test_a_release_candidate_of_the_series_is_not_a_release(http_server):
    srv = http_server({FEED: REAL_SHAPE})
    with pytest.raises(UpstreamError) as err:
        kernel_org.query(upstream(srv, "6.18"))
    msg = str(err.value)
    assert "series 6.18 is not listed" in msg and "6.18-rc7" in msg
    assert srv.url(FEED) in msg


def test_a_series_past_its_end_of_life_points_to_the_git_tags_method(http_server):
    srv = http_server({FEED: REAL_SHAPE})
    with pytest.raises(UpstreamError) as err:
        kernel_org.query(upstream(srv, "4.19"))
    assert 'method = "git-tags"' in str(err.value)
    assert err.value.upstream == "kernel"


def test_an_entry_without_source_gets_the_cdn_tarball(http_server):
    srv = http_server({FEED: feed(release("longterm", "6.1.158", source=None))})
    assert kernel_org.query(upstream(srv)).url == tarball_url("6.1.158")


def test_an_end_of_life_entry_is_still_a_release(http_server):
    srv = http_server({FEED: REAL_SHAPE})
    assert kernel_org.query(upstream(srv, "5.4")).version == "5.4.301"


@pytest.mark.parametrize("body, reason", [
    (b"<html>502 Bad Gateway</html>", "not valid JSON"),
    (b'{"releases": {"6.1": "6.1.158"}}', 'no "releases" list'),
    (b'[{"version": "6.1.158"}]', 'no "releases" list'),
    (b'{"releases": [{"moniker": "longterm"}, 7, null]}', "series 6.1 is not listed"),
])
def test_a_feed_of_another_shape_is_an_error_naming_the_url(http_server, body, reason, slept):
    srv = http_server({FEED: body})
    with pytest.raises(UpstreamError) as err:
        kernel_org.query(upstream(srv))
    assert reason in str(err.value) and srv.url(FEED) in str(err.value)
    assert slept == []


def test_a_flaky_feed_is_retried(http_server, slept):
    srv = http_server({FEED: flaky(3, REAL_SHAPE, status=502)})
    assert kernel_org.query(upstream(srv)).version == "6.1.158"
    assert len(srv.requests) == 4 and len(slept) == 3


def test_a_feed_that_stays_down_is_an_error_after_the_retries(http_server):
    srv = http_server({FEED: Answer(502)})
    with pytest.raises(UpstreamError, match="HTTP 502.*gave up after 2 attempts"):
        kernel_org.query(upstream(srv, net=NetPolicy(timeout=5, retries=1, backoff=0)))


def test_tarball_url_of_other_majors():
    assert tarball_url("5.15.196") == "https://cdn.kernel.org/pub/linux/kernel/v5.x/linux-5.15.196.tar.xz"
    assert tarball_url("6.1") == "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.tar.xz"


# --- the stable tree's tags ----------------------------------------------------------------

@pytest.fixture(scope="module")
def stable_git(tmp_path_factory):
    """Tags shaped like linux-stable: annotated v6.1, v6.1.N, other series, rc tags."""
    require_tools("git")
    repo = git_repo(tmp_path_factory.mktemp("linux") / "linux")
    commits = {}
    for tag in ("v6.0", "v6.1-rc8", "v6.1", "v6.1.1", "v6.1.9", "v6.1.10", "v6.2", "v6.10", "v6.10.3",
                "v6.1.11"):
        commits[tag] = repo.commit({"Makefile": f"# {tag}\n"}, f"Linux {tag[1:]}")
        repo.tag(tag, message=f"This is the {tag[1:]} stable release")
    repo.commit({"Makefile": "# next\n"}, "queue for the next release")
    return repo, commits


def git_upstream(repo, series: str = "6.1") -> KernelOrgUpstream:
    return KernelOrgUpstream("kernel", series=series, method="git-tags", url=repo.url, net=FAST)


def test_git_method_gives_the_newest_point_release_with_its_commit(stable_git):
    repo, commits = stable_git
    rel = query(git_upstream(repo))
    assert (rel.version, rel.pkgver) == ("6.1.11", "6.1.11")        # 11 > 10 > 9 numerically
    assert rel.commit == commits["v6.1.11"] != repo.head()
    assert rel.url == tarball_url("6.1.11")


def test_git_method_takes_the_bare_series_tag_when_there_is_no_point_release(stable_git):
    repo, commits = stable_git
    rel = query(git_upstream(repo, "6.2"))
    assert (rel.version, rel.commit) == ("6.2", commits["v6.2"])
    assert rel.url.endswith("/v6.x/linux-6.2.tar.xz")
    assert query(git_upstream(repo, "6.10")).version == "6.10.3"


def test_git_method_without_any_tag_of_the_series_is_an_error(stable_git):
    repo, _ = stable_git
    with pytest.raises(UpstreamError, match=r"no tag matches .*6\\\.3") as err:
        query(git_upstream(repo, "6.3"))
    assert err.value.url == repo.url


# --- a maintainer's pins -------------------------------------------------------------------------

def test_a_maximum_holds_the_series_below_a_release_the_patches_fail_on(http_server):
    srv = http_server({FEED: feed(release("longterm", "6.1.192"))})
    rel = query(upstream(srv, max_version="6.1.187"))
    assert (rel.version, rel.pkgver, rel.url) == ("6.1.187", "6.1.187", tarball_url("6.1.187"))
    assert rel.note == ("held at 6.1.187 by [upstreams.kernel] max_version (newest is 6.1.192); "
                        "remove it once the patches apply again")
    assert rel.to_json()["note"] == rel.note
    # at or below the maximum, the newest release is used and nothing is said
    srv.routes[FEED] = feed(release("longterm", "6.1.186"))
    rel = query(upstream(srv, max_version="6.1.187"))
    assert (rel.version, rel.note) == ("6.1.186", None) and "note" not in rel.to_json()


def test_a_pin_is_exactly_that_release(http_server):
    srv = http_server({FEED: feed(release("longterm", "6.1.192"))})
    rel = query(upstream(srv, pin="6.1.135"))
    assert (rel.version, rel.url) == ("6.1.135", tarball_url("6.1.135")) and "pin" in rel.note
    with pytest.raises(UpstreamError, match="pin 6.1.193 is newer than the newest release 6.1.192"):
        query(upstream(srv, pin="6.1.193"))


def test_git_method_maximum_is_the_newest_tag_not_above_it(stable_git):
    repo, commits = stable_git
    up = KernelOrgUpstream("kernel", series="6.1", method="git-tags", url=repo.url, net=FAST, max_version="6.1.10")
    rel = query(up)
    assert (rel.version, rel.commit) == ("6.1.10", commits["v6.1.10"]) and "newest is 6.1.11" in rel.note
    up = KernelOrgUpstream("kernel", series="6.1", method="git-tags", url=repo.url, net=FAST, max_version="6.1.5")
    assert query(up).version == "6.1.1"
    up = KernelOrgUpstream("kernel", series="6.1", method="git-tags", url=repo.url, net=FAST, pin="6.1.5")
    with pytest.raises(UpstreamError, match="pin 6.1.5: no tag v6.1.5"):
        query(up)
