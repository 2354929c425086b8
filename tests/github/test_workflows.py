"""The scheduled jobs, checked at the YAML level (actionlint cannot be installed from the
registries this project reaches: its PyPI wrapper downloads the binary at install time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WF = ROOT / ".github/workflows"


def load(name: str) -> dict:
    data = yaml.safe_load((WF / name).read_text())
    data["on"] = data.pop(True, data.get("on"))      # YAML 1.1 reads the key `on` as true
    return data


def runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


@pytest.mark.parametrize("name", sorted(p.name for p in WF.glob("*.yml")))
def test_every_workflow_parses_and_every_job_has_steps_or_uses(name):
    data = load(name)
    assert data["on"] and data["jobs"]
    for job_name, job in data["jobs"].items():
        assert "steps" in job or "uses" in job, job_name
        for step in job.get("steps", []):
            assert "run" in step or "uses" in step, (job_name, step)


def test_ci_runs_exactly_the_readme_test_command_and_an_arch_job():
    ci = load("ci.yml")
    assert set(ci["on"]) >= {"push", "pull_request"}
    assert "bash .ci/run" in runs(ci["jobs"]["test"])
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci/run").read_text()
    command = "bash scripts/setup-debian.sh && .venv/bin/python -m pytest -q"
    assert f"    {command}\n" in readme and command in ci_run
    arch = ci["jobs"]["arch"]
    assert arch["container"]["image"].startswith("archlinux")
    assert "mkarchroot" in runs(arch) and "repo-add --version" in runs(arch)
    assert arch["env"]["AVFREPO_TEST_CHROOT"]


def test_update_is_scheduled_syncs_commits_plans_builds_and_publishes():
    up = load("update.yml")
    assert "schedule" in up["on"] and "workflow_dispatch" in up["on"]
    sync = up["jobs"]["sync"]
    text = runs(sync)
    assert "avfrepo sync --commit --json" in text
    assert "avfrepo key import -" in text and "secrets.AVF_SIGNING_KEY" in json.dumps(sync)
    assert "build --plan --format github-matrix" in text
    assert "gh pr create" in text and "gh pr edit" in text
    # a refusal fails the run and goes to ONE issue: comment on the open one, else create
    refusal = next(s for s in sync["steps"] if s.get("if") == "steps.sync.outputs.rc == '1'")
    assert "gh issue list" in refusal["run"] and "gh issue comment" in refusal["run"]
    assert refusal["run"].rstrip().endswith("exit 1")
    assert up["jobs"]["layer0"]["uses"] == "./.github/workflows/build-one.yml"
    assert "matrix" in up["jobs"]["layer0"]["strategy"]
    publish = runs(up["jobs"]["publish"])
    assert "avfrepo repo add" in publish and "avfrepo verify" in publish
    assert up["concurrency"]["cancel-in-progress"] is False


def test_build_one_builds_on_arm64_in_a_clean_alarm_root():
    b = load("build-one.yml")
    job = b["jobs"]["build"]
    assert "arm" in job["runs-on"]
    text = runs(job)
    assert "ArchLinuxARM-aarch64" in text and "build --only" in text and "key import -" in text


def test_image_workflow_is_scheduled():
    im = load("image.yml")
    assert "schedule" in im["on"] and "avfrepo image" in runs(im["jobs"]["image"])


def test_layers_helper_splits_the_matrix(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"include": [{"layer": 0, "pkgbases": ["a", "b"]}, {"layer": 1, "pkgbases": ["c"]},
                                         {"layer": 2, "pkgbases": ["d"]}]}))
    out = subprocess.run([sys.executable, str(ROOT / ".github/scripts/layers.py"), str(m)],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [["a", "b"], ["c", "d"]]


def test_sync_report_markdown_lists_packages_and_refusals(tmp_path):
    r = tmp_path / "r.json"
    r.write_text(json.dumps({"upstreams": {"avf": {"version": "android-16.0.0_r11", "commit": "abc"}},
                             "packages": [{"name": "avf-config", "action": "refused", "old": "1-1", "new": None,
                                           "reasons": [], "problems": ["patch x no longer applies"]}],
                             "problems": []}))
    out = subprocess.run([sys.executable, str(ROOT / ".github/scripts/sync_report.py"), str(r)],
                         capture_output=True, text=True, check=True).stdout
    assert "| avf-config | refused | 1-1 |" in out and "**refused**: patch x no longer applies" in out
