"""Release tags of a git repository, read with `git ls-remote --tags` (through gitpython).

- Only tags matching the configured regex count; everything else in the repository (other
  tag families, codename tags, ...) is ignored. The match is exact (fullmatch).
- Tags sort by their capture groups as numbers, so r10 > r9.
- The commit recorded is the peeled one: for an annotated tag the `^{}` line, for a
  lightweight tag the ref itself. Tag messages are never read.
- An optional group that did not take part in the match counts as -1, so with
  an optional point-release group the tag v6.1 sorts below v6.1.0 and v6.1.1.
- A remote that fails in a way worth retrying (network, timeout) is asked again by the
  upstream's NetPolicy; a URL that is no repository fails at once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass

from ..config import GIT_NET, GitTagsUpstream, NetPolicy
from ..errors import UpstreamError
from . import Release
from .net import GIT_PERMANENT, Transient, with_retries

KIND = "git-tags"

@dataclass(frozen=True)
class TagRef:
    name: str
    object: str   # what refs/tags/<name> points at (tag object or commit)
    commit: str   # peeled commit


def ls_remote(name: str, url: str, net: NetPolicy | None = None, options: tuple[str, ...] = (),
              patterns: tuple[str, ...] = ()) -> str:
    """`git ls-remote OPTIONS url PATTERNS` with the upstream's retries; the raw output."""
    net = net or GIT_NET

    def attempt() -> str:
        # a plain subprocess, not GitPython: ls-remote is one command, and importing GitPython
        # would cost a no-op sync more than the query itself.
        # GIT_TERMINAL_PROMPT=0: a private or missing https repository must fail, not ask
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        argv = ["git", "ls-remote", *options, "--", url, *patterns]
        try:
            # its own process group: on a timeout, git's transport helpers (ssh,
            # git-remote-https) are killed with it and cannot hold the pipes open
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        except FileNotFoundError:
            raise UpstreamError(name, url, "git is not installed") from None
        try:
            out, err = proc.communicate(timeout=net.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise Transient(f"git ls-remote gave no answer within {net.timeout:g} s") from None
        if proc.returncode == 0:
            return out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace").strip()
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
        reason = "git ls-remote failed: " + ((fatal or lines or ["unknown error"])[0])
        if proc.returncode < 0:
            raise Transient(f"git ls-remote was killed by signal {-proc.returncode}")
        if any(word in stderr.lower() for word in GIT_PERMANENT):
            raise UpstreamError(name, url, reason)
        raise Transient(reason)

    return with_retries(name, url, net, attempt)


def ls_remote_tags(name: str, url: str, net: NetPolicy | None = None) -> dict[str, TagRef]:
    """All tags of url -> TagRef, with the peeled commit of annotated tags."""
    out = ls_remote(name, url, net, ("--tags",))
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
        return tuple(-1 if g is None else int(g) for g in m.groups())
    except ValueError:
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


def query(upstream: GitTagsUpstream) -> Release:
    """The source interface (see sources/__init__.py): the newest release tag."""
    return latest(upstream, ls_remote_tags(upstream.name, upstream.url, upstream.net))

