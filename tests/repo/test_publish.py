"""The publish transaction: layout, refusals before anything moves, retention, the lock."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest

from avfrepo.config import SigningConfig
from avfrepo.formats.repodb import read_db
from avfrepo.fsutil import read_tree
from avfrepo.repo import layout
from avfrepo.repo.lock import LockTimeout, repo_lock
from avfrepo.repo.publish import PublishRefused, publish, repo_add_flags
from avfrepo.repo.verify import verify
from avfrepo.signing import detach_sign, init_key, signing_key

from .conftest import fresh


def tree_state(cfg) -> tuple[dict[str, bytes], str | None]:
    link = cfg.repo.published
    return read_tree(cfg.repo.path), (os.readlink(link) if link.is_symlink() else None)


def test_first_publish_makes_pool_snapshot_and_published_symlink(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    done = publish(rcfg, key, fresh(built, tmp_path, "t-a-1", "t-b-1"))
    assert sorted(p.name for p in done) == sorted([built["t-a-1"].name, built["t-b-1"].name])
    assert os.readlink(rcfg.repo.published) == "snapshots/1"
    entries = read_db(rcfg.repo.db)
    assert {n: e.version for n, e in entries.items()} == {"t-a": "1.0-1", "t-b": "1.0-1"}
    for e in entries.values():
        pooled = layout.pool(rcfg) / e.filename
        published = rcfg.repo.published / e.filename
        assert os.path.samefile(pooled, published)           # hard link, no second copy
        assert (rcfg.repo.published / (e.filename + ".sig")).is_file()
    assert (rcfg.repo.published / "avf.asc").read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert os.readlink(rcfg.repo.published / "avf.db") == "avf.db.tar.gz"
    assert verify(rcfg).ok


def test_new_version_switches_snapshot_and_keeps_the_old_in_the_pool(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    assert os.readlink(rcfg.repo.published) == "snapshots/2"
    assert read_db(rcfg.repo.db)["t-a"].version == "1.0-2"
    assert [f.version for f in layout.pool_files(rcfg)] == ["1.0-1", "1.0-2"]
    assert not (rcfg.repo.published / built["t-a-1"].name).exists()
    assert sorted(p.name for p in layout.snapshots(rcfg).iterdir()) == ["1", "2"]


def test_publishing_the_published_file_again_changes_nothing(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    before = tree_state(rcfg)
    assert publish(rcfg, key, fresh(built, tmp_path, "t-a-1")) == []
    assert tree_state(rcfg) == before


def _unsigned(paths):
    os.unlink(str(paths[0]) + ".sig")
    return paths


def _bad_sig(paths):
    sig = str(paths[0]) + ".sig"
    data = bytearray(open(sig, "rb").read())
    data[-3] ^= 1
    open(sig, "wb").write(bytes(data))
    return paths


def _renamed(paths):
    wrong = paths[0].with_name(paths[0].name.replace("1.0-3", "1.0-9"))
    os.rename(paths[0], wrong)
    os.rename(str(paths[0]) + ".sig", str(wrong) + ".sig")
    return [wrong]


@pytest.mark.parametrize("label,damage,message", [
    ("t-a-3", _unsigned, "signature file missing"),
    ("t-a-3", _bad_sig, "bad signature"),
    ("t-a-3", _renamed, "file name does not match its .PKGINFO"),
    ("t-a-1", None, "would downgrade t-a from 1.0-2"),
])
def test_refused_packages_leave_the_repository_untouched(rcfg, built, tmp_path, label, damage, message):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    paths = fresh(built, tmp_path, label)
    if damage:
        paths = damage(paths)
    before = tree_state(rcfg)
    with pytest.raises(PublishRefused, match=message):
        publish(rcfg, key, paths + fresh(built, tmp_path, "t-b-1"))
    assert tree_state(rcfg) == before


def test_same_version_as_published_with_other_bytes_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    before = tree_state(rcfg)
    with pytest.raises(PublishRefused, match="published before with other content"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-1-other"))
    assert tree_state(rcfg) == before


def test_rebuild_of_an_archived_version_with_other_bytes_is_refused(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    publish(rcfg, key, fresh(built, tmp_path, "t-a-2"))
    before = tree_state(rcfg)
    with pytest.raises(PublishRefused, match="published before with other content"):
        publish(rcfg, key, fresh(built, tmp_path, "t-a-1-other"), allow_downgrade=True)
    assert tree_state(rcfg) == before


def test_package_signed_by_another_key_is_refused(rcfg, built, tmp_path):
    other = SigningConfig(None, tmp_path / "other-gnupg")
    okey, _ = init_key(other, "other <o@example.invalid>")
    paths = fresh(built, tmp_path, "t-a-1")
    detach_sign(other, okey, paths[0])
    with pytest.raises(PublishRefused, match=f"signed by key {okey.fingerprint[-16:]}"):
        publish(rcfg, signing_key(rcfg.signing), paths)
    assert not rcfg.repo.path.joinpath("pool").exists()


def test_retention_keeps_the_last_n_versions_and_two_snapshots(rcfg, built, tmp_path):
    cfg = dataclasses.replace(rcfg, repo=dataclasses.replace(rcfg.repo, keep=2))
    key = signing_key(cfg.signing)
    for r in (1, 2, 3, 4):
        publish(cfg, key, fresh(built, tmp_path, f"t-a-{r}"))
    assert [f.version for f in layout.pool_files(cfg)] == ["1.0-3", "1.0-4"]
    assert not list(layout.pool(cfg).glob("t-a-1.0-1-*"))          # package and .sig went together
    assert sorted(p.name for p in layout.snapshots(cfg).iterdir()) == ["3", "4"]
    assert verify(cfg).ok


def test_leftovers_of_an_interrupted_publish_are_warned_about_then_cleaned(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    publish(rcfg, key, fresh(built, tmp_path, "t-a-1"))
    (layout.snapshots(rcfg) / ".tmp-7-123").mkdir()
    (layout.pool(rcfg) / ".t-a-x.part").write_bytes(b"half")
    report = verify(rcfg)
    assert report.ok and {w.path for w in report.warnings()} == {"snapshots/.tmp-7-123", "pool/.t-a-x.part"}
    publish(rcfg, key, fresh(built, tmp_path, "t-b-1"))
    assert not (layout.snapshots(rcfg) / ".tmp-7-123").exists() and not list(layout.pool(rcfg).glob("*.part"))


def test_lock_held_elsewhere_times_out_naming_the_holder(rcfg, built, tmp_path):
    cfg = dataclasses.replace(rcfg, repo=dataclasses.replace(rcfg.repo, lock_timeout=0.3))
    key = signing_key(cfg.signing)
    errors = []
    with repo_lock(cfg.repo.path, 1, "test holder"):
        t = threading.Thread(target=lambda: errors.append(_try(lambda: publish(cfg, key, fresh(built, tmp_path, "t-a-1")))))
        t.start()
        t.join()
    assert isinstance(errors[0], LockTimeout)
    assert f"pid {os.getpid()}" in str(errors[0]) and "test holder" in str(errors[0])
    assert not cfg.repo.db.exists()


def test_waiting_for_the_lock_then_publishing(rcfg, built, tmp_path):
    key = signing_key(rcfg.signing)
    waits = []
    release = threading.Event()

    def hold():
        with repo_lock(rcfg.repo.path, 1, "holder"):
            release.wait(5)
    t = threading.Thread(target=hold)
    t.start()
    try:
        while not (rcfg.repo.path / ".lock").exists() or not (rcfg.repo.path / ".lock").read_text():
            pass
        threading.Timer(0.3, release.set).start()
        publish(rcfg, key, fresh(built, tmp_path, "t-a-1"), progress=waits.append)
    finally:
        release.set()
        t.join()
    assert any("waiting up to" in w and "holder" in w for w in waits)
    assert "t-a" in read_db(rcfg.repo.db)


def _try(fn):
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


def test_repo_add_flags_follow_the_pacman_version():
    assert repo_add_flags((6, 0, 2)) == []
    assert repo_add_flags((7, 0, 0)) == ["--include-sigs"]
