"""avf-keyring: the repository key in the layout `pacman-key --populate` reads."""

from __future__ import annotations

import pytest

from avfrepo.packages import Context, RenderProblem, avf_keyring
from avfrepo.signing import export_public, signing_key


def test_keyring_holds_the_key_trust_line_and_is_versioned_by_key_date(cfg):
    key = signing_key(cfg.signing)
    public = export_public(cfg.signing, key.fingerprint, armor=False)
    r = avf_keyring.render(Context(cfg, {}, {}, key, public))
    assert r.files["avf.gpg"] == public
    assert r.files["avf-trusted"] == f"{key.fingerprint}:4:\n".encode()
    assert r.files["avf-revoked"] == b""
    assert r.pkgver == key.created.strftime("%Y%m%d")
    assert "/usr/share/pacman/keyrings/avf.gpg" in r.files["PKGBUILD"].decode()
    assert "pacman-key --populate avf" in r.files["avf-keyring.install"].decode()


def test_keyring_without_key_is_a_render_problem_saying_what_to_do(cfg):
    with pytest.raises(RenderProblem, match="avfrepo key init"):
        avf_keyring.render(Context(cfg, {}, {}))
