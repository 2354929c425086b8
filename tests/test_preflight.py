"""Checks before work (issue 25, item 2): each command asks for what it needs before it builds
or writes anything, and fails in under a second with one line naming the fix (exit 2).
Read-only commands work on a repository they cannot write; a closed pipe ends quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import avfrepo
from avfrepo.cli import main

from .build.conftest import write_pkg
from .conftest import BUILD_USER


def run_cli(capsys, *argv: str) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    code = main(list(argv))
    seconds = time.monotonic() - t0
    out, err = capsys.readouterr()
    return code, out, err, seconds


def path_without(tmp_path: Path, tool: str) -> str:
    """A PATH with every program of this host except `tool` (real programs, linked)."""
    bin_dir = tmp_path / "bin-without"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin", "/usr/local/sbin", "/usr/sbin"):
        for f in Path(d).iterdir() if Path(d).is_dir() else []:
            if f.name != tool and not (bin_dir / f.name).exists():
                (bin_dir / f.name).symlink_to(f)
    assert shutil.which(tool, path=str(bin_dir)) is None
    return str(bin_dir)


def nothing_built(cfg) -> None:
    logs = list(cfg.logs.rglob("*")) if cfg.logs.exists() else []
    assert logs == [], logs
    assert not (cfg.repo.path / "pool").exists()


def test_build_without_repo_add_is_refused_before_anything_is_built(capsys, cfg, tmp_path, monkeypatch):
    write_pkg(cfg, "t-a")
    monkeypatch.setenv("PATH", path_without(tmp_path, "repo-add"))
    code, out, err, seconds = run_cli(capsys, "--config", str(cfg.file), "build")
    assert code == 2 and seconds < 1.0, (code, seconds, err)
    assert err.count("\n") == 1 and "repo-add not found on PATH" in err and "pacman-package-manager" in err
    nothing_built(cfg)


def test_build_user_that_does_not_exist_is_one_config_error(capsys, cfg, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the build user is used only when avfrepo runs as root")
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b")
    conf = tmp_path / "nouser.toml"
    conf.write_text(cfg.file.read_text().replace(f'user = "{BUILD_USER}"', 'user = "nosuchbuilder"'))
    assert 'user = "nosuchbuilder"' in conf.read_text()
    code, out, err, seconds = run_cli(capsys, "--config", str(conf), "build")
    assert code == 2 and seconds < 1.0, (code, seconds, err)
    assert err.count("\n") == 1 and '[build] user "nosuchbuilder": no such user' in err and "useradd" in err
    assert out == ""
    nothing_built(cfg)


def test_sync_commit_outside_a_git_tree_changes_nothing(capsys, cfg):
    assert subprocess.run(["git", "-C", str(cfg.root), "rev-parse"], capture_output=True).returncode != 0
    code, out, err, seconds = run_cli(capsys, "--config", str(cfg.file), "sync", "--commit")
    assert code == 2 and seconds < 1.0
    assert "not inside a git working tree" in err and "git init" in err
    assert not cfg.pkgbuilds.exists()


def test_read_only_repository_can_be_verified_listed_and_statused(capsys, cfg):
    """The working folder on a read-only mount (as a reader without write access sees it):
    verify, status and repo list read it; a publish is refused up front."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private read-only bind mount")
    assert run_cli(capsys, "--config", str(cfg.file), "sync")[0] == 0
    assert run_cli(capsys, "--config", str(cfg.file), "build")[0] == 0
    assert (cfg.repo.path / ".lock").is_file()
    repo = str(cfg.root)                # the whole working folder: repo/, cache/, logs/, pkgbuilds/
    for argv, want in ((["verify"], 0), (["status"], 0), (["repo", "list"], 0), (["repo", "remove", "avf-config"], 2)):
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", repo, sys.executable, "-m", "avfrepo",
                              "--config", str(cfg.file), *argv], capture_output=True, text=True, timeout=120)
        assert res.returncode == want, (argv, res.stdout, res.stderr)
        assert "Permission denied" not in res.stderr and "Read-only file system" not in res.stderr
    assert "read-only file system" in res.stderr and res.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["image", "demo"])
def test_image_and_demo_as_a_user_say_they_need_root(tmp_path, command):
    if os.geteuid() != 0 or subprocess.run(["id", "-u", BUILD_USER], capture_output=True).returncode != 0:
        pytest.skip(f"needs root and the unprivileged user {BUILD_USER} to run as")
    # the system's python: the test interpreter may live where that user cannot read
    python = shutil.which("python3", path="/usr/bin")
    src = Path(avfrepo.__file__).parents[1]          # the avfrepo under test
    if python is None or subprocess.run(["runuser", "-u", BUILD_USER, "--", "test", "-r", str(src / "avfrepo/cli.py")]
                                        ).returncode != 0:
        pytest.skip(f"{BUILD_USER} cannot run /usr/bin/python3 on {src}")
    res = subprocess.run(["runuser", "-u", BUILD_USER, "--", "env", f"PYTHONPATH={src}", python, "-m", "avfrepo",
                          "--config", "/nonexistent/avfrepo.toml", command],
                         capture_output=True, text=True, cwd="/", timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"avfrepo {command} needs root" in res.stderr and "missing" not in res.stderr
    assert res.stderr.count("\n") == 1


@pytest.mark.parametrize("argv", [["pacman-conf"], ["repo", "list"]])
def test_a_closed_pipe_ends_quietly_with_141(argv, tmp_path):
    conf = tmp_path / "avfrepo.toml"
    conf.write_text('[repo]\nserver = "https://repo.avf-mirror.net/avf"\n')
    proc = subprocess.Popen([sys.executable, "-m", "avfrepo", "--config", str(conf), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                 # the reader is gone before the first line (`| head -0`)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_a_reader_without_write_access_takes_the_shared_lock(tmp_path):
    """Another user's repository (EACCES, not a read-only mount): the shared lock is taken on
    .lock opened read-only; the exclusive one is still refused."""
    if os.geteuid() != 0 or subprocess.run(["id", "-u", BUILD_USER], capture_output=True).returncode != 0:
        pytest.skip(f"needs root and the unprivileged user {BUILD_USER} to run as")
    import tempfile
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3 for the other user")
    src = Path(avfrepo.__file__).parents[1]          # the avfrepo under test
    base = Path(tempfile.mkdtemp(prefix="avfrepo-ro-"))        # tmp_path's parents are private to root
    try:
        base.chmod(0o755)
        (base / "repo").mkdir()
        (base / "repo" / ".lock").write_text("")
        code = ("import sys\nfrom pathlib import Path\nfrom avfrepo.repo.lock import repo_lock\n"
                "with repo_lock(Path(sys.argv[1]), 1, shared=sys.argv[2] == 'shared'):\n    print('locked')\n")
        for mode, ok in (("shared", True), ("exclusive", False)):
            res = subprocess.run(["runuser", "-u", BUILD_USER, "--", "env", f"PYTHONPATH={src}", python, "-c", code,
                                  str(base / "repo"), mode], capture_output=True, text=True, cwd="/", timeout=60)
            assert (res.returncode == 0 and res.stdout == "locked\n") is ok, (mode, res.stderr)
        assert "Permission denied" in res.stderr
    finally:
        shutil.rmtree(base)


def test_an_expired_signing_key_is_refused_before_anything_is_built(capsys, cfg, tmp_path):
    home = tmp_path / "expired-gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
                    "expired <expired@example.invalid>", "ed25519", "sign", "seconds=1"], check=True, capture_output=True)
    time.sleep(1.5)
    write_pkg(cfg, "t-a")
    conf = tmp_path / "expired.toml"
    conf.write_text(cfg.file.read_text().replace(str(cfg.signing.gnupg_home), str(home)))
    code, out, err, seconds = run_cli(capsys, "--config", str(conf), "build")
    assert code == 2 and seconds < 1.0, (code, seconds, err)
    assert err.count("\n") == 1 and "expired" in err
    nothing_built(cfg)
