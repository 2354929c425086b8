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


def test_avf_base_never_depends_on_a_package_that_was_refused(tmp_path, avf, signing_home, monkeypatch):
    """The agents are refused before they ever rendered: the image's meta package must stay
    installable, so it names only packages with a PKGBUILD in pkgbuilds/."""
    from ..conftest import require_tools
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    avf.commit({"guest/new_agent/debian/service": "[Service]\nExecStart=/usr/bin/new_agent\n",
                "guest/new_agent/Cargo.toml": '[package]\nname = "new_agent"\nversion = "0.1.0"\n'}, "new agent")
    avf.tag("android-16.0.0_r11")
    c = base_cfg(tmp_path, avf, signing_home, ("avf-config", "avf-guest-agents", "avf-base"))
    report = sync(c)
    assert {p.name: p.action for p in report.packages}["avf-guest-agents"] == "refused"
    deps = srcinfo.parse((c.pkgbuilds / "avf-base/.SRCINFO").read_text()).get("depends")
    assert "avf-config" in deps and not {"forwarder-guest", "shutdown-runner"} & set(deps)


def test_avf_base_depends_on_every_split_package_the_agents_rendered(tmp_path, avf, signing_home, monkeypatch):
    from ..conftest import require_tools
    require_tools("cargo", "patch")
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")
    c = base_cfg(tmp_path, avf, signing_home, ("avf-config", "avf-guest-agents", "avf-base"))
    assert not sync(c).refused
    deps = srcinfo.parse((c.pkgbuilds / "avf-base/.SRCINFO").read_text()).get("depends")
    assert {"forwarder-guest", "forwarder-guest-launcher", "shutdown-runner", "storage-balloon-agent"} <= set(deps)
    assert "avf-guest-agents" not in deps           # a pkgbase is no package
