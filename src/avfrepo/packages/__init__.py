"""What each [avf] package is made of: its upstream inputs, templates and files.

Each package module exposes NAME, UPSTREAMS (the upstream names it reads), optionally
TREES (upstream -> the paths of its source tree it reads; sync checks them out sparsely at
the release and passes them as ctx.trees) and render(ctx) -> Rendered. A render never knows its final pkgrel: pkgver and pkgrel are left
as tokens, so the hash of the rendered files is exactly "the inputs" of the package, and the
bump rules (sync.py) decide the version afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import jinja2

from ..config import Config
from ..signing import Key
from ..sources import Release

PKGVER_TOKEN = "@@PKGVER@@"
PKGREL_TOKEN = "@@PKGREL@@"


class RenderProblem(Exception):
    """The package cannot be rendered from these inputs; sync refuses its bump."""


@dataclass(frozen=True)
class Context:
    config: Config
    releases: dict[str, Release]
    trees: dict[str, Path]              # upstream -> sparse work tree (the module's TREES)
    key: Key | None = None
    public_key: bytes | None = None     # binary export of the signing key
    enabled: tuple[str, ...] = ()       # packages an image installs, of every enabled module


@dataclass(frozen=True)
class Rendered:
    name: str
    pkgver: str                          # the pkgver these inputs call for
    upstreams: dict[str, str]            # upstream -> version it was rendered from
    files: dict[str, bytes]              # PKGBUILD etc., with version tokens
    notes: tuple[str, ...] = field(default=())

    def inputs_hash(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + hashlib.sha256(self.files[rel]).digest())
        return h.hexdigest()

    def finalize(self, pkgver: str, pkgrel: int) -> dict[str, bytes]:
        return {rel: data.replace(PKGVER_TOKEN.encode(), pkgver.encode())
                .replace(PKGREL_TOKEN.encode(), str(pkgrel).encode())
                for rel, data in self.files.items()}


@dataclass(frozen=True)
class SourceFile:
    name: str
    sha256: str
    dest: str = ""
    mode: str = "644"


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("avfrepo", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def template(path: str, **values: object) -> bytes:
    return _env.get_template(path).render(pkgver=PKGVER_TOKEN, pkgrel=PKGREL_TOKEN, **values).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def registry() -> dict[str, ModuleType]:
    from . import avf_base, avf_config, avf_keyring, guest_agents, linux_avf, systemd_avf, ttyd_avf
    return {m.NAME: m for m in (avf_config, avf_keyring, guest_agents, ttyd_avf, linux_avf, systemd_avf, avf_base)}


def image_packages(module: ModuleType) -> tuple[str, ...]:
    """The package names of a module an image installs (IMAGE_PACKAGES, default its NAME)."""
    return tuple(getattr(module, "IMAGE_PACKAGES", (module.NAME,)))
