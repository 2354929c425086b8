"""`avfrepo build` and `avfrepo chroot` on the command line (real makepkg, real host)."""

from __future__ import annotations

import json

from avfrepo.cli import main

from .conftest import write_pkg


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_as_github_matrix(capsys, pkgs):
    code, out, _ = run_cli(capsys, "--config", str(pkgs.file), "build", "--plan", "--format", "github-matrix")
    assert code == 0
    matrix = json.loads(out)
    assert [e["packages"] for e in matrix["include"]] == ["t-a t-d", "t-b", "t-c"]
    assert [e["layer"] for e in matrix["include"]] == [0, 1, 2]
    assert not pkgs.repo.path.exists()
    code, _, err = run_cli(capsys, "--config", str(pkgs.file), "build", "--format", "github-matrix")
    assert code == 2 and "needs --plan" in err


def test_dry_run_prints_the_plan_table_with_reasons(capsys, pkgs):
    code, out, _ = run_cli(capsys, "--config", str(pkgs.file), "build", "--dry-run", "t-d")
    assert code == 0
    row = next(l for l in out.splitlines() if l.startswith("t-d "))
    assert "planned" in row and "new package: t-d is not in [avf]; requested" in row
    assert "dry run: 4 package(s) planned, nothing built" in out


def test_failed_build_ends_with_the_summary_table_and_exit_1(capsys, cfg):
    write_pkg(cfg, "t-a", fail=True)
    write_pkg(cfg, "t-b", depends=("t-a",))
    write_pkg(cfg, "t-d")
    code, out, err = run_cli(capsys, "--config", str(cfg.file), "build", "--jobs", "2")
    assert code == 1
    rows = {l.split()[0]: l.split()[2] for l in out.splitlines()[2:] if l.startswith("t-") and len(l.split()) > 3
            and not l.split()[0].endswith(":")}
    assert rows == {"t-a": "failed", "t-b": "skipped", "t-d": "published"}
    assert f"log: {cfg.logs / 't-a/1.0-1.log'}" in out and "1 published, 1 failed, 1 skipped" in out
    assert "building with makepkg" in err and "log " in err
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "build", "--dry-run", "--json")
    reasons = {r["pkgbase"]: r["reasons"] for r in json.loads(out)["results"]}
    assert reasons["t-a"][-1].startswith("retry after failure: 1.0-1 failed")


def test_only_needs_names_and_jobs_must_be_positive(capsys, pkgs):
    code, _, err = run_cli(capsys, "--config", str(pkgs.file), "build", "--only")
    assert code == 2 and "--only needs" in err
    code, _, err = run_cli(capsys, "--config", str(pkgs.file), "build", "--jobs", "0")
    assert code == 2 and "--jobs" in err
    assert not pkgs.logs.exists()


def test_chroot_init_on_a_host_without_devtools_explains_and_writes_nothing(capsys, cfg, tmp_path):
    import shutil
    if shutil.which("mkarchroot"):
        import pytest
        pytest.skip("this host has devtools")
    conf = tmp_path / "chroot.toml"
    conf.write_text(cfg.file.read_text().replace('backend = "makepkg"', f'backend = "makechrootpkg"\nchroot = "{tmp_path / "ch"}"'))
    code, _, err = run_cli(capsys, "--config", str(conf), "chroot", "init")
    assert code == 1 and "mkarchroot not found" in err and "devtools" in err
    assert not (tmp_path / "ch").exists()
    code, _, err = run_cli(capsys, "--config", str(conf), "chroot", "update")
    assert code == 1 and "avfrepo chroot init" in err


def test_a_held_package_is_named_held_never_published(capsys, cfg):
    """After `repo rollback`, a rebuild of the version rolled back from is held by the publish
    step: the summary says "held", counts it apart, and the JSON says the same (issue 25)."""
    assert run_cli(capsys, "--config", str(cfg.file), "sync")[0] == 0
    assert run_cli(capsys, "--config", str(cfg.file), "build")[0] == 0
    assert run_cli(capsys, "--config", str(cfg.file), "build", "avf-config")[0] == 0       # 16.0.0.r10-1.1
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "repo", "rollback", "avf-config")
    assert code == 0 and "16.0.0.r10-1 is published again" in out
    code, out, err = run_cli(capsys, "--config", str(cfg.file), "build", "avf-config", "avf-keyring")
    assert code == 0 and "held until a newer version is synced" in err
    row = next(l for l in out.splitlines() if l.startswith("avf-config "))
    assert row.split()[1:3] == ["16.0.0.r10-1.1", "held"]
    assert "1 published, 1 held" in out and "2 published" not in out
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "repo", "list", "--json")
    rows = json.loads(out)
    rows = rows["packages"] if isinstance(rows, dict) else rows
    assert {r["name"]: r["published"] for r in rows}["avf-config"] == "16.0.0.r10-1"
    code, out, _ = run_cli(capsys, "--config", str(cfg.file), "build", "avf-config", "--json")
    res = {r["pkgbase"]: r for r in json.loads(out)["results"]}["avf-config"]
    assert res["status"] == "held" and res["held"] == ["avf-config"] and "rolled back" in res["note"]
