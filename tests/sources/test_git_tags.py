"""AVF release tags from a local repository shaped like the real one."""

from __future__ import annotations

import pytest

from avfrepo.config import AVF_TAG_PATTERN, GitTagsUpstream
from avfrepo.errors import UpstreamError
from avfrepo.sources.git_tags import latest, ls_remote_tags, matching, tag_pkgver


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
