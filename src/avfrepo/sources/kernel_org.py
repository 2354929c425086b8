"""The newest point release of one Linux series (the 6.1 LTS AVF's patches target).

Two ways, chosen by the upstream's `method`:
- releases-json: kernel.org's https://www.kernel.org/releases.json, which lists the newest
  release of each *maintained* series (`{"releases": [{"moniker": "longterm", "version":
  "6.1.158", "source": "<tarball>", ...}]}`). A series past its end of life drops out of
  the list: that is an error here, not "no update".
- git-tags: the stable tree's tags `v<series>` and `v<series>.N` (any git URL), through
  git_tags; the release also carries the tag's peeled commit.

Either way: version and pkgver "6.1.158", url the release tarball.

A maintainer's escape hatches (`max_version`, `pin` of [upstreams.kernel]): with a maximum, the
newest release not above it (releases.json lists only the newest of a series, so a held-back
release is the maximum itself, whose tarball kernel.org keeps); with a pin, exactly that
release. Either way the Release's note says what upstream has and what holds it back (the sync
report shows it); a pin or maximum newer than upstream's newest is an error, not a guess.
"""

from __future__ import annotations

import logging
import re

from ..config import GitTagsUpstream, KernelOrgUpstream
from ..errors import UpstreamError
from ..formats import jsondoc
from . import Release
from .git_tags import latest, ls_remote_tags
from .net import http_get

KIND = "kernel-org"
CDN = "https://cdn.kernel.org/pub/linux/kernel"

log = logging.getLogger("avfrepo.sources")


def tarball_url(version: str) -> str:
    """6.1.158 -> https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.1.158.tar.xz"""
    return f"{CDN}/v{version.split('.')[0]}.x/linux-{version}.tar.xz"


def _series_rx(series: str, prefix: str = "") -> str:
    return rf"^{re.escape(prefix)}{re.escape(series)}(?:\.(\d+))?$"


def from_releases_json(upstream: KernelOrgUpstream, data: bytes) -> Release:
    """The newest release of upstream.series in a releases.json document."""

    def bad(reason: str) -> UpstreamError:
        return UpstreamError(upstream.name, upstream.url, reason)

    try:
        doc = jsondoc.parse(data)
    except ValueError as exc:
        raise bad(f"not valid JSON: {exc}") from None
    releases = doc.get("releases") if isinstance(doc, dict) else None
    if not isinstance(releases, list):
        raise bad('unexpected shape: no "releases" list')
    rx = re.compile(_series_rx(upstream.series))
    found: list[tuple[int, dict]] = []
    listed: list[str] = []
    for r in releases:
        version = r.get("version") if isinstance(r, dict) else None
        if not isinstance(version, str):
            continue
        listed.append(version)
        m = rx.fullmatch(version)
        if m and r.get("moniker") != "mainline":
            found.append((int(m.group(1) or -1), r))
    if not found:
        raise bad(f"series {upstream.series} is not listed (listed: {', '.join(listed) or 'nothing'}); "
                  "kernel.org lists only maintained series: for one past its end of life use "
                  'method = "git-tags"')
    _, best = max(found, key=lambda pr: pr[0])
    version = best["version"]
    if best.get("iseol"):
        log.warning("upstream %s: kernel %s is marked end of life on kernel.org", upstream.name, version)
    source = best.get("source")
    url = source if isinstance(source, str) and re.match(r"https?://", source) else tarball_url(version)
    return Release(upstream.name, version, version, None, url)


def from_git_tags(upstream: KernelOrgUpstream, tags: dict | None = None) -> Release:
    """The newest v<series>[.N] tag of the git repository upstream.url."""
    if tags is None:
        tags = ls_remote_tags(upstream.name, upstream.url, upstream.net)
    as_git = GitTagsUpstream(upstream.name, upstream.url, _series_rx(upstream.series, "v"), net=upstream.net)
    rel = latest(as_git, tags)
    version = rel.version[1:]
    return Release(upstream.name, version, version, rel.commit, tarball_url(version))


def _point(version: str) -> int:
    parts = version.split(".")
    return int(parts[2]) if len(parts) > 2 else -1


def held(upstream: KernelOrgUpstream, newest: Release, tags: dict | None = None) -> Release:
    """newest, or the release a pin / maximum holds the series at (see the module doc)."""
    limit = upstream.pin or upstream.max_version
    if limit is None:
        return newest
    key = "pin" if upstream.pin else "max_version"
    if upstream.max_version and _point(newest.version) <= _point(limit):
        return newest
    if _point(limit) > _point(newest.version):
        raise UpstreamError(upstream.name, upstream.url,
                            f"{key} {limit} is newer than the newest release {newest.version}")
    version = limit
    commit = None
    if tags is not None and upstream.max_version:   # the newest tag of the series not above it
        rx = re.compile(_series_rx(upstream.series, "v"))
        below = [t[1:] for t in tags if rx.fullmatch(t) and _point(t[1:]) <= _point(limit)]
        if below:
            version = max(below, key=_point)
    if tags is not None:
        ref = tags.get(f"v{version}")
        if ref is None:
            raise UpstreamError(upstream.name, upstream.url, f"{key} {version}: no tag v{version}")
        commit = ref.commit
    note = (f"held at {version} by [upstreams.{upstream.name}] {key} (newest is {newest.version}); "
            "remove it once the patches apply again")
    return Release(upstream.name, version, version, commit, tarball_url(version), note=note)


def query(upstream: KernelOrgUpstream) -> Release:
    """The source interface: the newest point release of the series (or the one a pin holds)."""
    if upstream.method == "git-tags":
        tags = ls_remote_tags(upstream.name, upstream.url, upstream.net)
        return held(upstream, from_git_tags(upstream, tags), tags)
    return held(upstream, from_releases_json(upstream, http_get(upstream.name, upstream.url, upstream.net,
                                                                accept="application/json")))
