#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (root, apt, PyPI) to run avfrepo and its tests.
#
# What it does, and why (see shared HOST-TOOLS notes):
#  - installs the Arch tool chain Debian ships: pacman, makepkg, repo-add (pacman 6.0.2),
#    bsdtar (makepkg and repo-add need it, Debian does not pull it in), fakeroot, zstd, gnupg;
#  - installs the -dev packages pyalpm needs to compile against Debian's libalpm;
#  - installs what the tests drive besides: xz-utils and patch (kernel sources and patches),
#    systemd (systemctl presets the image, systemd-analyze checks the units), cargo (the guest
#    agents' crates; skipped when a cargo is already on PATH, e.g. rustup's);
#  - creates the unprivileged build user makepkg needs (it refuses to run as root);
#  - creates .venv and installs avfrepo with its test extras into it, and its man page and
#    bash/zsh completions (scripts/install-man-completions.sh);
#  - with --tests: also makes what the tests need from the network, so that the tests use none:
#    the boot tests' arm64 Debian userland (debootstrap of trixie through qemu-user-static, about
#    17 min once, cached in $AVFREPO_TEST_CACHE, default /var/cache/avfrepo-test). It compiles
#    ttyd 1.7.7 from its git repository ($AVFREPO_TTYD_GIT; Debian has no ttyd package) with the
#    patch ttyd-avf carries (login-vhangup.patch): without one, it says so and the boot tests skip,
#    naming the reason. A change of only the ttyd step reuses the cached debootstrap (~2 min).
# Idempotent: running it again only re-checks.
set -euo pipefail
cd "$(dirname "$0")/.."

TESTS=0
for arg in "$@"; do
  case "$arg" in
    --tests) TESTS=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; echo "usage: $0 [--tests]"; exit 0 ;;
    *) echo "setup-debian: unknown argument $arg (usage: $0 [--tests])" >&2; exit 2 ;;
  esac
done

BUILD_USER="${AVFREPO_BUILD_USER:-avfbuild}"
APT_PACKAGES=(
  pacman-package-manager makepkg libarchive-tools fakeroot binutils zstd gnupg git
  libalpm-dev libarchive-dev libcurl4-openssl-dev libgpgme-dev libssl-dev pkgconf gcc
  python3-dev python3-venv e2fsprogs file
  dosfstools mtools pigz tar gzip
  linux-source-6.1 make flex bison xz-utils patch systemd
)
# `avfrepo boot` and its tests: qemu-system-aarch64 + UEFI firmware + virtiofsd (in
# qemu-system-common on Debian 12), sgdisk, and for the tests' arm64 Debian userland
# debootstrap + qemu-user-static (aarch64 binaries through binfmt_misc)
APT_PACKAGES+=(
  qemu-system-arm qemu-efi-aarch64 qemu-system-common openssl gdisk
  debootstrap qemu-user-static binfmt-support
)
command -v cargo >/dev/null 2>&1 || APT_PACKAGES+=(cargo)

need_apt=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-debian: missing Debian packages: ${need_apt[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup-debian: installing ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ "$(id -u)" -eq 0 ] && ! id -u "$BUILD_USER" >/dev/null 2>&1; then
  echo "setup-debian: creating build user $BUILD_USER" >&2
  useradd --system --create-home --home-dir "/var/lib/$BUILD_USER" --shell /usr/sbin/nologin "$BUILD_USER"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# binfmt_misc (aarch64 binaries through qemu-user-static) for the boot tests' arm64 userland
if [ "$(id -u)" -eq 0 ] && [ -d /proc/sys/fs/binfmt_misc ] && [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || echo "setup-debian: could not mount binfmt_misc" >&2
fi
if [ "$(id -u)" -eq 0 ] && [ -e /proc/sys/fs/binfmt_misc/status ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
   && command -v update-binfmts >/dev/null; then
  update-binfmts --enable qemu-aarch64 || true
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
# man page and bash/zsh completions from the CLI's parser (as root into /usr/local/share)
bash scripts/install-man-completions.sh
if ((TESTS)); then
  # the boot tests' arm64 userland: network to Debian's archive here, so that no test needs it
  if ! .venv/bin/python -m tests.boot.userland >/dev/null; then
    echo "setup-debian: the boot tests will skip (reason above)" >&2
  fi
fi
