"""The local render record (cache/sync-inputs.json): what each package's last render was made
of, so that a sync whose upstreams did not move renders nothing.

A package's render is a function of
- the releases of the upstreams it reads (tag and commit: the source tree follows from them),
- the configuration file,
- its own directory under pkgbuilds/ (kept Cargo.lock files, carried patches, its .SRCINFO),
- what the other rendered packages are named (their .SRCINFO: what it may depend on),
- its record in the state file,
- the signing key (avf-keyring ships it),
- avfrepo's own code and templates, and the tools a render runs (makepkg for .SRCINFO,
  patch for the dry runs, cargo when a kept lock no longer fits).
After a sync rendered a package and wrote it or found it unchanged, sync stores a digest of
all of these; the next sync compares the digest and renders only the packages whose digest
differs, reporting the others as unchanged, which is what their render would have said. The
key and the tools enter by file identity (size, mtime), so a change there is seen without
running gpg or makepkg; a change that identity misses cannot happen without one it sees.

A refusal is kept the same way: the same inputs give the same refusal, so a sync whose
upstreams did not move reports a refused package's refusal again without repeating the work
behind it (a 174 MB kernel tarball extracted to dry-run AVF's patches). Only verdicts on the
inputs are kept, never a failed tool or download (ToolProblem), which the next sync retries.

The record describes this machine (its avfrepo, its tools), so it lives in the cache, never
in pkgbuilds/: a fresh clone or a CI runner renders everything once. `sync --rerender`
ignores it. A missing or unreadable record is an empty one (a corrupt one is named in a
warning): it only saves work.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .formats import jsondoc
from .fsutil import atomic_write

log = logging.getLogger("avfrepo.sync")

FORMAT = 1
TOOLS = ("makepkg", "patch", "cargo", "git")
_CODE = Path(__file__).resolve().parent


def path(cache: Path) -> Path:
    return cache / "sync-inputs.json"


@dataclass
class Record:
    renders: dict[str, str] = field(default_factory=dict)      # package -> digest of its last render
    refusals: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # package -> (digest, problems)


def load(cache: Path) -> Record:
    """What the last syncs rendered and refused (empty when there is no usable record)."""
    try:
        data = jsondoc.read(path(cache))
    except FileNotFoundError:
        return Record()
    except (OSError, ValueError) as exc:
        log.warning("%s: corrupt file, ignored (every package renders again): %s", path(cache),
                    jsondoc.one_line(getattr(exc, "strerror", None) or exc))
        return Record()
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("packages"), dict):
        return Record()
    refused = data.get("refused") if isinstance(data.get("refused"), dict) else {}
    return Record(
        renders={k: v for k, v in data["packages"].items() if isinstance(k, str) and isinstance(v, str)},
        refusals={k: (v["digest"], list(v["problems"])) for k, v in refused.items()
                  if isinstance(v, dict) and isinstance(v.get("digest"), str) and isinstance(v.get("problems"), list)
                  and v["problems"] and all(isinstance(x, str) for x in v["problems"])})


def save(cache: Path, record: Record) -> None:
    data = {"format": FORMAT, "packages": dict(sorted(record.renders.items())),
            "refused": {k: {"digest": d, "problems": probs} for k, (d, probs) in sorted(record.refusals.items())}}
    atomic_write(path(cache), (json.dumps(data, indent=2) + "\n").encode())


def _identity(p: Path) -> list:
    try:
        st = p.stat()
    except OSError:
        return [str(p), None]
    return [str(p), st.st_size, st.st_mtime_ns, st.st_ino]


@functools.cache
def code_digest() -> str:
    """avfrepo's modules and templates: a render by other code may render other files."""
    h = hashlib.sha256()
    for p in sorted(_CODE.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(_CODE)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def tools_identity() -> list:
    return [_identity(Path(found)) if (found := shutil.which(t)) else [t, None] for t in TOOLS]


def key_identity(gnupg_home: Path) -> list:
    """The files a key change touches (public ring, secret keys), by identity."""
    home = Path(gnupg_home)
    out = [_identity(home / n) for n in ("pubring.kbx", "pubring.gpg", "trustdb.gpg")]
    secret = home / "private-keys-v1.d"
    if secret.is_dir():
        out += [_identity(p) for p in sorted(secret.iterdir())]
    return out


def tree_digest(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    return h.hexdigest()


def digest(*, config_bytes: bytes, releases: list, tree: Mapping[str, bytes], available: Mapping,
           state: object, key: list, upstream_state: list) -> str:
    """The digest of one package's render inputs (see the module docstring)."""
    data = {
        "code": code_digest(),
        "tools": tools_identity(),
        "config": hashlib.sha256(config_bytes).hexdigest(),
        "releases": [dataclasses.asdict(r) for r in releases],
        "upstream_state": upstream_state,
        "tree": tree_digest(tree),
        "available": {k: list(v) for k, v in sorted(available.items())},
        "state": dataclasses.asdict(state) if state is not None else None,
        "key": key,
        "env": os.environ.get("CARGO_NET_OFFLINE", ""),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
