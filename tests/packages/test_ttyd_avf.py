"""ttyd-avf: ttyd pinned to the release commit, AVF's a11y patch only where it applies."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from avfrepo import config as config_mod
from avfrepo.demo import make_ttyd_upstream, write_config
from avfrepo.formats import srcinfo
from avfrepo.sync import sync

from ..conftest import require_build_user, require_tools


@pytest.fixture
def ttyd(tmp_path):
    return make_ttyd_upstream(tmp_path / "upstream" / "ttyd")


def ttyd_cfg(tmp_path, avf, signing_home, ttyd, pattern=r"^(\d+)\.(\d+)\.(\d+)$"):
    require_tools("makepkg", "patch")
    require_build_user()
    extra = textwrap.dedent(f"""
        [upstreams.ttyd]
        kind = "git-tags"
        url = "{ttyd.url}"
        tag_pattern = '{pattern}'
        """)
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home, extra=extra,
                                        enable=("ttyd-avf",)))


def test_ttyd_is_pinned_to_the_release_commit_with_the_a11y_patch(tmp_path, avf, signing_home, ttyd):
    cfg = ttyd_cfg(tmp_path, avf, signing_home, ttyd)
    report = sync(cfg)
    assert [(p.name, p.action, p.new) for p in report.packages] == [("ttyd-avf", "new", "1.7.7-1")]
    pkgbuild = (cfg.pkgbuilds / "ttyd-avf/PKGBUILD").read_text()
    commit = ttyd.repo.commit("1.7.7").hexsha
    assert f"\n  'ttyd::git+{ttyd.url}#commit={commit}'\n" in pkgbuild
    patch = (cfg.pkgbuilds / "ttyd-avf/xtermjs_a11y.patch").read_bytes()
    assert patch == (avf.path / "build/debian/ttyd/xtermjs_a11y.patch").read_bytes()
    info = srcinfo.parse((cfg.pkgbuilds / "ttyd-avf/.SRCINFO").read_text())
    assert info.get("sha256sums") == ["SKIP", hashlib.sha256(patch).hexdigest()]
    assert info.get("provides") == ["ttyd=1.7.7"] and info.get("conflicts") == ["ttyd"]
    assert "libwebsockets" in info.get("depends") and "patch -Np1" in pkgbuild


def test_a11y_patch_is_left_out_with_a_note_where_it_does_not_apply(tmp_path, avf, signing_home, ttyd):
    cfg = ttyd_cfg(tmp_path, avf, signing_home, ttyd, pattern=r"^(1)\.(7)\.([0-6])$")
    report = sync(cfg)
    p = report.packages[0]
    assert (p.action, p.new) == ("new", "1.7.6-1")
    assert any("xtermjs_a11y.patch from AVF android-16.0.0_r10 does not apply to ttyd 1.7.6: left out" in r
               for r in p.reasons)
    assert not (cfg.pkgbuilds / "ttyd-avf/xtermjs_a11y.patch").exists()
    assert "patch -Np1" not in (cfg.pkgbuilds / "ttyd-avf/PKGBUILD").read_text()


def test_new_ttyd_release_bumps_ttyd_avf(tmp_path, avf, signing_home, ttyd):
    from avfrepo.demo import ttyd_html
    cfg = ttyd_cfg(tmp_path, avf, signing_home, ttyd)
    sync(cfg)
    ttyd.commit({"src/html.h": ttyd_html("1.7.8")}, "release 1.7.8")
    ttyd.tag("1.7.8")
    p = sync(cfg).packages[0]
    assert (p.action, p.old, p.new) == ("bump", "1.7.7-1", "1.7.8-1")
    assert ttyd.repo.commit("1.7.8").hexsha in (cfg.pkgbuilds / "ttyd-avf/PKGBUILD").read_text()


def test_own_login_patch_is_left_out_with_a_note_where_it_does_not_apply(tmp_path, avf, signing_home, ttyd):
    """The demo ttyd has no src/pty.c: avfrepo's patch cannot apply, and the report says so."""
    cfg = ttyd_cfg(tmp_path, avf, signing_home, ttyd)
    p = sync(cfg).packages[0]
    assert any(r.startswith("avfrepo's login-vhangup.patch does not apply to ttyd 1.7.7: left out") for r in p.reasons)
    assert not (cfg.pkgbuilds / "ttyd-avf/login-vhangup.patch").exists()


def test_real_ttyd_1_7_7_carries_the_login_patch_and_prepare_applies_it(tmp_path, avf, signing_home):
    """Against ttyd's real repository (AVFREPO_TTYD_GIT, as scripts/setup-debian.sh --tests and
    ci.yml provide it): the rendered PKGBUILD carries login-vhangup.patch, and makepkg's own
    source step (git clone of the pinned commit) and prepare() apply it to the real pty.c."""
    from avfrepo.makepkg import give_to_builder, makepkg
    from avfrepo.packages import template_bytes

    from ..boot.userland import TTYD_TAG, ttyd_git
    git = ttyd_git()
    if git is None:
        pytest.skip(f"needs ttyd's git repository with tag {TTYD_TAG}: set AVFREPO_TTYD_GIT "
                    "(ci.yml fetches it; any clone of github.com/tsl0922/ttyd)")
    own = template_bytes("ttyd-avf/login-vhangup.patch")
    tmp = Path(tempfile.mkdtemp(prefix="ttyd-prepare-"))     # the test's tmp_path is root's only
    try:
        copy = tmp / "ttyd.git"
        subprocess.run(["git", "clone", "-q", "--bare", "--single-branch", "--branch", TTYD_TAG, f"file://{git}",
                        str(copy)], check=True)
        real = SimpleNamespace(url=f"file://{copy}")     # ttyd_cfg reads only .url
        cfg = ttyd_cfg(tmp_path, avf, signing_home, real, pattern=r"^(1)\.(7)\.(7)$")
        p = sync(cfg).packages[0]
        assert (p.action, p.new) == ("new", "1.7.7-1"), p
        pkg = cfg.pkgbuilds / "ttyd-avf"
        assert (pkg / "login-vhangup.patch").read_bytes() == own
        info = srcinfo.parse((pkg / ".SRCINFO").read_text())
        assert "login-vhangup.patch" in info.get("source")
        assert hashlib.sha256(own).hexdigest() in info.get("sha256sums")
        assert not any("login-vhangup.patch" in r for r in p.reasons)
        work = tmp / "ttyd-avf"
        subprocess.run(["cp", "-r", str(pkg), str(work)], check=True)
        give_to_builder(cfg, tmp)             # after the sync: root's git refuses a repository of another user
        makepkg(cfg, work, ["--nobuild", "--nodeps", "--noconfirm"], timeout=300)
        pty = (work / "src/ttyd/src/pty.c").read_text()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert "static void retry_cb(uv_timer_t *timer)" in pty and "n == UV_EIO && process->retry != NULL" in pty
