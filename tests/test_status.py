"""`avfrepo status` against a real repository built by the test."""

from __future__ import annotations

import json

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
