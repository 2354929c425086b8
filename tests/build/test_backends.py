"""The makechrootpkg backend.

It cannot run on this Debian host (devtools is not packaged), so its command line is tested
through a named test double standing in for the subprocess runner; the real path runs in
test_makechrootpkg_builds_for_real wherever makechrootpkg and a chroot exist.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from avfrepo.build import build
from avfrepo.build.backends import MakechrootpkgBackend, MakepkgBackend, backend_for, prepare_copy, stable_workdir
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
    argv = backend.command([tmp_path / "a-1-1-any.pkg.tar.zst", tmp_path / "b-1-1-any.pkg.tar.zst"], worker=2)
    assert argv == ["makechrootpkg", "-c", "-r", str(tmp_path / "chroot"), "-l", "avfrepo-2", "-U", c.build.user,
                    "-I", str(tmp_path / "a-1-1-any.pkg.tar.zst"), "-I", str(tmp_path / "b-1-1-any.pkg.tar.zst"),
                    "--", "--noconfirm", "--noprogressbar"]
    assert "-l" not in backend.command([])


def test_makechrootpkg_subrelease_rewrites_only_the_private_copy(cfg, tmp_path):
    write_pkg(cfg, "t-a")
    double = RecordingRunnerDouble()
    c = chroot_cfg(cfg, tmp_path)
    with pytest.raises(AvfrepoError, match="produced no package"):
        MakechrootpkgBackend(c, runner=double).build(cfg.pkgbuilds / "t-a", [], tmp_path / "l", tmp_path / "o",
                                                     worker=3, pkgrel="1.1")
    (argv, _), = double.calls
    assert argv[argv.index("-l") + 1] == "avfrepo-3"
    assert b"\npkgrel=1.1\n" in double.pkgbuilds[0]
    assert b"\npkgrel=1\n" in (cfg.pkgbuilds / "t-a/PKGBUILD").read_bytes()


@pytest.mark.parametrize("name", ["-rf", "T-a", "..", ".t-a", "t a", "t/a", ""])
def test_a_build_directory_is_named_by_arch_s_pkgname_rule(cfg, name):
    # a pkgbase by Arch's rule (formats/archrules.py): the check this replaced let a name
    # starting with '-' and capitals through
    with pytest.raises(AvfrepoError, match="not usable as a build directory name"):
        with stable_workdir(cfg, name):
            pass


def test_subrelease_needs_exactly_one_pkgrel_line(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "PKGBUILD").write_text("pkgname=x\npkgver=1\n")
    with pytest.raises(AvfrepoError, match="exactly one `pkgrel=` line"):
        prepare_copy(src, tmp_path / "work", "1.1")
    with pytest.raises(AvfrepoError, match="invalid pkgrel"):
        prepare_copy(src, tmp_path / "work2", "1;rm")


class MakepkgStandInRunnerDouble:
    """TEST DOUBLE for avfrepo.run.run at the makechrootpkg boundary (devtools cannot run
    here): records every makechrootpkg command line and, standing in for the chroot, builds
    the private copy it was handed with the real makepkg into PKGDEST."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.calls = {}

    def __call__(self, argv, *, cwd, env, log_file, timeout):
        from avfrepo import makepkg as mk
        work = Path(cwd)
        name = next(l.split("=", 1)[1] for l in (work / "PKGBUILD").read_text().splitlines() if l.startswith("pkgname="))
        self.calls[name] = list(argv)
        mk.makepkg(self.cfg, work, ["--force", "--nodeps", "--noconfirm", "--noprogressbar"],
                   env={"PKGDEST": env["PKGDEST"]}, log_file=log_file)


def test_chroot_builds_get_earlier_packages_of_the_run_and_a_copy_per_worker(cfg, tmp_path):
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b", depends=("t-a",))
    write_pkg(cfg, "t-c", depends=("t-b",))
    write_pkg(cfg, "t-d")
    c = chroot_cfg(cfg, tmp_path)
    double = MakepkgStandInRunnerDouble(c)
    report = build(c, jobs=2, backend=MakechrootpkgBackend(c, runner=double))
    assert {r.pkgbase: r.status for r in report.results} == dict.fromkeys(["t-a", "t-b", "t-c", "t-d"], "published")
    installed = {}
    for name, argv in double.calls.items():
        assert argv[:4] == ["makechrootpkg", "-c", "-r", str(tmp_path / "chroot")]
        assert argv[4] == "-l" and argv[5] in ("avfrepo-1", "avfrepo-2")
        installed[name] = sorted(Path(argv[i + 1]).name for i, a in enumerate(argv) if a == "-I")
    # t-c gets t-b and, through it, t-a (the chroot has neither); independent ones get nothing
    assert installed == {"t-a": [], "t-d": [], "t-b": ["t-a-1.0-1-any.pkg.tar.zst"],
                         "t-c": ["t-a-1.0-1-any.pkg.tar.zst", "t-b-1.0-1-any.pkg.tar.zst"]}


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
