"""Provenance records: `<pkgfile>.provenance.json` (+ `.sig`), published beside each package.

One record per package file `avfrepo build` publishes, detached-signed with the repository
key and kept in the pool and the snapshots with its package (and deleted with it):

    {
      "format": 1,
      "pkgname": "avf-config", "pkgbase": "avf-config", "version": "16.0.0_r5-1", "arch": "any",
      "filename": "avf-config-16.0.0_r5-1-any.pkg.tar.zst", "sha256": "...", "size": 12345,
      "pkgbuild_sha256": "...",              # pkgbuilds/<pkgbase>/PKGBUILD it was built from
      "inputs": "..." | null,                # inputs hash of the state file entry, when present
      "upstreams": {"avf": {"version": "android-16.0.0_r5", "commit": "..." | null}},
      "builder_host": "...", "backend": "makepkg",
      "tools": {"avfrepo": "0.1.0", "makepkg": "6.0.2", "repo-add": "6.0.2", "gpg": "2.2.40"},
      "build_started": "2026-11-23T12:00:00Z", "build_finished": "2026-11-23T12:00:04Z",
      "source_date_epoch": 1700000000
    }

JSON with sorted keys, two-space indent and a final newline: the same record always has the
same bytes. SOURCE_DATE_EPOCH is what makepkg stamps as builddate and file mtimes; `avfrepo
build --reproduce` rebuilds with the recorded one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .formats import jsondoc
from .fsutil import atomic_write, sha256_file
from .run import run

FORMAT = 1
SUFFIX = ".provenance.json"

_STR_FIELDS = ("pkgname", "pkgbase", "version", "arch", "filename", "sha256", "pkgbuild_sha256",
               "builder_host", "backend", "build_started", "build_finished")


@dataclass(frozen=True)
class Record:
    pkgname: str
    pkgbase: str
    version: str
    arch: str
    filename: str
    sha256: str
    size: int
    pkgbuild_sha256: str
    inputs: str | None
    upstreams: dict[str, dict[str, str | None]]
    builder_host: str
    backend: str
    tools: dict[str, str]
    build_started: str
    build_finished: str
    source_date_epoch: int
    format: int = field(default=FORMAT)

    def to_bytes(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()


def path_for(package: Path) -> Path:
    """Where the record of a package file lives: beside it."""
    return package.with_name(package.name + SUFFIX)


def companions(filename: str) -> list[str]:
    """The record and its signature of a package file name."""
    return [filename + SUFFIX, filename + SUFFIX + ".sig"]


def is_record_file(name: str) -> bool:
    return name.endswith(SUFFIX) or name.endswith(SUFFIX + ".sig")


def package_of(name: str) -> str:
    """The package file name a record (or its signature) belongs to."""
    return name[: name.rindex(SUFFIX)]


def parse(data: bytes) -> Record:
    """A record from its bytes; ValueError says what is wrong."""
    obj = jsondoc.parse(data)       # ValueError: not UTF-8, not JSON, nested too deep
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if obj.get("format") != FORMAT:
        raise ValueError(f"unsupported provenance format {jsondoc.one_line(repr(obj.get('format')), 40)} "
                         f"(this avfrepo reads {FORMAT})")
    names = {f for f in Record.__dataclass_fields__}
    missing = sorted(names - set(obj))
    extra = sorted(set(obj) - names)
    if missing or extra:
        raise ValueError("; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                   + ([f"unknown {', '.join(extra)}"] if extra else [])))
    bad = [k for k in _STR_FIELDS if not isinstance(obj[k], str)]
    if not isinstance(obj["size"], int) or isinstance(obj["size"], bool):
        bad.append("size")
    if not isinstance(obj["source_date_epoch"], int) or isinstance(obj["source_date_epoch"], bool):
        bad.append("source_date_epoch")
    if obj["inputs"] is not None and not isinstance(obj["inputs"], str):
        bad.append("inputs")
    if not isinstance(obj["upstreams"], dict) or not all(isinstance(v, dict) for v in obj["upstreams"].values()):
        bad.append("upstreams")
    if not isinstance(obj["tools"], dict):
        bad.append("tools")
    if bad:
        raise ValueError(f"wrong type of {', '.join(bad)}")
    return Record(**obj)


def read(path: Path) -> Record:
    return parse(path.read_bytes())


def write(package: Path, record: Record) -> Path:
    """Write the record beside its package (atomically); returns its path."""
    path = path_for(package)
    atomic_write(path, record.to_bytes())
    return path


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_of(argv: list[str], pattern: str) -> str:
    try:
        res = run(argv, check=False, timeout=30)
    except Exception:           # a missing tool is recorded as such, never fails a build
        return "unavailable"
    m = re.search(pattern, res.stdout + res.stderr)
    return m.group(1) if m else "unknown"


@functools.lru_cache(maxsize=None)
def tool_versions() -> dict[str, str]:
    """The versions of the tools a build uses (asked once per process)."""
    from . import __version__
    return {
        "avfrepo": __version__,
        "makepkg": _version_of(["makepkg", "--version"], r"makepkg \(pacman\) (\S+)"),
        "repo-add": _version_of(["repo-add", "--version"], r"repo-add \(pacman\) (\S+)"),
        "gpg": _version_of(["gpg", "--version"], r"gpg \(GnuPG\) (\S+)"),
    }


def builder_host() -> str:
    return socket.gethostname()


def source_date_epoch(pkgdir: Path) -> int:
    """SOURCE_DATE_EPOCH for a build of pkgdir: the time of the last commit touching it when
    it is tracked by git and unmodified, else the PKGBUILD's modification time."""
    pkgbuild = pkgdir / "PKGBUILD"
    try:
        status = run(["git", "-C", str(pkgdir), "status", "--porcelain", "--", "."], check=False, timeout=60)
        if status.returncode == 0 and not status.stdout.strip():
            log = run(["git", "-C", str(pkgdir), "log", "-1", "--format=%ct", "--", "."], check=False, timeout=60)
            if log.returncode == 0 and log.stdout.strip().isdigit():
                return int(log.stdout.strip())
    except Exception:           # no git: fall back to the file time
        pass
    return int(os.stat(pkgbuild).st_mtime)


def upstreams_for(state, pkgbase: str, version: str | None = None) -> tuple[dict[str, dict[str, str | None]], str | None]:
    """(upstreams with version and commit, inputs hash) of pkgbase's state entry, when present
    and (given the built `version`) describing that version: after a sync killed between
    writing pkgbuilds/ and the state file, the state names the previous upstreams, and a
    record says nothing rather than something wrong."""
    entry = state.packages.get(pkgbase) if state is not None else None
    if entry is None:
        return {}, None
    if version is not None and version.split(":", 1)[-1] != entry.full_version:
        return {}, None
    ups = {}
    for name, version in sorted(entry.upstreams.items()):
        u = state.upstreams.get(name)
        ups[name] = {"version": version, "commit": u.commit if u is not None and u.version == version else None}
    return ups, entry.inputs


def make(*, package: Path, info, pkgdir: Path, state, backend: str, started: str, finished: str,
         sde: int) -> Record:
    """The record of a built (and checked) package file; info is its .PKGINFO."""
    upstreams, inputs = upstreams_for(state, info.pkgbase, info.pkgver)
    return Record(
        pkgname=info.pkgname, pkgbase=info.pkgbase, version=info.pkgver, arch=info.arch,
        filename=package.name, sha256=sha256_file(package), size=package.stat().st_size,
        pkgbuild_sha256=sha256_file(pkgdir / "PKGBUILD"), inputs=inputs, upstreams=upstreams,
        builder_host=builder_host(), backend=backend, tools=dict(tool_versions()),
        build_started=started, build_finished=finished, source_date_epoch=int(sde))
