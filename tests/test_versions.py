"""Arch package versions: parsing, printing, and libalpm's ordering (checked against pyalpm)."""

from __future__ import annotations

import pyalpm
import pytest

from avfrepo.versions import Version, valid_pkgver, vercmp

V = Version.parse


@pytest.mark.parametrize("text, pkgver, pkgrel, epoch", [
    ("16.0.0.r10-1", "16.0.0.r10", "1", 0),
    ("1.0-2.1", "1.0", "2.1", 0),
    ("2:0.9_beta+git-3", "0.9_beta+git", "3", 2),
])
def test_parse_splits_epoch_pkgver_pkgrel_and_str_round_trips(text, pkgver, pkgrel, epoch):
    v = V(text)
    assert (v.pkgver, v.pkgrel, v.epoch) == (pkgver, pkgrel, epoch)
    assert str(v) == text
    assert V(str(v)) == v


def test_parse_ignores_surrounding_whitespace():
    assert str(V("  1.0-1\n")) == "1.0-1"


def test_epoch_zero_is_not_printed():
    assert str(V("0:1.0-1")) == "1.0-1"
    assert str(Version("1.0", "1", 0)) == "1.0-1"
    assert str(Version("1.0", "1", 3)) == "3:1.0-1"


def test_constructor_defaults_to_pkgrel_1_without_epoch():
    assert str(Version("16.0.0.r1")) == "16.0.0.r1-1"


@pytest.mark.parametrize("text", [
    "", "1.0", "1.0-", "-1", "1.0-x", "1.0-1-2", "a:1.0-1", "1:2:3-1", "1.0-1.2.3", ":1.0-1",
])
def test_invalid_version_strings_raise_value_error(text):
    with pytest.raises(ValueError, match="not an Arch package version"):
        V(text)


def test_an_epoch_or_pkgrel_is_ascii_digits_only():
    # Python's \d also matches other scripts' digits (int() reads them): the rule is Arch's [0-9]
    for text in ("\u0661:1.0-1", "1.0-\u0661", "\uff11:1.0-1"):
        with pytest.raises(ValueError, match="not an Arch package version"):
            V(text)


@pytest.mark.parametrize("text", ["1.0 beta-1", "1.0/2-1"])
def test_parse_rejects_pkgver_that_makepkg_would_reject(text):
    with pytest.raises(ValueError):
        V(text)


@pytest.mark.parametrize("newer, older", [
    ("16.0.0.r10-1", "16.0.0.r9-1"),      # numeric, not lexical
    ("1.0-2", "1.0-1"),                    # pkgrel
    ("1:0.1-1", "2.0-1"),                  # epoch beats everything
    ("1.0.1-1", "1.0-1"),
    ("1.0-1", "1.0rc1-1"),                 # letters after a number make it older
    ("1.0-1.1", "1.0-1"),
])
def test_ordering_follows_libalpm(newer, older):
    assert pyalpm.vercmp(newer, older) > 0          # the reference itself
    assert V(newer) > V(older)
    assert V(older) < V(newer)
    assert vercmp(newer, older) > 0 and vercmp(older, newer) < 0
    assert max(V(older), V(newer)) == V(newer)


def test_sorting_a_list_uses_vercmp_not_string_order():
    tags = ["16.0.0.r10-1", "16.0.0.r2-1", "16.0.0.r9-1", "1:1.0-1", "16.0.0.r1-1"]
    assert [str(v) for v in sorted(map(V, tags))] == [
        "16.0.0.r1-1", "16.0.0.r2-1", "16.0.0.r9-1", "16.0.0.r10-1", "1:1.0-1"]


def test_one_point_zero_is_older_than_one_point_zero_point_zero_as_libalpm_says():
    assert pyalpm.vercmp("1.0", "1.0.0") < 0
    assert V("1.0-1") < V("1.0.0-1")
    assert V("1.0-1") != V("1.0.0-1")


def test_equal_versions_compare_equal_and_not_less():
    assert V("1.0-1") == V("1.0-1")
    assert not V("1.0-1") < V("1.0-1")
    assert V("1.0-1") <= V("1.0-1") and V("1.0-1") >= V("1.0-1")


def test_version_never_equals_a_plain_string():
    assert V("1.0-1") != "1.0-1"
    with pytest.raises(TypeError):
        V("1.0-1") < "1.0-2"


@pytest.mark.parametrize("a, b", [("01-1", "1-1"), ("1_0-1", "1.0-1")])
def test_equal_versions_have_equal_hashes(a, b):
    assert pyalpm.vercmp(a, b) == 0
    assert V(a) == V(b)
    assert hash(V(a)) == hash(V(b))
    assert len({V(a), V(b)}) == 1


@pytest.mark.parametrize("pkgver", ["16.0.0.r10", "1.0", "0.9_beta+git", "A1"])
def test_valid_pkgver_accepts_makepkg_pkgvers(pkgver):
    assert valid_pkgver(pkgver)


@pytest.mark.parametrize("pkgver", ["", "1:0", "1.0-1", "1 0", "1/0", "1.0\n", "é"])
def test_valid_pkgver_rejects_colon_hyphen_slash_whitespace_and_empty(pkgver):
    assert not valid_pkgver(pkgver)
