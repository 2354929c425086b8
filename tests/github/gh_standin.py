#!/usr/bin/env python3
"""TEST DOUBLE for GitHub's `gh` CLI (GitHub itself cannot be reached from the tests).

It answers exactly the `gh` calls scripts/ci/job.py makes, the way gh does (exit status,
JSON shapes, "no assets match" and the like), records every call in calls.jsonl, keeps
pull requests and issues in state.json and each release's assets as files in
releases/<tag>/, all under $GH_STANDIN_DIR. Anything else exits 2 naming the call, so a
script that starts using a new gh command fails here until the double learns it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
from pathlib import Path

HOME = Path(os.environ["GH_STANDIN_DIR"])
STATE = HOME / "state.json"
RELEASES = HOME / "releases"


def load() -> dict:
    return json.loads(STATE.read_text()) if STATE.exists() else {"prs": [], "issues": [], "next": 1}


def save(state: dict) -> None:
    STATE.write_text(json.dumps(state, indent=1))


def opts(args: list[str], flags: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """gh's `--name value` options (and value-less `flags`) apart from positional arguments."""
    pos, named, i = [], {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if a in flags:
                named[a] = ""
            else:
                named[a] = args[i + 1]
                i += 1
        else:
            pos.append(a)
        i += 1
    return pos, named


def fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def main(argv: list[str]) -> int:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / "calls.jsonl", "a") as f:
        f.write(json.dumps(argv) + "\n")
    state = load()
    group, cmd, rest = (argv + ["", ""])[0], (argv + ["", ""])[1], argv[2:]
    pos, o = opts(rest, flags=("--clobber",))
    if (group, cmd) == ("auth", "setup-git"):
        return 0
    if group == "pr":
        mine = [p for p in state["prs"] if pos and p["head"] == pos[0]]
        if cmd == "view":
            if not mine:
                return fail(f'no pull requests found for branch "{pos[0]}"')
            print(json.dumps({k: mine[-1][k] for k in o.get("--json", "state").split(",")}))
            return 0
        if cmd == "create":
            if any(p["head"] == o["--head"] and p["state"] == "OPEN" for p in state["prs"]):
                return fail(f'a pull request for branch "{o["--head"]}" into branch "{o.get("--base")}" already exists')
            n = state["next"]
            state["next"] += 1
            state["prs"].append({"number": n, "head": o["--head"], "base": o.get("--base"), "title": o["--title"],
                                 "body": Path(o["--body-file"]).read_text(), "state": "OPEN", "edits": 0})
            save(state)
            print(f"https://github.com/OWNER/REPO/pull/{n}")
            return 0
        if cmd == "edit":
            open_ = [p for p in mine if p["state"] == "OPEN"]
            if not open_:
                return fail(f'no open pull requests found for branch "{pos[0]}"')
            open_[-1]["body"] = Path(o["--body-file"]).read_text()
            open_[-1]["edits"] += 1
            save(state)
            return 0
    if group == "issue":
        if cmd == "list":
            found = [{"number": i["number"], "title": i["title"]} for i in state["issues"]
                     if i["state"] == o.get("--state", "open").upper()]
            print(json.dumps(found))
            return 0
        if cmd == "create":
            n = state["next"]
            state["next"] += 1
            state["issues"].append({"number": n, "title": o["--title"], "body": Path(o["--body-file"]).read_text(),
                                    "state": "OPEN", "comments": []})
            save(state)
            print(f"https://github.com/OWNER/REPO/issues/{n}")
            return 0
        if cmd == "comment":
            issue = next((i for i in state["issues"] if str(i["number"]) == pos[0]), None)
            if issue is None:
                return fail(f"GraphQL: Could not resolve to an issue or pull request with the number of {pos[0]}.")
            issue["comments"].append(Path(o["--body-file"]).read_text())
            save(state)
            return 0
    if group == "release":
        tag = pos[0] if pos else ""
        folder = RELEASES / tag
        if cmd == "view":
            return 0 if folder.is_dir() else fail("release not found")
        if cmd == "create":
            if folder.is_dir():
                return fail("a release with the same tag name already exists")
            folder.mkdir(parents=True)
            return 0
        if not folder.is_dir():
            return fail("release not found")
        if cmd == "download":
            dest = Path(o.get("--dir", "."))
            names = [p.name for p in sorted(folder.iterdir()) if fnmatch.fnmatchcase(p.name, o.get("--pattern", "*"))]
            if not names:
                return fail("no assets match the file pattern")
            dest.mkdir(parents=True, exist_ok=True)
            for name in names:
                if (dest / name).exists() and "--clobber" not in o:
                    return fail(f"{dest / name} already exists (use `--clobber` to overwrite file)")
                shutil.copyfile(folder / name, dest / name)
            return 0
        if cmd == "upload":
            for f in map(Path, pos[1:]):
                if not f.is_file():
                    return fail(f"{f}: no such file")
                if (folder / f.name).exists() and "--clobber" not in o:
                    return fail(f"asset under the same name already exists: [{f.name}]")
            for f in map(Path, pos[1:]):
                shutil.copyfile(f, folder / f.name)
            return 0
    return fail(f"gh stand-in (test double): unsupported call: gh {' '.join(argv)}", 2)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
