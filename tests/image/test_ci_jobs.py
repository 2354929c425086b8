"""scripts/ci/image_job.py, the two jobs of image.yml, run here as the workflow wires them:
`build` with the repository variables (public key only) makes an unsigned image, the files go
over as the artifact, `sign` with the environment's secret checks, signs and attaches them to
the release "image" (gh is tests/github/gh_standin.py, a TEST DOUBLE: GitHub cannot be reached).
The boot gate between them is not run here (tests/boot covers `avfrepo boot`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from avfrepo.config import SigningConfig
from avfrepo.image import manifest_path, signature_paths
from avfrepo.signing import export_public, signing_key

from .standins import image_config

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "scripts/ci/image_job.py"
STANDIN = ROOT / "tests/github/gh_standin.py"


@pytest.fixture
def short_tmp():
    """The jobs' TMPDIR: their GnuPG homes live there, and gpg-agent's socket path must fit in
    108 bytes (a pytest-xdist tmp_path does not). Their agents are stopped with the folder."""
    folder = Path(tempfile.mkdtemp(prefix="ci-", dir="/tmp"))
    yield folder
    for home in folder.glob("*gnupg*"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ci(tmp_path, signing_home, standin_repos, trusted_gpgdir, short_tmp):
    """A checkout whose avfrepo.toml has no key of its own (CI imports it), the repository
    variables, the avf-signing environment's secret, and gh's double on PATH."""
    gpg = tmp_path / "pacman-gnupg"
    shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
    cfg = image_config(tmp_path / "checkout" / "avfrepo.toml", tmp_path / "nonexistent-gnupg", *standin_repos, gpg)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gh").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bindir / "gh").chmod(0o755)
    sc = SigningConfig(None, signing_home)
    fpr = signing_key(sc).fingerprint
    secret = subprocess.run(["gpg", "--homedir", str(signing_home), "--batch", "--armor", "--export-secret-keys"],
                            check=True, capture_output=True, text=True).stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "AVF"))}
    env.update(PATH=f"{bindir}:{os.environ['PATH']}", GH_STANDIN_DIR=str(tmp_path / "gh"),
               AVF_PUBLIC_KEY=export_public(sc, fpr, armor=True).decode(), AVF_SIGNING_FINGERPRINT=fpr,
               AVFREPO=str(Path(sys.executable).with_name("avfrepo")),
               TMPDIR=str(short_tmp))       # the jobs' GnuPG homes (and their agents) end with the test
    return cfg, env, secret, fpr


def job(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(JOB), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def artifact(cfg, dest: Path) -> Path:
    """actions/upload-artifact + download-artifact: the image job's three files, in another runner."""
    out = cfg.root / "images.tar.gz"
    dest.mkdir(parents=True)
    for f in (out, manifest_path(out), out.with_name(out.name + ".boot.json")):
        shutil.copy2(f, dest / f.name)
    return dest / out.name


def test_the_image_job_builds_unsigned_and_the_sign_job_signs_and_publishes(ci, tmp_path):
    cfg, env, secret, fpr = ci
    res = job(cfg.root, env, "build", "--output", "images.tar.gz")       # no AVF_SIGNING_KEY in this job
    assert res.returncode == 0, res.stderr
    assert f"UNSIGNED: no .sig written; the manifest and README name the key {fpr}" in res.stdout
    out = cfg.root / "images.tar.gz"
    assert f"sign it where that secret key is: avfrepo image --sign {out}" in res.stdout
    assert out.is_file() and not any(p.exists() for p in signature_paths(out))
    assert json.loads(manifest_path(out).read_text())["signing_key"] == fpr
    out.with_name(out.name + ".boot.json").write_text('{"stand-in": "the boot gate is not run here"}\n')

    image = artifact(cfg, tmp_path / "runner2" / "image")
    res = job(cfg.root, {**env, "AVF_SIGNING_KEY": secret}, "sign", "--dir", str(image.parent))
    assert res.returncode == 0, res.stderr
    release = tmp_path / "gh/releases/image"
    assert sorted(p.name for p in release.iterdir()) == sorted([
        "images.tar.gz", "images.tar.gz.sig", "images.tar.gz.manifest.json", "images.tar.gz.manifest.json.sig",
        "images.tar.gz.boot.json"])
    home = tmp_path / "user-gnupg"                  # a user: gpg --import avf.asc; gpg --verify
    home.mkdir(mode=0o700)
    (home / "avf.asc").write_text(env["AVF_PUBLIC_KEY"])
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(home / "avf.asc")],
                   check=True, capture_output=True)
    for name in ("images.tar.gz", "images.tar.gz.manifest.json"):
        res = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--status-fd", "1", "--verify",
                              str(release / f"{name}.sig"), str(release / name)], capture_output=True, text=True)
        assert res.returncode == 0 and f"VALIDSIG {fpr}" in res.stdout, res.stderr

    # an archive that is not the one built: refused, nothing signed, nothing uploaded
    bad = artifact(cfg, tmp_path / "runner3" / "image")
    data = bytearray(bad.read_bytes())
    data[-100] ^= 0x01
    bad.write_bytes(bytes(data))
    calls = (tmp_path / "gh/calls.jsonl").read_text()
    res = job(cfg.root, {**env, "AVF_SIGNING_KEY": secret}, "sign", "--dir", str(bad.parent))
    assert res.returncode == 1 and "its manifest records" in res.stderr, res.stderr
    assert not any(p.exists() for p in signature_paths(bad))
    assert (tmp_path / "gh/calls.jsonl").read_text() == calls


def test_the_sign_job_without_the_artifact_or_the_secret_says_so(ci, tmp_path):
    cfg, env, secret, _ = ci
    (tmp_path / "runner" / "image").mkdir(parents=True)
    res = job(cfg.root, {**env, "AVF_SIGNING_KEY": secret}, "sign", "--dir", str(tmp_path / "runner/image"))
    assert res.returncode == 1 and "handed over no images.tar.gz, images.tar.gz.manifest.json" in res.stderr
    (tmp_path / "runner/image/images.tar.gz").write_bytes(b"x")
    (tmp_path / "runner/image/images.tar.gz.manifest.json").write_text("{}")
    res = job(cfg.root, {**env, "GITHUB_ACTIONS": "true"}, "sign", "--dir", str(tmp_path / "runner/image"))
    assert res.returncode == 2 and "AVF_SIGNING_KEY is not set" in res.stderr
    assert not (tmp_path / "gh/calls.jsonl").exists()
