"""avfrepo.toml -> frozen, typed configuration.

Every problem names the file and the key, and raises ConfigError (exit code 2). Unknown keys
are errors too: a typo must never silently fall back to a default. Unknown sections, keys,
package and upstream names get the closest known ones ("did you mean"), and values are shown
as TOML writes them (`got true`, `got "docker"`), not as Python does.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import string
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .formats import archrules

DEFAULT_NAME = "avfrepo.toml"
ENV_VAR = "AVFREPO_CONFIG"
GNUPGHOME_ENV = "AVFREPO_GNUPGHOME"     # overrides [signing] gnupg_home (unattended jobs)
BACKENDS = ("makepkg", "makechrootpkg")
ARCHES = ("aarch64", "x86_64", "any")

AVF_URL = "https://android.googlesource.com/platform/packages/modules/Virtualization"
AVF_TAG_PATTERN = r"^android-(16)\.(\d+)\.(\d+)_r(\d+)$"


@dataclass(frozen=True)
class NetPolicy:
    """How a source uses the network: a timeout per request (seconds), how many times a
    transient failure is retried after the first try, and the first back-off delay
    (seconds), doubled before each further retry."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    deadline: float = 900.0     # for one whole answer, however slowly it trickles in

    def delays(self) -> list[float]:
        return [self.backoff * 2 ** i for i in range(self.retries)]


GIT_NET = NetPolicy(timeout=120.0)   # ls-remote of a large repository lists thousands of tags


@dataclass(frozen=True)
class GitTagsUpstream:
    """A git repository whose release tags are versions (AVF, ttyd, ...)."""

    name: str
    url: str
    tag_pattern: str
    kind: str = "git-tags"
    net: NetPolicy = GIT_NET

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.tag_pattern)


ALARM_SERVER = "http://mirror.archlinuxarm.org"


@dataclass(frozen=True)
class AlpmDbUpstream:
    """The version of one package in a remote pacman repository (Arch Linux ARM core/systemd).

    With source_git, the release also carries the peeled commit of the source tag
    source_tag (formatted with the pkgver) in that git repository.
    """

    name: str
    server: str = ALARM_SERVER
    arch: str = "aarch64"
    repo: str = "core"
    package: str = "systemd"
    source_git: str | None = None
    source_tag: str = "v{pkgver}"
    kind: str = "alpm-db"
    net: NetPolicy = NetPolicy()

    @property
    def url(self) -> str:
        """The database, in pacman's `$server/$arch/$repo` layout (placeholders honoured)."""
        base = self.server.rstrip("/")
        if "$arch" in base or "$repo" in base:
            base = base.replace("$arch", self.arch).replace("$repo", self.repo)
        else:
            base = f"{base}/{self.arch}/{self.repo}"
        return f"{base}/{self.repo}.db"


KERNEL_RELEASES_JSON = "https://www.kernel.org/releases.json"
KERNEL_STABLE_GIT = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git"
KERNEL_METHODS = ("releases-json", "git-tags")


@dataclass(frozen=True)
class KernelOrgUpstream:
    """The newest point release of one kernel series (6.1 LTS): from kernel.org's
    releases.json (method releases-json), or from the stable tree's v<series>.N tags
    (method git-tags, url = the git repository)."""

    name: str
    series: str = "6.1"
    method: str = "releases-json"
    url: str = KERNEL_RELEASES_JSON
    kind: str = "kernel-org"
    net: NetPolicy = NetPolicy()
    max_version: str | None = None   # escape hatch: never newer than this point release
    pin: str | None = None           # escape hatch: exactly this point release


ALARM_PKGBUILDS = "alarm-pkgbuilds"
ALARM_PKGBUILDS_URL = "https://github.com/archlinuxarm/PKGBUILDs"


@dataclass(frozen=True)
class GitBranchUpstream:
    """The head of one branch of a git repository whose files packages derive from (Arch Linux
    ARM's PKGBUILDs: systemd-avf and linux-avf read core/systemd and core/linux-aarch64)."""

    name: str
    url: str
    branch: str = "master"
    kind: str = "git-branch"
    net: NetPolicy = GIT_NET


UpstreamConfig = GitTagsUpstream | AlpmDbUpstream | KernelOrgUpstream | GitBranchUpstream
UPSTREAM_KINDS = ("git-tags", "alpm-db", "kernel-org", "git-branch")


@dataclass(frozen=True)
class RepoConfig:
    name: str
    path: Path
    arch: str
    server: str
    keep: int = 3                 # versions of each package kept in the pool (rollback)
    lock_timeout: float = 300.0   # seconds to wait for another avfrepo holding the repo

    @property
    def placeholder_server(self) -> bool:
        """Whether `server` names a host that cannot exist (RFC 2606/6761: example.com/.net/.org,
        .example, .invalid, .test): the shipped avfrepo.toml's stand-in for the real host."""
        from urllib.parse import urlsplit
        host = (urlsplit(self.server).hostname or "").rstrip(".").lower()
        return (host.rsplit(".", 1)[-1] in ("example", "invalid", "test")
                or any(host == d or host.endswith("." + d) for d in ("example.com", "example.net", "example.org")))

    @property
    def published(self) -> Path:
        """What pacman's `Server = <url>/$arch` points at: a symlink to the current snapshot."""
        return self.path / self.arch

    @property
    def db(self) -> Path:
        return self.published / f"{self.name}.db.tar.gz"

    @property
    def files_db(self) -> Path:
        return self.published / f"{self.name}.files.tar.gz"


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
    jobs: int = 1                 # packages built at the same time (`avfrepo build --jobs N`)
    # makepkg on a host whose CPU is not [repo] arch produces that arch's code (a cross
    # toolchain, or PKGBUILDs that only package prebuilt files): without it such builds are
    # refused (backends.MakepkgBackend.preflight); the ELF check of every package still runs
    makepkg_cross: bool = False


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
    upstreams: dict[str, UpstreamConfig] = field(default_factory=dict)
    enabled: tuple[str, ...] | None = None     # [packages] enable; None = every package avfrepo knows
    carry: dict[str, tuple["CarriedPatch", ...]] = field(default_factory=dict)   # [packages.<name>] carry
    image: "ImageConfig | None" = None         # [image]; None = the defaults (see ImageConfig)

    @property
    def image_settings(self) -> "ImageConfig":
        return self.image or ImageConfig(output=self.root / "images.tar.gz",
                                         cachedir=self.cache / "image-packages")

    @property
    def state_file(self) -> Path:
        return self.pkgbuilds / "avfrepo-state.json"

    def upstream(self, name: str) -> UpstreamConfig:
        try:
            return self.upstreams[name]
        except KeyError:
            raise ConfigError(f"{self.file}: [upstreams.{name}] is required but missing") from None


@dataclass(frozen=True)
class CarriedPatch:
    """A maintainer's own patch for a package's upstream series ([[packages.<name>.carry]]): the
    file, committed in pkgbuilds/<name>/, replaces the series entry `replaces` while that one
    does not apply, or (no `replaces`) is applied after the series."""

    file: str
    replaces: str | None = None


@dataclass(frozen=True)
class ImageRepo:
    """One system repository the image installs from (pacman.conf section)."""

    name: str
    server: str
    siglevel: str = "Required DatabaseOptional"   # ALARM mirrors do not sign their dbs


ALARM_IMAGE_REPOS = tuple(ImageRepo(n, "http://mirror.archlinuxarm.org/$arch/$repo") for n in ("core", "extra", "alarm"))
IMAGE_AVF_SOURCES = ("local", "server")


@dataclass(frozen=True)
class ImageConfig:
    """[image]: `avfrepo image` (images.tar.gz for the Android Terminal app)."""

    output: Path
    cachedir: Path                                  # downloaded packages (outside the image)
    repos: tuple[ImageRepo, ...] = ALARM_IMAGE_REPOS
    avf_source: str = "local"                       # [avf] from repo.path (file://) or repo.server
    packages: tuple[str, ...] = ("avf-base",)
    headroom_mib: int = 512                         # free space left in root_part
    memory_mib: int = 4096
    efi_size_mib: int = 256
    gpgdir: Path = Path("/etc/pacman.d/gnupg")      # keyring trusting ALARM's and [avf]'s keys


def toml_value(value: Any) -> str:
    """value as it is written in TOML (true, "text", [1, 2], {a = 1}): how errors show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)       # TOML's basic string escapes
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', k) else json.dumps(k)} = {toml_value(v)}"
                               for k, v in value.items()) + "}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


_TOML_TYPES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}


def _toml_type(value: Any) -> str:
    return _TOML_TYPES.get(type(value), "date/time")


def did_you_mean(name: str, known: "list[str] | tuple[str, ...] | set[str]", fmt: str = "{}") -> str:
    """" (did you mean X?)" with the closest of known (difflib), or "" when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)   # "singing" -> signing: 0.57
    return f" (did you mean {' or '.join(fmt.format(c) for c in close)}?)" if close else ""


def _catalog() -> tuple[tuple[str, ...], frozenset[str]]:
    """The packages avfrepo knows and the upstreams they read (packages.registry)."""
    from . import packages
    reg = packages.registry()
    return tuple(reg), frozenset(u for m in reg.values() for u in m.UPSTREAMS) | {"avf", ALARM_PKGBUILDS}


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
            raise self._err(key, f"must be a string, got {_toml_type(value)} {toml_value(value)}")
        if kind is str and not value.strip() and required:
            raise self._err(key, "must not be empty")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self._err(key, f"must be one of {', '.join(choices)}, got {toml_value(value)}")
        return value

    def table(self, key: str) -> "_Table":
        self.used.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._err(key, "must be a table")
        return _Table(value, f"{self.where}.{key}" if self.where else key, self.file)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if not unknown:
            return
        key = unknown[0]
        if not self.where and isinstance(self.data[key], dict):        # a top-level table
            raise ConfigError(f"{self.file or '<config>'}: [{key}]: unknown section"
                              f"{did_you_mean(key, self.used, '[{}]')} (known: "
                              f"{', '.join(f'[{k}]' for k in sorted(self.used))})")
        raise self._err(key, f"unknown key{did_you_mean(key, self.used)} (known: {', '.join(sorted(self.used))})")


def _number(t: _Table, key: str, kind: type | tuple[type, ...], default: float, *, minimum: float) -> float:
    t.used.add(key)
    value = t.data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise t._err(key, f"must be a number, got {toml_value(value)}")
    if not math.isfinite(value):
        raise t._err(key, f"must be a finite number, got {toml_value(value)}")
    if value < minimum:
        raise t._err(key, f"must be at least {minimum}, got {toml_value(value)}")
    return value


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


def _word(t: _Table, key: str, default: str, pattern: str, what: str) -> str:
    value = t.get(key, str, default)
    if not re.fullmatch(pattern, value):
        raise t._err(key, f"must be {what}, got {toml_value(value)}")
    return value


def _http_url(t: _Table, key: str, default: str) -> str:
    value = t.get(key, str, default).strip()
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise t._err(key, f"must be an http:// or https:// URL, got {toml_value(value)}")
    return value


def _net(t: _Table, default: NetPolicy) -> NetPolicy:
    """Keys every upstream kind takes: timeout, retries, backoff."""
    timeout = float(_number(t, "timeout", (int, float), default.timeout, minimum=0.001))
    retries = _number(t, "retries", int, default.retries, minimum=0)
    if retries > 10:
        raise t._err("retries", f"must be at most 10, got {toml_value(retries)}")
    backoff = float(_number(t, "backoff", (int, float), default.backoff, minimum=0))
    deadline = float(_number(t, "deadline", (int, float), max(default.deadline, timeout), minimum=timeout))
    return NetPolicy(timeout=timeout, retries=retries, backoff=backoff, deadline=deadline)


def _git_tags(name: str, t: _Table) -> GitTagsUpstream:
    is_avf = name == "avf"
    url = t.get("url", str, AVF_URL if is_avf else None, required=not is_avf)
    pattern = _regex(t, "tag_pattern", AVF_TAG_PATTERN if is_avf else None, required=not is_avf)
    return GitTagsUpstream(name=name, url=url, tag_pattern=pattern, net=_net(t, GIT_NET))


def _alpm_db(name: str, t: _Table) -> AlpmDbUpstream:
    server = _http_url(t, "server", ALARM_SERVER)
    arch = _word(t, "arch", "aarch64", r"[a-z0-9_]+", "an architecture like aarch64")
    repo = _word(t, "repo", "core", r"[a-z0-9][a-z0-9_-]*", "a repository name like core")
    package = _word(t, "package", "systemd", r"[a-z0-9@_+][a-z0-9@._+-]*", "a package name like systemd")
    source_git = t.get("source_git", str, "").strip() or None
    source_tag = t.get("source_tag", str, "v{pkgver}")
    if "source_tag" in t.data and source_git is None:
        raise t._err("source_tag", "only means something together with source_git")
    fields = {f for _, f, _, _ in string.Formatter().parse(source_tag) if f is not None}
    if fields != {"pkgver"}:
        raise t._err("source_tag", f"must contain {{pkgver}} and no other field, got {toml_value(source_tag)}")
    return AlpmDbUpstream(name=name, server=server, arch=arch, repo=repo, package=package,
                          source_git=source_git, source_tag=source_tag, net=_net(t, NetPolicy()))


def _kernel_org(name: str, t: _Table) -> KernelOrgUpstream:
    series = _word(t, "series", "6.1", r"[1-9]\d*\.\d+", "a kernel series like 6.1")
    method = t.choice("method", KERNEL_METHODS, "releases-json")
    if method == "releases-json":
        url = _http_url(t, "url", KERNEL_RELEASES_JSON)
    else:
        url = t.get("url", str, KERNEL_STABLE_GIT).strip()
        if not url:
            raise t._err("url", "must not be empty")
    pins = {}
    for key in ("max_version", "pin"):
        value = t.get(key, str, None)
        if value is None:
            continue
        if not re.fullmatch(re.escape(series) + r"(\.\d+)?", value):
            raise t._err(key, f"must be a release of series {series} such as {series}.187, got {toml_value(value)}")
        pins[key] = value
    if len(pins) == 2:
        raise t._err("pin", "set one of them: pin is one exact release, max_version caps the series")
    return KernelOrgUpstream(name=name, series=series, method=method, url=url,
                             net=_net(t, GIT_NET if method == "git-tags" else NetPolicy()), **pins)


def _git_branch(name: str, t: _Table) -> GitBranchUpstream:
    url = t.get("url", str, ALARM_PKGBUILDS_URL if name == ALARM_PKGBUILDS else None,
                required=name != ALARM_PKGBUILDS).strip()
    if not url:
        raise t._err("url", "must not be empty")
    branch = _word(t, "branch", "master", r"[A-Za-z0-9][A-Za-z0-9._/-]*", "a branch name like master")
    if ".." in branch or branch.endswith((".lock", "/")):
        raise t._err("branch", f"must be a branch name like master, got {toml_value(branch)}")
    return GitBranchUpstream(name=name, url=url, branch=branch, net=_net(t, GIT_NET))


def _upstream(name: str, t: _Table) -> UpstreamConfig:
    kind = t.choice("kind", UPSTREAM_KINDS, "git-branch" if name == ALARM_PKGBUILDS else "git-tags")
    parsers = {"git-tags": _git_tags, "alpm-db": _alpm_db, "kernel-org": _kernel_org, "git-branch": _git_branch}
    upstream = parsers[kind](name, t)
    t.finish()
    return upstream


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
        raise r._err("name", f"must be a simple repository name like avf, got {toml_value(name)}")
    server = r.get("server", str, "https://example.invalid/avf").rstrip("/")
    if "$arch" in server or "$repo" in server:
        # pacman-conf writes `Server = <server>/$arch`: a server that has it already would
        # send pacman to .../$arch/$arch
        fixed = server.replace("/$arch", "").replace("$arch", "").rstrip("/")
        raise r._err("server", f"must be the URL of the folder that holds $arch, without /$arch "
                               f"(`avfrepo pacman-conf` adds it), got {toml_value(server)}: "
                               + (f"set server = {toml_value(fixed)}" if "$repo" not in fixed
                                  else "[avf] is one repository: leave out $repo too"))
    repo = RepoConfig(
        name=name,
        path=_path(r.get("path", str, "repo"), root),
        arch=r.choice("arch", ARCHES, "aarch64"),
        server=server,
        keep=_number(r, "keep", int, 3, minimum=1),
        lock_timeout=float(_number(r, "lock_timeout", (int, float), 300, minimum=0)),
    )
    r.finish()

    s = top.table("signing")
    key = s.get("key", str, "") or None
    if key is not None and not re.fullmatch(r"[0-9A-Fa-f]{40}", key):
        raise s._err("key", f"must be a full 40-hex-digit fingerprint, got {toml_value(key)}")
    home = os.environ.get(GNUPGHOME_ENV) or s.get("gnupg_home", str, "~/.gnupg")
    s.used.add("gnupg_home")
    signing = SigningConfig(key=key.upper() if key else None, gnupg_home=_path(home, root))
    s.finish()

    b = top.table("build")
    build = BuildConfig(
        backend=b.choice("backend", BACKENDS, "makepkg"),
        user=b.get("user", str, "avfbuild"),
        chroot=_path(b.get("chroot", str, "/var/lib/avfrepo/chroot"), root),
        packager=b.get("packager", str, "avfrepo <avfrepo@example.invalid>"),
        jobs=b.get("jobs", int, 1),
        makepkg_cross=b.get("makepkg_cross", bool, False),
    )
    if not isinstance(build.makepkg_cross, bool):
        raise b._err("makepkg_cross", f"must be true or false, got {toml_value(build.makepkg_cross)}")
    if isinstance(build.jobs, bool) or not isinstance(build.jobs, int) or not 1 <= build.jobs <= 64:
        raise b._err("jobs", f"must be a whole number from 1 to 64, got {toml_value(build.jobs)}")
    b.finish()

    known_packages, read_upstreams = _catalog()
    ups = top.table("upstreams")
    upstreams = {}
    for uname in ups.data:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", uname):
            raise ups._err(uname, "upstream names are lowercase letters, digits, - and _")
        # a table no package reads and that says nothing of its kind is a misspelt name (said
        # before its keys are), never a new upstream to query; one with a kind is the
        # maintainer's own (`avfrepo sync NAME`)
        if uname not in read_upstreams and isinstance(ups.data[uname], dict) and "kind" not in ups.data[uname]:
            raise ConfigError(
                f"{file or '<config>'}: [upstreams.{uname}]: no package reads an upstream of that name"
                f"{did_you_mean(uname, read_upstreams, '[upstreams.{}]')}; the packages read "
                f"{', '.join(sorted(read_upstreams))}. Fix the name, or give the table a kind "
                f"({', '.join(UPSTREAM_KINDS)}) to keep it as an upstream of your own for `avfrepo sync {uname}`")
        upstreams[uname] = _upstream(uname, ups.table(uname))
    if "avf" not in upstreams:
        upstreams["avf"] = GitTagsUpstream("avf", AVF_URL, AVF_TAG_PATTERN)
    ups.finish()
    pk = top.table("packages")
    enabled = pk.get("enable", list, None)
    if enabled is not None and (not isinstance(enabled, list) or not enabled
                                or not all(isinstance(n, str) and n for n in enabled)):
        raise pk._err("enable", f"must be a non-empty list of package names, got {toml_value(enabled)}")
    for pname in enabled or []:
        if pname not in known_packages:
            raise pk._err("enable", f"unknown package {toml_value(pname)}{did_you_mean(pname, known_packages)} "
                                    f"(known: {', '.join(known_packages)})")
    carry: dict[str, tuple[CarriedPatch, ...]] = {}
    for pname in [k for k in pk.data if k != "enable"]:
        if not archrules.valid_pkgname(pname) or not isinstance(pk.data[pname], dict):
            raise pk._err(pname, "unknown key (known: enable, and [packages.<package>] tables)")
        if pname not in known_packages:
            raise ConfigError(f"{file or '<config>'}: [packages.{pname}]: unknown package"
                              f"{did_you_mean(pname, known_packages)} (known: {', '.join(known_packages)})")
        carry[pname] = _carry(pk.table(pname))
    pk.finish()
    image = _image(top.table("image"), root, cache) if "image" in top.data else None
    top.used.add("image")               # a known section, also when absent (for "did you mean")
    top.finish()
    return Config(file=file, root=root, pkgbuilds=pkgbuilds, cache=cache, logs=logs, repo=repo,
                  signing=signing, build=build, upstreams=upstreams, enabled=tuple(enabled) if enabled else None,
                  carry={k: v for k, v in carry.items() if v},
                  image=image)


def _carry(t: _Table) -> tuple[CarriedPatch, ...]:
    raw = t.get("carry", list, [])
    if not isinstance(raw, list):
        raise t._err("carry", "must be a list of {file = \"x.patch\"[, replaces = \"series entry\"]} tables")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"file", "replaces"} or not isinstance(item.get("file"), str) \
                or not isinstance(item.get("replaces", ""), str):
            raise t._err("carry", f"entry {i + 1} must be {{file = \"x.patch\"[, replaces = \"...\"]}}, got {toml_value(item)}")
        if not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*\.(patch|diff)", item["file"]):
            raise t._err("carry", f"entry {i + 1}: file must be a plain *.patch name in pkgbuilds/<package>/, "
                                  f"got {toml_value(item['file'])}")
        rep = item.get("replaces")
        if rep is not None and (not re.fullmatch(r"[A-Za-z0-9._+/-]+", rep) or ".." in rep.split("/")):
            raise t._err("carry", f"entry {i + 1}: replaces must be a series entry like avf/x.patch, got {toml_value(rep)}")
        out.append(CarriedPatch(item["file"], rep))
    files = [c.file for c in out]
    if len(set(files)) != len(files):
        raise t._err("carry", "a file is carried twice")
    t.finish()
    return tuple(out)


def _image(t: _Table, root: Path, cache: Path) -> ImageConfig:
    repos = ALARM_IMAGE_REPOS
    t.used.add("repos")
    if "repos" in t.data:
        raw = t.data["repos"]
        if not isinstance(raw, list):
            raise t._err("repos", "must be a list of {name, server[, siglevel]} tables")
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or set(item) - {"name", "server", "siglevel"} \
                    or not all(isinstance(item.get(k), str) and item.get(k) for k in ("name", "server")):
                raise t._err("repos", f"entry {i + 1} must be {{name = \"core\", server = \"...\"[, siglevel]}}, got {toml_value(item)}")
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", item["name"]):
                raise t._err("repos", f"entry {i + 1}: not a repository name: {toml_value(item['name'])}")
            if not re.fullmatch(r"\S+", item["server"]) or not re.fullmatch(
                    r"[A-Za-z]+( [A-Za-z]+)*", item.get("siglevel", "Required")):
                raise t._err("repos", f"entry {i + 1}: server must be one URL, siglevel pacman's words, got {toml_value(item)}")
            out.append(ImageRepo(item["name"], item["server"], item.get("siglevel", "Required DatabaseOptional")))
        repos = tuple(out)
    packages = t.get("packages", list, ["avf-base"])
    if not isinstance(packages, list) or not packages or not all(isinstance(n, str) and n for n in packages):
        raise t._err("packages", f"must be a non-empty list of package names, got {toml_value(packages)}")
    img = ImageConfig(
        output=_path(t.get("output", str, "images.tar.gz"), root),
        cachedir=_path(t.get("cachedir", str, str(cache / "image-packages")), root),
        repos=repos,
        avf_source=t.choice("avf_source", IMAGE_AVF_SOURCES, "local"),
        packages=tuple(packages),
        headroom_mib=_number(t, "headroom_mib", int, 512, minimum=0),
        memory_mib=_number(t, "memory_mib", int, 4096, minimum=256),
        efi_size_mib=_number(t, "efi_size_mib", int, 256, minimum=33),
        gpgdir=_path(t.get("gpgdir", str, "/etc/pacman.d/gnupg"), root),
    )
    t.finish()
    return img


def find(start: Path | None = None) -> Path | None:
    """avfrepo.toml in start (default: the current folder) or the nearest folder above it,
    as git finds .git: `avfrepo status` works from pkgbuilds/avf-config/ too. The walk stops
    at the file system's root and, like git, at a mount point (another file system)."""
    here = (start or Path.cwd()).absolute()
    try:
        dev = here.stat().st_dev
    except OSError:
        return None
    for d in (here, *here.parents):
        candidate = d / DEFAULT_NAME
        if candidate.is_file():
            return candidate
        try:
            if d.parent != d and d.parent.stat().st_dev != dev:
                return None
        except OSError:
            return None
    return None


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the config: explicit path, else $AVFREPO_CONFIG, else avfrepo.toml in the
    current folder or the nearest one above it (find)."""
    if path is None:
        path = os.environ.get(ENV_VAR) or find()
    if path is None:
        raise ConfigError(f"{Path.cwd() / DEFAULT_NAME}: no such config file, here or in any folder above "
                          f"(pass --config FILE or set {ENV_VAR})")
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
