"""Upstream version sources: one module per kind, each returning a Release.

Sources know nothing about PKGBUILDs: they answer "what is the newest release of this
upstream, and which commit (if any) is it".

The interface, nvchecker-style: a source is a module in this package with

    KIND = "<kind>"                       # the `kind` of [upstreams.NAME] it serves
    def query(upstream) -> Release        # upstream: that kind's config dataclass

registered in SOURCES (kind -> module name, imported on first use). `query()` dispatches one
upstream by its kind; `query_each()` asks several at once and gives each one's answer or
error, `query_all()` fails if any of them failed.
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from ..errors import ConfigError, UpstreamError

if TYPE_CHECKING:
    from ..config import UpstreamConfig


@dataclass(frozen=True)
class Release:
    upstream: str
    version: str          # as upstream names it: the tag "android-16.0.0_r3", "261.2-1", "6.1.158"
    pkgver: str           # the same, spelled as an Arch pkgver, e.g. "16.0.0.r3", "261.2"
    commit: str | None    # peeled commit for git sources (alpm-db: of its source tag)
    url: str              # where it was read (repository, database), or the kernel tarball
    pkgrel: str | None = None   # alpm-db only: the packager's release of that pkgver
    tag: str | None = None      # alpm-db with source_git: the source tag the commit belongs to
    note: str | None = None     # what the report should say about it (a maintainer's pin holding it back)

    def to_json(self) -> dict[str, str | None]:
        out = {"version": self.version, "pkgver": self.pkgver, "commit": self.commit, "url": self.url}
        if self.pkgrel is not None:
            out["pkgrel"] = self.pkgrel
        if self.tag is not None:
            out["tag"] = self.tag
        if self.note is not None:
            out["note"] = self.note
        return out


SOURCES: dict[str, str] = {
    "git-tags": "git_tags",
    "alpm-db": "alpm_db",
    "kernel-org": "kernel_org",
    "git-branch": "git_branch",
}

MAX_WORKERS = 8


def source_for(kind: str) -> ModuleType:
    """The module serving `kind`; ConfigError for a kind nobody serves."""
    try:
        module = SOURCES[kind]
    except KeyError:
        raise ConfigError(f"no source for upstream kind {kind!r} (known: {', '.join(SOURCES)})") from None
    return importlib.import_module(f"{__name__}.{module}")


def query(upstream: "UpstreamConfig") -> Release:
    """The newest release of one configured upstream; UpstreamError if it cannot be had."""
    return source_for(upstream.kind).query(upstream)


class UpstreamErrors(UpstreamError):
    """Several upstreams failed in one query_all(); `.errors` maps each name to its error."""

    def __init__(self, errors: dict[str, UpstreamError]):
        self.errors = errors
        self.upstream = ", ".join(errors)
        self.url = ", ".join(e.url for e in errors.values())
        lines = "\n  ".join(str(e) for e in errors.values())
        Exception.__init__(self, f"{len(errors)} upstreams failed:\n  {lines}")


def query_each(upstreams: Iterable["UpstreamConfig"], *, max_workers: int = MAX_WORKERS,
               ask: Callable[[Any], Any] = query) -> dict[str, Any]:
    """Ask independent upstreams concurrently; name -> answer or the UpstreamError it failed
    with, in the order given. Every query runs to its end, so one unreachable upstream costs
    the others nothing (sync refuses only the packages that read it). An exception other than
    UpstreamError (a bug) is re-raised as it is; an unknown kind fails before anything is asked.

    `ask` replaces query() when a caller needs more than the Release of each upstream
    (sync asks git upstreams for their whole tag list, to see a recorded tag move)."""
    configs = list(upstreams)
    names = [u.name for u in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"upstream queried twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    if not configs:
        return {}
    for u in configs:
        source_for(u.kind)
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(configs))),
                            thread_name_prefix="avfrepo-query") as pool:
        futures = {u.name: pool.submit(ask, u) for u in configs}
    out: dict[str, Any] = {}
    for name, f in futures.items():
        exc = f.exception()
        if exc is not None and not isinstance(exc, UpstreamError):
            raise exc
        out[name] = exc if exc is not None else f.result()
    return out


def query_all(upstreams: Mapping[str, "UpstreamConfig"] | Iterable["UpstreamConfig"],
              *, max_workers: int = MAX_WORKERS, ask: Callable[[Any], Any] = query) -> dict[str, Any]:
    """Query independent upstreams concurrently (query_each); name -> Release, in the order given.

    Every query runs to its end; if any failed, nothing is returned: the one UpstreamError,
    or UpstreamErrors listing them all (so a caller writes nothing on a partial answer).
    """
    configs = list(upstreams.values()) if isinstance(upstreams, Mapping) else list(upstreams)
    answers = query_each(configs, max_workers=max_workers, ask=ask)
    failed = {name: a for name, a in answers.items() if isinstance(a, UpstreamError)}
    if len(failed) == 1:
        raise next(iter(failed.values()))
    if failed:
        raise UpstreamErrors(failed)
    return answers
