"""What a newcomer sees first: a fresh clone (nothing synced, placeholder server), usage
errors from the subcommand at fault, help text on every subcommand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo.cli import main, parser
from avfrepo.sync import sync

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_status_on_an_empty_pkgbuilds_says_nothing_synced_and_exits_3(capsys, cfg):
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "status")
    assert code == 3
    assert "nothing synced yet" in out and "avfrepo sync" in out and "all published and current" not in out
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "status", "--json")
    data = json.loads(out)
    assert code == 3 and data["synced"] is False and data["current"] is False and data["packages"] == []


def test_build_on_an_empty_pkgbuilds_says_nothing_synced_and_exits_1(capsys, cfg):
    before = tree(cfg.root)
    for argv in (["build"], ["build", "--dry-run"], ["build", "--plan", "--format", "github-matrix"]):
        code, out, err = run_cli(capsys, "--config", str(cfg.file), *argv)
        assert code == 1, argv
        assert "nothing synced yet" in err and str(cfg.pkgbuilds) in err and "avfrepo sync" in err
        assert "nothing to build" not in out
    assert tree(cfg.root) == before             # nothing written


def test_pacman_conf_names_a_placeholder_server_and_exits_1(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[repo]\nserver = "https://example.invalid/avf"\n')
    code, out, err = run_cli(capsys, "--config", str(conf), "pacman-conf")
    assert code == 1
    assert out.startswith("# https://example.invalid/avf is a placeholder")
    assert "Server = https://example.invalid/avf/$arch" in out
    assert "placeholder" in err and str(conf) in err and "[repo] server" in err
    conf.write_text('[repo]\nserver = "https://github.com/someone/avfrepo/releases/download/repo"\n')
    code, out, err = run_cli(capsys, "--config", str(conf), "pacman-conf")
    assert code == 0 and "placeholder" not in out + err


@pytest.mark.parametrize("server,placeholder", [
    ("https://example.invalid/avf", True), ("https://repo.example.com/avf", True), ("http://example.org", True),
    ("https://avf.example/x", True), ("https://mirror.test/avf", True), ("https://EXAMPLE.INVALID./a", True),
    ("https://github.com/u/r/releases/download/x", False), ("file:///srv/repo", False),
    ("https://notexample.com/avf", False), ("https://example.community/avf", False),
])
def test_placeholder_server_is_a_reserved_domain(tmp_path, server, placeholder):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text(f'[repo]\nserver = "{server}"\n')
    assert config_mod.load(conf).repo.placeholder_server is placeholder


def test_shipped_config_has_the_placeholder_server():
    assert config_mod.load(ROOT / "avfrepo.toml").repo.placeholder_server


def test_image_dry_run_shows_the_plan_from_pkgbuilds_before_anything_is_published(capsys, cfg):
    sync(cfg)
    before = tree(cfg.root)
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "image", "--dry-run")
    assert code == 1                               # the plan, and a script learns it cannot run yet
    assert "[avf] from pkgbuilds/" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("    avf-")]
    assert ["avf-config", "16.0.0.r10-1", "not", "published"] in rows
    assert f"before building: [avf] is not published at {cfg.repo.published}" in out
    assert "dry run: nothing written" in out
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "image", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 1 and {r["pkgbase"]: r["published"] for r in data["avf_packages"]}["avf-config"] == {
        "avf-config": None}
    assert any("is not published" in p for p in data["problems"])
    assert tree(cfg.root) == before


def test_image_dry_run_on_a_fresh_clone_says_nothing_synced(capsys, cfg):
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "image", "--dry-run")
    assert code == 1 and "before building: nothing synced yet" in out and "dry run: nothing written" in out


def test_rollback_of_an_unknown_package_says_so(capsys, cfg):
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "repo", "rollback", "nosuch")
    assert code == 2                # an unknown name is a usage error, as in sync and build
    assert "nosuch: no such package in [avf]" in err and "avfrepo repo list" in err
    assert "older than nothing" not in err


@pytest.mark.parametrize("argv,usage", [
    (["sync", "--bogus"], "usage: avfrepo sync "),
    (["repo", "list", "--bogus"], "usage: avfrepo repo list "),
    (["build", "-x"], "usage: avfrepo build "),
    (["key", "init", "--nope"], "usage: avfrepo key init "),
])
def test_an_unknown_option_prints_the_subcommands_usage(capsys, argv, usage):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith(usage), err
    assert f"avfrepo {' '.join(argv[:-1])}: error: unrecognized arguments: {argv[-1]}" in err


def test_an_unknown_top_level_option_still_prints_the_top_level_usage(capsys):
    code, _, err = run_cli(capsys, "--bogus", "status")
    assert code == 2 and err.startswith("usage: avfrepo [-h]") and "unrecognized arguments: --bogus" in err


def _subparsers(p: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sp in action.choices.items():
                yield path + (name,), sp, helps.get(name)
                yield from _subparsers(sp, path + (name,))


def test_every_subcommand_has_help_and_a_description_and_every_argument_is_explained():
    found = list(_subparsers(parser()))
    assert {" ".join(path) for path, _, _ in found} >= {"repo list", "repo remove", "repo rollback", "repo add",
                                                        "key init", "key import", "chroot init", "status"}
    for path, sp, summary in found:
        assert summary, f"avfrepo {' '.join(path)}: no one-line help in its parent's list"
        assert sp.description, f"avfrepo {' '.join(path)} --help: no description"
        for action in sp._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"avfrepo {' '.join(path)}: {action.dest} has no help"
