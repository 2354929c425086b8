"""Split builds: build jobs without the key hand over unsigned packages; the signer checks them
against the build plan, then signs and publishes (real makepkg, gpg, repo-add)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from avfrepo import config as config_mod
from avfrepo import provenance
from avfrepo.build import build
from avfrepo.cli import main
from avfrepo.demo import write_config
from avfrepo.formats.repodb import read_db
from avfrepo.makepkg import printsrcinfo
from avfrepo.repo.publish import PublishRefused, read_plan, sign_and_publish
from avfrepo.repo.verify import verify
from avfrepo.signing import secret_keys, signing_key

from ..build.conftest import write_pkg
from ..conftest import require_build_user, require_tools

SPLIT = textwrap.dedent("""\
    pkgbase=t-s
    pkgname=(t-s t-s-doc)
    pkgver=2.0
    pkgrel=1
    pkgdesc="synthetic split test package"
    arch=(any)
    license=(MIT)
    options=(!strip)
    package_t-s() { install -d "$pkgdir/usr/share/t-s"; echo s > "$pkgdir/usr/share/t-s/s"; }
    package_t-s-doc() { install -d "$pkgdir/usr/share/doc/t-s"; echo d > "$pkgdir/usr/share/doc/t-s/d"; }
    """)


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    """What a CI build job hands over: the plan, and the unsigned packages of a run made
    with a GnuPG home that holds no key at all."""
    require_tools("makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()
    base = tmp_path_factory.mktemp("build-job")
    empty = base / "no-key-gnupg"
    empty.mkdir(mode=0o700)
    cfg = config_mod.load(write_config(base / "avfrepo.toml", "file:///nowhere", empty))
    write_pkg(cfg, "t-a")
    write_pkg(cfg, "t-b", depends=("t-a",))
    d = cfg.pkgbuilds / "t-s"
    d.mkdir(parents=True)
    (d / "PKGBUILD").write_text(SPLIT)
    (d / ".SRCINFO").write_text(printsrcinfo(cfg, {"PKGBUILD": SPLIT.encode()}))
    plan = base / "plan.json"
    plan.write_text(json.dumps(build(cfg, dry_run=True).to_json()))     # = avfrepo build --plan --json
    out = base / "out"
    report = build(cfg, unsigned_to=out)
    return {"cfg": cfg, "plan": plan, "out": out, "report": report, "empty": empty}


def handed_over(job: dict, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A private copy of the job's output (as download-artifact leaves it)."""
    dest = tmp_path / "built"
    shutil.copytree(job["out"], dest)
    return dest, sorted(dest.glob("*.pkg.tar.zst"))


def edited_plan(job: dict, tmp_path: Path, edit) -> Path:
    plan = json.loads(job["plan"].read_text())
    rows = {r["pkgbase"]: r for r in plan["results"]}
    edit(rows)
    plan["results"] = list(rows.values())
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return path


def test_the_build_job_needs_no_key_signs_nothing_and_publishes_nothing(job):
    assert secret_keys(job["empty"]) == []
    assert {r.pkgbase: r.status for r in job["report"].results} == {"t-a": "built", "t-b": "built", "t-s": "built"}
    names = sorted(p.name for p in job["out"].iterdir())
    assert names == sorted(f"{n}-{v}-any.pkg.tar.zst{s}" for n, v in
                           (("t-a", "1.0-1"), ("t-b", "1.0-1"), ("t-s", "2.0-1"), ("t-s-doc", "2.0-1"))
                           for s in ("", ".provenance.json"))
    for pkg in job["out"].glob("*.pkg.tar.zst"):
        rec = provenance.read(provenance.path_for(pkg))
        assert rec.filename == pkg.name and rec.size == pkg.stat().st_size
    assert not job["cfg"].repo.path.exists()
    by_base = {r["pkgbase"]: r for r in json.loads(job["plan"].read_text())["results"]}
    assert by_base["t-s"]["pkgnames"] == ["t-s", "t-s-doc"] and by_base["t-s"]["version"] == "2.0-1"


def test_signer_checks_against_the_plan_then_signs_and_publishes(job, rcfg, tmp_path):
    built, pkgs = handed_over(job, tmp_path)
    seen = []
    checked = sign_and_publish(rcfg, signing_key(rcfg.signing), job["plan"], pkgs, progress=seen.append)
    assert checked.missing == [] and len(checked.packages) == 4
    assert "4 package(s) match the build plan" in seen
    assert {n: e.version for n, e in read_db(rcfg.repo.db).items()} == {
        "t-a": "1.0-1", "t-b": "1.0-1", "t-s": "2.0-1", "t-s-doc": "2.0-1"}
    report = verify(rcfg, provenance=True)
    assert report.ok, [c for c in report.bad()]
    assert not list(built.glob("*.sig"))         # signatures are made on the signer's private copies


def test_a_pkgbase_the_plan_lists_but_nobody_built_is_reported_not_refused(job, rcfg, tmp_path):
    _, pkgs = handed_over(job, tmp_path)
    pkgs = [p for p in pkgs if not p.name.startswith("t-b-")]
    checked = sign_and_publish(rcfg, signing_key(rcfg.signing), job["plan"], pkgs)
    assert checked.missing == ["t-b"] and set(read_db(rcfg.repo.db)) == {"t-a", "t-s", "t-s-doc"}


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.pop("t-a"), "pkgbase 't-a' is not in the build plan"),
    (lambda p: p["t-a"].update(version="1.0-2"), "version 1.0-1, the plan builds t-a 1.0-2"),
    (lambda p: p["t-s"].update(pkgnames=["t-s"]), "'t-s-doc' is not one of the packages the plan has t-s build"),
    (lambda p: p["t-s"].update(pkgnames=["t-s", "t-s-doc", "t-s-extra"]), "t-s is incomplete: no package for t-s-extra"),
])
def test_a_package_the_plan_does_not_account_for_is_refused_before_anything_is_signed(job, rcfg, tmp_path, edit,
                                                                                     message):
    built, pkgs = handed_over(job, tmp_path)
    plan = edited_plan(job, tmp_path, edit)
    with pytest.raises(PublishRefused, match=message):
        sign_and_publish(rcfg, signing_key(rcfg.signing), plan, pkgs)
    assert not rcfg.repo.path.exists() and not list(built.rglob("*.sig"))


def test_a_missing_or_altered_provenance_record_is_refused(job, rcfg, tmp_path):
    built, pkgs = handed_over(job, tmp_path)
    key = signing_key(rcfg.signing)
    record = provenance.path_for(pkgs[0])
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "sha256": "0" * 64}))
    with pytest.raises(PublishRefused, match=r"provenance.json: sha256 do\(es\) not match"):
        sign_and_publish(rcfg, key, job["plan"], pkgs)
    record.unlink()
    with pytest.raises(PublishRefused, match="no provenance record beside it"):
        sign_and_publish(rcfg, key, job["plan"], pkgs)
    assert not rcfg.repo.path.exists()


def test_a_malformed_plan_or_a_second_file_for_a_package_is_refused(job, rcfg, tmp_path):
    _, pkgs = handed_over(job, tmp_path)
    key = signing_key(rcfg.signing)
    bad = tmp_path / "bad.json"
    for text, message in (("not json", "not JSON"), ('{"include": []}', "not a build plan"),
                          ('{"results": [{"pkgbase": "t-a; rm -rf /", "version": "1.0-1", "pkgnames": ["t-a"]}]}',
                           "entry 0 of the build plan")):
        bad.write_text(text)
        with pytest.raises(PublishRefused, match=message):
            read_plan(bad)
    twice = tmp_path / "again"
    twice.mkdir()
    shutil.copy(pkgs[0], twice / pkgs[0].name)
    shutil.copy(provenance.path_for(pkgs[0]), twice / provenance.path_for(pkgs[0]).name)
    with pytest.raises(PublishRefused, match="a second file for t-a"):
        sign_and_publish(rcfg, key, job["plan"], [*pkgs, twice / pkgs[0].name])
    assert not rcfg.repo.path.exists()


def test_a_plan_entry_with_a_trailing_newline_is_refused(tmp_path):
    # the plan's names and versions are checked by formats/archrules.py, whole-string: the
    # regexes this replaced ended in `$`, which also matches before a final newline
    bad = tmp_path / "plan.json"
    for row in ({"pkgbase": "t-a\n", "version": "1.0-1", "pkgnames": ["t-a"]},
                {"pkgbase": "t-a", "version": "1.0-1", "pkgnames": ["t-a\n"]},
                {"pkgbase": "t-a", "version": "1.0-1\n", "pkgnames": ["t-a"]}):
        bad.write_text(json.dumps({"results": [row]}))
        with pytest.raises(PublishRefused, match="entry 0 of the build plan"):
            read_plan(bad)


def _renamed_with_tail(pkg: Path, tail: str) -> Path:
    """pkg and its provenance record renamed to <pkg>.pkg.tar.zst<tail>, the record saying so."""
    wrong = pkg.with_name(pkg.name + tail)
    record = provenance.path_for(pkg)
    data = json.loads(record.read_text())
    pkg.rename(wrong)
    record.unlink()
    provenance.path_for(wrong).write_text(json.dumps({**data, "filename": wrong.name}))
    return wrong


def test_a_file_name_with_more_after_its_compression_is_refused_by_plan_check_and_build(job, rcfg, tmp_path):
    # check_against_plan and build.check_artifact compared only a prefix of the file name;
    # both now ask formats/archrules.py whether the name is exactly what its .PKGINFO says
    from avfrepo.build import check_artifact
    from avfrepo.build.plan import PlannedBuild
    from avfrepo.errors import AvfrepoError
    from avfrepo.formats import srcinfo
    built, pkgs = handed_over(job, tmp_path)
    wrong = _renamed_with_tail(next(p for p in pkgs if p.name.startswith("t-a-")), ".old")
    rest = [p for p in pkgs if not p.name.startswith("t-a-")]
    with pytest.raises(PublishRefused, match=r"t-a-1.0-1-any.pkg.tar.zst.old: file name does not match its .PKGINFO"):
        sign_and_publish(rcfg, signing_key(rcfg.signing), job["plan"], [wrong, *rest])
    assert not rcfg.repo.path.exists() and not list(built.rglob("*.sig"))
    cfg = job["cfg"]
    info = srcinfo.parse((cfg.pkgbuilds / "t-a" / ".SRCINFO").read_text())
    item = PlannedBuild("t-a", "1.0-1", cfg.pkgbuilds / "t-a", info)
    with pytest.raises(AvfrepoError, match="file name does not match its .PKGINFO"):
        check_artifact(cfg, item, wrong, repo={})
    assert check_artifact(cfg, item, next(p for p in handed_over(job, tmp_path / "again")[1]
                                          if p.name.startswith("t-a-")), repo={}).pkgname == "t-a"


def test_publish_rules_still_apply_after_signing_and_leave_the_repository_alone(job, rcfg, tmp_path):
    _, pkgs = handed_over(job, tmp_path)
    key = signing_key(rcfg.signing)
    sign_and_publish(rcfg, key, job["plan"], pkgs)
    before = read_db(rcfg.repo.db)
    # other bytes under a published name and version: refused by the publish transaction
    other = tmp_path / "other"
    other.mkdir()
    cfg2 = config_mod.load(write_config(other / "avfrepo.toml", "file:///nowhere", job["empty"]))
    write_pkg(cfg2, "t-a", body='echo other > "$pkgdir/usr/share/t-a.txt"')
    plan = other / "plan.json"
    plan.write_text(json.dumps(build(cfg2, dry_run=True).to_json()))
    build(cfg2, unsigned_to=other / "out")
    with pytest.raises(PublishRefused, match="was published before with other content"):
        sign_and_publish(rcfg, key, plan, sorted((other / "out").glob("*.pkg.tar.zst")))
    assert read_db(rcfg.repo.db) == before


def test_cli_build_unsigned_and_repo_add_plan(job, rcfg, tmp_path, capsys):
    _, pkgs = handed_over(job, tmp_path)
    argv = ["--config", str(rcfg.file), "repo", "add", "--plan", str(job["plan"]), *map(str, pkgs)]
    assert main([*argv[:4], "--dry-run", "--json", *argv[4:]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and len(out["packages"]) == 4 and not rcfg.repo.path.exists()
    assert main(argv) == 0
    assert "signed and published 4 package(s)" in capsys.readouterr().out
    assert verify(rcfg, provenance=True).ok
    assert main(["--config", str(rcfg.file), "repo", "add", "--dry-run", str(pkgs[0])]) == 2
    assert "needs --plan" in capsys.readouterr().err
    assert main(["--config", str(job["cfg"].file), "build", "--plan", "--unsigned", str(tmp_path / "x")]) == 2
    assert "--unsigned builds" in capsys.readouterr().err
    # a build job: exactly one pkgbase, with a GnuPG home that holds no key
    assert main(["--config", str(job["cfg"].file), "build", "--only", "t-a", "--unsigned", str(tmp_path / "x")]) == 0
    assert "1 built" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [
        "t-a-1.0-1-any.pkg.tar.zst", "t-a-1.0-1-any.pkg.tar.zst.provenance.json"]
