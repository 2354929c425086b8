"""Real makepkg builds: order, signing, publishing, failures that stop only their dependents."""

from __future__ import annotations

import dataclasses

import pytest

from avfrepo.build import build
from avfrepo.config import SigningConfig
from avfrepo.errors import SigningError
from avfrepo.formats.repodb import read_db
from avfrepo.repo.verify import verify

from .conftest import write_pkg


def test_build_publishes_signed_packages_in_dependency_order(pkgs):
    seen = []
    report = build(pkgs, progress=seen.append)
    assert {r.pkgbase: r.status for r in report.results} == dict.fromkeys(["t-a", "t-b", "t-c", "t-d"], "published")
    db = read_db(pkgs.repo.db)
    assert {n: e.version for n, e in db.items()} == dict.fromkeys(["t-a", "t-b", "t-c", "t-d"], "1.0-1")
    for e in db.values():
        assert (pkgs.repo.published / (e.filename + ".sig")).is_file() and e.pgpsig
    assert verify(pkgs).ok
    starts = [m for m in seen if "building with makepkg" in m]
    assert len(starts) == 4 and all("log " in m for m in starts)


def test_failed_package_skips_its_dependents_and_publishes_the_rest(cfg):
    write_pkg(cfg, "t-a", fail=True)
    write_pkg(cfg, "t-b", depends=("t-a",))
    write_pkg(cfg, "t-d")
    report = build(cfg)
    status = {r.pkgbase: r for r in report.results}
    assert status["t-a"].status == "failed" and "makepkg exited" in status["t-a"].error
    assert status["t-b"].status == "skipped" and status["t-b"].error == "dependency failed: t-a"
    assert status["t-d"].status == "published"
    assert report.failed
    log = cfg.logs / "t-a" / "1.0-1.log"
    assert status["t-a"].log == str(log) and "ERROR" in log.read_text()
    assert set(read_db(cfg.repo.db)) == {"t-d"}
    assert not list(cfg.repo.path.rglob("t-a-*")) and not list(cfg.repo.path.rglob("t-b-*"))


def test_missing_signing_key_fails_before_any_build(pkgs, tmp_path):
    nokey = dataclasses.replace(pkgs, signing=SigningConfig(None, tmp_path / "empty"))
    with pytest.raises(SigningError, match="avfrepo key init"):
        build(nokey)
    assert not pkgs.logs.exists() and not pkgs.repo.path.exists()


def test_plan_needs_no_key_and_names_each_pkgbase_s_packages(pkgs, tmp_path):
    # the CI job that plans (and the build jobs) never hold the signing key
    nokey = dataclasses.replace(pkgs, signing=SigningConfig(None, tmp_path / "empty"))
    report = build(nokey, dry_run=True)
    assert {r.pkgbase: r.pkgnames for r in report.results} == {b: [b] for b in ("t-a", "t-b", "t-c", "t-d")}
    assert report.to_json()["results"][0]["pkgnames"] == ["t-a"]


def test_dry_run_plans_but_builds_nothing(pkgs):
    report = build(pkgs, dry_run=True)
    assert [r.status for r in report.results] == ["planned"] * 4
    assert not pkgs.repo.path.exists()


def test_artifact_whose_pkginfo_disagrees_with_the_pkgbuild_is_not_published(cfg):
    write_pkg(cfg, "t-a")
    # The .SRCINFO promises 2.0 but the PKGBUILD builds 1.0: the artifact must be refused.
    srcinfo = cfg.pkgbuilds / "t-a/.SRCINFO"
    srcinfo.write_text(srcinfo.read_text().replace("pkgver = 1.0", "pkgver = 2.0"))
    report = build(cfg)
    assert report.results[0].status == "failed"
    assert ".PKGINFO version 1.0-1 != PKGBUILD 2.0-1" in report.results[0].error
    assert not cfg.repo.db.exists()


def test_signature_check_refuses_a_package_signed_by_another_key(tmp_path, signing_home):
    from avfrepo import signing
    from avfrepo.build import check_signature
    from avfrepo.errors import AvfrepoError
    other = SigningConfig(None, tmp_path / "other")
    key, _ = signing.init_key(other, "other <other@example.invalid>")
    ours = signing.signing_key(SigningConfig(None, signing_home))
    f = tmp_path / "x-1-1-any.pkg.tar.zst"
    f.write_bytes(b"not really a package")
    signing.detach_sign(other, key, f)
    public = signing.export_public(SigningConfig(None, signing_home), ours.fingerprint, armor=False)
    with pytest.raises(AvfrepoError, match="signature check failed"):
        check_signature(public, ours.fingerprint, f)
    signing.detach_sign(SigningConfig(None, signing_home), ours, f)
    check_signature(public, ours.fingerprint, f)       # our own signature passes
