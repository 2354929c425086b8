"""Arch's rules, each written once in formats/archrules.py: property tests against the rule as
stated (makepkg's lint), and against python-alpm, the ALPM project's own parsers."""

from __future__ import annotations

import string

import pytest
from alpm import alpm_types as t
from hypothesis import assume, given, strategies as st

from avfrepo.formats import archrules as ar

from ..fuzz import PROPERTY

NAME_CHARS = string.ascii_lowercase + string.digits + "@._+-"
PKGVER_CHARS = string.ascii_letters + string.digits + "._+"
ARCH_CHARS = string.ascii_letters + string.digits + "_"

names = st.tuples(st.sampled_from(NAME_CHARS.replace("-", "").replace(".", "")),
                  st.text(NAME_CHARS, max_size=30)).map("".join)
pkgvers = st.text(PKGVER_CHARS, min_size=1, max_size=20)
pkgrels = st.one_of(st.integers(0, 10**6).map(str),
                    st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda r: f"{r[0]}.{r[1]}"))
epochs = st.integers(0, 10**6)
arches = st.text(ARCH_CHARS, min_size=1, max_size=12)
versions = st.tuples(epochs, pkgvers, pkgrels).map(lambda v: (f"{v[0]}:" if v[0] else "") + f"{v[1]}-{v[2]}")
# any text, weighted to the characters the rules are about
texts = st.text(st.one_of(st.sampled_from(NAME_CHARS + PKGVER_CHARS + ":/ \t\n"), st.characters()), max_size=24)


@PROPERTY
@given(names)
def test_a_name_of_arch_characters_not_starting_with_hyphen_or_dot_is_a_pkgname(name):
    assert ar.valid_pkgname(name)
    t.PackageRelation(name)                 # python-alpm agrees


@PROPERTY
@given(texts)
def test_pkgname_is_exactly_the_arch_rule(text):
    expected = (text != "" and all(c in NAME_CHARS for c in text) and text[0] not in "-.")
    assert ar.valid_pkgname(text) == expected


@pytest.mark.parametrize("name", ["", "-a", ".a", "Abc", "a b", "a/b", "a:b", "a\n", "\u00e9", "a;rm", "a\u0660"])
def test_pkgname_refuses(name):
    assert not ar.valid_pkgname(name)


@PROPERTY
@given(texts)
def test_pkgver_is_arch_characters_only_so_never_hyphen_colon_slash_or_space(text):
    assert ar.valid_pkgver(text) == (text != "" and all(c in PKGVER_CHARS for c in text))
    if any(c in text for c in "-:/ \t\n"):
        assert not ar.valid_pkgver(text)


@PROPERTY
@given(texts)
def test_pkgrel_is_integer_dot_integer(text):
    head, dot, tail = text.partition(".")
    expected = (head.isascii() and head.isdigit()
                and (not dot or (tail.isascii() and tail.isdigit())))
    assert ar.valid_pkgrel(text) == expected


@PROPERTY
@given(texts)
def test_epoch_is_ascii_digits(text):
    assert ar.valid_epoch(text) == (text.isascii() and text.isdigit())


@PROPERTY
@given(texts)
def test_arch_is_alphanumerics_and_underscore(text):
    assert ar.valid_arch(text) == (text != "" and all(c in ARCH_CHARS for c in text))


def test_non_strings_are_never_valid():
    for check in (ar.valid_pkgname, ar.valid_pkgver, ar.valid_pkgrel, ar.valid_epoch, ar.valid_arch,
                  ar.valid_version):
        assert not check(None) and not check(1) and not check(b"a")


@PROPERTY
@given(epochs, pkgvers, pkgrels)
def test_a_version_splits_back_into_its_parts_and_alpm_reads_the_same(epoch, pkgver, pkgrel):
    text = (f"{epoch}:" if epoch else "") + f"{pkgver}-{pkgrel}"
    assert ar.valid_version(text)
    assert ar.split_version(text) == (epoch, pkgver, pkgrel)
    t.FullVersion.from_str(text)


@pytest.mark.parametrize("text", ["1.0", "1.0-", "-1", "1.0-1-1", "a:1.0-1", "1.0-x", "1:2:1.0-1",
                                  "\u0661:1.0-1", "1.0-1\n", " 1.0-1", "1.0-1.1.1"])
def test_not_a_version(text):
    assert not ar.valid_version(text) and ar.split_version(text) is None


@PROPERTY
@given(names, versions, arches, st.sampled_from(ar.COMPRESSIONS))
def test_a_package_file_name_is_its_parts_and_splits_back(name, version, arch, ext):
    filename = f"{name}-{version}-{arch}.pkg.tar.{ext}"
    ar.check_package_file(name, version, arch, filename)
    assert ar.split_package_filename(filename) == ar.PackageFileName(name, version, arch, ext)


@PROPERTY
@given(names, versions, arches, st.sampled_from(ar.COMPRESSIONS),
       st.sampled_from(["", ".sig", ".old", "\n", "x"]), st.sampled_from(["", "x", "-1"]))
def test_a_file_name_other_than_the_pkginfo_says_is_refused(name, version, arch, ext, tail, extra):
    filename = f"{name}{extra}-{version}-{arch}.pkg.tar.{ext}{tail}"
    assume(tail or extra)
    with pytest.raises(ValueError, match="file name does not match its .PKGINFO"):
        ar.check_package_file(name, version, arch, filename)


def test_an_uncompressed_or_unknown_compression_is_not_a_published_package_file():
    for filename in ("a-1.0-1-any.pkg.tar", "a-1.0-1-any.pkg.tar.rar", "a-1.0-1-any.pkg.tarball"):
        with pytest.raises(ValueError, match="file name does not match"):
            ar.check_package_file("a", "1.0-1", "any", filename)
    assert ar.split_package_filename("a-1.0-1-any.pkg.tar") == ar.PackageFileName("a", "1.0-1", "any", "")


@pytest.mark.parametrize("what,values", [
    ("pkgname", ("-a", "1.0-1", "any")), ("pkgname", ("Abc", "1.0-1", "any")),
    ("version", ("a", "1.0~rc1-1", "any")), ("version", ("a", "1.0", "any")),
    ("arch", ("a", "1.0-1", "a-b")), ("arch", ("a", "1.0-1", "")),
])
def test_check_package_file_names_the_broken_rule(what, values):
    name, version, arch = values
    with pytest.raises(ValueError, match=f"{what} .* is not valid"):
        ar.check_package_file(name, version, arch, f"{name}-{version}-{arch}.pkg.tar.zst")


def test_split_package_filename_only_reads_the_shape():
    assert ar.split_package_filename("a-b-2:1.0-1.1-aarch64.pkg.tar.zst") == ar.PackageFileName(
        "a-b", "2:1.0-1.1", "aarch64", "zst")
    for filename in ("a-1.0-any.pkg.tar.zst", "a-1.0-1-any.tar.zst", "a-1.0-1-any.pkg.tar.zst\n",
                     "a-1.0-1-any.pkg.tar.zst.sig", "-1.0-1-any.pkg.tar.zst"):
        assert ar.split_package_filename(filename) is None, filename
