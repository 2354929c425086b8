"""`avfrepo verify` names every file that pacman with SigLevel=Required would refuse."""

from __future__ import annotations

import shutil

import pytest

from avfrepo.build import build
from avfrepo.config import SigningConfig
from avfrepo.repo.verify import verify
from avfrepo.signing import detach_sign, init_key

from ..build.conftest import write_pkg


@pytest.fixture
def repo(cfg):
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b")
    build(cfg)
    return cfg


def bad_paths(cfg) -> set[str]:
    report = verify(cfg)
    assert not report.ok
    return {c.path for c in report.bad()}


def pkg(cfg, name):
    return next(cfg.repo.published.glob(f"{name}-*.pkg.tar.zst"))


def test_intact_repository_verifies_every_file(repo):
    report = verify(repo)
    assert report.ok
    paths = {c.path for c in report.checks}
    assert {"avf.db.tar.gz.sig", "avf.files.tar.gz.sig", pkg(repo, "t-a").name, pkg(repo, "t-a").name + ".sig"} <= paths


def test_flipped_byte_in_a_signature_is_named(repo):
    sig = pkg(repo, "t-a").with_name(pkg(repo, "t-a").name + ".sig")
    data = bytearray(sig.read_bytes())
    data[-5] ^= 0x01
    sig.write_bytes(bytes(data))
    assert sig.name in bad_paths(repo)


def test_package_signed_by_a_foreign_key_is_named(repo, tmp_path):
    foreign = SigningConfig(None, tmp_path / "foreign")
    key, _ = init_key(foreign, "intruder <x@example.invalid>")
    p = pkg(repo, "t-b")
    detach_sign(foreign, key, p)
    report = verify(repo)
    bad = {c.path: c.message for c in report.bad()}
    assert f"signed by key {key.fingerprint[-16:]}, not the repository key" == bad[p.name + ".sig"]


def test_missing_package_file_is_named(repo):
    p = pkg(repo, "t-a")
    p.unlink()
    assert p.name in bad_paths(repo)


def test_swapped_package_files_are_both_named(repo):
    a, b = pkg(repo, "t-a"), pkg(repo, "t-b")
    tmp = a.with_name("swap")
    shutil.move(a, tmp)
    shutil.move(b, a)
    shutil.move(tmp, b)
    assert {a.name, b.name} <= bad_paths(repo)


def test_missing_db_signature_is_named(repo):
    (repo.repo.published / "avf.db.tar.gz.sig").unlink()
    assert "avf.db.tar.gz.sig" in bad_paths(repo)


def test_empty_repository_is_not_ok(cfg):
    report = verify(cfg)
    assert not report.ok and "database missing" in report.checks[0].message


def test_orphan_package_in_the_published_directory_is_named(repo, tmp_path):
    stray = repo.repo.published / "t-z-1.0-1-any.pkg.tar.zst"
    stray.write_bytes(b"not listed")
    bad = {c.path: c.message for c in verify(repo).bad()}
    assert bad[stray.name].startswith("orphan")


def test_archived_package_with_a_broken_signature_is_named(repo):
    from avfrepo.repo import layout
    pool_pkg = next(layout.pool(repo).glob("t-a-*.pkg.tar.zst"))
    published_entry = repo.repo.published / pool_pkg.name
    # break the link so only the archive copy is damaged
    published_entry.unlink()
    shutil.copy(pool_pkg, published_entry)
    data = bytearray(pool_pkg.read_bytes())
    data[len(data) // 2] ^= 1
    pool_pkg.write_bytes(bytes(data))
    bad = {c.path for c in verify(repo).bad()}
    assert f"pool/{pool_pkg.name}.sig" in bad and pool_pkg.name not in bad
