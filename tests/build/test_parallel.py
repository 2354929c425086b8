"""--jobs N: a ready-queue over the dependency graph, real makepkg builds side by side."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import pytest

from avfrepo import config as config_mod
from avfrepo.build import build, format_summary
from avfrepo.errors import ConfigError
from avfrepo.formats.repodb import read_db

from .conftest import write_pkg


def rendezvous(me: str, other: str, folder) -> str:
    """A package() body that only finishes when the other package's build runs at the same time."""
    return (f'touch "{folder}/{me}"; for i in $(seq 600); do [ -e "{folder}/{other}" ] && break; sleep 0.1; done; '
            f'[ -e "{folder}/{other}" ]; echo "$pkgname" > "$pkgdir/usr/share/$pkgname.txt"')


def test_two_jobs_build_independent_packages_at_the_same_time(cfg):
    # the unprivileged build user writes here (pytest's tmp_path is private to root)
    meet = tempfile.mkdtemp(prefix="avfrepo-meet-")
    os.chmod(meet, 0o777)
    write_pkg(cfg, "t-p", body=rendezvous("p", "q", meet))
    write_pkg(cfg, "t-q", body=rendezvous("q", "p", meet))
    seen = []
    report = build(cfg, jobs=2, progress=seen.append)
    # each waited for the other: with one job the first would have failed after 60 s
    assert {r.pkgbase: r.status for r in report.results} == {"t-p": "published", "t-q": "published"}
    starts = [m for m in seen if "building with makepkg" in m]
    assert sorted("worker 1" in m for m in starts) == [False, True]
    assert sorted("worker 2" in m for m in starts) == [False, True]
    shutil.rmtree(meet)


def test_two_jobs_keep_dependency_order_and_failure_isolation(cfg):
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b", depends=("t-a",))
    write_pkg(cfg, "t-c", depends=("t-b",))
    write_pkg(cfg, "t-x", fail=True)
    write_pkg(cfg, "t-y", depends=("t-x",))
    write_pkg(cfg, "t-d")
    seen = []
    report = build(cfg, jobs=2, progress=seen.append)
    status = {r.pkgbase: r.status for r in report.results}
    assert status == {"t-a": "published", "t-b": "published", "t-c": "published", "t-d": "published",
                      "t-x": "failed", "t-y": "skipped"}
    def at(text):
        return next(i for i, m in enumerate(seen) if text in m)
    assert at("t-a: built") < at("t-b 1.0-1: building") and at("t-b: built") < at("t-c 1.0-1: building")
    assert not any("t-y 1.0-1: building" in m for m in seen)
    assert set(read_db(cfg.repo.db)) == {"t-a", "t-b", "t-c", "t-d"}
    table = format_summary(report)
    assert table.splitlines()[0].split()[:4] == ["package", "version", "status", "time"]
    assert "t-y: dependency failed: t-x" in table and f"log: {cfg.logs / 't-x/1.0-1.log'}" in table
    assert "4 published, 1 failed, 1 skipped" in table and "2 job(s)" in table


def test_layers_and_github_matrix_of_the_plan(pkgs):
    report = build(pkgs, dry_run=True)
    assert {r.pkgbase: r.layer for r in report.results} == {"t-a": 0, "t-d": 0, "t-b": 1, "t-c": 2}
    assert report.github_matrix() == {"include": [
        {"layer": 0, "packages": "t-a t-d", "pkgbases": ["t-a", "t-d"]},
        {"layer": 1, "packages": "t-b", "pkgbases": ["t-b"]},
        {"layer": 2, "packages": "t-c", "pkgbases": ["t-c"]}]}
    assert not pkgs.repo.path.exists()


def test_jobs_must_be_a_positive_whole_number(pkgs):
    for bad in (0, -1, True, "2"):
        with pytest.raises(ConfigError, match="--jobs"):
            build(pkgs, jobs=bad)
    assert not pkgs.logs.exists()


@pytest.mark.parametrize("value, ok", [("2", True), ("0", False), ("1.5", False), ('"4"', False), ("true", False)])
def test_build_jobs_in_the_config(tmp_path, value, ok):
    text = f"[build]\njobs = {value}\n"
    if ok:
        assert config_mod.parse(__import__("tomllib").loads(text), tmp_path / "c.toml", tmp_path).build.jobs == 2
    else:
        with pytest.raises(ConfigError, match=r"\[build\] jobs"):
            config_mod.parse(__import__("tomllib").loads(text), tmp_path / "c.toml", tmp_path)


def test_config_jobs_is_the_default_for_build(pkgs):
    two = dataclasses.replace(pkgs, build=dataclasses.replace(pkgs.build, jobs=2))
    assert build(two, dry_run=True).jobs == 2


def test_long_builds_report_elapsed_time_and_log_while_running(cfg):
    write_pkg(cfg, "t-slow", body='sleep 2; echo "$pkgname" > "$pkgdir/usr/share/$pkgname.txt"')
    seen = []
    build(cfg, progress=seen.append, heartbeat=0.5)
    still = [m for m in seen if "t-slow still building on worker 1" in m]
    assert still and all(f"log {cfg.logs / 't-slow/1.0-1.log'}" in m and " s, " in m for m in still)
