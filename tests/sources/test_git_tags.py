"""AVF release tags from a local repository shaped like the real one."""

from __future__ import annotations

import pytest

from avfrepo.config import AVF_TAG_PATTERN, GitTagsUpstream
from avfrepo.errors import UpstreamError
from avfrepo.sources.git_tags import latest, ls_remote_tags, matching, tag_pkgver
from avfrepo.sources.git_tags import query as query_git


def test_latest_android16_release_orders_numerically_r10_above_r9(avf):
    up = GitTagsUpstream("avf", avf.url, AVF_TAG_PATTERN)
    rel = latest(up)
    assert rel.version == "android-16.0.0_r10"
    assert rel.pkgver == "16.0.0.r10"
    assert rel.commit == avf.repo.commit("android-16.0.0_r10").hexsha


def test_distractor_tag_families_never_match(avf):
    up = GitTagsUpstream("avf", avf.url, AVF_TAG_PATTERN)
    names = [t.name for t in matching(up, ls_remote_tags("avf", avf.url))]
    assert names == [f"android-16.0.0_r{r}" for r in range(1, 11)]


def test_annotated_tags_are_peeled_to_their_commit_and_lightweight_taken_as_is(avf):
    tags = ls_remote_tags("avf", avf.url)
    annotated, light = tags["android-16.0.0_r2"], tags["android-16.0.0_r3"]
    assert annotated.object != annotated.commit              # a tag object
    assert light.object == light.commit                      # points at the commit directly
    assert annotated.commit == light.commit == avf.repo.commit("android-16.0.0_r2").hexsha


def test_several_tags_on_one_commit_are_all_listed(avf):
    tags = ls_remote_tags("avf", avf.url)
    commits = {tags[f"android-15.0.0_r{r}"].commit for r in range(1, 6)}
    assert len(commits) == 1


def test_another_major_is_chosen_only_when_the_pattern_allows_it(avf):
    avf.commit({"guest/linux_vm_manager/Android.bp": "rust_binary {}\n"}, "android 17")
    avf.tag("android-17.0.0_r1", message="Android 17.0.0 release 1")
    assert latest(GitTagsUpstream("avf", avf.url, AVF_TAG_PATTERN)).version == "android-16.0.0_r10"
    any_major = GitTagsUpstream("avf", avf.url, r"^android-(\d+)\.(\d+)\.(\d+)_r(\d+)$")
    assert latest(any_major).version == "android-17.0.0_r1"


def test_no_matching_tag_is_an_error_naming_the_pattern(avf):
    up = GitTagsUpstream("avf", avf.url, r"^android-(99)\.(\d+)\.(\d+)_r(\d+)$")
    with pytest.raises(UpstreamError, match=r"no tag matches .*android-\(99\)"):
        latest(up)


def test_unreachable_upstream_is_an_error_naming_upstream_and_url(tmp_path):
    url = (tmp_path / "nowhere").as_uri()
    with pytest.raises(UpstreamError) as err:
        ls_remote_tags("avf", url)
    assert "avf" in str(err.value) and url in str(err.value)


@pytest.mark.parametrize("tag,pkgver", [
    ("android-16.0.0_r3", "16.0.0.r3"), ("1.7.7", "1.7.7"), ("v6.1.158", "6.1.158"),
])
def test_tag_pkgver_is_a_valid_arch_pkgver(tag, pkgver):
    assert tag_pkgver(tag) == pkgver


# --- ttyd and libwebsockets: plain X.Y.Z and vX.Y.Z tags -------------------------------------

TTYD_PATTERN = r"^(\d+)\.(\d+)\.(\d+)$"
LWS_PATTERN = r"^v(\d+)\.(\d+)\.(\d+)$"


@pytest.fixture(scope="module")
def ttyd(tmp_path_factory):
    """Shaped like tsl0922/ttyd: annotated tags up to 1.7.4, lightweight from 1.7.5, `main`
    moving on after the last release."""
    from .conftest import git_repo
    repo = git_repo(tmp_path_factory.mktemp("ttyd") / "ttyd")
    commits = {}
    for tag in ("1.6.0", "1.6.3", "1.7.0", "1.7.3", "1.7.4", "1.7.5", "1.7.6", "1.7.7"):
        commits[tag] = repo.commit({"CMakeLists.txt": f"project(ttyd VERSION {tag})\n"}, f"release {tag}")
        annotated = tuple(map(int, tag.split("."))) < (1, 7, 5)
        repo.tag(tag, message=f"ttyd {tag}" if annotated else None)
    repo.commit({"src/server.c": "/* after 1.7.7 */\n"}, "main: unreleased work")
    return repo, commits


def test_ttyd_newest_release_is_the_lightweight_1_7_7_not_main(ttyd):
    repo, commits = ttyd
    rel = latest(GitTagsUpstream("ttyd", repo.url, TTYD_PATTERN))
    assert (rel.version, rel.pkgver) == ("1.7.7", "1.7.7")
    assert rel.commit == commits["1.7.7"] != repo.head()


def test_ttyd_old_annotated_and_new_lightweight_tags_both_peel_to_commits(ttyd):
    repo, commits = ttyd
    tags = ls_remote_tags("ttyd", repo.url)
    assert "main" not in tags and not any(t.endswith("^{}") for t in tags)
    for name in ("1.6.0", "1.7.4"):
        assert tags[name].object != tags[name].commit == commits[name]
    for name in ("1.7.5", "1.7.7"):
        assert tags[name].object == tags[name].commit == commits[name]
    up = GitTagsUpstream("ttyd", repo.url, TTYD_PATTERN)
    assert [t.name for t in matching(up, tags)] == ["1.6.0", "1.6.3", "1.7.0", "1.7.3", "1.7.4",
                                                    "1.7.5", "1.7.6", "1.7.7"]


def test_ttyd_1_7_10_would_sort_above_1_7_9(tmp_path):
    from .conftest import git_repo
    repo = git_repo(tmp_path / "ttyd")
    for tag in ("1.7.10", "1.7.9", "1.7.7"):
        repo.commit({"v": tag}, tag)
        repo.tag(tag)
    assert latest(GitTagsUpstream("ttyd", repo.url, TTYD_PATTERN)).version == "1.7.10"


@pytest.fixture(scope="module")
def libwebsockets(tmp_path_factory):
    """Shaped like warmcat/libwebsockets: vX.Y.Z releases, plus tags that are not releases."""
    from .conftest import git_repo
    repo = git_repo(tmp_path_factory.mktemp("lws") / "libwebsockets")
    commits = {}
    for tag in ("v3.2.3", "v4.2.0", "v4.3.2", "v4.3.3", "v4.4.0-rc1", "v4.3-stable-snap", "4.3.3x",
                "v1.7-chrome47-firefox41"):
        commits[tag] = repo.commit({"CMakeLists.txt": f"# {tag}\n"}, tag)
        repo.tag(tag, message=f"libwebsockets {tag}" if tag.startswith("v4.3") else None)
    return repo, commits


def test_libwebsockets_v_prefixed_tags_give_a_pkgver_without_the_v(libwebsockets):
    repo, commits = libwebsockets
    rel = latest(GitTagsUpstream("libwebsockets", repo.url, LWS_PATTERN))
    assert (rel.version, rel.pkgver, rel.commit) == ("v4.3.3", "4.3.3", commits["v4.3.3"])


def test_libwebsockets_pattern_can_pin_a_major(libwebsockets):
    repo, commits = libwebsockets
    repo.commit({"CMakeLists.txt": "# v5\n"}, "v5")
    repo.tag("v5.0.0")
    try:
        assert latest(GitTagsUpstream("lws", repo.url, LWS_PATTERN)).version == "v5.0.0"
        assert latest(GitTagsUpstream("lws", repo.url, r"^v(4)\.(\d+)\.(\d+)$")).version == "v4.3.3"
    finally:
        repo.repo.git.tag("-d", "v5.0.0")


def test_an_optional_group_that_did_not_match_sorts_lowest(libwebsockets):
    repo, commits = libwebsockets
    up = GitTagsUpstream("lws", repo.url, r"^v(\d+)\.(\d+)(?:\.(\d+))?(?:-stable-snap)?$")
    names = [t.name for t in matching(up, ls_remote_tags("lws", repo.url))]
    assert names.index("v4.3-stable-snap") < names.index("v4.3.2")


# --- the source interface and retries for git remotes ------------------------------------

def test_query_is_the_git_tags_source(ttyd):
    from avfrepo.sources import query, source_for
    repo, commits = ttyd
    assert source_for("git-tags").query is query_git
    assert query(GitTagsUpstream("ttyd", repo.url, TTYD_PATTERN)).commit == commits["1.7.7"]


def test_a_missing_repository_is_not_retried(tmp_path, slept):
    from avfrepo.config import NetPolicy
    url = (tmp_path / "nowhere").as_uri()
    with pytest.raises(UpstreamError, match="does not appear to be a git repository"):
        ls_remote_tags("ttyd", url, NetPolicy(timeout=10, retries=3, backoff=1))
    assert slept == []


def test_a_failing_http_remote_is_retried_then_named(http_server, slept):
    from avfrepo.config import NetPolicy
    from .conftest import Answer
    refs = "/ttyd.git/info/refs?service=git-upload-pack"
    srv = http_server({refs: Answer(503, b"maintenance\n")})
    url = srv.url("/ttyd.git")
    with pytest.raises(UpstreamError) as err:
        ls_remote_tags("ttyd", url, NetPolicy(timeout=10, retries=2, backoff=0.5))
    msg = str(err.value)
    assert msg.startswith(f"upstream ttyd ({url}): git ls-remote failed") and "503" in msg
    assert "gave up after 3 attempts" in msg
    assert srv.requests == [refs] * 3 and slept == [0.5, 1.0]


def test_an_http_remote_that_does_not_exist_is_not_retried(http_server, slept):
    srv = http_server({})
    with pytest.raises(UpstreamError, match="not found"):
        ls_remote_tags("ttyd", srv.url("/missing.git"))
    assert len(srv.requests) == 1 and slept == []


def test_a_hanging_git_remote_times_out(http_server, slept):
    from avfrepo.config import NetPolicy
    from .conftest import Answer

    def hang(server, path):
        server.stopping.wait(30)
        return Answer(503)

    srv = http_server({"/slow.git/info/refs?service=git-upload-pack": hang})
    with pytest.raises(UpstreamError, match=r"no answer within 0.5 s \(gave up after 2 attempts\)"):
        ls_remote_tags("slow", srv.url("/slow.git"), NetPolicy(timeout=0.5, retries=1, backoff=0))
    assert len(srv.requests) == 2
