"""avfrepo.toml -> frozen, typed configuration.

Every problem names the file and the key, and raises ConfigError (exit code 2). Unknown keys
are errors too: a typo must never silently fall back to a default.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_NAME = "avfrepo.toml"
ENV_VAR = "AVFREPO_CONFIG"
BACKENDS = ("makepkg", "makechrootpkg")
ARCHES = ("aarch64", "x86_64", "any")

AVF_URL = "https://android.googlesource.com/platform/packages/modules/Virtualization"
AVF_TAG_PATTERN = r"^android-(16)\.(\d+)\.(\d+)_r(\d+)$"


@dataclass(frozen=True)
class GitTagsUpstream:
    """A git repository whose release tags are versions (AVF, ttyd, ...)."""

    name: str
    url: str
    tag_pattern: str
    kind: str = "git-tags"

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.tag_pattern)


@dataclass(frozen=True)
class RepoConfig:
    name: str
    path: Path
    arch: str
    server: str


@dataclass(frozen=True)
class SigningConfig:
    key: str | None
    gnupg_home: Path


@dataclass(frozen=True)
class BuildConfig:
    backend: str
    user: str
    chroot: Path
    packager: str


@dataclass(frozen=True)
class Config:
    file: Path | None
    root: Path
    pkgbuilds: Path
    cache: Path
    logs: Path
    repo: RepoConfig
    signing: SigningConfig
    build: BuildConfig
    upstreams: dict[str, GitTagsUpstream] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.pkgbuilds / "avfrepo-state.json"

    def upstream(self, name: str) -> GitTagsUpstream:
        try:
            return self.upstreams[name]
        except KeyError:
            raise ConfigError(f"{self.file}: [upstreams.{name}] is required but missing") from None


class _Table:
    """A TOML table being read: remembers the key path and which keys were used."""

    def __init__(self, data: dict[str, Any], where: str, file: Path | None):
        self.data = data
        self.where = where
        self.file = file
        self.used: set[str] = set()

    def _err(self, key: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.file or '<config>'}: [{self.where}] {key}: {msg}")

    def get(self, key: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                raise self._err(key, "is required")
            return default
        value = self.data[key]
        if kind is str and not isinstance(value, str):
            raise self._err(key, f"must be a string, got {type(value).__name__} {value!r}")
        if kind is str and not value.strip() and required:
            raise self._err(key, "must not be empty")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def table(self, key: str) -> "_Table":
        self.used.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._err(key, "must be a table")
        return _Table(value, f"{self.where}.{key}" if self.where else key, self.file)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self._err(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return (p if p.is_absolute() else base / p).resolve()


def _regex(table: _Table, key: str, default: str | None, *, required: bool) -> str:
    value = table.get(key, str, default, required=required)
    try:
        rx = re.compile(value)
    except re.error as exc:
        raise table._err(key, f"not a valid regular expression: {exc}") from None
    if rx.groups == 0:
        raise table._err(key, "needs capture groups of digits, used to order the tags numerically")
    return value


def _upstream(name: str, t: _Table) -> GitTagsUpstream:
    kind = t.choice("kind", ("git-tags",), "git-tags")
    is_avf = name == "avf"
    url = t.get("url", str, AVF_URL if is_avf else None, required=not is_avf)
    pattern = _regex(t, "tag_pattern", AVF_TAG_PATTERN if is_avf else None, required=not is_avf)
    t.finish()
    return GitTagsUpstream(name=name, url=url, tag_pattern=pattern, kind=kind)


def parse(data: dict[str, Any], file: Path | None, root: Path) -> Config:
    top = _Table(data, "", file)
    paths = top.table("paths")
    pkgbuilds = _path(paths.get("pkgbuilds", str, "pkgbuilds"), root)
    cache = _path(paths.get("cache", str, ".cache"), root)
    logs = _path(paths.get("logs", str, "logs"), root)
    paths.finish()

    r = top.table("repo")
    name = r.get("name", str, "avf")
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise r._err("name", f"must be a simple repository name like 'avf', got {name!r}")
    repo = RepoConfig(
        name=name,
        path=_path(r.get("path", str, "repo"), root),
        arch=r.choice("arch", ARCHES, "aarch64"),
        server=r.get("server", str, "https://example.invalid/avf").rstrip("/"),
    )
    r.finish()

    s = top.table("signing")
    key = s.get("key", str, "") or None
    if key is not None and not re.fullmatch(r"[0-9A-Fa-f]{40}", key):
        raise s._err("key", f"must be a full 40-hex-digit fingerprint, got {key!r}")
    signing = SigningConfig(key=key.upper() if key else None,
                            gnupg_home=_path(s.get("gnupg_home", str, "~/.gnupg"), root))
    s.finish()

    b = top.table("build")
    build = BuildConfig(
        backend=b.choice("backend", BACKENDS, "makepkg"),
        user=b.get("user", str, "avfbuild"),
        chroot=_path(b.get("chroot", str, "/var/lib/avfrepo/chroot"), root),
        packager=b.get("packager", str, "avfrepo <avfrepo@example.invalid>"),
    )
    b.finish()

    ups = top.table("upstreams")
    upstreams = {}
    for uname in ups.data:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", uname):
            raise ups._err(uname, "upstream names are lowercase letters, digits, - and _")
        upstreams[uname] = _upstream(uname, ups.table(uname))
    if "avf" not in upstreams:
        upstreams["avf"] = GitTagsUpstream("avf", AVF_URL, AVF_TAG_PATTERN)
    ups.finish()
    top.finish()
    return Config(file=file, root=root, pkgbuilds=pkgbuilds, cache=cache, logs=logs, repo=repo,
                  signing=signing, build=build, upstreams=upstreams)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the config: explicit path, else $AVFREPO_CONFIG, else ./avfrepo.toml."""
    if path is None:
        path = os.environ.get(ENV_VAR) or DEFAULT_NAME
    file = Path(path).expanduser().resolve()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file (pass --config FILE or set {ENV_VAR})") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse(data, file, file.parent)
