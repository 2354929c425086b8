"""avf-config: the system pieces of a Terminal guest (the agents' units live with the agents)."""

from __future__ import annotations

import configparser
import subprocess
import hashlib
import re

from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, avf_config
from avfrepo.sources.git_tags import latest


def render_at(cfg):
    rel = latest(cfg.upstream("avf"))
    return avf_config.render(Context(cfg, {"avf": rel}, {}))


def unit(text: bytes) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text.decode())
    return parser


def test_render_checksums_every_source_and_ships_no_agent_unit(cfg):
    r = render_at(cfg)
    assert r.pkgver == "16.0.0.r10" and r.upstreams == {"avf": "android-16.0.0_r10"}
    pkgbuild = r.files["PKGBUILD"].decode()
    assert f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    names = re.search(r"source=\((.*?)\)", pkgbuild, re.S).group(1).split()
    sums = re.search(r"sha256sums=\((.*?)\)", pkgbuild, re.S).group(1).split()
    assert len(names) == len(sums) == len(avf_config.STATIC) + 1 + 4     # + the ESP relax files
    for name, digest in zip(names, sums):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest, name
    # an agent's unit is its package's (avf-guest-agents): avf-config neither ships nor enables one
    assert not [n for n in r.files if n.startswith(("forwarder_guest", "shutdown_runner", "storage_balloon"))]
    preset = r.files["80-avf.preset"].decode()
    assert "enable ttyd.service" in preset and "shutdown_runner" not in preset
    assert "shutdown_runner" not in r.files["avf-config.install"].decode()


def test_a_new_avf_tag_changes_no_input(cfg, avf):
    a = render_at(cfg)
    from avfrepo.demo import unit_text
    avf.commit({"guest/shutdown_runner/debian/service": unit_text("shutdown_runner", " -v")}, "c")
    avf.tag("android-16.0.0_r11")
    b = render_at(cfg)
    assert b.pkgver == "16.0.0.r11" and b.inputs_hash() == a.inputs_hash()


def test_backup_mount_is_wanted_by_its_device_so_a_missing_vdb_holds_up_nothing(cfg):
    m = unit(render_at(cfg).files["mnt-backup.mount"])
    assert m["Install"]["WantedBy"] == "dev-vdb.device"
    assert "multi-user.target" not in m["Install"].get("WantedBy", "")
    assert m["Unit"]["BindsTo"] == "dev-vdb.device" and m["Unit"]["After"] == "dev-vdb.device"
    assert "nofail" in m["Mount"]["Options"].split(",")
    assert "ConditionPathExists" not in m["Unit"]   # a condition would still wait for the device first


def test_avahi_runs_without_ipv6_from_our_own_config(cfg):
    files = render_at(cfg).files
    dropin = unit(files["avahi-daemon-avf.conf"])
    exec_start = [l for l in files["avahi-daemon-avf.conf"].decode().splitlines() if l.startswith("ExecStart=")]
    assert exec_start == ["ExecStart=", "ExecStart=avahi-daemon -s -f /usr/share/avf-config/avahi-daemon.conf"]
    assert dropin.has_section("Service")
    conf = unit(files["avahi-daemon.avf.conf"])
    assert conf["server"]["use-ipv6"] == "no" and conf["server"]["use-ipv4"] == "yes"
    dests = dict(avf_config.STATIC.values())
    assert "/usr/lib/systemd/system/avahi-daemon.service.d/avf.conf" in dests
    assert "/usr/share/avf-config/avahi-daemon.conf" in dests


def test_without_systemd_avf_the_image_relaxes_the_esp_check_where_bootctl_runs(cfg):
    """cfg enables avf-config and avf-keyring only: systemd-avf is not installed, so the
    variable systemd honours is set for the manager, user sessions, login shells and sudo."""
    files = render_at(cfg).files
    assert "DefaultEnvironment=SYSTEMD_RELAX_ESP_CHECKS=1" in files["relax-system.conf"].decode()
    assert "export SYSTEMD_RELAX_ESP_CHECKS=1" in files["relax-profile.sh"].decode()
    assert 'env_keep += "SYSTEMD_RELAX_ESP_CHECKS"' in files["avf-relax.sudoers"].decode()
    pkgbuild = files["PKGBUILD"].decode()
    assert '"$pkgdir"/usr/lib/systemd/system.conf.d/50-avf-relax-esp-checks.conf' in pkgbuild
    assert '"$pkgdir"/etc/sudoers.d/avf-relax-esp-checks' in pkgbuild


def test_with_systemd_avf_enabled_nothing_is_relaxed(cfg):
    import dataclasses
    with_systemd = dataclasses.replace(cfg, enabled=("avf-config", "systemd-avf"))
    files = avf_config.render(Context(with_systemd, {"avf": latest(cfg.upstream("avf"))}, {})).files
    assert not [n for n in files if "relax" in n]


def test_first_boot_keyring_unit_is_enabled_and_passes_systemd_analyze_verify(cfg, tmp_path):
    """The image carries no pacman keyring: avf-config's unit makes it on the first boot, so the
    phone user types nothing before `sudo pacman -Syu`; the terminal never waits for it."""
    from ..conftest import require_tools
    files = render_at(cfg).files
    u = unit(files["avf-keyring-init.service"])
    assert u["Unit"]["ConditionPathExists"] == "!/var/lib/avf-config/keyring-initialized"
    assert u["Unit"]["ConditionFileIsExecutable"] == "/usr/bin/pacman-key"
    starts = [l for l in files["avf-keyring-init.service"].decode().splitlines() if l.startswith("ExecStart=")]
    assert starts == ["ExecStart=/usr/bin/pacman-key --init", "ExecStart=/usr/bin/pacman-key --populate",
                      "ExecStart=/usr/bin/touch /var/lib/avf-config/keyring-initialized"]
    assert u["Service"]["Type"] == "oneshot" and u["Service"]["StateDirectory"] == "avf-config"
    assert "Before" not in u["Unit"] and u["Install"]["WantedBy"] == "multi-user.target"
    assert "avf-keyring-init" not in files["ttyd.service"].decode()
    assert "enable avf-keyring-init.service" in files["80-avf.preset"].decode()
    assert dict(avf_config.STATIC)["avf-keyring-init.service"][0] == "/usr/lib/systemd/system/avf-keyring-init.service"
    require_tools("systemd-analyze", "pacman-key")      # verify checks that ExecStart's programs exist
    path = tmp_path / "avf-keyring-init.service"
    path.write_bytes(files["avf-keyring-init.service"])
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True)
    problems = [l for l in res.stderr.splitlines() if "avf-keyring-init" in l]
    assert res.returncode == 0 and problems == [], res.stderr
