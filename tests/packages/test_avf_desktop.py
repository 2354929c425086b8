"""avf-desktop: the Terminal's display (weston on the virtio GPU, Xwayland, seatd, the user's groups)."""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from avfrepo import config as config_mod
from avfrepo.demo import write_config
from avfrepo.formats import srcinfo
from avfrepo.packages import PKGREL_TOKEN, PKGVER_TOKEN, Context, UnsafeValue, avf_desktop, registry, template
from avfrepo.sync import sync

from ..conftest import require_tools


def render(cfg):
    return avf_desktop.render(Context(cfg, {}, {}))


def unit(text: bytes) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text.decode())
    return parser


def test_registered_as_an_any_package_before_avf_base(cfg):
    names = list(registry())
    assert "avf-desktop" in names and names.index("avf-desktop") < names.index("avf-base")
    r = render(cfg)
    pkgbuild = r.files["PKGBUILD"].decode()
    assert "arch=(any)" in pkgbuild and f"pkgver={PKGVER_TOKEN}" in pkgbuild and f"pkgrel={PKGREL_TOKEN}" in pkgbuild
    names = re.search(r"source=\((.*?)\)", pkgbuild, re.S).group(1).split()
    sums = re.search(r"sha256sums=\((.*?)\)", pkgbuild, re.S).group(1).split()
    assert len(names) == len(sums) == len(avf_desktop.STATIC) + 3
    for name, digest in zip(names, sums):
        assert hashlib.sha256(r.files[name]).hexdigest() == digest, name
    assert '"$pkgdir"/usr/bin/avf-enable-display' in pkgbuild and "install -Dm755" in pkgbuild


def test_weston_user_service_and_socket_as_avf_runs_them(cfg):
    files = render(cfg).files
    svc, sock = unit(files["weston.service"]), unit(files["weston.socket"])
    assert svc["Service"]["Type"] == "notify"
    argv = svc["Service"]["ExecStart"].split()
    assert argv[0] == "/usr/bin/weston"
    assert {"--modules=systemd-notify.so", "--xwayland", "--shell=kiosk-shell.so", "--continue-without-input",
            "--backend=drm"} == set(argv[1:])
    assert svc["Unit"]["Requires"] == "weston.socket" and svc["Unit"]["After"] == "weston.socket"
    assert svc["Service"]["Environment"] == "LIBSEAT_BACKEND=seatd"
    assert set(svc["Service"]["UnsetEnvironment"].split()) == {"WAYLAND_DISPLAY", "DISPLAY"}
    assert sock["Socket"]["ListenStream"] == "%t/wayland-0"
    dests = dict(avf_desktop.STATIC.values())
    assert "/usr/lib/systemd/user/weston.service" in dests and "/usr/lib/systemd/user/weston.socket" in dests
    assert files["80-avf-desktop.user-preset"].decode().splitlines()[-1] == "enable weston.socket"
    assert files["80-avf-desktop.preset"].decode().splitlines()[-1] == "enable seatd.service"
    install = files["avf-desktop.install"].decode()
    assert "systemctl --no-reload preset seatd.service" in install
    assert "systemctl --global preset weston.socket" in install


def test_units_pass_systemd_analyze_verify(cfg, tmp_path):
    """User units, verified by a user manager's rules; weston is not on this host, so ExecStart
    points at a STAND-IN file at a test path (verify only checks the program exists)."""
    require_tools("systemd-analyze")
    files = render(cfg).files
    standin = tmp_path / "bin/weston"
    standin.parent.mkdir()
    standin.write_text("#!/bin/sh\n# STAND-IN for /usr/bin/weston (systemd-analyze verify checks existence)\n")
    standin.chmod(0o755)
    units = tmp_path / "user"
    units.mkdir()
    for name in ("weston.service", "weston.socket"):
        (units / name).write_text(files[name].decode().replace("/usr/bin/weston", str(standin)))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    res = subprocess.run(["systemd-analyze", "--user", "verify", "--man=no", str(units / "weston.socket"),
                          str(units / "weston.service")], capture_output=True, text=True,
                         env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    problems = [l for l in res.stderr.splitlines() if "weston" in l]
    assert res.returncode == 0 and problems == [], res.stderr


def test_seat_groups_environment_and_module(cfg):
    files = render(cfg).files
    sysusers = [l.split() for l in files["avf-desktop.sysusers"].decode().splitlines() if l and not l.startswith("#")]
    assert ["g", "seat", "-", "-"] in sysusers
    assert {("droid", g) for g in ("seat", "video", "render")} <= {(l[1], l[2]) for l in sysusers if l[0] == "m"}
    env = dict(l.split("=", 1) for l in files["avf-desktop.environment"].decode().splitlines()
               if l and not l.startswith("#"))
    assert env == {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0",
                   "MESA_LOADER_DRIVER_OVERRIDE": "zink", "LIBGL_ALWAYS_SOFTWARE": "1"}
    assert "virtio_gpu" in files["avf-desktop.modules-load"].decode().split()
    dests = dict(avf_desktop.STATIC.values())
    assert {"/usr/lib/environment.d/50-avf-desktop.conf", "/usr/lib/sysusers.d/avf-desktop.conf",
            "/usr/lib/modules-load.d/avf-desktop.conf"} <= set(dests)


def test_enable_display_command_is_bash_and_quotes_its_user(cfg, tmp_path):
    script = render(cfg).files["avf-enable-display"].decode()
    assert script.startswith("#!/bin/bash\n") and "user=droid\n" in script
    assert 'systemctl --user --machine="$user@.host" start weston.service' in script
    path = tmp_path / "avf-enable-display"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    quoted = template("avf-desktop/avf-enable-display", user="a b'c").decode()
    assert "user='a b'\"'\"'c'\n" in quoted
    with pytest.raises(UnsafeValue):
        template("avf-desktop/avf-enable-display", user="droid\nrm -rf /")


def test_enable_display_without_a_gpu_says_so(cfg, tmp_path):
    """Run for real where there is no /dev/dri/card*: exit 1 naming the missing GPU."""
    if any(p.startswith("card") for p in (os.listdir("/dev/dri") if os.path.isdir("/dev/dri") else [])):
        pytest.skip("this machine has a GPU")
    path = tmp_path / "avf-enable-display"
    path.write_text(render(cfg).files["avf-enable-display"].decode().replace("user=droid", "user=root"))
    # only `id` on PATH: no modprobe, so nothing is loaded into this machine's kernel
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").symlink_to(shutil.which("id"))
    res = subprocess.run([shutil.which("bash"), str(path)], capture_output=True, text=True,
                         env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert res.returncode == 1 and "no GPU (/dev/dri/card*)" in res.stderr


def test_srcinfo_by_makepkg_depends_on_alarm_display_packages_and_avf_base_pulls_it_in(tmp_path, avf, signing_home):
    c = config_mod.load(write_config(tmp_path / "avfrepo.toml", avf.url, signing_home,
                                     enable=("avf-config", "avf-desktop", "avf-base")))
    assert not sync(c).refused
    info = srcinfo.parse((c.pkgbuilds / "avf-desktop/.SRCINFO").read_text())
    assert info.version == "1-1" and info.get("arch") == ["any"]
    assert {"weston", "xorg-xwayland", "mesa", "vulkan-swrast", "seatd", "avf-config"} <= set(info.get("depends"))
    base = srcinfo.parse((c.pkgbuilds / "avf-base/.SRCINFO").read_text())
    assert "avf-desktop" in base.get("depends")
