"""`avfrepo chroot init|update`: the shipped Arch Linux ARM configuration and the commands.

mkarchroot and arch-nspawn (Arch devtools) cannot run on this Debian host, so their command
lines are tested through a named test double standing in for the subprocess runner; the
shipped pacman.conf and makepkg.conf are checked with the real pacman-conf and bash; the
real path runs in test_chroot_init_for_real wherever mkarchroot exists.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

from avfrepo import config as config_mod
from avfrepo.build import chroot
from avfrepo.errors import AvfrepoError

from ..conftest import require_tools


class ChrootRunnerDouble:
    """TEST DOUBLE for avfrepo.run.run at the mkarchroot/arch-nspawn boundary: records each
    command line and, like mkarchroot, leaves a root directory behind."""

    def __init__(self):
        self.calls = []

    def __call__(self, argv, **kw):
        self.calls.append((list(argv), kw))
        if argv[0] == "mkarchroot":
            os.makedirs(argv[-2], exist_ok=True)


def have_all(tool: str) -> str:
    return f"/usr/bin/{tool}"


def binfmt_dir(tmp_path, enabled: bool | None):
    d = tmp_path / "binfmt"
    d.mkdir(exist_ok=True)
    if enabled is not None:
        (d / "qemu-aarch64").write_text(("enabled" if enabled else "disabled") + "\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n")
    return d


@pytest.fixture
def ccfg(tmp_path):
    cfg = config_mod.parse({"build": {"backend": "makechrootpkg", "chroot": "chroot", "packager": "Jo <jo@example.invalid>"}},
                           tmp_path / "avfrepo.toml", tmp_path)
    return cfg


def test_init_writes_the_shipped_configs_and_runs_mkarchroot(ccfg, tmp_path):
    double = ChrootRunnerDouble()
    res = chroot.init(ccfg, runner=double, which=have_all, machine="x86_64",
                      binfmt=binfmt_dir(tmp_path, True), euid=0)
    c = tmp_path / "chroot"
    (argv, kw), = double.calls
    assert argv == ["mkarchroot", "-C", str(c / "pacman.conf"), "-M", str(c / "makepkg.conf"), str(c / "root"), "base-devel"]
    assert kw["log_file"] == ccfg.logs / ".chroot/init.log"
    assert (c / "pacman.conf").read_text() == chroot.template("pacman.conf")
    assert 'PACKAGER="Jo <jo@example.invalid>"' in (c / "makepkg.conf").read_text()
    assert res.to_json()["commands"] == [argv]


def test_update_runs_pacman_syu_in_the_root(ccfg, tmp_path):
    (tmp_path / "chroot/root").mkdir(parents=True)
    double = ChrootRunnerDouble()
    chroot.update(ccfg, runner=double, which=have_all, machine="aarch64", euid=0)
    (argv, _), = double.calls
    c = tmp_path / "chroot"
    assert argv == ["arch-nspawn", "-C", str(c / "pacman.conf"), "-M", str(c / "makepkg.conf"), str(c / "root"),
                    "pacman", "-Syu", "--noconfirm"]


@pytest.mark.parametrize("case, match", [
    ("no-binfmt", "cannot run aarch64 binaries: install qemu-user-static"),
    ("disabled-binfmt", "missing or disabled"),
    ("no-devtools", "mkarchroot not found: install Arch's devtools"),
    ("not-root", "needs root"),
    ("exists", "already exists: refresh it with `avfrepo chroot update`"),
    ("bad-packager", "packager"),
])
def test_init_refuses_bad_hosts_and_inputs_with_nothing_written(ccfg, tmp_path, case, match):
    enabled = {"no-binfmt": None, "disabled-binfmt": False}.get(case, True)
    kw = dict(runner=ChrootRunnerDouble(), which=have_all, machine="x86_64", binfmt=binfmt_dir(tmp_path, enabled), euid=0)
    if case == "no-devtools":
        kw["which"] = lambda t: None
    elif case == "not-root":
        kw["euid"] = 1000
    elif case == "exists":
        (tmp_path / "chroot/root").mkdir(parents=True)
    elif case == "bad-packager":
        ccfg = dataclasses.replace(ccfg, build=dataclasses.replace(ccfg.build, packager='x"; rm -rf /; "'))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(AvfrepoError, match=match):
        chroot.init(ccfg, **kw)
    assert kw["runner"].calls == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_update_without_a_chroot_says_init(ccfg, tmp_path):
    double = ChrootRunnerDouble()
    with pytest.raises(AvfrepoError, match="avfrepo chroot init"):
        chroot.update(ccfg, runner=double, which=have_all, machine="aarch64", euid=0)
    assert double.calls == [] and not (tmp_path / "chroot").exists()


def test_shipped_pacman_conf_is_arch_linux_arm_aarch64(tmp_path):
    require_tools("pacman-conf")
    conf = tmp_path / "pacman.conf"
    conf.write_text(chroot.template("pacman.conf"))
    def pc(*args):
        return subprocess.run(["pacman-conf", "--config", str(conf), *args], capture_output=True, text=True,
                              check=True).stdout.split()
    assert pc("--repo-list") == ["core", "extra", "alarm"]
    assert pc("Architecture") == ["aarch64"]
    for repo in ("core", "extra", "alarm"):
        assert pc("--repo", repo, "Server") == [f"http://mirror.archlinuxarm.org/aarch64/{repo}"]
    assert {"PackageRequired", "DatabaseOptional"} <= set(pc("SigLevel"))


def test_shipped_makepkg_conf_targets_aarch64_zst(ccfg, tmp_path):
    conf = tmp_path / "makepkg.conf"
    conf.write_text(chroot.render_makepkg_conf(ccfg))
    out = subprocess.run(["bash", "-ec", f'source "{conf}"; echo "$CARCH|$CHOST|$PKGEXT|$PACKAGER|${{OPTIONS[*]}}"'],
                         capture_output=True, text=True, check=True).stdout.strip().split("|")
    assert out[:4] == ["aarch64", "aarch64-unknown-linux-gnu", ".pkg.tar.zst", "Jo <jo@example.invalid>"]
    assert "!debug" in out[4].split()


@pytest.mark.skipif(shutil.which("mkarchroot") is None,
                    reason="mkarchroot (Arch devtools) is not installed here; this runs on Arch builders")
def test_chroot_init_for_real(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mkarchroot needs root")
    cfg = config_mod.parse({"build": {"chroot": str(tmp_path / "chroot")}}, tmp_path / "c.toml", tmp_path)
    chroot.init(cfg)
    assert (tmp_path / "chroot/root/usr/bin/makepkg").is_file()
    assert "Architecture = aarch64" in (tmp_path / "chroot/root/etc/pacman.conf").read_text()
