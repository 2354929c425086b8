"""avf-config: what turns an Arch Linux ARM root into an AVF Terminal guest.

Units of the guest agents come from upstream (`guest/<svc>/debian/service` at the tracked
AVF tag) adapted to Arch; the rest (ttyd, avahi, virtiofs mounts, network, zram, the user
`droid`) are this project's own templates.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import AVF_URL
from . import Context, RenderProblem, Rendered, SourceFile, sha256, template

NAME = "avf-config"
UPSTREAMS = ("avf",)
TREES = {"avf": ("guest",)}          # reads guest/<svc>/debian/service

# file in templates/avf-config -> (installed path, mode)
STATIC = {
    "ttyd.service": ("/usr/lib/systemd/system/ttyd.service", "644"),
    "avf-ttyd-cert.service": ("/usr/lib/systemd/system/avf-ttyd-cert.service", "644"),
    "avahi_ttyd.service": ("/usr/lib/systemd/system/avahi_ttyd.service", "644"),
    "mnt-internal.mount": ("/usr/lib/systemd/system/mnt-internal.mount", "644"),
    "mnt-shared.mount": ("/usr/lib/systemd/system/mnt-shared.mount", "644"),
    "mnt-backup.mount": ("/usr/lib/systemd/system/mnt-backup.mount", "644"),
    "20-avf-wired.network": ("/usr/lib/systemd/network/20-avf-wired.network", "644"),
    "zram-avf.conf": ("/usr/lib/systemd/zram-generator.conf.d/avf.conf", "644"),
    "avf.sysusers": ("/usr/lib/sysusers.d/avf.conf", "644"),
    "avf.tmpfiles": ("/usr/lib/tmpfiles.d/avf.conf", "644"),
    "avf-droid.sudoers": ("/etc/sudoers.d/avf-droid", "440"),
}
# always enabled by the preset, besides the guest agents' units
ENABLED = ("ttyd.service", "avahi_ttyd.service", "avahi-daemon.service", "mnt-internal.mount",
           "mnt-shared.mount", "mnt-backup.mount", "systemd-networkd.service",
           "systemd-resolved.service")

_BIN = re.compile(r"(?<![\w/.-])(?:/usr)?/s?bin/(?=[\w.+-])")
_RENAMED_UNITS = {"virtiofs_internal.service": "mnt-internal.mount"}


def guest_units(tree: Path) -> dict[str, str]:
    """guest/<svc>/debian/service -> {svc: unit text}, sorted by service name."""
    units = {}
    for f in sorted((tree / "guest").glob("*/debian/service")):
        units[f.parent.parent.name] = f.read_text()
    return units


def adapt_unit(text: str) -> tuple[str, list[str]]:
    """A Debian image unit -> the Arch unit, and the list of changes made.

    - Arch has merged /bin, /sbin and /usr/sbin into /usr/bin.
    - The Debian image mounts /mnt/internal by a service; [avf] uses a mount unit.
    """
    changes: list[str] = []
    new = _BIN.sub("/usr/bin/", text)
    if new != text:
        changes.append("binaries moved to /usr/bin")
    for old, repl in _RENAMED_UNITS.items():
        if old in new:
            new = new.replace(old, repl)
            changes.append(f"{old} -> {repl}")
    if not new.endswith("\n"):
        new += "\n"
    return new, changes


def render(ctx: Context) -> Rendered:
    release = ctx.releases["avf"]
    tree = ctx.trees["avf"]
    units = guest_units(tree)
    if not units:
        raise RenderProblem(f"no guest/*/debian/service unit at {release.version}: the layout changed")
    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []
    notes = []
    for svc, text in units.items():
        name = f"{svc}.service"
        adapted, changes = adapt_unit(text)
        if changes:
            notes.append(f"{name}: " + ", ".join(changes))
        files[name] = adapted.encode()
        sources.append(SourceFile(name, sha256(files[name]), f"/usr/lib/systemd/system/{name}"))
    for name, (dest, mode) in STATIC.items():
        files[name] = template(f"avf-config/{name}", repo=ctx.config.repo.name)
        sources.append(SourceFile(name, sha256(files[name]), dest, mode))
    enabled = [f"{svc}.service" for svc in units] + list(ENABLED)
    files["80-avf.preset"] = template("avf-config/80-avf.preset", units=enabled)
    sources.append(SourceFile("80-avf.preset", sha256(files["80-avf.preset"]),
                              "/usr/lib/systemd/system-preset/80-avf.preset"))
    files["avf-config.install"] = template("avf-config/avf-config.install", units=enabled)
    files["PKGBUILD"] = template("avf-config/PKGBUILD.j2", sources=sources, url=AVF_URL)
    return Rendered(NAME, release.pkgver, {"avf": release.version}, files, tuple(notes))
