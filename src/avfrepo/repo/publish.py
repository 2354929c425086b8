"""Publish signed packages into the repository with repo-add.

Packages and their detached signatures are copied in under temporary names and renamed,
then `repo-add -s -v -k KEY` rewrites the db and files db and signs them; the armored
public key is kept beside the db as `<repo>.asc`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .. import signing
from ..config import Config
from ..fsutil import atomic_write
from ..run import run
from ..signing import Key


def _copy_in(src: Path, repo: Path) -> Path:
    dest = repo / src.name
    tmp = repo / f".{src.name}.part"
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    return dest


def publish(cfg: Config, key: Key, packages: list[Path]) -> list[Path]:
    """Add already signed packages (each with its .sig beside it) to the repository."""
    repo = cfg.repo.path
    repo.mkdir(parents=True, exist_ok=True)
    added = []
    for pkg in packages:
        _copy_in(Path(str(pkg) + ".sig"), repo)
        added.append(_copy_in(pkg, repo))
    db = repo / f"{cfg.repo.name}.db.tar.gz"
    run(["repo-add", "--nocolor", "-s", "-v", "-k", key.fingerprint, str(db), *map(str, added)],
        env={"GNUPGHOME": str(cfg.signing.gnupg_home)},
        hint="repo-add signs with the [signing] key and checks the existing db signature")
    atomic_write(repo / f"{cfg.repo.name}.asc", signing.export_public(cfg.signing, key.fingerprint, armor=True))
    return added
