"""scripts/ci/job.py's pieces: the plan's layers, and the sync report read as an outage, a
refusal or changes (the contract with `avfrepo sync --json`, SyncReport.to_json)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from avfrepo.sync import PackageReport, SyncReport

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ci_job", ROOT / "scripts/ci/job.py")
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)

DOWN = "upstream avf: git ls-remote failed: fatal: unable to access 'https://android.googlesource.com/': Could not resolve host"
MOVED = "upstream avf: tag android-16.0.0_r10 moved from aaa to bbb; refusing to sync avf until a maintainer reviews it"


def outage_report() -> SyncReport:
    """What sync reports when an upstream cannot be asked: its error, and the packages reading it refused."""
    return SyncReport(upstreams={"avf": {"error": DOWN}},
                      packages=[PackageReport("avf-config", "refused", "16.0.0.r10-1", problems=[DOWN]),
                                PackageReport("avf-keyring", "unchanged", "1-1")],
                      problems=[DOWN])


def test_the_report_names_unreachable_upstreams_apart_from_refusals():
    out = outage_report().to_json()
    assert out["refused"] is True                       # the exit status stays 1
    assert out["unreachable"] == {"avf": DOWN} and out["refusals"] == []
    refused = SyncReport(upstreams={"avf": {"version": "android-16.0.0_r10", "commit": "bbb"}},
                         packages=[PackageReport("avf-config", "refused", problems=[MOVED]),
                                   PackageReport("avf-guest-agents", "refused", problems=["patch no longer applies"])],
                         problems=[MOVED]).to_json()
    assert refused["unreachable"] == {}
    assert refused["refusals"] == [MOVED, "avf-guest-agents: patch no longer applies"]


def test_an_outage_is_no_refusal_and_a_refusal_is():
    kind = job.classify(outage_report().to_json())
    assert kind["unreachable"] == {"avf": DOWN} and kind["refusals"] == [] and kind["error"] is None
    md = job.markdown(outage_report().to_json())
    assert "**unreachable** (retried by the next run)" in md and "**refused**" not in md
    kind = job.classify({"upstreams": {}, "packages": [], "problems": [MOVED], "refusals": [MOVED], "unreachable": {}})
    assert kind["refusals"] == [MOVED]


def test_a_sync_that_printed_no_report_is_an_error_not_a_crash():
    report = job.read_report("", "avfrepo: error: something broke\n")
    kind = job.classify(report)
    assert kind["error"] == "avfrepo sync printed no report: avfrepo: error: something broke" and not kind["refusals"]


def test_sync_report_markdown_lists_packages_and_refusals():
    md = job.markdown({"upstreams": {"avf": {"version": "android-16.0.0_r11", "commit": "abc"}},
                       "packages": [{"name": "avf-config", "action": "refused", "old": "1-1", "new": None,
                                     "reasons": [], "problems": ["patch x no longer applies"]}],
                       "problems": []}, mode=job.REVIEW)
    assert "| avf-config | refused | 1-1 |" in md and "**refused**: patch x no longer applies" in md
    assert "nothing here is built or published until this pull request is merged" in md


def test_layers_split_the_matrix():
    m = {"include": [{"layer": 0, "pkgbases": ["a", "b"]}, {"layer": 1, "pkgbases": ["c"]},
                     {"layer": 2, "pkgbases": ["d"]}]}
    assert job.split_layers(m) == [["a", "b"], ["c", "d"]]
    assert job.split_layers({"include": []}) == [[], []]


def test_layers_refuse_what_is_not_a_package_name():
    with pytest.raises(job.JobError, match=r"not a package name: '\$\(curl evil\)'"):
        job.split_layers({"include": [{"layer": 0, "pkgbases": ["a", "$(curl evil)"]}]})


def test_build_refuses_what_is_not_a_package_name_before_building(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "scripts/ci/job.py"), "build", "a", "b;rm -rf /"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 1 and "not a list of package names" in res.stderr and not (tmp_path / "out").exists()


def test_in_actions_a_missing_key_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("AVF_PUBLIC_KEY", raising=False)
    with pytest.raises(job.JobError, match="the variable AVF_PUBLIC_KEY is not set") as exc:
        job.import_key("AVF_PUBLIC_KEY", public=True, fingerprint=None)
    assert exc.value.code == 2
