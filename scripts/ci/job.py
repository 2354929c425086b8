#!/usr/bin/env python3
"""The jobs of .github/workflows/update.yml, as commands that run outside GitHub Actions too.

    job.py sync     avfrepo sync --commit on the branch avf-update; pull request; refusal issue
    job.py plan     the build plan of the checked-out commit against the published [avf]
    job.py build    build planned pkgbases, unsigned (no key in this job)
    job.py publish  check the handed-over packages against the plan, sign, publish as release assets

The workflow only wires these together (runners, permissions, artifacts). Each command reads
the repository's avfrepo.toml ($AVFREPO_CONFIG) from the current directory, talks to GitHub
only through the `gh` program ($GH, default `gh`), and writes its step outputs to
$GITHUB_OUTPUT (printed when that is unset) and a summary to $GITHUB_STEP_SUMMARY.

Review model (README "Automation"): by default the sync job only proposes (a pull request);
nothing is built or published until it is merged, and then `plan` runs on the default
branch. With AVF_PUBLISH_FROM_SYNC=true (a repository variable or the workflow input) the
sync commit itself is planned, built and published in the same run, and the pull request
says so.

Exit status: 0 done or nothing to do; 1 refused, upstream unreachable, or failed; 2 a
configuration error (a missing variable or secret is named).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from avfrepo.errors import ToolError
from avfrepo.run import run

BRANCH = "avf-update"
REFUSAL_TITLE = "avfrepo sync refused an update"
PR_TITLE = "avfrepo: upstream updates"
RELEASE = "aarch64"              # the published repository: Server = .../releases/download/$arch
STATE_RELEASE = "repo-state"     # the whole repo/ (pool, snapshots, archive) between publish runs
NAME = re.compile(r"[a-z0-9@_+][a-z0-9@._+-]*")     # a pacman package name


class JobError(Exception):
    """A job cannot go on; `code` is its exit status (2: set-up or configuration)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- plumbing ---------------------------------------------------------------------------------

def avfrepo(*args: str, check: bool = False, timeout: float | None = 600.0, env: dict | None = None):
    exe = os.environ.get("AVFREPO") or str(Path(sys.executable).with_name("avfrepo"))
    if not Path(exe).is_file():
        exe = shutil.which("avfrepo") or "avfrepo"
    return run([exe, *args], check=check, timeout=timeout, env=env, tool="avfrepo")


def gh(*args: str, check: bool = True):
    return run([os.environ.get("GH", "gh"), *args], check=check, timeout=300, tool="gh")


def git(*args: str, check: bool = True):
    return run(["git", *args], check=check, timeout=300)


def output(**values: str) -> None:
    """Step outputs: one line each (values are single-line JSON or plain words)."""
    lines = "".join(f"{k}={v}\n" for k, v in values.items())
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a") as f:
            f.write(lines)
    else:
        sys.stdout.write("".join(f"output {line}" for line in lines.splitlines(True)))


def summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(markdown + "\n")
    print(markdown)


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def import_key(variable: str, *, public: bool, fingerprint: str | None) -> None:
    """The armored key in $variable, into a fresh GnuPG home that avfrepo then uses
    ($AVFREPO_GNUPGHOME for this process and its children). Outside Actions an unset
    variable means: use the config's [signing] gnupg_home."""
    data = os.environ.get(variable, "")
    if not data.strip():
        if truthy(os.environ.get("GITHUB_ACTIONS")):
            kind = "variable" if public else "secret of the environment avf-signing"
            raise JobError(f"the {kind} {variable} is not set (README: Fork checklist)", 2)
        return
    home = tempfile.mkdtemp(prefix="avfrepo-gnupg-")
    os.environ["AVFREPO_GNUPGHOME"] = home
    path = Path(home) / "key.asc"
    path.write_text(data if data.endswith("\n") else data + "\n")
    res = avfrepo("key", "import", *(["--public"] if public else []), str(path))
    path.unlink()
    if res.returncode != 0:
        raise JobError(f"{variable}: avfrepo key import failed: {res.stderr.strip() or res.stdout.strip()}", 2)
    if fingerprint and f" {fingerprint.upper()} (" not in res.stdout.upper():
        raise JobError(f"{variable} is not the key AVF_SIGNING_FINGERPRINT names ({fingerprint}): "
                       f"{res.stdout.strip()}", 2)


# --- the sync report --------------------------------------------------------------------------

def read_report(text: str, stderr: str = "") -> dict:
    """`avfrepo sync --json` always prints a whole report; anything else is an error report."""
    try:
        report = json.loads(text)
        if isinstance(report, dict):
            return report
    except json.JSONDecodeError:
        pass
    return {"error": "avfrepo sync printed no report: " + (stderr.strip().splitlines() or ["(no output)"])[-1],
            "upstreams": {}, "packages": [], "problems": []}


def classify(report: dict) -> dict:
    """What kind of day it was: upstreams unreachable / sync stopped on an error (an outage:
    the next run retries, no issue), refusals (a maintainer must look: the issue), changes."""
    unreachable = report.get("unreachable")
    if unreachable is None:     # a report from before the key existed
        unreachable = {n: i["error"] for n, i in report.get("upstreams", {}).items() if "error" in i}
    refusals = report.get("refusals")
    if refusals is None:
        outage = set(unreachable.values())
        refusals = [x for x in report.get("problems", []) if x not in outage]
    return {"unreachable": unreachable, "error": report.get("error"), "refusals": list(refusals),
            "changed": [p for p in report.get("packages", []) if p.get("action") in ("new", "bump", "restored")]}


def markdown(report: dict, *, mode: str = "") -> str:
    """The sync report as the body of a pull request or of the refusal issue."""
    kind = classify(report)
    out = ["## avfrepo sync", ""]
    if mode:
        out += [mode, ""]
    if kind["error"]:
        out += [f"**sync stopped on an error** (retried by the next run): {kind['error']}", ""]
    for name, info in report.get("upstreams", {}).items():
        if "error" in info:
            out.append(f"- upstream **{name}**: **unreachable** (retried by the next run): {info['error']}")
        else:
            out.append(f"- upstream **{name}**: {info.get('version')} `{(info.get('commit') or '')[:12]}`"
                       + (f" ({info['note']})" if info.get("note") else ""))
    out += ["", "| package | action | old | new | reasons / problems |", "|---|---|---|---|---|"]
    outage = set(kind["unreachable"].values())
    for p in report.get("packages", []):
        notes = "; ".join(list(p.get("reasons", [])) + [
            (f"upstream unreachable: {x}" if x in outage else f"**refused**: {x}") for x in p.get("problems", [])])
        out.append(f"| {p['name']} | {p['action']} | {p.get('old') or ''} | {p.get('new') or ''} | {notes} |")
    for prob in kind["refusals"]:
        out.append(f"\n**refused**: {prob}")
    return "\n".join(out)


REVIEW = ("Review model: **nothing here is built or published until this pull request is merged**; "
          "the merge (or the next scheduled run) builds and publishes it from the default branch.")
DIRECT = ("Review model: **published straight from sync** (AVF_PUBLISH_FROM_SYNC): this commit is built, "
          "signed and published in the run that opened this pull request, without review; merging it "
          "records what was published.")


# --- jobs -------------------------------------------------------------------------------------

def cmd_sync(args: argparse.Namespace) -> int:
    direct = args.publish_from_sync or truthy(os.environ.get("AVF_PUBLISH_FROM_SYNC"))
    base = args.base or os.environ.get("GITHUB_REF_NAME") or "main"
    import_key("AVF_PUBLIC_KEY", public=True, fingerprint=os.environ.get("AVF_SIGNING_FINGERPRINT"))
    # avfrepo doctor's checks that sync needs, before any branch or upstream is touched
    from avfrepo.doctor import SYNC_CHECKS, doctor
    ready = doctor(None, only=SYNC_CHECKS)
    print("\n".join(ready.lines()))
    if not ready.ok:
        raise JobError("not set up (avfrepo doctor):\n" + "\n".join(c.line() for c in ready.missing()), 2)
    if truthy(os.environ.get("GITHUB_ACTIONS")):
        git("config", "--global", "--add", "safe.directory", os.getcwd())
    git("config", "user.name", "avfrepo")
    git("config", "user.email", "avfrepo@users.noreply.github.com")
    git("switch", "-q", "-C", BRANCH)
    res = avfrepo("sync", "--commit", "--json", timeout=3600)
    report = read_report(res.stdout, res.stderr)
    Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    kind = classify(report)
    changed = git("diff", "--quiet", f"origin/{base}", "HEAD", "--", "pkgbuilds", check=False).returncode != 0
    sha = git("rev-parse", "HEAD").stdout.strip()
    body = markdown(report, mode=DIRECT if direct else REVIEW)
    output(changed=str(changed).lower(), sha=sha, **{"build-ref": sha if (direct and changed) else ""})

    if changed:
        gh("auth", "setup-git")       # the job's token, for this push only (never in .git/config)
        git("push", "-q", "--force", "origin", BRANCH)
        body_file = Path(tempfile.mkdtemp()) / "pr.md"
        body_file.write_text(body + "\n")
        if gh("pr", "view", BRANCH, "--json", "state", check=False).returncode == 0 and \
                json.loads(gh("pr", "view", BRANCH, "--json", "state").stdout).get("state") == "OPEN":
            gh("pr", "edit", BRANCH, "--body-file", str(body_file))
        else:
            gh("pr", "create", "--head", BRANCH, "--base", base, "--title", PR_TITLE, "--body-file", str(body_file))
    if kind["refusals"]:
        issue_file = Path(tempfile.mkdtemp()) / "refusal.md"
        issue_file.write_text(body + "\n")
        issues = json.loads(gh("issue", "list", "--state", "open", "--json", "number,title",
                               "--search", f'in:title "{REFUSAL_TITLE}"').stdout or "[]")
        same = [i["number"] for i in issues if i.get("title") == REFUSAL_TITLE]
        if same:
            gh("issue", "comment", str(same[0]), "--body-file", str(issue_file))
        else:
            gh("issue", "create", "--title", REFUSAL_TITLE, "--body-file", str(issue_file))

    lines = []
    if kind["unreachable"]:
        lines.append("upstream unreachable (no issue; the next run retries): " + ", ".join(sorted(kind["unreachable"])))
    if kind["error"]:
        lines.append(f"sync stopped on an error (no issue; the next run retries): {kind['error']}")
    if kind["refusals"]:
        lines.append(f"refused ({len(kind['refusals'])}; see the issue \"{REFUSAL_TITLE}\"): " + "; ".join(kind["refusals"]))
    if changed:
        lines.append("changes proposed in the pull request from " + BRANCH
                     + (": published from this run (AVF_PUBLISH_FROM_SYNC)" if direct else ": built after the merge"))
    summary("\n".join(lines) or "sync: everything is current")
    summary(body)
    if res.returncode == 2:
        return 2
    return 1 if (kind["unreachable"] or kind["error"] or kind["refusals"] or res.returncode) else 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The checked-out commit's build plan against the published [avf] (its avf.db, from the
    release), as plan/plan.json (+ plan/avf.db for the build jobs) and dependency layers."""
    from avfrepo import config as config_mod
    cfg = config_mod.load(None)
    pkgbuilds = cfg.pkgbuilds
    plan_dir = Path(args.plan_dir)
    plan_dir.mkdir(parents=True, exist_ok=True)
    # avfrepo reads the published db only once its signature by the repository key verifies: the
    # public key (AVF_PUBLIC_KEY) goes into the plan artifact too, for the build jobs
    import_key("AVF_PUBLIC_KEY", public=True, fingerprint=os.environ.get("AVF_SIGNING_FINGERPRINT"))
    if os.environ.get("AVF_PUBLIC_KEY", "").strip():
        (plan_dir / "key.asc").write_text(os.environ["AVF_PUBLIC_KEY"].strip() + "\n")
    if gh("release", "view", RELEASE, check=False).returncode == 0:
        cfg.repo.db.parent.mkdir(parents=True, exist_ok=True)      # where `build --plan` reads [avf]
        for name, dest in (("avf.db", cfg.repo.db), ("avf.db.sig", Path(f"{cfg.repo.db}.sig"))):
            gh("release", "download", RELEASE, "--pattern", name, "--dir", str(plan_dir), "--clobber")
            shutil.copyfile(plan_dir / name, dest)
    ref = git("rev-parse", "HEAD").stdout.strip()
    if not any(pkgbuilds.glob("*/PKGBUILD")):      # a fresh fork before its first merged sync
        output(layers="[[],[]]", build="false", ref=ref)
        summary(f"plan of {ref[:12]}: nothing to build: {pkgbuilds.name}/ has no package yet "
                "(merge the sync pull request first)")
        return 0
    res = avfrepo("build", "--plan", "--json")
    if res.returncode != 0:
        raise JobError(f"avfrepo build --plan failed: {res.stderr.strip()}", res.returncode)
    (plan_dir / "plan.json").write_text(res.stdout)
    matrix = avfrepo("build", "--plan", "--format", "github-matrix", check=True).stdout
    layers = split_layers(json.loads(matrix))
    todo = layers[0] + layers[1]
    output(layers=json.dumps(layers, separators=(",", ":")), build=str(bool(todo)).lower(), ref=ref)
    summary(f"plan of {ref[:12]}: " + (", ".join(todo) if todo else "nothing to build: [avf] is current"))
    return 0


def split_layers(matrix: dict) -> list[list[str]]:
    """`build --plan --format github-matrix` -> [[layer 0], [every later layer, in order]]:
    layer 0 fans out across runners, the rest runs after it in one job. The names go into job
    inputs and artifact names: anything that is not a pacman package name is refused."""
    layers = [entry.get("pkgbases") for entry in matrix.get("include", [])]
    bad = [b for layer in layers for b in (layer if isinstance(layer, list) else [layer])
           if not (isinstance(b, str) and NAME.fullmatch(b))]
    if bad:
        raise JobError(f"the build plan names what is not a package name: {', '.join(map(repr, bad))}")
    return [layers[0] if layers else [], [b for layer in layers[1:] for b in layer]]


def cmd_build(args: argparse.Namespace) -> int:
    """Build the named pkgbases of the plan, unsigned, into --out (the job holds no key)."""
    bases = " ".join(args.pkgbases).split()
    if not bases or not all(NAME.fullmatch(b) for b in bases):
        raise JobError(f"not a list of package names: {' '.join(args.pkgbases)!r}")
    plan_dir = Path(args.plan_dir).resolve()
    root = Path.cwd()
    config = Path(tempfile.mkdtemp(prefix="avfrepo-build-")) / "ci.toml"
    user = os.environ.get("AVFREPO_BUILD_USER", "avfbuild")
    config.write_text(
        f'[paths]\npkgbuilds = "{root / "pkgbuilds"}"\ncache = "{root / ".cache"}"\nlogs = "{root / "logs"}"\n'
        f'[repo]\npath = "{root / "repo"}"\n[build]\nbackend = "makepkg"\nuser = "{user}"\n')
    from avfrepo import config as config_mod
    db = config_mod.load(config).repo.db
    if (plan_dir / "avf.db").is_file():      # the published db the plan was made against
        db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plan_dir / "avf.db", db)
        if (plan_dir / "avf.db.sig").is_file():
            shutil.copyfile(plan_dir / "avf.db.sig", f"{db}.sig")
    if (plan_dir / "key.asc").is_file():     # the repository's public key: avfrepo checks the db with it
        os.environ["AVF_PUBLIC_KEY"] = (plan_dir / "key.asc").read_text()
        import_key("AVF_PUBLIC_KEY", public=True, fingerprint=None)
    out = Path(args.out).resolve()
    res = avfrepo("--config", str(config), "build", "--only", "--unsigned", str(out), *bases, timeout=None)
    sys.stdout.write(res.stdout)
    sys.stderr.write(res.stderr)
    return res.returncode


def cmd_publish(args: argparse.Namespace) -> int:
    """Check what the build jobs handed over against the plan, sign it, publish it.
    An empty plan publishes nothing and succeeds; a plan whose builds all failed fails."""
    from avfrepo.repo.publish import PublishRefused, read_plan
    try:
        planned = read_plan(Path(args.plan))
    except PublishRefused as exc:
        raise JobError(str(exc)) from None
    built = sorted(Path(args.built).glob("*.pkg.tar.zst")) if Path(args.built).is_dir() else []
    if not planned:
        summary("publish: the plan is empty: nothing to publish")
        return 0
    if not built:
        raise JobError(f"publish: {len(planned)} pkgbase(s) planned ({', '.join(planned)}) but no package "
                       "was handed over: every build failed (see the build jobs' logs)")
    import_key("AVF_SIGNING_KEY", public=False, fingerprint=os.environ.get("AVF_SIGNING_FINGERPRINT"))
    if gh("release", "view", STATE_RELEASE, check=False).returncode == 0:
        gh("release", "download", STATE_RELEASE, "--pattern", "repo-state.tar", "--clobber")
        run(["tar", "-xf", "repo-state.tar"])
    res = avfrepo("repo", "add", "--plan", str(args.plan), *map(str, built), timeout=3600)
    sys.stdout.write(res.stdout)
    if res.returncode != 0:
        raise JobError(f"avfrepo repo add refused: {res.stderr.strip()}", res.returncode)
    res = avfrepo("verify", "--provenance")
    if res.returncode != 0:
        raise JobError(f"avfrepo verify --provenance failed after publishing:\n{res.stdout}{res.stderr}")
    run(["tar", "-cf", "repo-state.tar", "repo"])
    repo_url = f"https://github.com/{os.environ.get('GITHUB_REPOSITORY', 'OWNER/REPO')}/releases/download/$arch"
    if gh("release", "view", RELEASE, check=False).returncode != 0:
        gh("release", "create", RELEASE, "--title", "[avf] aarch64", "--notes", f"pacman: Server = {repo_url}")
    view = Path("repo") / RELEASE
    files = sorted(p for p in view.iterdir() if p.is_file() and ".pkg.tar." in p.name)
    if files:       # packages first, the signed databases last: a client never sees a db naming a missing file
        gh("release", "upload", RELEASE, "--clobber", *map(str, files))
    gh("release", "upload", RELEASE, "--clobber",
       *(str(view / n) for n in ("avf.asc", "avf.files", "avf.files.sig", "avf.db", "avf.db.sig")))
    if gh("release", "view", STATE_RELEASE, check=False).returncode != 0:
        gh("release", "create", STATE_RELEASE, "--title", "avfrepo state", "--notes", "internal")
    gh("release", "upload", STATE_RELEASE, "repo-state.tar", "--clobber")
    summary(res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "published")
    summary(f"published {len(built)} package file(s): " + ", ".join(p.name for p in built))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="job.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync", help="sync, commit on avf-update, pull request, refusal issue")
    s.add_argument("--base", help="the default branch (default: $GITHUB_REF_NAME, else main)")
    s.add_argument("--report", default="sync-report.json")
    s.add_argument("--publish-from-sync", action="store_true",
                   help="opt-in: the sync commit is built and published in this run (also AVF_PUBLISH_FROM_SYNC=true)")
    s.set_defaults(func=cmd_sync)
    s = sub.add_parser("plan", help="the build plan of HEAD against the published [avf]")
    s.add_argument("--plan-dir", default="plan")
    s.set_defaults(func=cmd_plan)
    s = sub.add_parser("build", help="build pkgbases of the plan, unsigned")
    s.add_argument("--plan-dir", default="plan")
    s.add_argument("--out", default="out")
    s.add_argument("pkgbases", nargs="+")
    s.set_defaults(func=cmd_build)
    s = sub.add_parser("publish", help="check against the plan, sign, publish as release assets")
    s.add_argument("--plan", default="plan/plan.json")
    s.add_argument("--built", default="built")
    s.set_defaults(func=cmd_publish)
    return run_command(p.prog, p.parse_args(argv))


def run_command(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed subcommand; a JobError or ToolError is one line naming the script and
    command, with the error's exit status (1 for a tool)."""
    try:
        return args.func(args)
    except (JobError, ToolError) as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, JobError) else 1


if __name__ == "__main__":
    sys.exit(main())
