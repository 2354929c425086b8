"""What each [avf] package is made of: its upstream inputs, templates and files.

Each package module exposes NAME, UPSTREAMS (the upstream names it reads), optionally
TREES (upstream -> the paths of its source tree it reads; sync checks them out sparsely at
the release and passes them as ctx.trees) and render(ctx) -> Rendered. A render never knows its final pkgrel: pkgver and pkgrel are left
as tokens, so the hash of the rendered files is exactly "the inputs" of the package, and the
bump rules (sync.py) decide the version afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..config import Config
from ..formats import archrules
from ..signing import Key
from ..sources import Release

PKGVER_TOKEN = "@@PKGVER@@"
PKGREL_TOKEN = "@@PKGREL@@"


class RenderProblem(Exception):
    """The package cannot be rendered from these inputs; sync refuses its bump.

    The same inputs give the same refusal, so sync keeps it by input digest (as it keeps a
    render) and does not repeat the work behind it until an input changes."""


class ToolProblem(RenderProblem):
    """A tool or a download failed while rendering: not a verdict on the inputs, so sync
    refuses this time and tries again next time."""


class UnsafeValue(RenderProblem):
    """A value (most come from upstream) cannot be placed in a generated file safely."""


# -- the one way a value reaches a generated file ------------------------------------------
#
# Every {{ expression }} of a package template must pass one of the filters below; the
# environment's finalize() refuses anything else, so a template cannot paste an upstream
# name, path or message into a PKGBUILD as shell by forgetting to quote it.

# a word safe unquoted in shell and as one path component (unit, binary, directory names): not
# Arch's pkgname rule (formats/archrules.py), which allows '@' and refuses capitals
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Checked(str):
    """Text a filter has validated and, for shell, quoted: safe where the filter said."""


def plain_name(value: object, what: str = "name") -> str:
    """`value` if it is a plain [A-Za-z0-9_.+-] name (not starting with '-'); else UnsafeValue."""
    text = str(value)
    if not PLAIN_NAME.fullmatch(text) or text.startswith("-"):
        raise UnsafeValue(f"{what} {text!r} is not a plain [A-Za-z0-9_.+-] name: refused")
    return text


def _word(value: object) -> Checked:
    """A plain name, pasted as is (unit names, function names, array words, comments)."""
    return Checked(plain_name(value))


def _words(values) -> Checked:
    return Checked(" ".join(_word(v) for v in values))


def _line(value: object) -> Checked:
    """One line of a non-shell file (a unit, a preset, a pacman hook): no control characters."""
    text = str(value)
    if _CONTROL.search(text):
        raise UnsafeValue(f"value {text!r} holds control characters: refused")
    return Checked(text)


def _sh(value: object) -> Checked:
    """One shell word: the value single-quoted for bash (no control characters at all)."""
    text = _line(value)
    return Checked(shlex.quote(text) if text else "''")


def _shwords(values) -> Checked:
    return Checked(" ".join(_sh(v) for v in values))


def _finalize(value: object) -> object:
    if isinstance(value, (Checked, int)) and not isinstance(value, bool):
        return value
    raise UnsafeValue(f"template value {value!r} did not pass a quoting filter (sh, shwords, word, words, line)")


@dataclass(frozen=True)
class Context:
    config: Config
    releases: dict[str, Release]
    trees: dict[str, Path]              # upstream -> sparse work tree (the module's TREES)
    key: Key | None = None              # the signing key and its binary export: shown only to
    public_key: bytes | None = None     # modules with READS_KEY = True
    # package module -> its package names, for every module with a rendered PKGBUILD in
    # pkgbuilds/ (written before, or by this sync): what another package may depend on.
    # Shown only to modules with READS_AVAILABLE = True (the render record counts it only there)
    available: dict[str, tuple[str, ...]] = field(default_factory=dict)


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
        if not archrules.valid_pkgver(pkgver) or not isinstance(pkgrel, int) or pkgrel < 1:
            raise UnsafeValue(f"{self.name}: version {pkgver!r}-{pkgrel!r} is not an Arch pkgver-pkgrel")
        return {rel: data.replace(PKGVER_TOKEN.encode(), pkgver.encode())
                .replace(PKGREL_TOKEN.encode(), str(pkgrel).encode())
                for rel, data in self.files.items()}


@dataclass(frozen=True)
class SourceFile:
    name: str
    sha256: str
    dest: str = ""
    mode: str = "644"


@functools.cache
def _env():
    """The templates' environment, made on first use: a sync that renders nothing never
    imports Jinja or compiles a template."""
    import jinja2
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("avfrepo", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        finalize=_finalize,
    )
    env.filters.update(sh=_sh, shwords=_shwords, word=_word, words=_words, line=_line)
    return env


def template(path: str, **values: object) -> bytes:
    try:
        return _env().get_template(path).render(pkgver=Checked(PKGVER_TOKEN), pkgrel=Checked(PKGREL_TOKEN),
                                                **values).encode()
    except UnsafeValue as exc:
        raise UnsafeValue(f"{path}: {exc}") from None


def template_bytes(path: str) -> bytes:
    """A file of templates/ as it is, not rendered (a patch must reach the PKGBUILD byte for byte)."""
    from importlib.resources import files
    return files("avfrepo").joinpath("templates", *path.split("/")).read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_file(tree: Path, rel: str, at: str, *, text: bool = False) -> bytes | str:
    """File `rel` of an upstream checkout (ctx.trees[...]), read by fsutil.read_tree_file, the
    one reader of upstream trees: a symbolic link anywhere on the path, a directory, an
    over-size file or (text=True) one that is not UTF-8 is a RenderProblem naming the path;
    a FIFO, device or socket (git never checks one out: something on this machine put it in the
    cache) a ToolProblem, tried again next sync. `at` says which upstream and version ("AVF
    android-16.0.0_r3"). A missing file is FileNotFoundError, for the caller to word."""
    from ..fsutil import TreeFileError, read_tree_file
    try:
        return read_tree_file(tree, rel, text=text)
    except TreeFileError as exc:
        problem = ToolProblem if exc.local else RenderProblem
        raise problem(f"{at}: {exc}; refused") from None


def registry() -> dict[str, ModuleType]:
    from . import avf_base, avf_config, avf_desktop, avf_keyring, guest_agents, linux_avf, systemd_avf, ttyd_avf
    # the packages others depend on come first (linux-avf before the agents that need its
    # headers; avf-base, which depends on everything, last)
    return {m.NAME: m for m in (avf_config, avf_keyring, linux_avf, systemd_avf, ttyd_avf, guest_agents, avf_desktop,
                                avf_base)}


def image_packages(module: ModuleType, pkgnames: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The package names of a module an image installs: IMAGE_PACKAGES (default its NAME;
    "*" for every package of its PKGBUILD), limited to `pkgnames` (its rendered PKGBUILD's)."""
    wanted = getattr(module, "IMAGE_PACKAGES", (module.NAME,))
    if wanted == "*":
        return tuple(pkgnames or ())
    return tuple(n for n in wanted if pkgnames is None or n in pkgnames)
