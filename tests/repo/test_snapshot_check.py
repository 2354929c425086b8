"""Publish checks the snapshot it made before switching; unusable signing keys are refused first."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from avfrepo.config import SigningConfig
from avfrepo.errors import SigningError
from avfrepo.formats.repodb import read_db
from avfrepo.fsutil import read_tree
from avfrepo.repo import layout
from avfrepo.repo.publish import publish
from avfrepo.repo.verify import verify
from avfrepo.signing import signing_key

from .conftest import fresh


def tree_state(cfg) -> tuple[dict[str, bytes], str | None]:
    link = cfg.repo.published
    return read_tree(cfg.repo.path), (os.readlink(link) if link.is_symlink() else None)


def cli(cfg, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "avfrepo", "--config", str(cfg.file), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def _truncating_repo_add(tmp_path: Path) -> Path:
    """TEST DOUBLE of a failing repo-add: runs the real repo-add, then leaves the 0-byte db and
    signature that pacman 6.0's repo-add leaves on a full disk (exit 0). The real full disk is
    test_full_disk_at_every_amount_of_free_space below."""
    real = shutil.which("repo-add")
    bindir = tmp_path / "double-bin"
    bindir.mkdir()
    wrapper = bindir / "repo-add"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/bash
        "{real}" "$@"; rc=$?
        for a in "$@"; do case "$a" in *.db.tar.gz) : > "$a"; : > "$a.sig";; esac; done
        exit $rc
        """))
    wrapper.chmod(0o755)
    return bindir


def test_repo_add_leaving_a_zero_byte_db_is_refused_and_the_old_view_stays(rcfg, built, tmp_path, monkeypatch):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    before = tree_state(rcfg)
    ledger = (rcfg.repo.path / "ledger.json").read_bytes()
    bindir = _truncating_repo_add(tmp_path)
    res = cli(rcfg, "repo", "add", *map(str, fresh(built, tmp_path, "t-a-2")),
              env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert res.returncode == 1, res
    assert "avf.db.tar.gz is empty" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    after = tree_state(rcfg)
    assert after[1] == before[1]                                  # old view live
    assert {k: v for k, v in after[0].items() if not k.startswith("pool/")} == \
        {k: v for k, v in before[0].items() if not k.startswith("pool/")}   # no partial snapshot
    assert (rcfg.repo.path / "ledger.json").read_bytes() == ledger    # ledger untouched
    assert verify(rcfg).ok
    # and the next good publish works
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-2"


def test_check_snapshot_refuses_a_db_listing_other_packages(rcfg, built, tmp_path):
    from avfrepo.repo.publish import SnapshotBad, check_snapshot, current_entries
    from avfrepo.signing import public_key_files
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    public, _ = public_key_files(rcfg.signing, key.fingerprint, rcfg.cache)
    snap = layout.current_snapshot(rcfg)
    entries = current_entries(rcfg)
    check_snapshot(rcfg, key.fingerprint, public, snap, entries)          # the good one passes
    with pytest.raises(SnapshotBad, match="other packages"):
        check_snapshot(rcfg, key.fingerprint, public, snap, {"t-a": entries["t-a"]})
    def copy_of(n: int) -> Path:
        return shutil.copytree(snap, tmp_path / f"copy{n}", symlinks=True)
    copy = copy_of(1)
    (copy / built["t-b-1"].name).unlink()
    with pytest.raises(SnapshotBad, match="missing"):
        check_snapshot(rcfg, key.fingerprint, public, copy, entries)
    copy = copy_of(2)
    shutil.copy(copy / (built["t-a-1"].name + ".sig"), copy / (built["t-b-1"].name + ".sig"))
    with pytest.raises(SnapshotBad, match="sig"):
        check_snapshot(rcfg, key.fingerprint, public, copy, entries)
    copy = copy_of(3)
    (copy / "avf.files.tar.gz.sig").write_bytes(b"")
    with pytest.raises(SnapshotBad, match="avf.files.tar.gz.sig"):
        check_snapshot(rcfg, key.fingerprint, public, copy, entries)
    copy = copy_of(4)
    (copy / "avf.db").unlink()
    (copy / "avf.db").symlink_to(snap / "avf.db.tar.gz")            # another snapshot's db
    with pytest.raises(SnapshotBad, match="what pacman downloads"):
        check_snapshot(rcfg, key.fingerprint, public, copy, entries)


def _home_copy(signing_home: Path, tmp_path: Path) -> Path:
    home = tmp_path / "gnupg"
    shutil.copytree(signing_home, home, ignore=shutil.ignore_patterns("S.*"))
    os.chmod(home, 0o700)
    return home


def _gpg(home: Path, *args: str) -> None:
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", *args], check=True, capture_output=True)


def test_revoked_signing_key_is_refused_before_any_work(rcfg, built, tmp_path, signing_home):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    home = _home_copy(signing_home, tmp_path)
    rev = home / "openpgp-revocs.d" / f"{key.fingerprint}.rev"
    revoked = tmp_path / "rev.asc"
    revoked.write_text(rev.read_text().replace(":-----BEGIN", "-----BEGIN"))
    _gpg(home, "--import", str(revoked))
    cfg = dataclasses.replace(rcfg, signing=SigningConfig(None, home))
    before = tree_state(cfg)
    with pytest.raises(SigningError, match="revoked"):
        signing_key(cfg.signing)
    with pytest.raises(SigningError, match="cannot sign"):      # a Key found before the revocation
        publish(cfg, key, fresh(built, tmp_path, "t-a-2"))
    assert tree_state(cfg) == before
    cfg.file.write_text(cfg.file.read_text().replace(str(signing_home), str(home)))
    res = cli(cfg, "repo", "add", *map(str, fresh(built, tmp_path, "t-a-2")))
    # the key is checked before any work, as every check is: exit 2 (see the exit-code table)
    assert res.returncode == 2 and "revoked" in res.stderr, res
    assert tree_state(cfg) == before


def test_read_only_gnupg_home_is_not_reported_as_no_signing_key(tmp_path, signing_home):
    home = _home_copy(signing_home, tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(home), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        try:
            key = signing_key(SigningConfig(None, ro))
        except SigningError as exc:
            assert "no signing key" not in str(exc)
            assert str(ro) in str(exc)
        else:
            # gpg could list the key read-only; then signing must say why it fails, not crash
            from avfrepo.signing import probe_signing, export_public
            with pytest.raises(SigningError, match="cannot sign"):
                probe_signing(SigningConfig(None, ro), key, export_public(SigningConfig(None, home), key.fingerprint, armor=False))
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# -- a real full disk: the repository on a small tmpfs ----------------------------------------

@pytest.fixture
def small_fs(rcfg):
    """rcfg's repository directory on its own 1 MiB tmpfs (the machine allows mounts as root)."""
    path = rcfg.repo.path
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "avfrepo-test", str(path)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield path
    subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(fs: Path, leave: int) -> Path:
    """Fill fs up to `leave` free bytes with one file."""
    filler = fs / "filler"
    filler.unlink(missing_ok=True)
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


@pytest.mark.slow
def test_full_disk_at_every_amount_of_free_space(rcfg, built, tmp_path, small_fs):
    """A full disk anywhere in a publish: exit 1 with one line, or a complete publish; the old
    view stays live and verifies in every case, and no partial snapshot is left."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    outcomes = []
    for pages in range(0, 24, 2):
        filler = _fill(small_fs, pages * 4096)
        before = os.readlink(rcfg.repo.published)
        res = cli(rcfg, "repo", "add", *map(str, fresh(built, tmp_path, "t-a-2")))
        filler.unlink()
        assert "Traceback" not in res.stderr, (pages, res.stderr)
        rep = verify(rcfg)
        assert rep.ok, (pages, res.stderr, [(c.path, c.message) for c in rep.bad()])
        if res.returncode == 0:
            outcomes.append("published")
            assert read_db(rcfg.repo.db)["t-a"].version == "1.0-2"
            break
        assert res.returncode == 1, (pages, res)
        assert res.stderr.startswith("avfrepo: error: "), (pages, res.stderr)
        assert os.readlink(rcfg.repo.published) == before
        assert read_db(rcfg.repo.db)["t-a"].version == "1.0-1"
        assert not list(layout.snapshots(rcfg).glob(".tmp-*")), pages
        outcomes.append(res.stderr.strip())
    assert outcomes[-1] == "published", outcomes
    assert len(outcomes) > 1, outcomes        # at least one publish met the full disk
