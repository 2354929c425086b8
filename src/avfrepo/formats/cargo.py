"""Cargo.lock and Cargo.toml, read offline: does a kept lock still fit a crate?

`read_lock` turns Cargo.lock bytes (format v1..v4) into a typed `CargoLock`; `VersionReq`
is Cargo's version-requirement language (the rules of the `semver` crate Cargo uses, as
https://doc.rust-lang.org/cargo/reference/specifying-dependencies.html documents them);
`lock_fits` says why a lock would NOT do for a crate, without cargo and without crates.io.

What `lock_fits` checks is what `cargo build --locked` needs of the crate's own manifests:
the root package and every dependency the root and its path dependencies declare (registry,
git and path ones, renames followed, every target's table) are locked at a version the
requirement accepts, from the right kind of source, and listed as that package's dependency
in the lock. Left-over entries (a dependency Cargo.toml no longer asks for, a package nothing
reaches) are tolerated, as `cargo build --locked` 1.95 tolerates them (measured). The
dependencies of registry and git packages are taken as locked: checking them needs the
registry index, which is exactly what is offline.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..errors import AvfrepoError

CRATES_IO_SOURCES = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)


class CargoFormatError(AvfrepoError, ValueError):
    """A Cargo.lock, a version or a version requirement that cannot be read."""


# -- versions -------------------------------------------------------------------------------

_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?")


def _pre_key(pre: tuple[str, ...]) -> tuple:
    """Sort key of a pre-release: none sorts after every pre-release (1.0.0-rc.1 < 1.0.0);
    numeric identifiers below alphanumeric ones, numbers by value, a prefix first."""
    if not pre:
        return (1,)
    return (0, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre))


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple[str, ...] = ()
    build: str = ""          # ignored when comparing and matching, as semver says

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _VERSION_RE.fullmatch(text) if isinstance(text, str) else None
        if not m:
            raise CargoFormatError(f"not a semver version: {text!r}")
        pre = tuple(m.group(4).split(".")) if m.group(4) else ()
        if any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre):
            raise CargoFormatError(f"not a semver version (leading zero in a pre-release): {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), pre, m.group(5) or "")

    def key(self) -> tuple:
        return (self.major, self.minor, self.patch, _pre_key(self.pre))

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        s += ("-" + ".".join(self.pre)) if self.pre else ""
        return s + (f"+{self.build}" if self.build else "")


# -- version requirements -------------------------------------------------------------------

_OPS = ("=", ">=", ">", "<=", "<", "~", "^")
_COMPARATOR_RE = re.compile(
    rf"(>=|<=|=|>|<|~|\^)?\s*({_NUM}|[*xX])(?:\.({_NUM}|[*xX]))?(?:\.({_NUM}|[*xX]))?"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?")


@dataclass(frozen=True)
class Comparator:
    op: str                  # one of _OPS, or "*" for a bare wildcard (1.*, 1.2.*)
    major: int
    minor: int | None
    patch: int | None
    pre: tuple[str, ...] = ()

    def matches(self, v: Version) -> bool:
        op = self.op
        if op in ("=", "*"):
            return self._exact(v)
        if op == ">":
            return self._greater(v)
        if op == ">=":
            return self._exact(v) or self._greater(v)
        if op == "<":
            return self._less(v)
        if op == "<=":
            return self._exact(v) or self._less(v)
        if op == "~":
            return self._tilde(v)
        return self._caret(v)

    def _exact(self, v: Version) -> bool:
        return (v.major == self.major and self.minor in (None, v.minor) and self.patch in (None, v.patch)
                and v.pre == self.pre)

    def _greater(self, v: Version) -> bool:
        if v.major != self.major:
            return v.major > self.major
        if self.minor is None:
            return False
        if v.minor != self.minor:
            return v.minor > self.minor
        if self.patch is None:
            return False
        if v.patch != self.patch:
            return v.patch > self.patch
        return _pre_key(v.pre) > _pre_key(self.pre)

    def _less(self, v: Version) -> bool:
        if v.major != self.major:
            return v.major < self.major
        if self.minor is None:
            return False
        if v.minor != self.minor:
            return v.minor < self.minor
        if self.patch is None:
            return False
        if v.patch != self.patch:
            return v.patch < self.patch
        return _pre_key(v.pre) < _pre_key(self.pre)

    def _tilde(self, v: Version) -> bool:
        if v.major != self.major or self.minor not in (None, v.minor):
            return False
        if self.patch is not None and v.patch != self.patch:
            return v.patch > self.patch
        return _pre_key(v.pre) >= _pre_key(self.pre)

    def _caret(self, v: Version) -> bool:
        if v.major != self.major:
            return False
        if self.minor is None:                       # ^1 := >=1.0.0, <2.0.0; ^0 := <1.0.0
            return True
        if self.patch is None:                       # ^1.2 := <2.0.0; ^0.2 / ^0.0 := <0.(n+1).0
            return v.minor >= self.minor if self.major > 0 else v.minor == self.minor
        if self.major > 0:
            if v.minor != self.minor:
                return v.minor > self.minor
            if v.patch != self.patch:
                return v.patch > self.patch
        elif self.minor > 0:                         # ^0.2.3 := >=0.2.3, <0.3.0
            if v.minor != self.minor:
                return False
            if v.patch != self.patch:
                return v.patch > self.patch
        elif v.minor != self.minor or v.patch != self.patch:   # ^0.0.3 := =0.0.3
            return False
        return _pre_key(v.pre) >= _pre_key(self.pre)

    def names_pre_of(self, v: Version) -> bool:
        """A pre-release version only matches a requirement naming a pre-release of its
        own major.minor.patch (1.2.3-beta matches >=1.2.3-alpha, never >=1.0.0)."""
        return bool(self.pre) and (self.major, self.minor, self.patch) == (v.major, v.minor, v.patch)


@dataclass(frozen=True)
class VersionReq:
    text: str
    comparators: tuple[Comparator, ...]      # empty: `*`, any release

    @classmethod
    def parse(cls, text: str) -> VersionReq:
        if not isinstance(text, str):
            raise CargoFormatError(f"not a version requirement: {text!r}")
        stripped = text.strip()
        if stripped in ("*", "x", "X"):
            return cls(text, ())
        if not stripped:
            raise CargoFormatError("empty version requirement")
        return cls(text, tuple(_comparator(part.strip(), text) for part in stripped.split(",")))

    def matches(self, v: Version) -> bool:
        if not all(c.matches(v) for c in self.comparators):
            return False
        return not v.pre or any(c.names_pre_of(v) for c in self.comparators)

    def __str__(self) -> str:
        return self.text


def _comparator(part: str, whole: str) -> Comparator:
    m = _COMPARATOR_RE.fullmatch(part)
    if not m:
        raise CargoFormatError(f"not a version requirement: {whole!r}")
    op, parts, pre = m.group(1), [m.group(2), m.group(3), m.group(4)], m.group(5)
    if parts[0] in ("*", "x", "X"):
        raise CargoFormatError(f"not a version requirement (`*` is only allowed alone): {whole!r}")
    wild = [p in ("*", "x", "X") for p in parts]
    if wild[1] and parts[2] is not None and not wild[2]:
        raise CargoFormatError(f"not a version requirement (a number after a wildcard): {whole!r}")
    if any(wild) and pre:
        raise CargoFormatError(f"not a version requirement (a pre-release after a wildcard): {whole!r}")
    if pre and parts[2] is None:
        raise CargoFormatError(f"not a version requirement (a pre-release needs major.minor.patch): {whole!r}")
    if pre and any(p.isdigit() and len(p) > 1 and p.startswith("0") for p in pre.split(".")):
        raise CargoFormatError(f"not a version requirement (leading zero in a pre-release): {whole!r}")
    if any(wild) and op is None:
        op = "*"                                 # 1.* := >=1.0.0, <2.0.0; 1.2.* := >=1.2.0, <1.3.0
    nums = [None if p is None or w else int(p) for p, w in zip(parts, wild)]
    if nums[1] is None:
        nums[2] = None
    return Comparator(op or "^", nums[0], nums[1], nums[2], tuple(pre.split(".")) if pre else ())


# -- Cargo.lock -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LockedPackage:
    name: str
    version: str
    source: str | None               # None: a path package (the root, or a path dependency)
    checksum: str | None
    dependencies: tuple[str, ...]    # as written: "name", "name version" or "name version (source)"

    @property
    def semver(self) -> Version:
        return Version.parse(self.version)

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class CargoLock:
    version: int | None              # the `version = N` line; None for the v1/v2 formats without it
    packages: tuple[LockedPackage, ...]

    def named(self, name: str) -> list[LockedPackage]:
        return [p for p in self.packages if p.name == name]

    def resolve(self, entry: str) -> LockedPackage | None:
        """The package one entry of a `dependencies` list means."""
        name, version, source = split_dependency(entry)
        found = [p for p in self.named(name)
                 if (version is None or p.version == version) and (source is None or p.source == source)]
        return found[0] if len(found) == 1 else None


_DEP_ENTRY_RE = re.compile(r"([^\s()]+)(?: ([^\s()]+))?(?: \(([^\s()]+)\))?")


def split_dependency(entry: str) -> tuple[str, str | None, str | None]:
    m = _DEP_ENTRY_RE.fullmatch(entry) if isinstance(entry, str) else None
    if not m:
        raise CargoFormatError(f"Cargo.lock: not a dependency entry: {entry!r}")
    return m.group(1), m.group(2), m.group(3)


def read_lock(data: bytes) -> CargoLock:
    """Cargo.lock bytes -> CargoLock; CargoFormatError (and no other error) when malformed."""
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CargoFormatError(f"Cargo.lock is not UTF-8: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CargoFormatError(f"Cargo.lock is not TOML: {exc}") from None
    except (TypeError, AttributeError):
        raise CargoFormatError("Cargo.lock must be bytes") from None
    version = doc.get("version")
    if version is not None and (type(version) is not int or not 1 <= version <= 99):
        raise CargoFormatError(f"Cargo.lock: version must be a small integer, not {version!r}")
    raw = doc.get("package", [])
    if not isinstance(raw, list):
        raise CargoFormatError("Cargo.lock: `package` must be an array of tables ([[package]])")
    # format v1 keeps checksums apart: [metadata] "checksum NAME VERSION (SOURCE)" = "<sha256>"
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise CargoFormatError("Cargo.lock: [metadata] must be a table")
    packages: list[LockedPackage] = []
    seen: set[tuple[str, str, str | None]] = set()
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise CargoFormatError(f"Cargo.lock: package #{i + 1} is not a table")
        name, ver, source, checksum = p.get("name"), p.get("version"), p.get("source"), p.get("checksum")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise CargoFormatError(f"Cargo.lock: package #{i + 1} has no valid name: {name!r}")
        if not isinstance(ver, str):
            raise CargoFormatError(f"Cargo.lock: package {name} has no version")
        try:
            Version.parse(ver)
        except CargoFormatError as exc:
            raise CargoFormatError(f"Cargo.lock: package {name}: {exc}") from None
        for key, val in (("source", source), ("checksum", checksum)):
            if val is not None and (not isinstance(val, str) or not val or any(c.isspace() for c in val)):
                raise CargoFormatError(f"Cargo.lock: package {name} {ver}: bad {key} {val!r}")
        if checksum is None and source is not None:
            meta = metadata.get(f"checksum {name} {ver} ({source})")
            if isinstance(meta, str) and meta != "<none>":
                checksum = meta
        deps = p.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise CargoFormatError(f"Cargo.lock: package {name} {ver}: dependencies must be a list of strings")
        for d in deps:
            split_dependency(d)
        ident = (name, ver, source)
        if ident in seen:
            raise CargoFormatError(f"Cargo.lock: package {name} {ver} is listed twice")
        seen.add(ident)
        packages.append(LockedPackage(name, ver, source, checksum, tuple(deps)))
    return CargoLock(version, tuple(packages))


# -- does a lock fit a crate? ---------------------------------------------------------------

_DEP_TABLES = ("dependencies", "build-dependencies", "build_dependencies")
_DEV_TABLES = ("dev-dependencies", "dev_dependencies")


@dataclass(frozen=True)
class _Dep:
    key: str                     # the name in the manifest (a rename's local name)
    package: str                 # the crate's real name (`package = ...`)
    req: VersionReq | None
    kind: str                    # "registry", "git" or "path"
    git: str = ""
    git_ref: tuple[str, str] | None = None   # ("branch" | "tag" | "rev", value)
    path: str = ""
    optional: bool = False
    spelled: str = ""            # how the manifest says it, for reasons


def lock_fits(crate_dir: Path, lock: CargoLock, *, root: Path | None = None) -> list[str]:
    """Why `lock` does NOT do for the crate at crate_dir (empty: it fits), checked offline.

    root is the tree the crate and its path dependencies must stay inside (default: the crate
    itself); reasons name crates by their path relative to it.
    """
    crate_dir = Path(crate_dir)
    root = Path(root) if root is not None else crate_dir
    try:
        root_real = root.resolve(strict=True)
        crate_real = crate_dir.resolve(strict=True)
        crate_real.relative_to(root_real)
    except (OSError, ValueError):
        return [f"{crate_dir}: not a directory inside {root}"]
    checker = _Checker(lock, root_real, crate_real)
    checker.check(crate_real, member=True, expected_name=None)
    return checker.reasons


class _Checker:
    def __init__(self, lock: CargoLock, root: Path, crate: Path):
        self.lock = lock
        self.root = root
        self.crate = crate
        self.workspace = False                  # the root crate has a [workspace] table
        self.reasons: list[str] = []
        self.done: dict[Path, LockedPackage | None] = {}

    def label(self, crate: Path) -> str:
        rel = crate.relative_to(self.root).as_posix()
        return crate.name if rel == "." else rel

    def check(self, crate: Path, *, member: bool, expected_name: str | None) -> LockedPackage | None:
        """Check one path package (the root crate when member); its locked entry, if found."""
        if crate in self.done:
            return self.done[crate]
        self.done[crate] = None
        label = self.label(crate)
        manifest = self._manifest(crate, label)
        if manifest is None:
            return None
        pkg = manifest.get("package")
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            self.reasons.append(f"{label}: Cargo.toml has no [package] name")
            return None
        name, version = pkg["name"], pkg.get("version", "0.0.0")
        if not isinstance(version, str):
            self.reasons.append(f"{label}: package.version {version!r} is not supported "
                                "(workspace inheritance needs a workspace, which this check does not read)")
            return None
        for table in ("patch", "replace"):
            if table in manifest:
                self.reasons.append(f"{label}: [{table}] is not supported by the offline lock check")
        ws = manifest.get("workspace")
        if expected_name is None:
            self.workspace = isinstance(ws, dict)
        if isinstance(ws, dict) and ws.get("members"):
            self.reasons.append(f"{label}: [workspace] members are not supported by the offline lock check")
        if expected_name is not None and name != expected_name:
            self.reasons.append(f"{label}: is package {name}, but the depending crate names it {expected_name}")
        entries = [p for p in self.lock.named(name) if p.source is None and p.version == version]
        if not entries:
            have = ", ".join(str(p) for p in self.lock.named(name) if p.source is None) or "none"
            self.reasons.append(f"{label}: the lock has no path package {name} {version} (it has: {have})")
            return None
        me = entries[0]
        self.done[crate] = me
        self._check_deps(crate, label, me, self._deps(manifest, label, member), member)
        return me

    def _manifest(self, crate: Path, label: str) -> dict | None:
        from ..fsutil import read_tree_file      # the reader of upstream trees: no link is followed
        try:
            rel = (crate / "Cargo.toml").relative_to(self.root).as_posix()
            return tomllib.loads(read_tree_file(self.root, rel, text=True))
        except (OSError, ValueError) as exc:      # fsutil.TreeFileError, tomllib.TOMLDecodeError
            self.reasons.append(f"{label}: Cargo.toml cannot be read: {exc}")
            return None

    def _deps(self, manifest: dict, label: str, member: bool) -> list[_Dep]:
        tables: list[tuple[str, object]] = []
        # dev-dependencies are resolved for workspace members only (see _is_member)
        names = _DEP_TABLES + (_DEV_TABLES if member else ())
        tables += [(t, manifest[t]) for t in names if t in manifest]
        targets = manifest.get("target", {})
        if isinstance(targets, dict):
            for target, body in targets.items():
                if isinstance(body, dict):
                    tables += [(f"target.{target!r}.{t}", body[t]) for t in names if t in body]
        deps: list[_Dep] = []
        for where, table in tables:
            if not isinstance(table, dict):
                self.reasons.append(f"{label}: [{where}] is not a table")
                continue
            for key, spec in table.items():
                dep = self._dep(key, spec, label, where)
                if dep is not None:
                    deps.append(dep)
        return deps

    def _dep(self, key: str, spec: object, label: str, where: str) -> _Dep | None:
        def refuse(why: str) -> None:
            self.reasons.append(f"{label}: [{where}] {key}: {why}")
        if isinstance(spec, str):
            spec = {"version": spec}
        if not isinstance(spec, dict):
            refuse(f"{spec!r} is neither a version nor a table")
            return None
        if spec.get("workspace") is True:
            refuse("`workspace = true` is not supported by the offline lock check")
            return None
        if "registry" in spec or "registry-index" in spec:
            refuse("only crates.io registry dependencies are supported")
            return None
        package = spec.get("package", key)
        if not isinstance(package, str):
            refuse(f"package {package!r} is not a name")
            return None
        req = None
        if "version" in spec:
            try:
                req = VersionReq.parse(spec["version"])
            except CargoFormatError as exc:
                refuse(str(exc))
                return None
        optional = spec.get("optional") is True
        spelled = f'{key} = "{req}"' if req is not None else key
        if package != key:
            spelled += f" (package {package})"
        if "git" in spec:
            git = spec["git"]
            refs = [(k, spec[k]) for k in ("branch", "tag", "rev") if k in spec]
            if not isinstance(git, str) or len(refs) > 1 or not all(isinstance(v, str) for _, v in refs):
                refuse("a git dependency needs one git URL and at most one of branch, tag, rev")
                return None
            inline = ", ".join([f'git = "{git}"'] + [f'{k} = "{v}"' for k, v in refs]
                               + ([f'version = "{req}"'] if req is not None else []))
            spelled = f"{key} = {{ {inline} }}" + (f" (package {package})" if package != key else "")
            return _Dep(key, package, req, "git", git=git, git_ref=refs[0] if refs else None,
                        optional=optional, spelled=spelled)
        if "path" in spec:
            if not isinstance(spec["path"], str):
                refuse(f"path {spec['path']!r} is not a string")
                return None
            return _Dep(key, package, req, "path", path=spec["path"], optional=optional, spelled=spelled)
        if req is None:
            refuse("a registry dependency without a version requirement")
            return None
        return _Dep(key, package, req, "registry", optional=optional, spelled=spelled)

    def _check_deps(self, crate: Path, label: str, me: LockedPackage, deps: list[_Dep], member: bool) -> None:
        listed: list[LockedPackage] = []
        for entry in me.dependencies:
            found = self.lock.resolve(entry)
            if found is None:
                self.reasons.append(f"{label}: the lock lists dependency {entry!r} of {me}, "
                                    "which is not (exactly once) a package in the lock")
            else:
                listed.append(found)
        for dep in deps:
            candidates = [p for p in listed if p.name == dep.package]
            if dep.kind == "path":
                if dep.optional and not member and not candidates:
                    continue                       # a feature nothing turns on: not locked
                target = self._path_target(crate, label, dep)
                if target is None:
                    continue
                entry = self.check(target, member=self._is_member(target), expected_name=dep.package)
                if entry is None:
                    continue
                if entry not in candidates:
                    self.reasons.append(f"{label}: {dep.spelled}: the lock does not list {entry} "
                                        f"as a dependency of {me}")
                    continue
                if dep.req is not None and not dep.req.matches(entry.semver):
                    self.reasons.append(f"{label}: {dep.spelled} but {dep.path} is {entry}")
                continue
            if not candidates:
                if dep.optional and not member:
                    continue                       # a feature nothing turns on: not locked
                elsewhere = ", ".join(str(p) for p in self.lock.named(dep.package))
                self.reasons.append(
                    f"{label}: {dep.spelled} but the lock has no {dep.package} as a dependency of {me}"
                    + (f" (it has {elsewhere} elsewhere)" if elsewhere else ""))
                continue
            fitting = [p for p in candidates if self._source_fits(dep, p)]
            if not fitting:
                want = " from crates.io" if dep.kind == "registry" else ""
                self.reasons.append(f"{label}: {dep.spelled}{want} but the lock has "
                                    + ", ".join(f"{p} from {p.source or 'a path'}" for p in candidates))
                continue
            if not any(dep.req is None or dep.req.matches(p.semver) for p in fitting):
                self.reasons.append(f"{label}: {dep.spelled} but the lock has "
                                    + ", ".join(str(p) for p in fitting))

    def _is_member(self, target: Path) -> bool:
        """With a [workspace] table in the root crate, path dependencies under its directory
        are members (their dev- and optional dependencies are locked too); without one, only
        the root crate is (measured with cargo 1.95)."""
        return self.workspace and target.is_relative_to(self.crate)

    def _path_target(self, crate: Path, label: str, dep: _Dep) -> Path | None:
        spelled = f"{dep.key} = {{ path = {dep.path!r} }}"
        try:
            target = (crate / dep.path).resolve()
            target.relative_to(self.root)
        except (OSError, RuntimeError, ValueError):
            self.reasons.append(f"{label}: {spelled} leaves the tree the lock is checked in ({self.root})")
            return None
        if not (target / "Cargo.toml").is_file():
            self.reasons.append(f"{label}: {spelled}: no Cargo.toml there")
            return None
        return target

    @staticmethod
    def _source_fits(dep: _Dep, p: LockedPackage) -> bool:
        if dep.kind == "registry":
            return p.source in CRATES_IO_SOURCES
        src = p.source or ""
        if not src.startswith("git+"):
            return False
        url, _, rest = src[4:].partition("?")
        if "#" in url:
            url = url.split("#", 1)[0]
        query = rest.split("#", 1)[0]
        if _canonical_git(url) != _canonical_git(dep.git):
            return False
        if dep.git_ref is None:
            return query == ""
        kind, value = dep.git_ref
        return query == f"{kind}={value}"


def _canonical_git(url: str) -> str:
    """Cargo compares git URLs without a trailing slash or .git, github.com case-folded."""
    u = url.rstrip("/")
    if u.endswith(".git"):
        u = u[:-4]
    if re.match(r"(?i)https?://(www\.)?github\.com/", u):
        u = u.lower()
    return u
