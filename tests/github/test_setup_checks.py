"""A fork's set-up, checked before the jobs do anything (issue 24, items 4 and 6): image.yml's
first step (scripts/ci/image_prereqs.py) names each missing setting, with the gh stand-in
(TEST DOUBLE for GitHub) holding or not holding the release aarch64; the sync job runs
avfrepo doctor's sync checks first and stops, touching nothing, when they fail."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avfrepo.config import SigningConfig
from avfrepo.demo import write_config
from avfrepo.signing import signing_key

from ..conftest import require_tools

ROOT = Path(__file__).resolve().parents[2]
PREREQS = ROOT / "scripts/ci/image_prereqs.py"
JOB = ROOT / "scripts/ci/job.py"
STANDIN = Path(__file__).with_name("gh_standin.py")
SERVER = "https://github.com/owner/fork/releases/download"


@pytest.fixture
def fork(tmp_path):
    """A checkout whose avfrepo.toml is set up for the image (real server, [image] from it), and
    a `gh` on PATH that is the stand-in."""
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(work / "avfrepo.toml", "https://android.googlesource.com/x", tmp_path / "gnupg",
                          extra='\n[image]\navf_source = "server"\n')
    config.write_text(re.sub(r'^server = ".*"$', f'server = "{SERVER}"', config.read_text(), count=1, flags=re.M))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gh").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bindir / "gh").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "AVF"))}
    env.update(PATH=f"{bindir}:{os.environ['PATH']}", GH_STANDIN_DIR=str(tmp_path / "gh"),
               AVF_SIGNING_FINGERPRINT="0123456789ABCDEF0123456789ABCDEF01234567")
    return work, env


def prereqs(work: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PREREQS)], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)


def release(env: dict, tag: str) -> None:
    (Path(env["GH_STANDIN_DIR"]) / "releases" / tag).mkdir(parents=True)


def test_image_prerequisites_hold_in_a_set_up_fork(fork):
    work, env = fork
    release(env, "aarch64")
    res = prereqs(work, env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "release aarch64 exists" in res.stdout
    calls = [json.loads(line) for line in (Path(env["GH_STANDIN_DIR"]) / "calls.jsonl").read_text().splitlines()]
    assert calls == [["release", "view", "aarch64"]]


def test_image_prerequisites_name_the_missing_release(fork):
    work, env = fork
    res = prereqs(work, env)
    assert res.returncode == 2
    assert "the release aarch64 does not exist (release not found): run the update workflow" in res.stdout
    assert "AVF_SIGNING_FINGERPRINT" not in res.stdout


def test_image_prerequisites_name_each_missing_setting_of_a_fresh_fork(fork):
    work, env = fork
    del env["AVF_SIGNING_FINGERPRINT"]
    (work / "avfrepo.toml").write_text((ROOT / "avfrepo.toml").read_text())     # as committed
    res = prereqs(work, env)
    assert res.returncode == 2
    missing = [line for line in res.stdout.splitlines() if line.startswith("- ")]
    assert len(missing) == 4, res.stdout
    assert missing[0].startswith("- the repository variable AVF_SIGNING_FINGERPRINT is not set")
    assert missing[1].startswith("- the release aarch64 does not exist")
    assert "server" in missing[2] and "https://example.invalid/avf is a placeholder" in missing[2]
    assert "image" in missing[3] and "no [image] section" in missing[3]


def test_image_prerequisites_are_checked_before_the_keyring_and_the_build():
    image = yaml.safe_load((ROOT / ".github/workflows/image.yml").read_text())["jobs"]["image"]
    runs = [s.get("run", "") for s in image["steps"]]
    mine = next(i for i, r in enumerate(runs) if "scripts/ci/image_prereqs.py" in r)
    assert mine < next(i for i, r in enumerate(runs) if "pacman-key" in r)
    assert mine < next(i for i, r in enumerate(runs) if "image_job.py build" in r)
    env = image["steps"][mine]["env"]
    assert env["AVF_SIGNING_FINGERPRINT"] == "${{ vars.AVF_SIGNING_FINGERPRINT }}" and "GH_TOKEN" in env


def test_the_sync_job_stops_on_doctor_s_lines_before_touching_anything(fork, signing_home):
    require_tools("gpg", "git")
    work, env = fork
    fpr = signing_key(SigningConfig(None, signing_home)).fingerprint
    env["AVFREPO_GNUPGHOME"] = str(signing_home)
    env["AVF_SIGNING_FINGERPRINT"] = "F" * 40                   # the variable names another key
    res = subprocess.run([sys.executable, str(JOB), "sync"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "job.py sync: not set up (avfrepo doctor):" in res.stderr
    assert f"fingerprint  MISSING: AVF_SIGNING_FINGERPRINT={'F' * 40} but the key is {fpr}" in res.stderr
    assert "key          ok: " in res.stdout
    assert not (Path(env["GH_STANDIN_DIR"]) / "calls.jsonl").exists() and not (work / "sync-report.json").exists()
    env["AVFREPO_GNUPGHOME"] = str(work / "no-key-here")       # no key at all
    env.pop("AVF_SIGNING_FINGERPRINT")
    res = subprocess.run([sys.executable, str(JOB), "sync"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "key          MISSING: no signing key in " in res.stderr, res.stderr
