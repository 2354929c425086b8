#!/usr/bin/env bash
# One unattended update cycle of a self-hosted [avf] builder: sync -> build -> verify.
# Run by avfrepo-update.service (see avfrepo-update.timer), or by hand. Exit status:
# 0 nothing to do or published, 1 something refused or failed (details in the journal).
#
# Environment (set in the unit or by hand):
#   AVFREPO_DIR        checkout of this repository (default: the script's parent folder)
#   AVFREPO_CONFIG     config file (default: $AVFREPO_DIR/avfrepo.toml)
#   AVFREPO_GNUPGHOME  GnuPG home with the signing key (default: [signing] gnupg_home)
set -euo pipefail
dir="${AVFREPO_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$dir"
avfrepo="$dir/.venv/bin/avfrepo"
export AVFREPO_CONFIG="${AVFREPO_CONFIG:-$dir/avfrepo.toml}"

git pull --ff-only --quiet || echo "update-cycle: git pull failed, continuing with the local checkout" >&2

status=0
"$avfrepo" sync --commit || status=$?
if [ "$status" -eq 2 ]; then
  echo "update-cycle: configuration error, stopping" >&2
  exit 2
fi
# a refused sync (status 1) still builds what is already in pkgbuilds/
"$avfrepo" build || status=1
"$avfrepo" verify || status=1
if git rev-parse --abbrev-ref '@{upstream}' >/dev/null 2>&1; then
  git push --quiet || echo "update-cycle: git push failed" >&2
fi
exit "$status"
