"""avf-desktop: the Android Terminal's display, as Arch Linux ARM packages draw on it.

The Terminal app of Android 16 shows the VM's virtio GPU (vm_config.json `gpu.backend`
"2d") when the VM is named "debian". AVF's own Debian image puts weston there as a user
service behind a socket, with an `enable_display` command; nixos-avf runs weston on DRM with
seatd and the user in video/render/seat (facts file §8). This package is this project's own
take on the same pieces, for Arch Linux ARM:

- weston.service / weston.socket (user units): weston with systemd-notify, Xwayland and the
  kiosk shell on the DRM backend; the socket %t/wayland-0 is enabled for every user by a
  user preset, so the first Wayland client starts weston;
- avf-enable-display: starts weston now (for X11 programs, or to see the display at once);
- the seat: seatd (enabled by the system preset; weston's libseat is told to use it) rather
  than a logind session: weston runs as a user service, outside any login session, which
  logind would not give the devices to; seatd gives them to the group seat;
- groups: a sysusers.d file of this package puts droid (avf-config's user) in seat, video and
  render: the display's groups live with the display, so an image without avf-desktop keeps
  droid out of them;
- environment.d: WAYLAND_DISPLAY, DISPLAY, and mesa's zink over the CPU Vulkan driver
  (MESA_LOADER_DRIVER_OVERRIDE=zink, LIBGL_ALWAYS_SOFTWARE=1, as AVF's enable_display sets);
- modules-load.d: virtio_gpu (linux-avf builds DRM_VIRTIO_GPU as a module and requires it).

Its dependencies are Arch Linux ARM's: weston, xorg-xwayland, seatd are built unmodified from
Arch's PKGBUILDs (ALARM's own PKGBUILDs tree has none of them), mesa and vulkan-swrast are
split packages of ALARM's extra/mesa. It reads no upstream: its version is its own (1, then
pkgrel bumps when a template changes).
"""

from __future__ import annotations

from ..config import AVF_URL
from . import Context, Rendered, SourceFile, sha256, template

NAME = "avf-desktop"
UPSTREAMS: tuple[str, ...] = ()

USER = "droid"                       # avf-config's user, the one the Terminal logs in

# Arch Linux ARM packages the display needs
DEPENDS = ("systemd", "weston", "xorg-xwayland", "mesa", "vulkan-swrast", "seatd", "avf-config")

# file in templates/avf-desktop -> (installed path, mode)
STATIC = {
    "weston.service": ("/usr/lib/systemd/user/weston.service", "644"),
    "weston.socket": ("/usr/lib/systemd/user/weston.socket", "644"),
    "avf-desktop.environment": ("/usr/lib/environment.d/50-avf-desktop.conf", "644"),
    "avf-desktop.sysusers": ("/usr/lib/sysusers.d/avf-desktop.conf", "644"),
    "avf-desktop.modules-load": ("/usr/lib/modules-load.d/avf-desktop.conf", "644"),
}
ENABLED = ("seatd.service",)          # system preset
USER_ENABLED = ("weston.socket",)     # user preset (every user's manager)


def render(ctx: Context) -> Rendered:
    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []

    def add(name: str, dest: str, mode: str = "644", **values: object) -> None:
        files[name] = template(f"avf-desktop/{name}", **values)
        sources.append(SourceFile(name, sha256(files[name]), dest, mode))

    for name, (dest, mode) in STATIC.items():
        add(name, dest, mode)
    add("avf-enable-display", "/usr/bin/avf-enable-display", "755", user=USER)
    add("80-avf-desktop.preset", "/usr/lib/systemd/system-preset/80-avf-desktop.preset", units=list(ENABLED))
    add("80-avf-desktop.user-preset", "/usr/lib/systemd/user-preset/80-avf-desktop.preset", units=list(USER_ENABLED))
    files["avf-desktop.install"] = template("avf-desktop/avf-desktop.install", units=list(ENABLED),
                                            user_units=list(USER_ENABLED))
    files["PKGBUILD"] = template("avf-desktop/PKGBUILD.j2", sources=sources, depends=list(DEPENDS), url=AVF_URL)
    return Rendered(NAME, "1", {}, files)
