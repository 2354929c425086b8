#!/usr/bin/env bash
# Prepare an Arch Linux machine (root, pacman) to run avfrepo with its default backend,
# makechrootpkg, and its tests.
#
# What it does, and why:
#  - installs devtools (makechrootpkg, mkarchroot, arch-nspawn: the clean-chroot backend),
#    base-devel (makepkg), git, gnupg, zstd, libarchive (bsdtar), and what the tests and the
#    image step drive: e2fsprogs, dosfstools, mtools, pigz, xz, patch, rust (cargo), systemd;
#  - on x86_64 hosts, qemu-user-static-binfmt: the aarch64 build chroot runs its binaries
#    through qemu's binfmt handler (check: ls /proc/sys/fs/binfmt_misc/qemu-aarch64);
#  - the Python dependencies from Arch's repositories where packaged (pyalpm, GitPython,
#    requests, Jinja, packaging, pytest, pytest-xdist, PyYAML), so pip installs avfrepo only;
#  - creates the unprivileged build user (makepkg refuses to run as root; makechrootpkg -U);
#  - creates .venv (with the system site packages) and installs avfrepo into it, editable,
#    and its man page and bash/zsh completions (scripts/install-man-completions.sh).
# Idempotent: running it again only re-checks. The chroot itself is made by
# `avfrepo chroot init` (see the README), not here: it downloads a few hundred MB.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_USER="${AVFREPO_BUILD_USER:-avfbuild}"
PACKAGES=(
  base-devel devtools git gnupg zstd libarchive
  e2fsprogs dosfstools mtools pigz xz patch rust systemd
  python python-pip pyalpm python-gitpython python-requests python-jinja python-packaging
  python-pytest python-pytest-xdist python-yaml
)
if [ "$(uname -m)" = x86_64 ]; then
  PACKAGES+=(qemu-user-static qemu-user-static-binfmt)
fi

need=()
for p in "${PACKAGES[@]}"; do
  pacman -Q "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-arch: missing Arch packages: ${need[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup-arch: installing ${need[*]}" >&2
  pacman -Syu --noconfirm --needed "${need[@]}"
fi

if [ "$(id -u)" -eq 0 ] && ! id -u "$BUILD_USER" >/dev/null 2>&1; then
  echo "setup-arch: creating build user $BUILD_USER" >&2
  useradd --system --create-home --home-dir "/var/lib/$BUILD_USER" --shell /usr/bin/nologin "$BUILD_USER"
fi

if [ "$(uname -m)" = x86_64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  # the handler is registered by systemd-binfmt at boot; in a container or right after the
  # install, register it now (needs binfmt_misc mounted, e.g. a --privileged container)
  systemctl restart systemd-binfmt.service 2>/dev/null \
    || /usr/lib/systemd/systemd-binfmt 2>/dev/null \
    || echo "setup-arch: note: no aarch64 binfmt handler yet (reboot, or run in a --privileged container)" >&2
fi

if [ ! -x .venv/bin/python ]; then
  python -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
# the [native] extra (neither has dependencies of its own): man page and bash/zsh completions
# from the CLI's parser, as root into /usr/local/share
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps 'shtab>=1.7' 'argparse-manpage>=4'
bash scripts/install-man-completions.sh
