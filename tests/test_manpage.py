"""The man page and the bash/zsh completions the set-up scripts install
(scripts/install-man-completions.sh), generated from the CLI's own parser."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avfrepo.cli import parser

ROOT = Path(__file__).resolve().parents[1]


def commands(p: argparse.ArgumentParser, prefix: str = "avfrepo") -> list[str]:
    """Every command and sub-command the parser knows, as typed: `avfrepo key init`."""
    found = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += commands(sub, f"{prefix} {name}")
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """What the set-up scripts install, into a temporary share folder instead of /usr/local/share."""
    share = tmp_path_factory.mktemp("share")
    res = subprocess.run(["bash", str(ROOT / "scripts" / "install-man-completions.sh")], capture_output=True,
                         text=True, timeout=120,
                         env={**os.environ, "AVFREPO_SHARE_DIR": str(share), "AVFREPO_VENV": sys.prefix})
    assert res.returncode == 0, res.stderr
    assert "skipped" not in res.stderr, res.stderr
    return share


def render(page: Path) -> str:
    """The page as a reader sees it: man -l, else groff; troff's warnings (a broken macro, a
    text line taken for a request) fail the test."""
    env = {**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8"}
    if shutil.which("man"):
        argv = ["man", "-l", str(page)]
    elif shutil.which("groff"):
        argv = ["groff", "-man", "-Tutf8", "-ww", "-P-cbou", str(page)]
    else:
        pytest.skip("neither man nor groff is installed: the page cannot be rendered here")
    res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return res.stdout


def test_the_man_page_names_every_command_and_renders_cleanly(installed):
    page = installed / "man" / "man1" / "avfrepo.1"
    text = render(page)
    assert text.startswith("AVFREPO(1)")
    wanted = commands(parser())
    assert {"avfrepo sync", "avfrepo key init", "avfrepo repo rollback", "avfrepo completion"} <= set(wanted)
    missing = [c for c in wanted if c not in text]
    assert not missing, f"not in the man page: {missing}"
    for option in ("--config", "--expire", "--dry-run"):
        assert option in text


def complete(script: Path, *words: str) -> list[str]:
    """What bash offers for the last of WORDS, with the installed script sourced."""
    line = " ".join(words)
    prog = (f"source {script}\n"
            f"COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; COMP_LINE='{line}'; COMP_POINT={len(line)}\n"
            "_shtab_avfrepo avfrepo \"${COMP_WORDS[-1]}\" \"${COMP_WORDS[-2]}\"\n"
            "printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_bash_completion_completes_commands_and_options(installed):
    script = installed / "bash-completion" / "completions" / "avfrepo"
    assert complete(script, "avfrepo", "sy") == ["sync"]
    assert complete(script, "avfrepo", "key", "i") == ["init", "import"]
    assert complete(script, "avfrepo", "key", "init", "--ex") == ["--expire"]
    assert complete(script, "avfrepo", "completion", "") == ["bash", "zsh"]


def test_zsh_completion_is_a_valid_compdef_function(installed):
    script = installed / "zsh" / "site-functions" / "_avfrepo"
    assert script.read_text().startswith("#compdef avfrepo\n")
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed: its syntax check (zsh -n) cannot run here")
    res = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
