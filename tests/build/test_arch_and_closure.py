"""`avfrepo build` builds only what [avf] can hold: a makepkg run on a host whose CPU is not
aarch64 is refused before anything is built when it would compile arch=(aarch64) packages;
every artifact's ELF objects must be for its arch (so a wrong binary never passes, whatever
the backend and settings); a publishing run that would leave [avf] missing one of its own
packages something depends on is refused before anything is built. Real makepkg, gpg, repo-add."""

from __future__ import annotations

import platform

import pytest

from avfrepo import config as config_mod
from avfrepo.build import build
from avfrepo.build.backends import MakepkgBackend
from avfrepo.build.plan import plan
from avfrepo.cli import main
from avfrepo.demo import write_config
from avfrepo.errors import AvfrepoError, ConfigError
from avfrepo.formats.repodb import read_db
from avfrepo.sync import sync

from .conftest import write_pkg

TRUE = 'install -Dm755 /usr/bin/true "$pkgdir/usr/bin/$pkgname"'      # this host's x86-64 executable


def with_native(cfg):
    """An arch=(aarch64) package whose binary is the host's /usr/bin/true, and an arch=any one."""
    write_pkg(cfg, "t-native", arch="aarch64", body=TRUE)
    write_pkg(cfg, "t-d")
    return cfg


def cross(cfg) -> config_mod.Config:
    """The same configuration with [build] makepkg_cross = true."""
    text = cfg.file.read_text()
    cfg.file.write_text(text.replace('backend = "makepkg"\n', 'backend = "makepkg"\nmakepkg_cross = true\n', 1))
    return config_mod.load(cfg.file)


# --- the makepkg backend on a host that is not aarch64 --------------------------------------

def test_makepkg_on_an_x86_64_host_refuses_an_aarch64_package_before_building_anything(cfg):
    with_native(cfg)
    x86 = MakepkgBackend(cfg, machine="x86_64")
    with pytest.raises(ConfigError) as exc:
        build(cfg, backend=x86)
    msg = str(exc.value)
    assert msg.startswith("the makepkg backend cannot build t-native (arch=aarch64) on this x86_64 host: makepkg "
                          "compiles with the host's toolchain, which makes x86_64 code, and would label it aarch64. "
                          "Nothing was built.")
    for way in ("makechrootpkg backend on an Arch Linux x86_64 host with qemu-user-static-binfmt",
                "makepkg backend on a native aarch64 host or runner (GitHub's ubuntu-24.04-arm",
                "[build] makepkg_cross = true"):
        assert way in msg
    assert not cfg.logs.exists() and not cfg.repo.path.exists()      # t-d (any) was not built either
    # the plan (CI's sync job plans on x86_64) is not refused; an aarch64 host builds
    assert [r.pkgbase for r in build(cfg, dry_run=True, backend=x86).results] == ["t-d", "t-native"]
    MakepkgBackend(cfg, machine="aarch64").preflight(plan(cfg))
    # arch=any packages still build with makepkg here
    report = build(cfg, only=["t-d"], backend=x86)
    assert [(r.pkgbase, r.status) for r in report.results] == [("t-d", "published")]


def test_cli_build_on_this_host_exits_2_naming_the_ways(cfg, capsys):
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this host is aarch64: makepkg makes aarch64 code here")
    with_native(cfg)
    assert main(["--config", str(cfg.file), "build"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"avfrepo: error: the makepkg backend cannot build t-native (arch=aarch64) on this "
                          f"{platform.machine()} host")
    assert "ubuntu-24.04-arm" in err and "qemu-user-static-binfmt" in err
    assert not cfg.logs.exists() and not cfg.repo.path.exists()


def test_makepkg_cross_must_be_a_boolean(cfg):
    cfg.file.write_text(cfg.file.read_text().replace('backend = "makepkg"\n', 'backend = "makepkg"\nmakepkg_cross = "yes"\n'))
    with pytest.raises(ConfigError, match=r"\[build\] makepkg_cross: must be true or false"):
        config_mod.load(cfg.file)


# --- every artifact's ELF objects are for its arch ------------------------------------------

@pytest.mark.parametrize("how", ["makepkg_cross", "aarch64 host"])
def test_the_artifact_check_refuses_x86_64_code_labelled_aarch64(cfg, how):
    """Past the preflight (the escape, or a host that says it is aarch64), the wrong binary is
    still caught: that package fails, nothing of it is published, the others are."""
    c = cross(with_native(cfg)) if how == "makepkg_cross" else with_native(cfg)
    backend = None if how == "makepkg_cross" else MakepkgBackend(c, machine="aarch64")
    report = build(c, backend=backend)
    res = {r.pkgbase: r for r in report.results}
    assert res["t-native"].status == "failed"
    assert res["t-native"].error == ("t-native-1.0-1-aarch64.pkg.tar.zst: the files of t-native contradict its "
                                     "arch=aarch64: usr/bin/t-native: an ELF object for x86-64, not AArch64 "
                                     "(the package says arch=aarch64)")
    assert res["t-d"].status == "published" and set(read_db(c.repo.db)) == {"t-d"}
    assert not list(c.repo.path.rglob("t-native-*"))


def test_the_artifact_check_refuses_an_elf_object_in_an_any_package(cfg):
    write_pkg(cfg, "t-any-true", body=TRUE)
    report = build(cfg)
    [res] = report.results
    assert res.status == "failed" and res.error.endswith(
        "usr/bin/t-any-true: an ELF object for x86-64 in an arch=any package (an `any` package holds no machine code)")
    assert not cfg.repo.db.exists()


# --- dependency closure, before building ----------------------------------------------------

def test_build_only_refuses_a_package_whose_dependency_is_neither_in_avf_nor_in_the_run(pkgs, tmp_path):
    with pytest.raises(AvfrepoError) as exc:
        build(pkgs, only=["t-c"])
    assert str(exc.value) == (
        "refused before building anything: [avf] would not be installable after this run: t-c 1.0-1 depends on "
        "t-b. [avf]'s own packages make these (t-b: pkgbuilds/), and neither [avf] nor this run has them "
        "(pacman: unable to satisfy dependency): build them in the same run (`avfrepo build --only t-c t-b`)")
    assert not pkgs.logs.exists() and not pkgs.repo.path.exists()
    with pytest.raises(AvfrepoError, match="t-b 1.0-1 depends on t-a>=1.0"):
        build(pkgs, only=["t-c", "t-b"])
    # CI: a later layer builds `--only --unsigned` with the earlier layers' packages installed,
    # not published: not refused; `repo add --plan` checks the closure of all it is handed
    report = build(pkgs, only=["t-c"], unsigned_to=tmp_path / "out")
    assert [(r.pkgbase, r.status) for r in report.results] == [("t-c", "built")]


def test_build_only_avf_base_without_what_it_depends_on_is_refused(cfg, avf, signing_home, tmp_path):
    """The real avf-base (rendered by sync from the demo upstream) depends on the [avf] packages
    rendered with it: `build --only avf-base` alone would publish a meta package pacman cannot install."""
    c = config_mod.load(write_config(cfg.file, avf.url, signing_home, enable=("avf-config", "avf-keyring", "avf-base")))
    assert not sync(c).refused
    with pytest.raises(AvfrepoError, match=r"avf-base 1-1 depends on avf-config, avf-keyring\. .*"
                                           r"`avfrepo build --only avf-base avf-config avf-keyring`"):
        build(c, only=["avf-base"])
    assert not c.logs.exists() and not c.repo.path.exists()
