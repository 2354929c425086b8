"""The unattended cycle of update.yml, day after day, in a fresh fork: the jobs' real scripts
(scripts/ci/job.py) with real git, avfrepo sync, makepkg builds (the arch=any demo packages),
gpg and repo-add, wired the way update.yml wires them; GitHub is the gh stand-in (a test
double: tests/github/gh_standin.py) keeping pull requests, issues and release assets locally.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from avfrepo.demo import write_config
from avfrepo.formats.repodb import read_db

from ..conftest import require_build_user, require_tools

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "scripts/ci/job.py"
STANDIN = Path(__file__).with_name("gh_standin.py")
GIT_ID = ["-c", "user.name=Maintainer", "-c", "user.email=maintainer@example.invalid"]


def git(*args, cwd) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Job:
    rc: int
    outputs: dict[str, str]
    stdout: str
    stderr: str


@dataclass
class Fork:
    """A fresh fork on GitHub, as the jobs see it: `origin` (a bare repository, default branch
    main), the gh stand-in's folder (pull requests, issues, releases), the repository variables
    and the signing environment's secret."""
    base: Path
    origin: Path
    gh_home: Path
    env: dict[str, str]
    log: list[str] = field(default_factory=list)
    runs: int = 0

    def checkout(self, ref: str | None = None) -> Path:
        """actions/checkout: a fresh clone of origin at ref (default: main's head)."""
        self.runs += 1
        work = self.base / f"runner-{self.runs}"
        git("clone", "-q", str(self.origin), str(work), cwd=self.base)
        if ref:
            git("checkout", "-q", ref, cwd=work)
        return work

    def job(self, work: Path, *args: str, env: dict | None = None) -> Job:
        out = work.parent / f"{work.name}.output"
        out.write_text("")
        res = subprocess.run([sys.executable, str(JOB), *args], cwd=work, capture_output=True, text=True,
                             env={**self.env, **(env or {}), "GITHUB_OUTPUT": str(out)}, timeout=600)
        outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
        return Job(res.returncode, outputs, res.stdout, res.stderr)

    def head(self) -> str:
        return git("rev-parse", "main", cwd=self.origin)

    def state(self) -> dict:
        return json.loads((self.gh_home / "state.json").read_text())

    def calls(self) -> list[list[str]]:
        path = self.gh_home / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def release(self, tag: str) -> Path:
        return self.gh_home / "releases" / tag

    def published(self) -> dict[str, str]:
        db = self.release("aarch64") / "avf.db"
        return {n: e.version for n, e in read_db(db).items()} if db.exists() else {}

    def merge(self) -> None:
        """The maintainer merges the open pull request (a merge commit on main, as GitHub
        does); the double marks it merged. The push to main is what starts the next run."""
        state = self.state()
        pr = next(p for p in state["prs"] if p["state"] == "OPEN")
        work = self.checkout()
        git("fetch", "-q", "origin", pr["head"], cwd=work)
        git(*GIT_ID, "merge", "-q", "--no-ff", "-m", f"Merge pull request #{pr['number']}", "FETCH_HEAD", cwd=work)
        git("push", "-q", "origin", "main", cwd=work)
        pr["state"] = "MERGED"
        (self.gh_home / "state.json").write_text(json.dumps(state))

    def run_update(self, event: str, **env: str) -> dict:
        """One run of update.yml, job by job as its `needs`/`if` wire them (checked against the
        YAML by test_update_yml_wires_the_jobs_the_way_the_cycle_test_runs_them)."""
        day: dict = {"event": event}
        env_all = {**env}
        build_ref = ""
        if event != "push":                                   # sync: schedule / workflow_dispatch
            sync = self.job(self.checkout(), "sync", env=env_all)
            day["sync"] = sync
            build_ref = sync.outputs.get("build-ref", "")
        plan_work = self.checkout(build_ref or None)          # plan: !cancelled(), default branch
        plan = self.job(plan_work, "plan")
        day["plan"] = plan
        assert plan.rc == 0, plan.stderr
        layers = json.loads(plan.outputs["layers"])
        built = self.base / f"artifacts-{self.runs}"
        built.mkdir()
        day["built"] = []
        if plan.outputs["build"] == "true":
            for group in [[b] for b in layers[0]] + ([layers[1]] if layers[1] else []):   # layer0 matrix, rest
                work = self.checkout(plan.outputs["ref"])
                shutil.copytree(plan_work / "plan", work / "plan")                      # the build-plan artifact
                b = self.job(work, "build", *group)
                assert b.rc == 0, b.stdout + b.stderr
                for f in (work / "out").iterdir():                                      # packages-* artifacts
                    shutil.copy2(f, built / f.name)
                day["built"] += group
            work = self.checkout()                              # publish: the default branch's code
            shutil.copytree(plan_work / "plan", work / "plan")
            day["publish"] = self.job(work, "publish", "--built", str(built))
        return day


@pytest.fixture
def fork(tmp_path, avf, signing_home) -> Fork:
    require_tools("git", "makepkg", "repo-add", "bsdtar", "gpg")
    require_build_user()
    origin = tmp_path / "origin.git"
    seed = tmp_path / "seed"
    git("init", "-q", "-b", "main", str(seed), cwd=tmp_path)
    write_config(seed / "avfrepo.toml", avf.url, Path("/nonexistent-gnupg"))   # CI imports the keys
    (seed / ".gitignore").write_text("/cache/\n/logs/\n/repo/\n/plan/\n/out/\n/repo-state.tar\n/sync-report.json\n")
    git("add", "-A", cwd=seed)
    git(*GIT_ID, "commit", "-q", "-m", "fork", cwd=seed)
    git("clone", "-q", "--bare", str(seed), str(origin), cwd=tmp_path)
    gh_home = tmp_path / "gh"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "gh").write_text(f"#!/bin/sh\nexec {sys.executable} {STANDIN} \"$@\"\n")
    (bindir / "gh").chmod(0o755)
    public = subprocess.run(["gpg", "--homedir", str(signing_home), "--armor", "--export"],
                            check=True, capture_output=True, text=True).stdout
    secret = subprocess.run(["gpg", "--homedir", str(signing_home), "--batch", "--armor", "--export-secret-keys"],
                            check=True, capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in subprocess.run(
        ["gpg", "--homedir", str(signing_home), "--with-colons", "--list-keys"],
        check=True, capture_output=True, text=True).stdout.splitlines() if line.startswith("fpr:"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GH_", "AVF"))}
    env.update(PATH=f"{bindir}:{os.environ['PATH']}", GH_STANDIN_DIR=str(gh_home), GITHUB_REPOSITORY="owner/fork",
               GITHUB_REF_NAME="main", AVF_PUBLIC_KEY=public, AVF_SIGNING_KEY=secret, AVF_SIGNING_FINGERPRINT=fpr,
               AVFREPO=str(Path(sys.executable).with_name("avfrepo")))
    return Fork(tmp_path, origin, gh_home, env)


def test_a_week_of_the_unattended_cycle_in_a_fresh_fork(fork, avf, capsys):
    log: list[str] = []

    def note(day: str, run: dict) -> None:
        sync = run.get("sync")
        pub = run.get("publish")
        log.append(f"{day}: sync={'-' if sync is None else sync.rc} plan={run['plan'].outputs['layers']} "
                   f"built={run['built']} publish={'-' if pub is None else pub.rc} published={fork.published()}")

    # day 1: the first sync of a fresh fork proposes the packages; nothing is built before review
    d1 = fork.run_update("schedule")
    note("day 1 (fresh fork, new packages)", d1)
    assert d1["sync"].rc == 0, d1["sync"].stderr
    assert d1["sync"].outputs["changed"] == "true" and d1["sync"].outputs["build-ref"] == ""
    [pr1] = fork.state()["prs"]
    assert pr1["state"] == "OPEN" and "| avf-config | new |" in pr1["body"]
    assert "nothing here is built or published until this pull request is merged" in pr1["body"]
    assert d1["plan"].outputs["build"] == "false" and "publish" not in d1
    assert fork.published() == {} and not fork.release("aarch64").exists()

    # day 2: the pull request is not merged yet: the same proposal, the same pull request
    d2 = fork.run_update("schedule")
    note("day 2 (PR not merged yet)", d2)
    assert d2["sync"].rc == 0 and d2["sync"].outputs["changed"] == "true"
    assert [p["number"] for p in fork.state()["prs"]] == [pr1["number"]] and fork.state()["prs"][0]["edits"] == 1
    assert "publish" not in d2 and fork.published() == {}

    # the maintainer merges it: the push to main builds and publishes it
    fork.merge()
    m1 = fork.run_update("push")
    note("merge of PR 1 (push to main)", m1)
    assert "sync" not in m1 and sorted(m1["built"]) == ["avf-config", "avf-keyring"]
    assert m1["publish"].rc == 0, m1["publish"].stdout + m1["publish"].stderr
    assert set(fork.published()) == {"avf-config", "avf-keyring"}
    assert fork.published()["avf-config"] == "16.0.0.r10-1"
    assets = {p.name for p in fork.release("aarch64").iterdir()}
    assert {"avf.db", "avf.db.sig", "avf.files", "avf.files.sig", "avf.asc"} <= assets
    assert all(f"{p}.sig" in assets for p in assets if p.endswith(".pkg.tar.zst"))
    assert (fork.release("repo-state") / "repo-state.tar").is_file()
    published = fork.published()

    # day 3: nothing new upstream: no pull request activity, an empty plan publishes nothing
    calls = len(fork.calls())
    d3 = fork.run_update("schedule")
    note("day 3 (nothing new)", d3)
    assert d3["sync"].rc == 0 and d3["sync"].outputs["changed"] == "false"
    assert not [c for c in fork.calls()[calls:] if c[0] in ("pr", "issue") or c[:2] == ["release", "upload"]]
    assert d3["plan"].outputs["build"] == "false" and fork.published() == published

    # day 4: a new upstream tag (unrelated changes): the pull request records it, nothing to build
    avf.commit({"android/virtmgr/src/main.rs": "fn main() { /* r11 */ }\n"}, "unrelated")
    avf.tag("android-16.0.0_r11", message="Android 16.0.0 Release 11")
    d4 = fork.run_update("schedule")
    note("day 4 (new upstream tag)", d4)
    assert d4["sync"].rc == 0 and d4["sync"].outputs["changed"] == "true"
    pr2 = fork.state()["prs"][-1]
    assert pr2["number"] != pr1["number"] and pr2["state"] == "OPEN" and "android-16.0.0_r11" in pr2["body"]
    assert fork.published() == published

    # day 5: the network is down: the run fails with that summary, no refusal issue
    hidden = avf.path.with_name("unreachable")
    avf.path.rename(hidden)
    try:
        d5 = fork.run_update("schedule")
    finally:
        hidden.rename(avf.path)
    note("day 5 (network down)", d5)
    assert d5["sync"].rc == 1
    assert "upstream unreachable (no issue; the next run retries): avf" in d5["sync"].stdout
    assert fork.state()["issues"] == [] and "publish" not in d5 and fork.published() == published

    # day 6: a refusal (a release tag moved): the run fails and opens ONE issue; day 7 comments on it
    avf.commit({"README.md": "rewritten history\n"}, "moved")
    avf.tag("android-16.0.0_r10", force=True, message="Android 16.0.0 release 10")
    d6 = fork.run_update("schedule")
    note("day 6 (refusal: a tag moved)", d6)
    assert d6["sync"].rc == 1 and "refused (1;" in d6["sync"].stdout
    [issue] = fork.state()["issues"]
    assert issue["title"] == "avfrepo sync refused an update" and "android-16.0.0_r10 moved" in issue["body"]
    d7 = fork.run_update("schedule")
    note("day 7 (still refused)", d7)
    assert d7["sync"].rc == 1 and len(fork.state()["issues"]) == 1
    assert len(fork.state()["issues"][0]["comments"]) == 1

    # the maintainer merges the new-tag pull request: nothing to rebuild, so nothing is published
    uploads = len([c for c in fork.calls() if c[:2] == ["release", "upload"]])
    fork.merge()
    m2 = fork.run_update("push")
    note("merge of PR 2 (push to main)", m2)
    assert m2["plan"].outputs["build"] == "false" and "publish" not in m2
    assert len([c for c in fork.calls() if c[:2] == ["release", "upload"]]) == uploads
    assert fork.published() == published

    with capsys.disabled():
        print("\n" + "\n".join(log))


def test_publish_from_sync_opt_in_builds_the_sync_commit_in_the_same_run(fork):
    run = fork.run_update("workflow_dispatch", AVF_PUBLISH_FROM_SYNC="true")
    sync = run["sync"]
    assert sync.rc == 0 and sync.outputs["build-ref"] == sync.outputs["sha"]
    assert run["plan"].outputs["ref"] == sync.outputs["sha"] != fork.head()       # not merged, yet built
    assert run["publish"].rc == 0, run["publish"].stderr
    assert set(fork.published()) == {"avf-config", "avf-keyring"}
    assert "published straight from sync" in fork.state()["prs"][0]["body"]


def test_an_empty_plan_publishes_nothing_and_succeeds(fork, tmp_path):
    work = fork.checkout()
    (work / "plan").mkdir()
    (work / "plan/plan.json").write_text(json.dumps({"dry_run": True, "results": []}))
    res = fork.job(work, "publish", "--built", str(tmp_path / "no-such-artifact"))
    assert res.rc == 0 and "the plan is empty: nothing to publish" in res.stdout
    assert fork.calls() == []


def test_planned_packages_none_handed_over_fail_the_publish_job(fork, tmp_path):
    work = fork.checkout()
    (work / "plan").mkdir()
    (work / "plan/plan.json").write_text(json.dumps({"results": [
        {"pkgbase": "avf-config", "version": "16.0.0.r10-1", "pkgnames": ["avf-config"]}]}))
    (tmp_path / "built").mkdir()
    res = fork.job(work, "publish", "--built", str(tmp_path / "built"))
    assert res.rc == 1 and "planned (avf-config) but no package was handed over" in res.stderr
    assert fork.calls() == []


def test_update_yml_wires_the_jobs_the_way_the_cycle_test_runs_them():
    up = yaml.safe_load((ROOT / ".github/workflows/update.yml").read_text())
    on = up.get(True, up.get("on"))
    assert {"schedule", "workflow_dispatch", "push"} <= set(on) and on["push"]["paths"] == ["pkgbuilds/**"]
    jobs = up["jobs"]

    def run_of(job: str) -> str:
        return "\n".join(s.get("run", "") for s in jobs[job]["steps"])

    assert "scripts/ci/job.py sync" in run_of("sync") and "github.event_name != 'push'" in jobs["sync"]["if"]
    plan = jobs["plan"]
    assert plan["needs"] == "sync" and "!cancelled()" in plan["if"]
    assert "default_branch" in plan["if"]              # a push builds only the default branch
    checkout = next(s for s in plan["steps"] if "actions/checkout@" in s.get("uses", ""))
    assert checkout["with"]["ref"] == "${{ needs.sync.outputs.build-ref || github.sha }}"
    assert "scripts/ci/job.py plan" in run_of("plan")
    for job in ("layer0", "rest"):
        assert jobs[job]["with"]["ref"] == "${{ needs.plan.outputs.ref }}"
        assert "needs.plan.outputs.build == 'true'" in jobs[job]["if"]
    publish = jobs["publish"]
    assert "needs.plan.outputs.build == 'true'" in publish["if"] and "scripts/ci/job.py publish" in run_of("publish")
    build_one = yaml.safe_load((ROOT / ".github/workflows/build-one.yml").read_text())
    assert "scripts/ci/build-in-alarm.sh" in "\n".join(s.get("run", "") for s in build_one["jobs"]["build"]["steps"])
    assert "job.py build" in (ROOT / "scripts/ci/build-in-alarm.sh").read_text()
