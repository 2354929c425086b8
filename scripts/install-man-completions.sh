#!/usr/bin/env bash
# Install avfrepo's man page and its bash/zsh completions, generated from the CLI's own
# argparse parser (argparse-manpage, shtab: the [native] extra), so they never disagree with
# `avfrepo --help`. Called by setup-debian.sh and setup-arch.sh after avfrepo is in .venv.
#   as root:  /usr/local/share/man/man1/avfrepo.1,
#             /usr/local/share/bash-completion/completions/avfrepo,
#             /usr/local/share/zsh/site-functions/_avfrepo
#   otherwise the same under .venv/share, with a line saying how to use them.
# $AVFREPO_SHARE_DIR overrides the share folder (the tests install into a temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AVFREPO_VENV:-.venv}"
case "$VENV" in /*) ;; *) VENV="$(pwd)/$VENV" ;; esac
if [ -n "${AVFREPO_SHARE_DIR:-}" ]; then
  SHARE="$AVFREPO_SHARE_DIR"
elif [ "$(id -u)" -eq 0 ]; then
  SHARE=/usr/local/share
else
  SHARE="$VENV/share"
fi
if ! "$VENV/bin/python" -c 'import shtab, build_manpages' 2>/dev/null; then
  echo "install-man-completions: skipped: shtab and argparse-manpage are not in $VENV (pip install -e '.[native]')" >&2
  exit 0
fi

man="$SHARE/man/man1/avfrepo.1"
bash_file="$SHARE/bash-completion/completions/avfrepo"
zsh_file="$SHARE/zsh/site-functions/_avfrepo"
mkdir -p "${man%/*}" "${bash_file%/*}" "${zsh_file%/*}"
version="$("$VENV/bin/avfrepo" --version)"
"$VENV/bin/argparse-manpage" --module avfrepo.cli --function parser --prog avfrepo \
  --project-name avfrepo --version "${version#avfrepo }" --manual-title "avfrepo manual" \
  --description "keep the signed pacman repository [avf] of Arch Linux ARM for the Android Terminal app current" \
  --output "$man.tmp"
# a text line that starts with an apostrophe is a roff control line: argparse-manpage 4.x leaves
# it as is (boot's description has one), so guard it with \& as man-pages(7) says
sed -i "s/^'/\\\\\&'/" "$man.tmp"
mv "$man.tmp" "$man"
"$VENV/bin/avfrepo" completion bash > "$bash_file.tmp" && mv "$bash_file.tmp" "$bash_file"
"$VENV/bin/avfrepo" completion zsh > "$zsh_file.tmp" && mv "$zsh_file.tmp" "$zsh_file"
echo "install-man-completions: $man, $bash_file, $zsh_file" >&2
if [ -z "${AVFREPO_SHARE_DIR:-}" ] && [ "$(id -u)" -ne 0 ]; then
  echo "install-man-completions: not root, so under $SHARE: use them with" \
       "MANPATH=$SHARE/man: and \`source $bash_file\` (zsh: fpath+=($SHARE/zsh/site-functions))" >&2
fi
