"""`avfrepo status` against a real repository built by the test."""

from __future__ import annotations

import json

import pytest

from avfrepo.build import build
from avfrepo.cli import main
from avfrepo.status import status
from avfrepo.sync import sync

from .build.conftest import write_pkg


def test_status_follows_a_package_from_sync_to_published(cfg, avf, capsys):
    sync(cfg)
    rows = {p.pkgbase: p for p in status(cfg).packages}
    cfgrow = rows["avf-config"]
    assert cfgrow.upstreams == {"avf": {"version": "android-16.0.0_r10",
                                        "commit": avf.repo.commit("android-16.0.0_r10").hexsha}}
    assert cfgrow.pkgbuild == "16.0.0.r10-1" and cfgrow.published == {"avf-config": None}
    assert cfgrow.pending == ["new package: avf-config is not in [avf]"] and not cfgrow.current
    assert main(["--config", str(cfg.file), "status"]) == 3
    assert "pending: new package: avf-config is not in [avf]" in capsys.readouterr().out

    build(cfg)
    report = status(cfg)
    assert not report.pending
    row = {p.pkgbase: p for p in report.packages}["avf-config"]
    assert row.published == {"avf-config": "16.0.0.r10-1"} and row.last_build["status"] == "published"
    assert row.last_build["log"].endswith("logs/avf-config/16.0.0.r10-1.log")
    assert main(["--config", str(cfg.file), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["current"] is True and {p["pkgbase"] for p in data["packages"]} == {"avf-config", "avf-keyring"}


def test_status_shows_a_failed_build_with_its_log(cfg, capsys):
    write_pkg(cfg, "t-broken", fail=True)
    build(cfg)
    row = {p.pkgbase: p for p in status(cfg).packages}["t-broken"]
    assert row.last_build["status"] == "failed" and row.last_build["log"].endswith("t-broken/1.0-1.log")
    assert any(r.startswith("retry after failure") for r in row.pending)
    assert main(["--config", str(cfg.file), "status"]) == 3


def forge_db(db, name: str, version: str) -> None:
    """Rewrite the served db so that it lists `name` at `version` (its .sig left as it was)."""
    import subprocess
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["bsdtar", "-xf", str(db), "-C", tmp], check=True)
        [entry] = [d for d in Path(tmp).iterdir() if d.name.startswith(name + "-")]
        desc = entry / "desc"
        lines = desc.read_text().splitlines()
        lines[lines.index("%VERSION%") + 1] = version
        desc.write_text("\n".join(lines) + "\n")
        entry.rename(entry.with_name(f"{name}-{version}"))
        forged = Path(tmp) / "forged.tar.gz"
        subprocess.run(["bsdtar", "-czf", str(forged), "-C", tmp,
                        *sorted(p.name for p in Path(tmp).iterdir() if p.name != "forged.tar.gz")], check=True)
        db.write_bytes(forged.read_bytes())


def test_status_list_and_plan_refuse_a_db_whose_signature_is_bad(cfg, capsys):
    """Before: a served db edited to list a forged 99-1 (its signature now bad) was shown by
    `status`, `repo list` and `build --dry-run` as what [avf] publishes."""
    from avfrepo.formats.repodb import read_db
    from avfrepo.errors import AvfrepoError
    write_pkg(cfg, "t-x")
    build(cfg)
    forge_db(cfg.repo.db, "t-x", "99-1")
    assert read_db(cfg.repo.db)["t-x"].version == "99-1"       # the forgery reads as a db
    with pytest.raises(AvfrepoError, match=r"avf\.db\.tar\.gz\.sig: bad signature"):
        status(cfg)
    for args in (["status"], ["repo", "list"], ["build", "--dry-run"]):
        code = main(["--config", str(cfg.file), *args])
        out, err = capsys.readouterr()
        assert code == 1, (args, out, err)
        assert "99-1" not in out and "not trusted" in err, (args, out, err)
