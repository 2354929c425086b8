"""The state (lock) file pkgbuilds/avfrepo-state.json.

It records what the last sync applied: per upstream the version (tag) and peeled commit,
per package pkgver, pkgrel and the hash of its rendered inputs. Written atomically; a
missing file is an empty state (first sync).

Beside what was applied, it keeps what was SEEN (trust on first use): per upstream every
release (tag) sync was ever shown, with its commit, whatever rendered or was refused. A
recorded tag that later points at another commit is an alarm, and a newest release older
than the newest one seen is refused, also while a package reading that upstream is refused.
Per package it keeps, for each tree it reads, a digest of exactly the files it read there
(git's blob ids), so that a new tag whose files are byte-identical changes nothing, and the
sha256 of every file it wrote into pkgbuilds/<package>/ (but .SRCINFO, which it regenerates),
so that a file changed or added there by hand is seen, never silently overwritten.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import StateError
from .formats import jsondoc
from .fsutil import atomic_write

FORMAT = 1


@dataclass(frozen=True)
class UpstreamState:
    version: str
    commit: str | None
    pkgver: str | None = None      # the version as an Arch pkgver, to order releases


@dataclass(frozen=True)
class SeenRelease:
    """One release of an upstream as sync first saw it."""
    commit: str | None
    pkgver: str


@dataclass(frozen=True)
class TreeRecord:
    """What a package read of one upstream's tree at its last render: the release it pinned
    and the digest of the files it read there (paths, modes, git blob ids)."""
    version: str
    commit: str
    content: str


@dataclass(frozen=True)
class PackageState:
    pkgver: str
    pkgrel: int
    inputs: str                                   # sha256 over the rendered inputs
    upstreams: dict[str, str] = field(default_factory=dict)   # upstream -> version used
    trees: dict[str, TreeRecord] = field(default_factory=dict)  # upstream -> what it read there
    files: dict[str, str] = field(default_factory=dict)   # file sync wrote in its directory -> sha256

    @property
    def full_version(self) -> str:
        return f"{self.pkgver}-{self.pkgrel}"


@dataclass
class State:
    upstreams: dict[str, UpstreamState] = field(default_factory=dict)
    packages: dict[str, PackageState] = field(default_factory=dict)
    seen: dict[str, dict[str, SeenRelease]] = field(default_factory=dict)   # upstream -> version -> first seen

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "upstreams": {k: asdict(v) for k, v in sorted(self.upstreams.items())},
            "packages": {k: asdict(v) for k, v in sorted(self.packages.items())},
            "seen": {u: {v: asdict(r) for v, r in sorted(tags.items())} for u, tags in sorted(self.seen.items())},
        }
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def load(path: Path) -> State:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return State()
    try:
        data = jsondoc.parse(raw)
    except ValueError as exc:
        raise StateError(f"{path}: corrupt state file ({exc}); restore it from git") from None
    try:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if data.get("format") != FORMAT:
            raise StateError(f"{path}: unsupported state format {jsondoc.one_line(repr(data.get('format')), 40)} "
                             f"(this avfrepo reads {FORMAT})")
        state = State(
            upstreams={k: UpstreamState(**v) for k, v in data.get("upstreams", {}).items()},
            packages={k: _package(v) for k, v in data.get("packages", {}).items()},
            seen={u: {v: SeenRelease(**r) for v, r in tags.items()} for u, tags in data.get("seen", {}).items()},
        )
        _check_types(state)
        return state
    except (TypeError, AttributeError) as exc:
        raise StateError(f"{path}: corrupt state file ({jsondoc.one_line(exc)}); restore it from git") from None


def _package(data: dict) -> PackageState:
    trees = data.get("trees", {})
    if not isinstance(trees, dict):
        raise TypeError("packages.*.trees must be an object")
    return PackageState(**{**data, "trees": {u: TreeRecord(**t) for u, t in trees.items()}})


def _check_types(state: State) -> None:
    """A hand-edited value of the wrong type is a TypeError naming it, here, not a crash later."""
    def want(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise TypeError(f"{where} must be {what}")
    for name, u in state.upstreams.items():
        want(isinstance(name, str), f"upstream {name!r}", "named by a string")
        want(isinstance(u.version, str) and bool(u.version), f"upstreams.{name}.version", "a non-empty string")
        want(u.commit is None or isinstance(u.commit, str), f"upstreams.{name}.commit", "a string or null")
        want(u.pkgver is None or isinstance(u.pkgver, str), f"upstreams.{name}.pkgver", "a string or null")
    for name, pk in state.packages.items():
        want(isinstance(pk.pkgver, str) and bool(pk.pkgver), f"packages.{name}.pkgver", "a non-empty string")
        want(isinstance(pk.pkgrel, int) and not isinstance(pk.pkgrel, bool) and pk.pkgrel >= 0,
             f"packages.{name}.pkgrel", "a non-negative integer")
        want(isinstance(pk.inputs, str), f"packages.{name}.inputs", "a string")
        want(isinstance(pk.upstreams, dict) and all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in pk.upstreams.items()),
             f"packages.{name}.upstreams", "an object of strings")
        want(isinstance(pk.files, dict) and all(isinstance(v, str) and len(v) == 64 for v in pk.files.values()),
             f"packages.{name}.files", "an object of sha256 strings")
        for u, t in pk.trees.items():
            want(all(isinstance(x, str) and x for x in (t.version, t.commit, t.content)),
                 f"packages.{name}.trees.{u}", "version, commit and content strings")
    for name, tags in state.seen.items():
        want(isinstance(tags, dict), f"seen.{name}", "an object")
        for version, r in tags.items():
            want(isinstance(version, str) and bool(version), f"seen.{name} version {version!r}", "a non-empty string")
            want(r.commit is None or isinstance(r.commit, str), f"seen.{name}.{version}.commit", "a string or null")
            want(isinstance(r.pkgver, str) and bool(r.pkgver), f"seen.{name}.{version}.pkgver", "a non-empty string")


def save(path: Path, state: State) -> None:
    atomic_write(path, state.to_json().encode())
