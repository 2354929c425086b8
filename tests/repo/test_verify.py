"""`avfrepo verify` names every file that pacman with SigLevel=Required would refuse."""

from __future__ import annotations

import shutil

import pytest

from avfrepo.build import build
from avfrepo.config import SigningConfig
from avfrepo.repo.verify import verify
from avfrepo.signing import detach_sign, init_key

from ..build.conftest import built_state, write_pkg
from ..conftest import copy_workdir


def _build_a_and_b(cfg) -> None:
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b")
    build(cfg)


@pytest.fixture(scope="session")
def published_a_b(tmp_path_factory, demo_upstream_template, signing_home):
    """t-a and t-b built and published once per run (real makepkg, repo-add, gpg)."""
    return built_state(tmp_path_factory, demo_upstream_template, signing_home, "published-t-a-t-b", _build_a_and_b)


@pytest.fixture
def repo(cfg, published_a_b):
    """This test's own copy of that repository, which it may damage."""
    copy_workdir(published_a_b, cfg.file.parent)
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


# --provenance: every listed package's signed provenance record

def record(cfg, name):
    from avfrepo.provenance import path_for
    return path_for(pkg(cfg, name))


def test_intact_repository_verifies_with_provenance(repo):
    report = verify(repo, provenance=True)
    assert report.ok
    checks = {c.path: c for c in report.checks}
    for name in ("t-a", "t-b"):
        rec = record(repo, name)
        assert checks[rec.name].ok and "names this file, version and sha256" in checks[rec.name].message
        assert checks[rec.name + ".sig"].ok
    # the records' signatures in the pool are not "signatures without their package"
    assert not report.warnings()


def test_without_provenance_flag_records_are_not_checked(repo):
    record(repo, "t-a").unlink()
    assert verify(repo).ok


def test_missing_provenance_record_is_named(repo):
    rec = record(repo, "t-a")
    rec.unlink()
    bad = {c.path: c.message for c in verify(repo, provenance=True).bad()}
    assert bad == {rec.name: "provenance record of t-a 1.0-1 missing"}


def test_tampered_provenance_record_is_named(repo):
    import json
    rec = record(repo, "t-b")
    data = json.loads(rec.read_text())
    data["builder_host"] = "elsewhere"
    rec.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    bad = {c.path: c.message for c in verify(repo, provenance=True).bad()}
    assert bad == {rec.name + ".sig": "bad signature: the file or the signature was altered"}


def test_flipped_byte_in_a_provenance_signature_is_named(repo):
    sig = record(repo, "t-a").with_name(record(repo, "t-a").name + ".sig")
    data = bytearray(sig.read_bytes())
    data[-5] ^= 0x01
    sig.write_bytes(bytes(data))
    assert {c.path for c in verify(repo, provenance=True).bad()} == {sig.name}


def test_record_of_other_bytes_signed_by_the_key_is_named(repo):
    import json
    from avfrepo.signing import signing_key
    rec = record(repo, "t-a")
    data = json.loads(rec.read_text())
    data["sha256"] = "0" * 64
    data["version"] = "9.9-9"
    rec.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    detach_sign(repo.signing, signing_key(repo.signing), rec)
    bad = {c.path: c.message for c in verify(repo, provenance=True).bad()}
    assert set(bad) == {rec.name}
    assert "version '9.9-9' != db '1.0-1'" in bad[rec.name]
    assert "sha256 differs from the db" in bad[rec.name] and "sha256 differs from the package file" in bad[rec.name]


def test_cli_verify_provenance_exits_1_and_names_the_record(repo, capsys):
    from avfrepo.cli import main
    rec = record(repo, "t-b")
    rec.unlink()
    assert main(["--config", str(repo.file), "verify"]) == 0
    capsys.readouterr()
    assert main(["--config", str(repo.file), "verify", "--provenance"]) == 1
    assert f"BAD {rec.name}: provenance record of t-b 1.0-1 missing" in capsys.readouterr().out
