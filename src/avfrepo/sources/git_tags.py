"""Release tags of a git repository, read with `git ls-remote --tags` (through gitpython).

- Only tags matching the configured regex count; everything else in the repository (other
  tag families, codename tags, ...) is ignored. The match is exact (fullmatch).
- Tags sort by their capture groups as numbers, so r10 > r9.
- The commit recorded is the peeled one: for an annotated tag the `^{}` line, for a
  lightweight tag the ref itself. Tag messages are never read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import git

from ..config import GitTagsUpstream
from ..errors import UpstreamError
from . import Release

LS_REMOTE_TIMEOUT = 120


@dataclass(frozen=True)
class TagRef:
    name: str
    object: str   # what refs/tags/<name> points at (tag object or commit)
    commit: str   # peeled commit


def ls_remote_tags(name: str, url: str) -> dict[str, TagRef]:
    """All tags of url -> TagRef, with the peeled commit of annotated tags."""
    try:
        out = git.cmd.Git().ls_remote("--tags", url, kill_after_timeout=LS_REMOTE_TIMEOUT)
    except git.GitCommandError as exc:
        detail = (exc.stderr or str(exc)).strip().splitlines()
        raise UpstreamError(name, url, "git ls-remote failed: " + (detail[-1] if detail else "unknown error")) from None
    direct: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        tag = ref[len("refs/tags/"):]
        if tag.endswith("^{}"):
            peeled[tag[:-3]] = sha
        else:
            direct[tag] = sha
    return {t: TagRef(t, sha, peeled.get(t, sha)) for t, sha in direct.items()}


def sort_key(rx: re.Pattern[str], tag: str) -> tuple[int, ...] | None:
    m = rx.fullmatch(tag)
    if not m:
        return None
    try:
        return tuple(int(g) for g in m.groups())
    except (TypeError, ValueError):
        return None


def tag_pkgver(tag: str) -> str:
    """android-16.0.0_r3 -> 16.0.0.r3; v6.1.2 -> 6.1.2; 1.7.7 -> 1.7.7."""
    body = re.sub(r"^[^0-9]*", "", tag)
    return re.sub(r"[-_]+", ".", body)


def matching(upstream: GitTagsUpstream, tags: dict[str, TagRef]) -> list[TagRef]:
    """Release tags only, oldest first."""
    rx = upstream.regex
    keyed = [(k, ref) for ref in tags.values() if (k := sort_key(rx, ref.name)) is not None]
    return [ref for _, ref in sorted(keyed, key=lambda kr: kr[0])]


def latest(upstream: GitTagsUpstream, tags: dict[str, TagRef] | None = None) -> Release:
    if tags is None:
        tags = ls_remote_tags(upstream.name, upstream.url)
    releases = matching(upstream, tags)
    if not releases:
        raise UpstreamError(upstream.name, upstream.url,
                            f"no tag matches {upstream.tag_pattern} ({len(tags)} tags seen)")
    top = releases[-1]
    return Release(upstream.name, top.name, tag_pkgver(top.name), top.commit, upstream.url)
