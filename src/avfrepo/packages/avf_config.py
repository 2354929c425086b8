"""avf-config: what turns an Arch Linux ARM root into an AVF Terminal guest: the system pieces.

ttyd, avahi, the virtiofs mounts, the backup disk, network, zram, the user `droid` and the
first boot's pacman keyring (avf-keyring-init.service) are
this project's own templates, after what the Debian image of AVF does (facts file §1). The
guest agents' units are not here: each agent package ships and presets its own (Arch puts a
unit with the binary it runs), so avf-config never enables a unit nobody installed.

When systemd-avf is not among the enabled packages, avf-config sets SYSTEMD_RELAX_ESP_CHECKS=1
where bootctl and systemd-boot-update run (systemd_avf.relax_dropins; systemd honours it:
sync's report on systemd-avf says whether the tracked version does) and lets sudo keep it.

Its version follows AVF's release (the Terminal app it fits), though it reads none of AVF's
files: a new AVF tag with the same templates changes no input and bumps nothing.
"""

from __future__ import annotations

from ..config import AVF_URL
from . import Context, Rendered, SourceFile, sha256, systemd_avf, template

NAME = "avf-config"
UPSTREAMS = ("avf",)

# file in templates/avf-config -> (installed path, mode)
STATIC = {
    "ttyd.service": ("/usr/lib/systemd/system/ttyd.service", "644"),
    "avf-ttyd-cert.service": ("/usr/lib/systemd/system/avf-ttyd-cert.service", "644"),
    "avf-keyring-init.service": ("/usr/lib/systemd/system/avf-keyring-init.service", "644"),
    "avahi_ttyd.service": ("/usr/lib/systemd/system/avahi_ttyd.service", "644"),
    "avahi-daemon-avf.conf": ("/usr/lib/systemd/system/avahi-daemon.service.d/avf.conf", "644"),
    "avahi-daemon.avf.conf": ("/usr/share/avf-config/avahi-daemon.conf", "644"),
    "mnt-internal.mount": ("/usr/lib/systemd/system/mnt-internal.mount", "644"),
    "mnt-shared.mount": ("/usr/lib/systemd/system/mnt-shared.mount", "644"),
    "mnt-backup.mount": ("/usr/lib/systemd/system/mnt-backup.mount", "644"),
    "20-avf-wired.network": ("/usr/lib/systemd/network/20-avf-wired.network", "644"),
    "zram-avf.conf": ("/usr/lib/systemd/zram-generator.conf.d/avf.conf", "644"),
    "avf.sysusers": ("/usr/lib/sysusers.d/avf.conf", "644"),
    "avf.tmpfiles": ("/usr/lib/tmpfiles.d/avf.conf", "644"),
    "avf-droid.sudoers": ("/etc/sudoers.d/avf-droid", "440"),
}
# enabled by the preset; the backup disk's mount is wanted by its device (dev-vdb.device), so
# an absent /dev/vdb holds up nothing; the keyring is made on the first boot by
# avf-keyring-init.service (an image carries no keyring: its local key must be the device's own)
ENABLED = ("ttyd.service", "avahi_ttyd.service", "avahi-daemon.service", "mnt-internal.mount",
           "mnt-shared.mount", "mnt-backup.mount", "systemd-networkd.service",
           "systemd-resolved.service", "avf-keyring-init.service")


def relaxes_esp_checks(ctx: Context) -> bool:
    """An image without systemd-avf relies on systemd's SYSTEMD_RELAX_ESP_CHECKS instead."""
    return ctx.config.enabled is not None and systemd_avf.NAME not in ctx.config.enabled


def render(ctx: Context) -> Rendered:
    release = ctx.releases["avf"]
    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []
    for name, (dest, mode) in STATIC.items():
        files[name] = template(f"avf-config/{name}", repo=ctx.config.repo.name)
        sources.append(SourceFile(name, sha256(files[name]), dest, mode))
    if relaxes_esp_checks(ctx):
        for dest, data in systemd_avf.relax_dropins().items():
            name = "relax-" + systemd_avf.RELAX_DROPINS[dest].rsplit("/", 1)[-1]    # relax-system.conf, ...
            files[name] = data
            sources.append(SourceFile(name, sha256(data), "/" + dest))
        files["avf-relax.sudoers"] = template("avf-config/avf-relax.sudoers")
        sources.append(SourceFile("avf-relax.sudoers", sha256(files["avf-relax.sudoers"]),
                                  "/etc/sudoers.d/avf-relax-esp-checks", "440"))
    files["80-avf.preset"] = template("avf-config/80-avf.preset", units=list(ENABLED))
    sources.append(SourceFile("80-avf.preset", sha256(files["80-avf.preset"]),
                              "/usr/lib/systemd/system-preset/80-avf.preset"))
    files["avf-config.install"] = template("avf-config/avf-config.install", units=list(ENABLED))
    files["PKGBUILD"] = template("avf-config/PKGBUILD.j2", sources=sources, url=AVF_URL)
    return Rendered(NAME, release.pkgver, {"avf": release.version}, files)
