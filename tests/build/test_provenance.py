"""Every package `avfrepo build` publishes carries a signed provenance record beside it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess

import pytest

from avfrepo import provenance, state as state_mod
from avfrepo.build import build
from avfrepo.fsutil import sha256_file
from avfrepo.repo import layout
from avfrepo.signing import export_public, signing_key, verify_detached

from .conftest import write_pkg


def published(cfg, name):
    return next(cfg.repo.published.glob(f"{name}-*.pkg.tar.zst"))


def buildinfo(pkg) -> dict[str, str]:
    out = subprocess.run(["bsdtar", "-xOf", str(pkg), ".BUILDINFO"], capture_output=True, text=True, check=True).stdout
    return dict(l.split(" = ", 1) for l in out.splitlines() if " = " in l)


def test_published_package_has_a_signed_record_in_pool_and_snapshot(cfg):
    write_pkg(cfg, "t-a", version="2.5", rel=3)
    report = build(cfg)
    assert [r.status for r in report.results] == ["published"]
    pkg = published(cfg, "t-a")
    rec_path = provenance.path_for(pkg)
    pool_rec = layout.pool(cfg) / rec_path.name
    # hard links to the pool, like the package itself
    assert os.path.samefile(rec_path, pool_rec)
    assert os.path.samefile(str(rec_path) + ".sig", str(pool_rec) + ".sig")
    key = signing_key(cfg.signing)
    public = export_public(cfg.signing, key.fingerprint, armor=False)
    assert verify_detached(public, rec_path.with_name(rec_path.name + ".sig"), rec_path, key.fingerprint).ok

    text = rec_path.read_bytes()
    data = json.loads(text)
    assert text == (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()    # stable form
    rec = provenance.parse(text)
    assert (rec.pkgname, rec.pkgbase, rec.version, rec.arch) == ("t-a", "t-a", "2.5-3", "any")
    assert rec.filename == pkg.name and rec.sha256 == sha256_file(pkg) and rec.size == pkg.stat().st_size
    assert rec.pkgbuild_sha256 == sha256_file(cfg.pkgbuilds / "t-a/PKGBUILD")
    assert rec.backend == "makepkg" and rec.builder_host
    assert re.fullmatch(r"\d+\.\d+\.\d+", rec.tools["makepkg"]) and rec.tools["repo-add"] == rec.tools["makepkg"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", rec.tools["gpg"]) and rec.tools["avfrepo"]
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(iso, rec.build_started) and re.fullmatch(iso, rec.build_finished)
    assert rec.build_started <= rec.build_finished
    # no state entry for a synthetic package
    assert rec.inputs is None and rec.upstreams == {}
    # makepkg stamped the recorded SOURCE_DATE_EPOCH as builddate
    assert rec.source_date_epoch == int((cfg.pkgbuilds / "t-a/PKGBUILD").stat().st_mtime)
    assert buildinfo(pkg)["builddate"] == str(rec.source_date_epoch)


def test_record_names_the_upstreams_and_inputs_of_the_state_entry(cfg):
    write_pkg(cfg, "t-a")
    st = state_mod.State(
        upstreams={"avf": state_mod.UpstreamState("android-16.0.0_r2", "c0ffee" * 6 + "abcd"),
                   "other": state_mod.UpstreamState("v9", "1234")},
        packages={"t-a": state_mod.PackageState("1.0", 1, "f" * 64, {"avf": "android-16.0.0_r2", "other": "v8"})})
    state_mod.save(cfg.state_file, st)
    build(cfg)
    rec = provenance.read(provenance.path_for(published(cfg, "t-a")))
    assert rec.inputs == "f" * 64
    # a commit only when the recorded upstream is still at the version the package used
    assert rec.upstreams == {"avf": {"version": "android-16.0.0_r2", "commit": "c0ffee" * 6 + "abcd"},
                             "other": {"version": "v8", "commit": None}}


def test_source_date_epoch_is_the_commit_time_of_a_clean_git_tree(cfg, tmp_path):
    write_pkg(cfg, "t-a")
    d = cfg.pkgbuilds / "t-a"
    os.utime(d / "PKGBUILD", (1_600_000_000, 1_600_000_000))
    assert provenance.source_date_epoch(d) == 1_600_000_000           # not in git: the mtime
    env = {**os.environ, "GIT_AUTHOR_DATE": "@1650000000 +0000", "GIT_COMMITTER_DATE": "@1650000000 +0000",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for argv in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-q", "-m", "pkgbuilds"]):
        subprocess.run(argv, cwd=cfg.pkgbuilds, env=env, check=True)
    assert provenance.source_date_epoch(d) == 1_650_000_000
    (d / "PKGBUILD").write_text((d / "PKGBUILD").read_text() + "# local change\n")
    os.utime(d / "PKGBUILD", (1_700_000_000, 1_700_000_000))
    assert provenance.source_date_epoch(d) == 1_700_000_000           # modified: the mtime again


def test_retention_deletes_the_record_with_its_package(cfg):
    c = dataclasses.replace(cfg, repo=dataclasses.replace(cfg.repo, keep=1))
    write_pkg(c, "t-a", rel=1)
    build(c)
    old = published(c, "t-a").name
    pool = layout.pool(c)
    assert {n for n in provenance.companions(old)} <= {p.name for p in pool.iterdir()}
    write_pkg(c, "t-a", rel=2)
    build(c)
    names = {p.name for p in pool.iterdir()}
    assert old not in names and not set(provenance.companions(old)) & names
    new = published(c, "t-a").name
    assert new != old and set(provenance.companions(new)) <= names


def test_a_record_left_without_its_package_is_removed_by_the_next_publish(built_a):
    cfg = built_a
    pool = layout.pool(cfg)
    stray = pool / ("t-z-1.0-1-any.pkg.tar.zst" + provenance.SUFFIX)
    stray.write_text("{}")
    (pool / (stray.name + ".sig")).write_bytes(b"x")
    write_pkg(cfg, "t-b")
    build(cfg)
    assert not stray.exists() and not (pool / (stray.name + ".sig")).exists()
    assert provenance.path_for(published(cfg, "t-a")).exists()        # a kept package keeps its record


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("sha256"), "missing sha256"),
    (lambda d: d.update(format=2), "unsupported provenance format 2"),
    (lambda d: d.update(extra=1), "unknown extra"),
    (lambda d: d.update(source_date_epoch="1"), "wrong type of source_date_epoch"),
])
def test_parse_names_what_is_wrong(change, message):
    rec = provenance.Record("a", "a", "1-1", "any", "a-1-1-any.pkg.tar.zst", "0" * 64, 1, "1" * 64, None, {},
                            "host", "makepkg", {}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", 5)
    assert provenance.parse(rec.to_bytes()) == rec
    data = json.loads(rec.to_bytes())
    change(data)
    with pytest.raises(ValueError, match=message):
        provenance.parse(json.dumps(data).encode())


def test_a_state_that_does_not_describe_the_built_version_names_no_upstreams():
    """sync killed between writing pkgbuilds/ and the state: the state still names the old
    upstream; the record of the new build must not claim it."""
    from avfrepo import provenance as prov
    from avfrepo.state import PackageState, State, UpstreamState
    st = State(upstreams={"avf": UpstreamState("android-16.0.0_r4", "a" * 40)},
               packages={"avf-config": PackageState("16.0.0.r4", 1, "f" * 64, {"avf": "android-16.0.0_r4"})})
    assert prov.upstreams_for(st, "avf-config", "16.0.0.r4-1")[0] == {
        "avf": {"version": "android-16.0.0_r4", "commit": "a" * 40}}
    assert prov.upstreams_for(st, "avf-config", "1:16.0.0.r4-1")[1] == "f" * 64
    assert prov.upstreams_for(st, "avf-config", "16.0.0.r5-1") == ({}, None)
