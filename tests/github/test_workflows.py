"""The workflows: checked at the YAML level, for the hardening rules (who holds the signing key,
pins, permissions, no template expansion in scripts), and by zizmor and check-jsonschema run
offline (both from the test extras; actionlint cannot be installed from the registries this
project reaches: its PyPI wrapper downloads the binary at install time)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
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
    command = "bash scripts/setup-debian.sh --tests && .venv/bin/python -m pytest -q"
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
    assert "avfrepo key import --public -" in text and "vars.AVF_PUBLIC_KEY" in json.dumps(sync)
    assert "build --plan --format github-matrix" in text and "build --plan --json > plan/plan.json" in text
    assert "gh pr create" in text and "gh pr edit" in text
    # a refusal fails the run and goes to ONE issue: comment on the open one, else create
    refusal = next(s for s in sync["steps"] if s.get("if") == "steps.sync.outputs.rc == '1'")
    assert "gh issue list" in refusal["run"] and "gh issue comment" in refusal["run"]
    assert refusal["run"].rstrip().endswith("exit 1")
    assert up["jobs"]["layer0"]["uses"] == "./.github/workflows/build-one.yml"
    assert "matrix" in up["jobs"]["layer0"]["strategy"]
    publish = runs(up["jobs"]["publish"])
    assert "avfrepo key import -" in publish and "secrets.AVF_SIGNING_KEY" in json.dumps(up["jobs"]["publish"])
    assert "avfrepo repo add --plan plan/plan.json built/*.pkg.tar.zst" in publish
    assert "avfrepo verify --provenance" in publish
    assert up["concurrency"]["cancel-in-progress"] is False


def test_build_one_builds_on_arm64_in_a_clean_alarm_root():
    b = load("build-one.yml")
    job = b["jobs"]["build"]
    assert "arm" in job["runs-on"]
    text = runs(job)
    assert "ArchLinuxARM-aarch64" in text and "build --only --unsigned /src/out" in text
    assert "key import" not in text and "secrets" not in json.dumps(b)


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


def test_layers_helper_refuses_what_is_not_a_package_name(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"include": [{"layer": 0, "pkgbases": ["a", "$(curl evil)"]}]}))
    res = subprocess.run([sys.executable, str(ROOT / ".github/scripts/layers.py"), str(m)],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "not package names: '$(curl evil)'" in res.stderr and not res.stdout


# --- hardening: who holds the key, pins, permissions, no template expansion in scripts --------

WORKFLOWS = sorted(p.name for p in WF.glob("*.yml"))
SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*([^\s#]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")
DIGEST = re.compile(r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")


def jobs():
    for name in WORKFLOWS:
        for job_name, job in load(name)["jobs"].items():
            yield name, job_name, job


def test_the_signing_key_reaches_only_the_publish_job_behind_an_environment():
    holders = [(n, j) for n, j, job in jobs() if "AVF_SIGNING_KEY" in json.dumps(job)]
    assert holders == [("update.yml", "publish")]
    publish = load("update.yml")["jobs"]["publish"]
    assert publish["environment"] == "avf-signing"
    assert "checkout" in json.dumps(publish) and "ref" not in json.dumps(publish["steps"][1])   # default branch code
    for n, j, job in jobs():
        assert job.get("secrets") is None, (n, j)            # no `secrets: inherit`, no secrets passed on


def test_every_workflow_denies_by_default_and_every_job_names_its_permissions():
    writers = {}
    for name in WORKFLOWS:
        assert load(name)["permissions"] == {}, name
    for n, j, job in jobs():
        assert isinstance(job.get("permissions"), dict) and job["permissions"], (n, j)
        writes = sorted(k for k, v in job["permissions"].items() if v == "write")
        if writes:
            writers[f"{n}:{j}"] = writes
    assert writers == {"image.yml:image": ["contents"], "update.yml:publish": ["contents"],
                       "update.yml:sync": ["contents", "issues", "pull-requests"]}


def test_actions_are_pinned_to_commits_and_images_to_digests_and_checkouts_keep_no_token():
    for name in WORKFLOWS:
        for line in (WF / name).read_text().splitlines():
            if re.match(r"^\s*-?\s*uses:", line) and "./.github/" not in line:
                assert SHA_PIN.match(line), f"{name}: not pinned to a commit with its version: {line.strip()}"
    for n, j, job in jobs():
        image = job.get("container")
        image = image.get("image") if isinstance(image, dict) else image
        if image:
            assert DIGEST.match(image), (n, j, image)
        for step in job.get("steps", []):
            if "actions/checkout@" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, (n, j)


def test_no_template_expansion_inside_run_scripts():
    # values reach scripts through env: and are quoted there; ${{ }} in a script is code injection
    for n, j, job in jobs():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), (n, j, step.get("name"))


# --- static analysis, offline: zizmor and check-jsonschema (installed by setup-debian.sh) -------

OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
           "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `bash scripts/setup-debian.sh` (it installs the test "
                    f"extras of pyproject.toml, which include {name})")
    return found


def run_offline(argv: list[str]) -> subprocess.CompletedProcess:
    """No token, and every HTTP(S) request goes to a closed port: a tool that tried the
    network would fail here rather than pass by asking GitHub."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN") and not k.lower().endswith("_proxy")}
    return subprocess.run(argv, capture_output=True, text=True, env={**env, **OFFLINE}, timeout=300)


def zizmor(path: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    res = run_offline([tool("zizmor"), "--offline", "--no-ignores", "--no-progress", "--format", "json", str(path)])
    assert res.returncode in (0, 11, 12, 13, 14), res.stderr      # findings exit 1x; anything else broke
    return res, json.loads(res.stdout or "[]")


def above_low(findings: list[dict]) -> list[str]:
    return [f"{f['ident']} ({f['determinations']['severity']}): "
            f"{f['locations'][0]['symbolic']['key']['Local']['verbatim_path']} "
            f"line {f['locations'][0]['concrete']['location']['start_point']['row'] + 1}"
            for f in findings if f["determinations"]["severity"] in ("Medium", "High")]


def test_zizmor_finds_nothing_above_low_in_the_workflows():
    res, findings = zizmor(WF)
    assert above_low(findings) == [], "\n".join(above_low(findings))
    assert all(f["determinations"]["severity"] in ("Informational", "Low") for f in findings), findings
    # and zizmor's own verdict: with findings below medium filtered, it exits 0
    res = run_offline([tool("zizmor"), "--offline", "--no-ignores", "--no-progress", "--min-severity", "medium",
                       str(WF)])
    assert res.returncode == 0, res.stdout + res.stderr


def test_zizmor_catches_an_injected_workflow_and_an_unpinned_action(tmp_path):
    wf = tmp_path / ".github/workflows"
    shutil.copytree(WF, wf)
    (wf / "injected.yml").write_text(textwrap.dedent("""\
        name: injected
        on:
          issues:
            types: [opened]
        permissions: {}
        jobs:
          greet:
            runs-on: ubuntu-latest
            permissions: {}
            steps:
              - uses: actions/checkout@v4
                with:
                  persist-credentials: false
              - run: echo ${{ github.event.issue.title }}
        """))
    res, findings = zizmor(wf)
    assert res.returncode != 0
    found = above_low(findings)
    assert any(f.startswith("template-injection (High)") and "injected.yml line 14" in f for f in found), found
    assert any(f.startswith("unpinned-uses (High)") and "injected.yml line 11" in f for f in found), found
    assert all("injected.yml" in f for f in found), found          # and nothing else


def test_the_workflows_validate_against_the_vendored_github_workflow_schema(tmp_path):
    argv = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows"]
    res = run_offline([*argv, *map(str, sorted(WF.glob("*.yml")))])
    assert res.returncode == 0 and "ok -- validation done" in res.stdout, res.stdout + res.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text((WF / "ci.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: [[]]", 1))
    res = run_offline([*argv, str(broken)])
    assert res.returncode == 1 and "broken.yml" in res.stdout + res.stderr


def test_a_missing_analyser_fails_the_run_with_the_setup_instruction(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match=r"zizmor is not installed: run `bash scripts/setup-debian.sh`"):
        tool("zizmor")
