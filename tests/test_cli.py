"""The command line: exit codes, --json, --dry-run, --help, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avfrepo.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_teaches_the_cycle_and_exit_codes(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for word in ("sync", "build", "verify", "key init", "exit codes", "avfrepo.toml"):
        assert word in out


def test_sync_help_states_the_bump_rules(capsys):
    code, out, _ = run_cli(capsys, "sync", "--help")
    assert code == 0 and "pkgrel + 1" in out and "never a downgrade" in out and "--dry-run" in out


def test_bad_config_exits_2_naming_file_and_key(capsys, tmp_path):
    bad = tmp_path / "avfrepo.toml"
    bad.write_text('[build]\nbackend = "docker"\n')
    code, _, err = run_cli(capsys, "--config", str(bad), "sync")
    assert code == 2
    assert str(bad) in err and "[build] backend" in err and "makechrootpkg" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avfrepo.toml"]


def test_missing_config_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AVFREPO_CONFIG", raising=False)
    code, _, err = run_cli(capsys, "verify")
    assert code == 2 and "no such config file" in err


def test_config_from_environment_variable(capsys, cfg, monkeypatch):
    monkeypatch.setenv("AVFREPO_CONFIG", str(cfg.file))
    code, out, _ = run_cli(capsys, "pacman-conf")
    assert code == 0
    assert out.startswith(f"[avf]\nSigLevel = Required\nServer = {cfg.repo.server}/$arch\n#")


def test_sync_dry_run_json_then_sync_then_nothing_to_do(capsys, cfg):
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "sync", "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] and not data["written"]
    assert {p["name"]: p["new"] for p in data["packages"]}["avf-config"] == "16.0.0.r10-1"
    assert not cfg.pkgbuilds.exists()
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "sync")
    assert code == 0 and "avf-config" in out and "new" in out
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "sync")
    assert code == 0 and "everything is current" in out


def test_refused_sync_exits_1(capsys, cfg, avf):
    run_cli(capsys, "--config", str(cfg.file), "sync")
    avf.commit({"x": "y"}, "move")
    avf.tag("android-16.0.0_r10", force=True)
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "sync")
    assert code == 1 and "REFUSED" in out and "moved" in out


def test_build_dry_run_and_verify_exit_codes(capsys, cfg):
    run_cli(capsys, "--config", str(cfg.file), "sync")
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "build", "--dry-run", "--json")
    assert code == 0 and [r["status"] for r in json.loads(out)["results"]] == ["planned", "planned"]
    code, _, _ = run_cli(capsys, "--config", str(cfg.file), "verify")
    assert code == 1
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "build")
    assert code == 0 and "building with makepkg" in err
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_key_init_creates_once_and_reports_existing(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "gnupg"\n')
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init", "--json")
    first = json.loads(out)
    assert code == 0 and first["created"] and len(first["fingerprint"]) == 40
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init")
    assert code == 0 and out.startswith(f"using existing key {first['fingerprint']}")


def test_build_without_key_exits_2_before_building(capsys, cfg, tmp_path):
    conf = tmp_path / "nokey.toml"
    conf.write_text(cfg.file.read_text().replace(str(cfg.signing.gnupg_home), str(tmp_path / "empty")))
    run_cli(capsys, "--config", str(cfg.file), "sync")        # something to build
    code, _, err = run_cli(capsys, "--config", str(conf), "build")
    assert code == 2 and "no signing key" in err and "avfrepo key init" in err and err.count("\n") == 1


def test_module_entry_point_runs():
    res = subprocess.run([sys.executable, "-m", "avfrepo", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("avfrepo ")


def test_unknown_command_is_usage_error(capsys):
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2 and "invalid choice" in err


def test_key_import_into_a_temporary_home_from_the_environment(capsys, tmp_path, monkeypatch, signing_home):
    """The unattended path: a CI secret imported into a fresh home named by $AVFREPO_GNUPGHOME."""
    secret = subprocess.run(["gpg", "--homedir", str(signing_home), "--batch", "--armor",
                             "--export-secret-keys"], capture_output=True, check=True).stdout
    (tmp_path / "secret.asc").write_bytes(secret)
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "unused"\n')
    monkeypatch.setenv("AVFREPO_GNUPGHOME", str(tmp_path / "ci-home"))
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "import", str(tmp_path / "secret.asc"))
    assert code == 0 and "ready in " + str(tmp_path / "ci-home") in out
    assert not (tmp_path / "unused").exists()
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init")
    assert code == 0 and out.startswith("using existing key")


def test_key_import_refuses_what_is_not_a_secret_key(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "home"\n')
    (tmp_path / "pub.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    code, _, err = run_cli(capsys, "--config", str(conf), "key", "import", str(tmp_path / "pub.asc"))
    assert code == 1 and "not an armored OpenPGP secret key" in err and not (tmp_path / "home").exists()
    code, _, err = run_cli(capsys, "--config", str(conf), "key", "import", str(tmp_path / "missing.asc"))
    assert code == 2 and "cannot read" in err


def test_repo_commands_list_rollback_remove(capsys, cfg):
    run_cli(capsys, "--config", str(cfg.file), "sync")
    assert run_cli(capsys, "--config", str(cfg.file), "build")[0] == 0
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "repo", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["avf-config"]["published"] == "16.0.0.r10-1" and rows["avf-config"]["archived"] == []
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "repo", "rollback", "avf-config")
    assert code == 1 and "no archived version of avf-config older than 16.0.0.r10-1" in err
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "repo", "remove", "avf-keyring")
    assert code == 0 and out.startswith("removed avf-keyring")
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "repo", "list")
    assert "avf-keyring" not in out and "avf-config" in out


def test_unknown_package_names_are_usage_errors_everywhere(capsys, cfg):
    """One table: a name nothing knows is exit 2 in sync, build, repo rollback and repo remove,
    with the closest known names (issue 25)."""
    run_cli(capsys, "--config", str(cfg.file), "sync")
    assert run_cli(capsys, "--config", str(cfg.file), "build")[0] == 0
    for argv in (("sync", "avf-confg"), ("build", "avf-confg"), ("build", "--reproduce", "avf-confg"),
                 ("repo", "rollback", "avf-confg"), ("repo", "remove", "avf-confg")):
        code, _, err = run_cli(capsys, "--config", str(cfg.file), *argv)
        assert code == 2, (argv, err)
        assert "avf-confg" in err and err.count("\n") == 1
    assert "did you mean avf-config" in err
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "repo", "rollback", "avf-confg")
    assert "did you mean avf-config" in err


def test_help_and_readme_carry_one_exit_code_table(capsys):
    from pathlib import Path
    code, out, _ = run_cli(capsys, "--help")
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    import re
    for text in (out, readme):
        for row in (r"\b0[\s|]+done", r"\b1[\s|]+refused", r"\b2[\s|]+usage", r"\b3[\s|]+pending", r"\b141\b"):
            assert re.search(row, text), row


# --- the one top-level error path (issue 12) ---------------------------------------------

def test_wrong_type_in_the_state_file_is_one_line_and_debug_shows_the_traceback(capsys, cfg):
    cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.state_file.write_text(json.dumps({"format": 1, "upstreams": {}, "packages": {
        "avf-config": {"pkgver": "1", "pkgrel": "one", "inputs": "x", "upstreams": {}}}}))
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "status")
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and "pkgrel must be" in err and str(cfg.state_file) in err
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "--debug", "status")
    assert code == 1 and "Traceback (most recent call last)" in err and err.splitlines()[-1].startswith("avfrepo: error:")


def test_describe_names_file_and_cause_of_os_errors():
    import errno
    from avfrepo.errors import describe
    msg, code = describe(OSError(errno.ENOSPC, "No space left on device", "/repo/pool/x.part"))
    assert (msg, code) == ("/repo/pool/x.part: No space left on device (the file system is full)", 1)
    msg, _ = describe(OSError(errno.EXDEV, "Invalid cross-device link", "/cache/k.asc", None, "/repo/snapshots/k.asc"))
    assert msg.startswith("/cache/k.asc -> /repo/snapshots/k.asc: Invalid cross-device link") and "file systems" in msg


def test_describe_of_real_requests_and_git_errors(tmp_path):
    import git
    import requests
    from avfrepo.errors import describe
    with pytest.raises(requests.RequestException) as info:
        requests.get("http://[not-a-host")
    msg, code = describe(info.value)
    assert code == 1 and "\n" not in msg and "InvalidURL" in msg
    with pytest.raises(git.exc.GitError) as ginfo:
        git.Repo.clone_from("ext::sh -c touch% /tmp/pwned", tmp_path / "c")
    msg, code = describe(ginfo.value)
    assert code == 1 and msg.startswith("git: ") and "\n" not in msg and "ext" in msg


def test_an_unexpected_exception_is_one_line_pointing_at_debug(capsys, monkeypatch, cfg):
    import avfrepo.status
    monkeypatch.setattr(avfrepo.status, "status", lambda *a, **k: {}["boom"])
    code, _, err = run_cli(capsys, "--config", str(cfg.file), "status")
    assert code == 1 and "Traceback" not in err and "internal error: KeyError" in err and "--debug" in err


def test_rollback_or_remove_of_an_unknown_name_writes_nothing(capsys, cfg):
    for action in ("rollback", "remove"):
        code, _, err = run_cli(capsys, "--config", str(cfg.file), "repo", action, "avf-confg")
        assert code == 2 and "avf-confg: no such package in [avf]" in err
    assert not cfg.repo.path.exists()


def test_pacman_conf_says_how_to_trust_the_key_with_its_fingerprint(capsys, cfg):
    """SigLevel = Required refuses every package until the key is trusted: the output says how,
    as comments (the whole output can still be pasted into pacman.conf)."""
    from avfrepo.signing import signing_key
    fpr = signing_key(cfg.signing).fingerprint
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "pacman-conf")
    assert code == 0
    section, steps = out.split("Server = ", 1)[1].split("\n", 1)
    assert all(line.startswith("#") for line in steps.splitlines())
    assert f"{cfg.repo.server}/aarch64/avf.asc" in steps
    assert "pacman-key --add avf.asc" in steps and f"pacman-key --lsign-key {fpr}" in steps
    assert "pacman -Syu avf/avf-keyring" in steps and "--populate" in steps


def test_pacman_conf_without_a_key_names_where_the_fingerprint_comes_from(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[repo]\nserver = "https://repo.avf-mirror.net/avf"\n[signing]\ngnupg_home = "none"\n')
    code, out, _ = run_cli(capsys, "--config", str(conf), "pacman-conf")
    assert code == 0 and "pacman-key --lsign-key <fingerprint>" in out and "gpg --show-keys avf.asc" in out
    assert not (tmp_path / "none").exists()


def test_key_init_takes_uid_from_packager_expires_and_says_how_to_back_up(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "gnupg"\n[build]\npackager = "Jane Doe <jane@avf.example.org>"\n')
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init", "--expire", "1y")
    assert code == 0, out
    fpr = out.split()[2]
    assert "(Jane Doe ([avf] repository signing key) <jane@avf.example.org>)" in out
    assert "expires: " in out and "never" not in out and "--quick-set-expire" in out
    assert f"--export-secret-keys --armor {fpr} > avf-signing-key.asc" in out and "offline" in out
    assert "placeholder" not in out
    # the backup line works as printed
    res = subprocess.run(out.splitlines()[-1].strip(), shell=True, cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0 and "PRIVATE KEY" in (tmp_path / "avf-signing-key.asc").read_text()
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init", "--json")
    data = json.loads(out)
    assert data["created"] is False and data["expires"] and fpr in data["backup"]


def test_key_init_with_the_placeholder_packager_says_so(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "gnupg"\n')
    code, out, _ = run_cli(capsys, "--config", str(conf), "key", "init", "--expire", "never")
    assert code == 0 and "expires: never" in out
    assert "placeholder: set [build] packager" in out


def test_key_init_refuses_a_bad_expiry_with_exit_2(capsys, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[signing]\ngnupg_home = "gnupg"\n')
    code, out, err = run_cli(capsys, "--config", str(conf), "key", "init", "--expire", "2 years")
    assert code == 2 and "key expiry '2 years'" in err and err.count("\n") == 1
    assert not (tmp_path / "gnupg").exists()


def test_completion_prints_a_script_for_each_shell(capsys):
    code, out, _ = run_cli(capsys, "completion", "bash")
    assert code == 0 and "complete " in out and "pacman-conf" in out and "--expire" in out
    code, out, _ = run_cli(capsys, "completion", "zsh")
    assert code == 0 and out.startswith("#compdef avfrepo")
    code, _, err = run_cli(capsys, "completion", "fish")
    assert code == 2 and "invalid choice" in err
