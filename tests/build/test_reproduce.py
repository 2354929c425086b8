"""`avfrepo build --reproduce PKG`: rebuild with the recorded SOURCE_DATE_EPOCH, compare bytes."""

from __future__ import annotations

import json
import shutil

import pytest

from avfrepo import provenance
from avfrepo.build import build
from avfrepo.build.backends import MakepkgBackend
from avfrepo.build.reproduce import reproduce
from avfrepo.cli import main
from avfrepo.errors import AvfrepoError
from avfrepo.fsutil import sha256_file
from avfrepo.repo import layout

from .conftest import write_pkg


def published(cfg, name):
    return next(cfg.repo.published.glob(f"{name}-*.pkg.tar.zst"))


@pytest.fixture
def repo(built_a):
    """t-a built and published (a copy; the reproduction itself runs makepkg again)."""
    return built_a


def test_unchanged_package_rebuilds_byte_for_byte_and_nothing_is_published(repo, capsys):
    before = sorted(p.name for p in layout.snapshots(repo).iterdir())
    db = sha256_file(repo.repo.db)
    assert main(["--config", str(repo.file), "build", "--reproduce", "t-a"]) == 0
    out = capsys.readouterr().out
    pkg = published(repo, "t-a")
    assert f"MATCH     {pkg.name}  sha256 {sha256_file(pkg)}" in out and "t-a 1.0-1: reproducible" in out
    rebuilt = repo.cache / "reproduce" / "t-a" / pkg.name
    assert rebuilt.read_bytes() == pkg.read_bytes()
    assert sorted(p.name for p in layout.snapshots(repo).iterdir()) == before and sha256_file(repo.repo.db) == db
    assert not (repo.cache / "reproduce" / "t-a" / (pkg.name + ".sig")).exists()      # never signed


def test_published_file_replaced_by_another_build_is_a_mismatch_naming_the_members(repo, tmp_path, capsys):
    pkg = published(repo, "t-a")
    other = tmp_path / "other" / "t-a"
    other.mkdir(parents=True)
    shutil.copy(repo.pkgbuilds / "t-a/PKGBUILD", other / "PKGBUILD")
    text = (other / "PKGBUILD").read_text().replace('echo "$pkgname"', 'echo "something else"')
    (other / "PKGBUILD").write_text(text)
    made, = MakepkgBackend(repo).build(other, [], tmp_path / "log", tmp_path / "made",
                                       env={"SOURCE_DATE_EPOCH": "1500000000"})
    assert made.name == pkg.name
    pool = layout.pool(repo) / pkg.name
    pool.write_bytes(made.read_bytes())            # same inode: the snapshot's link changes too
    assert sha256_file(pkg) == sha256_file(made)

    report = reproduce(repo, "t-a")
    assert not report.reproducible
    f, = report.files
    assert f.published_sha256 == sha256_file(made) and f.rebuilt_sha256 != f.published_sha256
    text = "\n".join(f.differences)
    assert "bsdtar -tvf differs:" in text and ".MTREE differs:" in text
    assert "-builddate = 1500000000" in text              # .PKGINFO line of the replaced file
    assert main(["--config", str(repo.file), "build", "--reproduce", "t-a", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["reproducible"] is False and data["files"][0]["match"] is False


def test_changed_pkgbuild_at_the_same_version_is_a_mismatch_with_a_note(repo):
    write_pkg(repo, "t-a", body='echo changed > "$pkgdir/usr/share/$pkgname.txt"')
    report = reproduce(repo, "t-a")
    assert not report.reproducible
    assert any("is not the PKGBUILD the package was built from" in n for n in report.notes)
    text = "\n".join(report.files[0].differences)
    assert ".BUILDINFO differs:" in text and "pkgbuild_sha256" in text and ".MTREE differs:" in text


def test_a_pkgbuild_of_another_version_is_refused_clearly(repo):
    write_pkg(repo, "t-a", rel=2)
    with pytest.raises(AvfrepoError, match=r"PKGBUILD is version 1\.0-2, \[avf\] publishes 1\.0-1"):
        reproduce(repo, "t-a")
    assert not (repo.cache / "reproduce" / "t-a").exists()


def test_a_subrelease_is_rebuilt_with_its_pkgrel(repo):
    build(repo, ["t-a"])                          # requested again: 1.0-1.1
    assert published(repo, "t-a").name == "t-a-1.0-1.1-any.pkg.tar.zst"
    report = reproduce(repo, "t-a")
    assert report.version == "1.0-1.1" and report.reproducible


def test_missing_or_forged_record_refuses_to_rebuild(repo):
    rec = provenance.path_for(published(repo, "t-a"))
    data = bytearray(rec.read_bytes())
    data[data.index(b'"source_date_epoch": ') + 21] ^= 1       # another SOURCE_DATE_EPOCH digit
    rec.write_bytes(bytes(data))
    with pytest.raises(AvfrepoError, match="bad signature"):
        reproduce(repo, "t-a")
    rec.unlink()
    with pytest.raises(AvfrepoError, match="no provenance record"):
        reproduce(repo, "t-a")


def test_unknown_or_unpublished_package_is_an_error(cfg, capsys):
    write_pkg(cfg, "t-a")
    with pytest.raises(AvfrepoError, match="not published"):
        reproduce(cfg, "t-a")
    with pytest.raises(AvfrepoError, match="no PKGBUILD"):
        reproduce(cfg, "t-nope")
    assert main(["--config", str(cfg.file), "build", "--reproduce", "t-a", "t-b"]) == 2
