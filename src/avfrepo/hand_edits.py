"""Hand edits of a package directory under pkgbuilds/: what differs from what sync wrote there.

pkgbuilds/<package>/ is sync's output. The state file records the sha256 of every file sync
wrote there (written(); all but .SRCINFO, which makepkg regenerates from the PKGBUILD). A file
changed or added since is a hand edit that writing the directory again would lose, so sync
refuses the package with the diff (refusal()) and leaves the directory as it is, unless
`sync --discard-edits PACKAGE` lets it rewrite it. Not edits: a file only missing (writing it
again loses nothing), a file that already holds what sync is about to write (a killed sync
wrote it), and the files a package's render reads back from its directory as inputs (its
module's kept_inputs(): the agents' Cargo.lock files, linux-avf's carried patches).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

DIFF_LINES = 40          # of a refusal's diff (the rest: `git diff`)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def written(files: dict[str, bytes]) -> dict[str, str]:
    """What the state file records of a package directory sync writes: each file's sha256,
    but .SRCINFO's."""
    return {rel: _sha256(data) for rel, data in sorted(files.items()) if rel != ".SRCINFO"}


@dataclass
class HandEdits:
    changed: list[str]
    added: list[str]
    missing: list[str]
    diff: list[str]          # a short unified diff of the changed files, against what sync wrote

    def summary(self) -> str:
        return "; ".join(f"{what} {', '.join(files)}" for what, files in
                         (("changed", self.changed), ("added", self.added), ("missing", self.missing)) if files)


def find(record: dict[str, str] | None, on_disk: dict[str, bytes], after: dict[str, bytes],
         before: dict[str, bytes], kept: Callable[[str], bool]) -> HandEdits | None:
    """The hand edits of a package directory (None: none that writing `after` would lose).

    record: the sha256 of each file sync wrote (None: unknown, a state written before
    avfrepo recorded it); on_disk: the directory now; after: what it holds once this sync is
    done; before: the render at the recorded version, which is what sync wrote for each file
    whose sha256 matches the record (the diff's left side); kept(rel): a file the render reads
    back as an input."""
    if record is None:
        return None
    mine = {rel for rel in set(record) | set(on_disk) if rel != ".SRCINFO" and not kept(rel)}
    changed = sorted(rel for rel in mine if rel in record and rel in on_disk
                     and _sha256(on_disk[rel]) != record[rel] and on_disk[rel] != after.get(rel))
    added = sorted(rel for rel in mine if rel not in record and rel in on_disk and on_disk[rel] != after.get(rel))
    if not changed and not added:
        return None
    missing = sorted(rel for rel in mine if rel in record and rel not in on_disk)
    diff: list[str] = []
    for rel in changed:
        old = before.get(rel)
        if old is None or _sha256(old) != record[rel]:       # the render changed this file too
            diff.append(f"{rel}: sha256 {_sha256(on_disk[rel])[:12]}, sync wrote {record[rel][:12]} "
                        "(`git diff` shows the edit)")
        elif b"\0" in old or b"\0" in on_disk[rel]:
            diff.append(f"{rel}: binary file differs")
        else:
            diff += [line.rstrip("\n") for line in difflib.unified_diff(
                old.decode("utf-8", "replace").splitlines(keepends=True),
                on_disk[rel].decode("utf-8", "replace").splitlines(keepends=True),
                f"{rel} (as sync wrote it)", f"{rel} (now)", n=1)]
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + [f"... {len(diff) - DIFF_LINES} more lines (`git diff` shows them all)"]
    return HandEdits(changed, added, missing, diff)


def refusal(where: Path, name: str, edits: HandEdits) -> str:
    """The refusal sync reports: what differs, how to proceed, then the diff (indented)."""
    keep = ("carry a kernel patch with [[packages.linux-avf.carry]] in the config" if name == "linux-avf"
            else "make it in avfrepo (its templates or the config): pkgbuilds/ is sync's output")
    return (f"{where} differs from what sync wrote there ({edits.summary()}): left as it is. "
            f"To drop the edit: `git checkout -- {where}`" + (" and delete the added files" if edits.added else "")
            + f"; to let sync rewrite it: `avfrepo sync --discard-edits {name}`; to keep a change: {keep}"
            + "".join(f"\n        {line}" for line in edits.diff))
