"""PKGBUILD text: arrays over several lines with quotes and comments, functions, assignments."""

from __future__ import annotations

import pytest

from avfrepo.formats import pkgbuild as pkgb

TEXT = """\
pkgname=('a'
         "b-${x}"  # a comment ) with a paren
         c)
source=("git+https://h/x#tag=v${pkgver}?signed"
        'local.patch'
        'name::https://h/f.tar.gz'
        'renamed::local2.conf')
pkgver=1.2
f() {
  provides=('p')
  replaces=('q'
            'r')
  echo "}"
}
"""


def test_arrays_words_and_spans():
    span = pkgb.array(TEXT, "pkgname")
    assert TEXT[span.start:span.end].endswith("c)")
    assert pkgb.words(TEXT[span.inner:span.inner_end]) == ["a", "b-${x}", "c"]
    assert pkgb.array(TEXT, "nothing") is None
    f = pkgb.function(TEXT, "f")
    assert TEXT[f.inner:f.inner_end].startswith("  provides") and TEXT[f.inner_end:f.end] == "}"
    r = pkgb.array(TEXT, "replaces", f.inner, f.inner_end)
    assert pkgb.words(TEXT[r.inner:r.inner_end]) == ["q", "r"]
    assert pkgb.assignment(TEXT, "pkgver").group("value") == "1.2"


def test_local_sources_are_the_files_beside_the_pkgbuild():
    span = pkgb.array(TEXT, "source")
    assert pkgb.local_sources(pkgb.words(TEXT[span.inner:span.inner_end])) == ["local.patch", "local2.conf"]


@pytest.mark.parametrize("text, reason", [
    ("a=('x\n", "unterminated single quote"),
    ("a=(x $(ls))\n", "command substitution"),
    ("a=(x\n", "no closing parenthesis"),
    ("a=(x)\na=(y)\n", "assigned 2 times"),
])
def test_what_is_not_understood_is_an_error(text, reason):
    with pytest.raises(ValueError, match=reason):
        pkgb.array(text, "a")
