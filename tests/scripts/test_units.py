"""The self-hosted builder's systemd units and cycle script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_service_and_timer_pass_systemd_analyze_verify(tmp_path):
    # verify resolves ExecStart: lay the units out as installed, with the script in place
    root = tmp_path / "opt/avfrepo/scripts"
    root.mkdir(parents=True)
    shutil.copy(SCRIPTS / "update-cycle.sh", root / "update-cycle.sh")
    units = tmp_path / "units"
    units.mkdir()
    for name in ("avfrepo-update.service", "avfrepo-update.timer"):
        text = (SCRIPTS / name).read_text().replace("/opt/avfrepo", str(tmp_path / "opt/avfrepo"))
        (units / name).write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / "avfrepo-update.timer"),
                          str(units / "avfrepo-update.service")], capture_output=True, text=True)
    problems = [l for l in res.stderr.splitlines() if "avfrepo-update" in l]
    assert res.returncode == 0 and problems == [], res.stderr


def test_timer_runs_the_service_daily_and_catches_up():
    timer = (SCRIPTS / "avfrepo-update.timer").read_text()
    assert "OnCalendar=*-*-* 04:17:00" in timer and "Persistent=true" in timer
    service = (SCRIPTS / "avfrepo-update.service").read_text()
    assert "Type=oneshot" in service and "ExecStart=/opt/avfrepo/scripts/update-cycle.sh" in service


def test_cycle_script_is_valid_bash_and_stops_on_config_errors(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPTS / "update-cycle.sh")]).returncode == 0
    # a checkout whose avfrepo reports a config error (exit 2): the cycle stops with 2
    fake = tmp_path / "checkout"
    (fake / ".venv/bin").mkdir(parents=True)
    calls = tmp_path / "calls"
    stand_in = fake / ".venv/bin/avfrepo"      # TEST DOUBLE for the installed avfrepo command
    stand_in.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n[ "$1" = sync ] && exit 2\nexit 0\n')
    stand_in.chmod(0o755)
    subprocess.run(["git", "init", "-q", str(fake)], check=True)
    res = subprocess.run(["bash", str(SCRIPTS / "update-cycle.sh")], env={"AVFREPO_DIR": str(fake), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True)
    assert res.returncode == 2 and "configuration error" in res.stderr
    assert calls.read_text().splitlines() == ["sync --commit"]


@pytest.mark.slow
def test_cycle_script_runs_sync_build_verify_for_real(cfg, tmp_path):
    """The real path: the script driving the real avfrepo on the demo upstream."""
    import sys
    import git
    repo = git.Repo.init(cfg.root)
    (cfg.root / ".gitignore").write_text("cache/\nlogs/\nrepo/\nupstream/\n.venv/\n")
    repo.git.add(".gitignore")
    # the fixture's own commit names its author (no global identity on a fresh machine);
    # the repository keeps none, so sync --commit must fall back to the packager
    repo.git.execute(["git", "-c", "user.name=fixture", "-c", "user.email=fixture@example.invalid",
                      "commit", "-qm", "init"])
    venv_bin = cfg.root / ".venv/bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "avfrepo").symlink_to(Path(sys.executable).parent / "avfrepo")
    res = subprocess.run(["bash", str(SCRIPTS / "update-cycle.sh")], capture_output=True, text=True,
                         env={"AVFREPO_DIR": str(cfg.root), "AVFREPO_CONFIG": str(cfg.file),
                              "PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert repo.head.commit.message.startswith("sync: avf-config 16.0.0.r10-1")
    assert cfg.repo.db.exists() and "OK" in res.stdout
