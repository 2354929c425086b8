#!/usr/bin/env bash
# Inside a fresh Arch Linux ARM container (build-one.yml: the root verified by
# scripts/ci/verify_download.py, imported with `docker import`), with the checkout at the
# current directory: the tool chain from ALARM's repositories (pacman checks every package
# against the keyring of that verified root), then `job.py build` for the named pkgbases.
# No key and no token reach this script.
#   PKGBASES  pkgbases to build, separated by spaces (checked again by job.py)
set -euo pipefail
pacman-key --init
pacman-key --populate archlinuxarm
pacman -Syu --noconfirm --needed base-devel git python python-pip pyalpm python-gitpython \
  python-requests python-jinja python-packaging gnupg
if compgen -G 'deps/*.pkg.tar.zst' >/dev/null; then
  pacman -U --noconfirm deps/*.pkg.tar.zst     # what earlier layers built (their artifacts)
fi
id -u avfbuild >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/avfbuild avfbuild
python -m venv --system-site-packages /venv
/venv/bin/pip install --no-deps --no-build-isolation -e .
read -r -a bases <<<"${PKGBASES:?PKGBASES: the pkgbases to build}"
exec /venv/bin/python scripts/ci/job.py build --plan-dir plan --out out "${bases[@]}"
