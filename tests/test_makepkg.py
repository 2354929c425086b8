"""avfrepo.makepkg: makepkg run as the build user with the retargeted makepkg.conf."""

from __future__ import annotations

import pytest

from avfrepo import makepkg as mk
from avfrepo.errors import AvfrepoError

PKGBUILD = b"""pkgname=t-memo
pkgver=1.0
pkgrel=1
pkgdesc="printsrcinfo memo check"
arch=(any)
license=(MIT)
depends=('glibc>=2.40')
package() { :; }
"""


def test_printsrcinfo_is_a_function_of_the_files_and_the_run_memo_returns_what_makepkg_printed(
        cfg, printsrcinfo_once_per_input, monkeypatch):
    memo = mk.makepkg
    with monkeypatch.context() as m:                                      # the real makepkg, twice
        m.setattr(mk, "makepkg", printsrcinfo_once_per_input)
        first = mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD})
        again = mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD})
    assert mk.makepkg is memo
    assert first == again and "pkgbase = t-memo" in first and "depends = glibc>=2.40" in first
    assert mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD}) == first          # asked the real makepkg
    assert mk.printsrcinfo(cfg, {"PKGBUILD": PKGBUILD}) == first          # kept for the run
    other = PKGBUILD.replace(b"pkgrel=1", b"pkgrel=2")
    assert "pkgrel = 2" in mk.printsrcinfo(cfg, {"PKGBUILD": other})      # another input, another answer


def test_a_failing_pkgbuild_fails_every_time(cfg):
    broken = PKGBUILD.replace(b"pkgver=1.0", b"pkgver=1:bad:")
    for _ in range(2):
        with pytest.raises(AvfrepoError):
            mk.printsrcinfo(cfg, {"PKGBUILD": broken})
