"""Reverse-dependency rebuilds, subreleases and retries, with real makepkg builds."""

from __future__ import annotations

import json

import pytest

from avfrepo.build import build, history
from avfrepo.build.plan import next_subrelease, plan, soname_change, sonames
from avfrepo.errors import AvfrepoError
from avfrepo.formats.repodb import read_db

from ..conftest import copy_workdir
from .conftest import built_state, write_pkg


def versions(cfg) -> dict[str, str]:
    return {n: e.version for n, e in read_db(cfg.repo.db).items()}


def _lib_and_app(cfg) -> None:
    write_pkg(cfg, "t-lib", provides=("libtlib.so=1-64",))
    write_pkg(cfg, "t-app", depends=("libtlib.so",))   # depends on the soname, not the name


# Tests whose subject is the rebuild after a first build start from a copy of that first
# build, made once per run (the build itself is test_build.py's subject); `built_pkgs`, the
# chain of `pkgs` built, is in conftest.py

@pytest.fixture(scope="session")
def lib_app_built(tmp_path_factory, demo_upstream_template, signing_home):
    return built_state(tmp_path_factory, demo_upstream_template, signing_home, "lib-app-built",
                       lambda cfg: (_lib_and_app(cfg), build(cfg)))


@pytest.fixture
def built_lib_app(cfg, lib_app_built):
    """t-lib (providing libtlib.so=1-64) and t-app (depending on libtlib.so), built and published."""
    copy_workdir(lib_app_built, cfg.file.parent)
    assert versions(cfg) == {"t-lib": "1.0-1", "t-app": "1.0-1"}
    return cfg


def test_new_upstream_version_rebuilds_direct_reverse_deps_as_a_subrelease(built_pkgs):
    pkgs = built_pkgs
    write_pkg(pkgs, "t-a", version="2.0", provides=())
    items = {i.pkgbase: i for i in plan(pkgs)}
    assert sorted(items) == ["t-a", "t-b"]            # t-c needs only t-b, whose pkgver is unchanged
    assert items["t-a"].reasons == ["new upstream version: t-a 1.0-1 -> 2.0-1"]
    assert items["t-b"].reasons == ["dependency rebuilt: t-a (t-a 1.0-1 -> 2.0-1)"]
    assert (items["t-b"].version, items["t-b"].pkgbuild_version) == ("1.0-1.1", "1.0-1")
    report = build(pkgs)
    assert {r.pkgbase: r.status for r in report.results} == {"t-a": "published", "t-b": "published"}
    assert versions(pkgs) == {"t-a": "2.0-1", "t-b": "1.0-1.1", "t-c": "1.0-1", "t-d": "1.0-1"}
    assert (pkgs.pkgbuilds / "t-b/PKGBUILD").read_text().count("pkgrel=1\n") == 1   # pkgbuilds/ untouched
    assert plan(pkgs) == []                            # the subrelease counts as current


def test_declared_soname_change_at_the_same_pkgver_rebuilds_dependents(cfg):
    write_pkg(cfg, "t-lib", provides=("libtlib.so=1-64",))
    write_pkg(cfg, "t-app", depends=("libtlib.so",))   # depends on the soname, not the name
    write_pkg(cfg, "t-other")
    build(cfg)
    write_pkg(cfg, "t-lib", rel=2, provides=("libtlib.so=2-64",))
    items = {i.pkgbase: i.reasons for i in plan(cfg)}
    assert items == {"t-lib": ["inputs changed: t-lib 1.0-1 -> 1.0-2"],
                     "t-app": ["dependency rebuilt: t-lib (libtlib.so=1-64 -> libtlib.so=2-64)"]}


def test_soname_change_found_only_in_the_built_package_adds_dependents_to_the_run(built_lib_app):
    cfg = built_lib_app
    # makepkg fills in soname versions itself: the .SRCINFO says only `libtlib.so`
    write_pkg(cfg, "t-lib", rel=2, provides=("libtlib.so=2-64",))
    srcinfo = cfg.pkgbuilds / "t-lib/.SRCINFO"
    srcinfo.write_text(srcinfo.read_text().replace("provides = libtlib.so=2-64", "provides = libtlib.so"))
    assert [i.pkgbase for i in plan(cfg)] == ["t-lib"]
    seen = []
    report = build(cfg, progress=seen.append)
    status = {r.pkgbase: (r.status, r.reasons) for r in report.results}
    assert status["t-app"] == ("published", ["dependency rebuilt: t-lib (libtlib.so=1-64 -> libtlib.so=2-64)"])
    assert any("t-app: added to the run" in m for m in seen)
    assert versions(cfg) == {"t-lib": "1.0-2", "t-app": "1.0-1.1"}


def test_unchanged_sonames_after_a_build_add_nothing(built_lib_app):
    cfg = built_lib_app
    write_pkg(cfg, "t-lib", rel=2, provides=("libtlib.so=1-64",))
    report = build(cfg)
    assert [(r.pkgbase, r.status) for r in report.results] == [("t-lib", "published")]


def test_failure_is_remembered_and_retried_then_forgotten(cfg):
    write_pkg(cfg, "t-a", fail=True)
    write_pkg(cfg, "t-b", depends=("t-a",))
    write_pkg(cfg, "t-d")
    build(cfg)
    record = history.load(cfg)
    assert set(record) == {"t-a", "t-b"}
    assert record["t-a"]["status"] == "failed" and record["t-a"]["log"] == str(cfg.logs / "t-a/1.0-1.log")
    assert record["t-b"]["status"] == "skipped"
    write_pkg(cfg, "t-a")                              # fixed
    items = {i.pkgbase: i.reasons for i in plan(cfg, failures=history.load(cfg))}
    assert items["t-a"][0] == "new package: t-a is not in [avf]"
    assert items["t-a"][1].startswith("retry after failure: 1.0-1 failed (makepkg exited")
    assert items["t-b"][1] == "retry after failure: 1.0-1 skipped (dependency failed: t-a)"
    report = build(cfg, dry_run=True)
    assert any(r.startswith("retry after failure") for r in report.results[0].reasons)
    assert set(history.load(cfg)) == {"t-a", "t-b"}    # a dry run writes nothing
    report = build(cfg)
    assert not report.failed and history.load(cfg) == {}


def test_a_failed_dependency_rebuild_is_retried_by_its_record_alone(built_pkgs):
    pkgs = built_pkgs
    write_pkg(pkgs, "t-a", version="2.0")
    write_pkg(pkgs, "t-b", depends=("t-a>=1.0",), fail=True)     # same version, now fails
    report = build(pkgs)
    assert {r.pkgbase: r.status for r in report.results} == {"t-a": "published", "t-b": "failed"}
    write_pkg(pkgs, "t-b", depends=("t-a>=1.0",))
    # t-a 2.0 is published now: only the record says t-b still needs its rebuild
    [item] = plan(pkgs, failures=history.load(pkgs))
    assert item.pkgbase == "t-b" and item.version == "1.0-1.1"
    assert item.reasons[0].startswith("retry after failure: 1.0-1.1 failed")
    build(pkgs)
    assert versions(pkgs)["t-b"] == "1.0-1.1" and history.load(pkgs) == {}


def test_unreadable_failure_record_is_a_clear_error_before_any_build(pkgs):
    history.path(pkgs).parent.mkdir(parents=True)
    history.path(pkgs).write_text("{not json")
    with pytest.raises(AvfrepoError, match=r"\.failures\.json.*delete it"):
        build(pkgs)
    assert not pkgs.repo.path.exists() and history.path(pkgs).read_text() == "{not json"


def test_requested_rebuild_of_a_current_package_is_the_next_subrelease(pkgs):
    build(pkgs, only=["t-d"])
    report = build(pkgs, ["t-d"])
    by = {r.pkgbase: r for r in report.results}
    assert by["t-d"].version == "1.0-1.1" and by["t-d"].status == "published"
    assert {"t-a", "t-b", "t-c"} <= set(by)            # the others were due anyway
    assert versions(pkgs)["t-d"] == "1.0-1.1"


def test_only_builds_exactly_the_named_packages(pkgs):
    report = build(pkgs, only=["t-d", "t-a"])
    assert sorted(r.pkgbase for r in report.results) == ["t-a", "t-d"]
    assert set(versions(pkgs)) == {"t-a", "t-d"}


def test_soname_helpers():
    assert sonames(["libfoo.so=1-64", "foo", "libbar.so.2=2-64", "libbaz.so"]) == {
        "libfoo.so": "1-64", "libbar.so.2": "2-64", "libbaz.so": None}
    assert soname_change({"libfoo.so": "1-64"}, {"libfoo.so": None}) is None
    assert soname_change({"libfoo.so": "1-64"}, {"libfoo.so": "1-64"}) is None
    assert soname_change({"libfoo.so": "1-64"}, {"libfoo.so": "2-64"}) == "libfoo.so=1-64 -> libfoo.so=2-64"
    assert soname_change({}, {"libnew.so": None}) == "none -> libnew.so"
    assert [next_subrelease(v) for v in ("1.0-1", "1.0-1.1", "2:3-4.9")] == ["1.0-1.1", "1.0-1.2", "2:3-4.10"]


def test_failure_record_file_is_json_with_format(cfg):
    write_pkg(cfg, "t-a", fail=True)
    build(cfg)
    data = json.loads(history.path(cfg).read_text())
    assert data["format"] == 1 and data["failures"]["t-a"]["version"] == "1.0-1"


def test_a_failure_of_a_version_the_pkgbuild_went_back_from_is_not_retried(cfg):
    write_pkg(cfg, "t-a")                              # 1.0-1, not in [avf]
    rec = {"status": "failed", "error": "boom"}
    def reasons(version):
        return plan(cfg, failures={"t-a": dict(rec, version=version)})[0].reasons
    assert reasons("1.0-1") == ["new package: t-a is not in [avf]", "retry after failure: 1.0-1 failed (boom)"]
    assert reasons("0.9-3")[1:] == ["retry after failure: 0.9-3 failed (boom)"]
    assert reasons("2.0-1") == ["new package: t-a is not in [avf]"]       # reverted from 2.0


def test_a_deeply_nested_failure_record_is_a_clear_error_naming_it(pkgs):
    history.path(pkgs).parent.mkdir(parents=True)
    history.path(pkgs).write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(AvfrepoError, match=r"\.failures\.json: unreadable failure record \(not JSON"):
        history.load(pkgs)
