"""`avfrepo demo`, the README's first command, runs the whole cycle and cleans up after itself."""

from __future__ import annotations

import pytest

from avfrepo.demo import DISTRACTOR_TAGS, make_demo_upstream, run_demo

from .conftest import require_build_user, require_tools


def test_demo_upstream_has_the_real_shape(tmp_path):
    avf = make_demo_upstream(tmp_path / "v")
    tags = {t.name for t in avf.repo.tags}
    assert {f"android-16.0.0_r{r}" for r in range(1, 11)} <= tags and set(DISTRACTOR_TAGS) <= tags
    assert avf.repo.commit("android-16.0.0_r2") == avf.repo.commit("android-16.0.0_r3")
    assert avf.repo.tags["android-16.0.0_r2"].tag is not None      # annotated
    assert avf.repo.tags["android-16.0.0_r3"].tag is None          # lightweight
    assert not (avf.path / "guest/forwarder_guest/debian").exists()
    assert (avf.path / "guest/forwarder_guest/.cargo/config.toml").exists()
    assert not list((avf.path / "guest").glob("*/Cargo.lock"))


@pytest.mark.slow
def test_demo_runs_the_whole_cycle(tmp_path_factory):
    require_tools("makepkg", "repo-add", "pacman", "gpg")
    require_build_user()
    lines: list[str] = []
    # a short folder: gpg-agent's socket path (<demo>/client/gnupg/S.gpg-agent.browser) must fit
    # in 107 bytes, and a test's own tmp_path under an xdist worker (popen-gwN/) can be longer
    demo = tmp_path_factory.mktemp("demo")
    assert run_demo(str(demo), progress=lines.append) == 0
    text = "\n".join(lines)
    assert "5. verify: OK" in text and "installed avf-base, avf-config and avf-keyring" in text
    assert "7. second sync: nothing to do" in text and "3. sync: avf-base new 1-1" in text
    assert "ttyd.service" in text and "mnt-backup.mount" in text
