"""The makechrootpkg backend.

It cannot run on this Debian host (devtools is not packaged), so its command line is tested
through a named test double standing in for the subprocess runner; the real path runs in
test_makechrootpkg_builds_for_real wherever makechrootpkg and a chroot exist.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from avfrepo.build.backends import MakechrootpkgBackend, MakepkgBackend, backend_for
from avfrepo.config import BuildConfig
from avfrepo.errors import AvfrepoError

from .conftest import write_pkg


class RecordingRunnerDouble:
    """TEST DOUBLE for avfrepo.run.run at the makechrootpkg boundary: records calls and
    leaves, like makechrootpkg would, a package file in PKGDEST."""

    def __init__(self, produce: str | None = None):
        self.calls = []
        self.pkgbuilds = []
        self.produce = produce

    def __call__(self, argv, **kw):
        self.calls.append((argv, kw))
        self.pkgbuilds.append((kw["cwd"] / "PKGBUILD").read_bytes())
        if self.produce:
            src = self.produce
            shutil.copy(src, os.path.join(kw["env"]["PKGDEST"], os.path.basename(src)))


def chroot_cfg(cfg, tmp_path):
    (tmp_path / "chroot/root").mkdir(parents=True)
    return dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, backend="makechrootpkg",
                                                              chroot=tmp_path / "chroot"))


def test_makechrootpkg_command_line_is_clean_chroot_unprivileged_with_built_deps(cfg, tmp_path):
    c = chroot_cfg(cfg, tmp_path)
    backend = MakechrootpkgBackend(c, runner=RecordingRunnerDouble())
    argv = backend.command([tmp_path / "a-1-1-any.pkg.tar.zst", tmp_path / "b-1-1-any.pkg.tar.zst"])
    assert argv == ["makechrootpkg", "-c", "-r", str(tmp_path / "chroot"), "-U", c.build.user,
                    "-I", str(tmp_path / "a-1-1-any.pkg.tar.zst"), "-I", str(tmp_path / "b-1-1-any.pkg.tar.zst"),
                    "--", "--noconfirm", "--noprogressbar"]


def test_makechrootpkg_backend_runs_in_a_copy_and_collects_the_package(cfg, tmp_path):
    write_pkg(cfg, "t-a")
    built = MakepkgBackend(cfg).build(cfg.pkgbuilds / "t-a", [], tmp_path / "log", tmp_path / "made")
    double = RecordingRunnerDouble(produce=str(built[0]))
    c = chroot_cfg(cfg, tmp_path)
    out = MakechrootpkgBackend(c, runner=double).build(cfg.pkgbuilds / "t-a", [], tmp_path / "log2", tmp_path / "out")
    (argv, kw), = double.calls
    assert argv[0] == "makechrootpkg" and kw["cwd"] != cfg.pkgbuilds / "t-a"
    assert double.pkgbuilds == [(cfg.pkgbuilds / "t-a/PKGBUILD").read_bytes()]
    assert [p.name for p in out] == [built[0].name] and out[0].parent == tmp_path / "out"


def test_makechrootpkg_without_a_chroot_says_how_to_create_one(cfg, tmp_path):
    c = dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, backend="makechrootpkg",
                                                           chroot=tmp_path / "none"))
    with pytest.raises(AvfrepoError, match="mkarchroot"):
        MakechrootpkgBackend(c, runner=RecordingRunnerDouble()).build(cfg.pkgbuilds, [], tmp_path / "l", tmp_path / "o")


def test_backend_for_follows_the_config(cfg):
    assert backend_for(cfg).name == "makepkg"
    chroot = dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, backend="makechrootpkg"))
    assert backend_for(chroot).name == "makechrootpkg"


@pytest.mark.skipif(shutil.which("makechrootpkg") is None,
                    reason="makechrootpkg (Arch devtools) is not installed here; this runs on Arch builders")
def test_makechrootpkg_builds_for_real(cfg, tmp_path):
    chroot = os.environ.get("AVFREPO_TEST_CHROOT")
    if not chroot or not os.path.isdir(os.path.join(chroot, "root")):
        pytest.skip("set AVFREPO_TEST_CHROOT to a chroot made with `mkarchroot CHROOT/root base-devel`")
    from pathlib import Path
    c = dataclasses.replace(cfg, build=dataclasses.replace(cfg.build, backend="makechrootpkg", chroot=Path(chroot)))
    write_pkg(c, "t-a")
    out = MakechrootpkgBackend(c).build(c.pkgbuilds / "t-a", [], tmp_path / "log", tmp_path / "out")
    assert [p.name.startswith("t-a-1.0-1-any.pkg.tar") for p in out] == [True]
