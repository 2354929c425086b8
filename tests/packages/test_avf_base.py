"""avf-base: the image's meta package follows the set of enabled packages."""

from __future__ import annotations

from avfrepo import config as config_mod
from avfrepo.demo import write_config
from avfrepo.formats import srcinfo
from avfrepo.sync import sync


def base_cfg(tmp_path, avf, signing_home, enable):
    return config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home, enable=enable))


def test_avf_base_depends_on_every_enabled_package_and_the_system(cfg, tmp_path, avf, signing_home):
    c = base_cfg(tmp_path, avf, signing_home, ("avf-config", "avf-base"))
    sync(c)
    info = srcinfo.parse((c.pkgbuilds / "avf-base/.SRCINFO").read_text())
    assert info.version == "1-1" and info.get("arch") == ["any"]
    deps = info.get("depends")
    assert "avf-config" in deps and "base" in deps and "avf-base" not in deps and "avf-keyring" not in deps


def test_enabling_another_package_bumps_avf_base_pkgrel(cfg, tmp_path, avf, signing_home):
    sync(base_cfg(tmp_path, avf, signing_home, ("avf-config", "avf-base")))
    report = sync(base_cfg(tmp_path, avf, signing_home, ("avf-config", "avf-keyring", "avf-base")))
    p = {p.name: p for p in report.packages}["avf-base"]
    assert (p.action, p.old, p.new) == ("bump", "1-1", "1-2")
