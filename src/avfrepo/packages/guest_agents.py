"""avf-guest-agents: AVF's Terminal guest agents, built from AVF's source at the tracked tag.

What an agent is (facts file §7): `guest/` at the Android 16 base holds 20 directories, most
of them Microdroid parts built by Soong. A Terminal guest agent is a `guest/<dir>` with a
`debian/service` unit; everything else in guest/ is ignored. An agent may run a companion
crate of guest/ (forwarder_guest_launcher runs `forwarder_guest`, which has no unit): the
companions are found in the agents' sources (`Command::new("<crate>")`) and packaged too,
with the agent depending on them. Before Android 16 (android-15.0.0_r20..r23) the units lived
in the Debian image's FAI config, `build/debian/fai_config/files/.../<dir>.service/AVF`: such a
unit named after a guest/ dir makes that dir an agent too, which the agent-set check reports
as "unit moved" (a packaged agent) or "added" (ip_addr_reporter), never as "removed".

One split pkgbase (`avf-guest-agents`), one package per crate (named after it, `_` -> `-`):
makepkg clones the large AVF repository once and builds every crate from that checkout.
Each agent package ships its own unit and a preset enabling it (units live with the binary
they run); avf-config keeps the system pieces.

What sync fetches is computed, not listed: the crate directories, then the libraries their
Cargo.toml path dependencies name (recursively) and the proto directories their build.rs
names. The agent-set check reads only the tree listing (tree objects, no blobs).

Upstream has no Cargo.lock and no workspace (facts file §1), so sync keeps one lock per
crate next to the PKGBUILD; the PKGBUILD builds `--locked` against it. The Arch-specific
changes are this project's own patches, generated here from PATCH_RULES (old text -> new
text in one crate), never copied: each is dry-run against the exact checkout.

Refused (RenderProblem, so sync keeps the previous PKGBUILD): the agent set changed (an agent
added, removed, its unit moved out of guest/<dir>/debian, or no longer a Cargo crate: Android
17 replaces the agents with guest/linux_vm_manager, Android.bp only), a crate or unit name that
is not a plain name, a path dependency leaving the repository, a patch rule whose old text is
gone, a patch that does not apply, a lock that cannot be kept or made.
"""

from __future__ import annotations

import difflib
import os
import posixpath
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..checkout import check_path
from ..config import AVF_URL
from ..errors import ToolError
from ..formats import cargo as cargo_format
from ..run import run
from . import (Context, RenderProblem, Rendered, SourceFile, ToolProblem, UnsafeValue, plain_name, sha256, template,
               tree_file)

if TYPE_CHECKING:
    from ..checkout import Snapshot

NAME = "avf-guest-agents"
UPSTREAMS = ("avf",)
READS_AVAILABLE = True      # ctx.available: the other packages' names (sync shows it only to modules that say so)

UNIT = "debian/service"
# Android 15's units: FAI class files of the Debian image, .../<unit>.service/<CLASS> (read
# from the tree listing only)
FAI_CONFIG = "build/debian/fai_config"
_FAI_UNIT = re.compile(rf"{FAI_CONFIG}/files/(?:[A-Za-z0-9_.+-]+/)*([A-Za-z0-9_.+-]+)\.service"
                       r"/[A-Za-z0-9_.+-]+")

# The crates this version of avfrepo packages: guest/<crate> -> pkgdesc. Any other agent set
# upstream is refused until a maintainer reviews it here.
SERVICES = {
    "forwarder_guest": "AVF Terminal guest agent: forwards TCP connections between the Android host and the guest",
    "forwarder_guest_launcher": "AVF Terminal guest agent: reports guest TCP listeners to the host and starts forwarding",
    "shutdown_runner": "AVF Terminal guest agent: powers the guest off when the Android host asks",
    "storage_balloon_agent": "AVF Terminal guest agent: reports the guest's free disk space to the Android host",
}
# Every Rust binary links libgcc_s and glibc; ALARM's gcc-libs is a meta package (gcc 16,
# libgfortran, ...), so depend on what is linked (facts file §7).
RUST_DEPENDS = ("libgcc", "glibc")
# runtime dependencies besides the companions found in the sources
EXTRA_DEPENDS = {
    # runs `python3 -u /usr/share/bcc/tools/tcpstates`: bcc compiles its probe against the
    # running kernel's headers
    "forwarder_guest_launcher": ("bcc-tools", "python", "@KERNEL_HEADERS@"),
}
KERNEL_HEADERS = {"linux-avf": "linux-avf-headers"}     # [avf]'s kernel -> its headers package
DEFAULT_KERNEL_HEADERS = "linux-aarch64-headers"         # ALARM's kernel, when [avf] has none
IMAGE_PACKAGES = "*"                                     # an image installs every split package

_SPAWN = re.compile(r'Command::new\(\s*"([^"\\]+)"\s*\)')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def pkgname(service: str) -> str:
    return service.replace("_", "-")


@dataclass(frozen=True)
class PatchRule:
    """A packaging patch: every `old` in the files of guest/<crate>/ becomes `new`."""

    name: str          # file name of the generated patch
    crate: str
    old: str
    new: str
    why: str


PATCH_RULES = (
    PatchRule("tcpstates-path.patch", "forwarder_guest_launcher",
              "/usr/sbin/tcpstates-bpfcc", "/usr/share/bcc/tools/tcpstates",
              "Arch's bcc-tools installs tcpstates as /usr/share/bcc/tools/tcpstates; "
              "/usr/sbin/tcpstates-bpfcc is Debian's name"),
    PatchRule("root-device-vda2.patch", "storage_balloon_agent",
              "vda1", "vda2",
              "the [avf] image puts the ESP on vda1 and the root file system on vda2"),
)


# -- the agent set, from the tree listing ----------------------------------------------------

@dataclass(frozen=True)
class Agents:
    agents: tuple[str, ...]                  # guest/<dir> with a debian/service
    companions: dict[str, tuple[str, ...]]   # agent -> crates of guest/ it runs

    @property
    def crates(self) -> tuple[str, ...]:
        return tuple(sorted({*self.agents, *(c for cs in self.companions.values() for c in cs)}))


def guest_dirs(listing: list[str]) -> dict[str, set[str]]:
    """guest/<dir> -> the paths of its files relative to the dir, from a tree listing."""
    dirs: dict[str, set[str]] = {}
    for path in listing:
        parts = path.split("/", 2)
        if len(parts) == 3 and parts[0] == "guest":
            dirs.setdefault(parts[1], set()).add(parts[2])
    return dirs


def agent_units(listing: list[str], version: str) -> dict[str, str]:
    """guest/<dir> -> the repository path of its unit, for every dir that has one: its own
    guest/<dir>/debian/service, else (the Android 15 layout) a unit under build/debian/fai_config
    named after it. The listing holds guest/ and build/debian/fai_config/; a dir without a unit
    (a Microdroid part) is no agent; a non-plain name among the agents is refused."""
    dirs = guest_dirs(listing)
    units = {d: f"guest/{d}/{UNIT}" for d, files in dirs.items() if UNIT in files}
    for path in sorted(listing):
        m = _FAI_UNIT.fullmatch(path)
        if m and m.group(1) in dirs:
            units.setdefault(m.group(1), path)
    for d, unit in units.items():
        try:
            plain_name(d, f"guest directory with a {UNIT}" if unit == f"guest/{d}/{UNIT}"
                       else f"guest directory of {unit}")
        except UnsafeValue as exc:
            raise RenderProblem(f"at {version}: {exc}") from None
    return dict(sorted(units.items()))


def find_agents(listing: list[str], version: str) -> list[str]:
    """The guest/<dir> that have a debian/service; a non-plain name among them is refused."""
    return [d for d, unit in agent_units(listing, version).items() if unit == f"guest/{d}/{UNIT}"]


def spawned_crates(tree: Path, agent: str, crates: set[str], version: str = "") -> tuple[str, ...]:
    """Crates of guest/ (with a Cargo.toml) that the agent's sources start by name (a linked
    .rs file is not read)."""
    found = set()
    for f in sorted((tree / "guest" / agent).rglob("*.rs")):
        if f.is_file() and not f.is_symlink():
            text = tree_file(tree, f.relative_to(tree).as_posix(), f"AVF {version}").decode(errors="replace")
            found |= {m for m in _SPAWN.findall(text) if m in crates and m != agent}
    return tuple(sorted(found))


def _some(names: list[str], one: str, many: str) -> str:
    return one if len(names) == 1 else many


def check_agent_set(listing: list[str], tree: Path, version: str) -> Agents:
    """The agents and their companions must be exactly SERVICES, each a Cargo crate with its
    unit in guest/<crate>/debian/service.

    `listing` holds guest/ and build/debian/fai_config/; `tree` the agents' sources (companions).
    A refusal names what changed, per crate of SERVICES: removed (its guest/ dir is gone), its
    unit moved to build/debian/fai_config (the path), no unit and no agent running it any more,
    no Cargo.toml any more; and the agents avfrepo does not package, with where their unit is.
    guest/ dirs without a unit that no agent runs (Microdroid parts) are never named."""
    dirs = guest_dirs(listing)
    units = agent_units(listing, version)
    crates = {d for d, files in dirs.items() if "Cargo.toml" in files}
    companions = {a: spawned_crates(tree, a, crates, version) for a in units if a in crates}
    found = Agents(tuple(units), {a: c for a, c in companions.items() if c})
    present = set(found.crates)
    known = set(SERVICES)
    removed = sorted(known - set(dirs))
    moved = {a: units[a] for a in sorted(known & set(units)) if units[a] != f"guest/{a}/{UNIT}"}
    unbuildable = sorted(a for a in known & set(dirs) if a not in crates)
    unrun = sorted(a for a in (known & set(dirs)) - present if a in crates)
    added = sorted(present - known)
    if not (removed or moved or unrun or added or unbuildable):
        return found

    def new_agent(a: str) -> str:
        notes = [f"unit {units[a]}"] if units.get(a, f"guest/{a}/{UNIT}") != f"guest/{a}/{UNIT}" else []
        if a not in crates:
            notes.append("no Cargo.toml: not buildable with cargo")
        return a + (f" ({'; '.join(notes)})" if notes else "")

    parts = []
    if removed:
        parts.append(f"removed {', '.join(removed)} "
                     + _some(removed, "(its guest/ directory is gone)", "(their guest/ directories are gone)"))
    if moved:
        parts.append(_some(list(moved), "unit moved", "units moved") + f" to {FAI_CONFIG} "
                     + _some(list(moved), "(the crate stays in guest/): ", "(the crates stay in guest/): ")
                     + ", ".join(f"{a} -> {path}" for a, path in moved.items()))
    if unrun:
        parts.append("no unit any more and no agent runs it "
                     + _some(unrun, "(the crate stays in guest/): ", "(the crates stay in guest/): ")
                     + ", ".join(unrun))
    if added:
        parts.append("added " + ", ".join(new_agent(a) for a in added))
    if unbuildable:
        parts.append("no Cargo.toml any more (not buildable with cargo): " + ", ".join(unbuildable))
    raise RenderProblem(f"guest agents changed at {version}: " + "; ".join(parts) +
                        f"; adapt {__name__} (SERVICES) before packaging this version")


# -- what the crates read: computed from their manifests and build scripts -------------------

def _manifest(tree: Path, crate_dir: str, version: str) -> dict:
    try:
        return tomllib.loads(tree_file(tree, f"{crate_dir}/Cargo.toml", f"AVF {version}", text=True))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RenderProblem(f"{crate_dir}/Cargo.toml at {version} cannot be read: {exc}") from None


def _dependency_tables(manifest: dict):
    for key in ("dependencies", "build-dependencies", "dev-dependencies"):
        if isinstance(manifest.get(key), dict):
            yield manifest[key]
    targets = manifest.get("target")
    if isinstance(targets, dict):
        for t in targets.values():
            if isinstance(t, dict):
                yield from _dependency_tables(t)


def _inside(crate_dir: str, relative: str, what: str, version: str) -> str:
    """crate_dir + relative, normalised; refused when it leaves the repository or is not plain."""
    joined = posixpath.normpath(posixpath.join(crate_dir, relative))
    try:
        if relative.startswith("/") or joined.startswith("../") or joined == "..":
            raise ValueError
        return check_path(joined)
    except ValueError:
        raise RenderProblem(f"{crate_dir}: {what} {relative!r} at {version} is not a plain path "
                            "inside the repository: refused") from None


def path_dependencies(tree: Path, crate_dir: str, version: str) -> list[str]:
    """The directories of the crate's Cargo.toml path dependencies, repository-relative."""
    deps = []
    for table in _dependency_tables(_manifest(tree, crate_dir, version)):
        for name, spec in table.items():
            if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                deps.append(_inside(crate_dir, spec["path"], f"path dependency {name}", version))
    return sorted(set(deps))


def proto_dirs(tree: Path, crate_dir: str, version: str) -> list[str]:
    """Directories of the .proto files named in the crate's build.rs (tonic_build compiles them)."""
    try:
        build_rs = tree_file(tree, f"{crate_dir}/build.rs", f"AVF {version}").decode(errors="replace")
    except FileNotFoundError:
        return []
    found = set()
    for literal in _STRING.findall(build_rs):
        if literal.endswith(".proto"):
            found.add(posixpath.dirname(_inside(crate_dir, literal, "proto file", version)))
    return sorted(found)


def agent_paths(snap: Snapshot) -> list[str]:
    """What avf-guest-agents reads of AVF at the snapshot: fetched step by step, exactly.

    1. the tree listing of guest/ and build/debian/fai_config/ (no blobs) says which dirs are
       agents (with a unit in either place);
    2. the crates (agents, then the companions their sources run);
    3. their path dependencies (recursively) and proto directories.
    """
    listing = snap.listing("guest") + snap.listing(FAI_CONFIG)
    agents = list(agent_units(listing, snap.tag))
    # no agent at all (Android 17): nothing to read; want([]) would check out the whole tree
    tree = snap.want([f"guest/{a}" for a in agents]) if agents else snap.path
    found = check_agent_set(listing, tree, snap.tag)
    crate_dirs = [f"guest/{c}" for c in found.crates]
    snap.want(crate_dirs)
    todo, seen = list(crate_dirs), set(crate_dirs)
    while todo:
        crate = todo.pop()
        more = proto_dirs(tree, crate, snap.tag)
        deps = path_dependencies(tree, crate, snap.tag)
        snap.want(more + deps)
        for dep in deps:
            if dep not in seen:
                try:
                    tree_file(tree, f"{dep}/Cargo.toml", f"AVF {snap.tag}")
                except FileNotFoundError:
                    raise RenderProblem(f"{crate}: path dependency {dep} at {snap.tag} has no Cargo.toml") from None
                seen.add(dep)
                todo.append(dep)
        seen.update(more)
    return sorted(seen)


TREES = {"avf": agent_paths}


def binary_name(tree: Path, service: str, version: str) -> str:
    """The name cargo gives the service's binary (its [[bin]] or its package name)."""
    data = _manifest(tree, f"guest/{service}", version)
    bins = [b.get("name") for b in data.get("bin", []) if isinstance(b, dict)]
    if service in bins:
        return service
    if len(bins) == 1 and bins[0]:
        return bins[0]
    name = data.get("package", {}).get("name") if isinstance(data.get("package"), dict) else None
    if bins or not name:
        raise RenderProblem(f"guest/{service}/Cargo.toml at {version}: cannot tell which binary to install "
                            f"(package {name!r}, bins {bins})")
    return name


# -- units: shipped by the agent package that runs them --------------------------------------

_BIN = re.compile(r"(?<![\w/.-])(?:/usr)?/s?bin/(?=[\w.+-])")
_RENAMED_UNITS = {"virtiofs_internal.service": "mnt-internal.mount"}   # avf-config's mount unit


def adapt_unit(text: str) -> tuple[str, list[str]]:
    """A Debian image unit -> the Arch unit, and the list of changes made.

    - Arch has merged /bin, /sbin and /usr/sbin into /usr/bin.
    - The Debian image mounts /mnt/internal by a service; avf-config uses a mount unit.
    """
    changes: list[str] = []
    new = _BIN.sub("/usr/bin/", text)
    if new != text:
        changes.append("binaries moved to /usr/bin")
    for old, repl in _RENAMED_UNITS.items():
        if old in new:
            new = new.replace(old, repl)
            changes.append(f"{old} -> {repl}")
    if not new.endswith("\n"):
        new += "\n"
    return new, changes


# -- Cargo.lock per crate -------------------------------------------------------------------

def lock_name(service: str) -> str:
    """The Cargo.lock of guest/<service>, as committed next to the PKGBUILD."""
    return f"{service}.Cargo.lock"


def kept_inputs(config, rel: str) -> bool:
    """Files of pkgbuilds/avf-guest-agents/ the render reads back: the kept Cargo.lock files
    (one a maintainer updates stays while it fits): inputs, not hand edits, for sync."""
    return "/" not in rel and rel.endswith(".Cargo.lock")


def generate_locks(ctx: Context, tree: Path, version: str, crates=tuple(SERVICES)) -> dict[str, bytes]:
    """crate -> the Cargo.lock guest/<crate> is built with at this checkout.

    The lock kept from the last sync is reused, without running cargo, while it still fits
    the crate (formats.cargo.lock_fits, offline). Otherwise cargo generates one on a scratch
    copy (never in the cached checkout) with each crate's .cargo/config.toml removed, as the
    PKGBUILD's prepare() does; that needs crates.io for registry dependencies. When crates.io
    cannot be reached (cargo's network failure, or CARGO_NET_OFFLINE=true) the refusal says
    why the kept lock no longer fits and that crates.io is out of reach.
    """
    env = {"CARGO_HOME": str(ctx.config.cache / "cargo-home")}
    locks: dict[str, bytes] = {}
    misfit: dict[str, list[str]] = {}
    for service in crates:           # read-only on the checkout: no copy while every kept lock fits
        kept, misfits = _previous_lock_still_fits(ctx, tree / "guest" / service, service, tree)
        if kept is not None:
            locks[service] = kept
        else:
            misfit[service] = misfits
    if not misfit:
        return {c: locks[c] for c in crates}
    with tempfile.TemporaryDirectory(prefix="avfrepo-cargo-lock-") as tmp:
        scratch = Path(tmp) / "avf"
        # the work tree holds exactly what the crates read (agent_paths)
        shutil.copytree(tree, scratch, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        for service, misfits in misfit.items():
            crate = scratch / "guest" / service
            (crate / ".cargo" / "config.toml").unlink(missing_ok=True)
            (crate / "Cargo.lock").unlink(missing_ok=True)
            try:
                run(["cargo", "generate-lockfile", "--manifest-path", crate / "Cargo.toml"],
                    cwd=crate, env=env, timeout=900,
                    hint="cargo (rustup or Arch's/Debian's cargo) is needed by sync for avf-guest-agents")
            except ToolError as exc:
                offline = os.environ.get("CARGO_NET_OFFLINE", "").strip().lower() == "true"
                hit = _NETWORK_FAILURE.search(exc.output)
                if exc.returncode not in (None, 127) and (hit or offline):
                    why = ("the kept lock no longer fits (" + "; ".join(misfits) + ")" if misfits
                           else f"no lock is kept from an earlier sync ({NAME}/{lock_name(service)})")
                    said = f"cargo: {hit.group(0)}" if hit else "CARGO_NET_OFFLINE=true"
                    raise ToolProblem(f"cannot generate the Cargo.lock of guest/{service} at {version}: {why} "
                                        f"and crates.io cannot be reached to make a new one ({said})") from None
                raise ToolProblem(f"cannot generate the Cargo.lock of guest/{service} at {version}: {exc}") from None
            locks[service] = (crate / "Cargo.lock").read_bytes()
    return {c: locks[c] for c in crates}


# what cargo says when the registry is out of reach (curl errors, offline mode), seen on 1.95
_NETWORK_FAILURE = re.compile(
    r"download of config\.json failed|failed to download from `[^`]*`|failed to fetch `https?://[^`]*`"
    r"|Could(?: not|n't) (?:resolve host\w*|connect to server)|[Ff]ailed to connect to [^\s:]+"
    r"|Connection refused|spurious network error|network failure|Operation timed out"
    r"|you're using offline mode|attempting to make an HTTP request, but --offline was specified")


def _previous_lock_still_fits(ctx: Context, crate: Path, service: str,
                              root: Path) -> tuple[bytes | None, list[str]]:
    """(the kept lock, []) while the committed Cargo.lock still satisfies the crate's
    Cargo.toml; (None, why not) otherwise; (None, []) when no lock is kept.

    Generating afresh on every sync would pick up every new release of every registry
    dependency, change the inputs and bump pkgrel with no upstream change at all. The check
    is offline (no cargo, no crates.io): formats.cargo.lock_fits on the crate and the path
    dependencies it reaches inside root (the checkout).
    """
    previous = ctx.config.pkgbuilds / NAME / lock_name(service)
    if not previous.is_file():
        return None, []
    data = previous.read_bytes()
    try:
        lock = cargo_format.read_lock(data)
    except cargo_format.CargoFormatError as exc:
        return None, [f"{NAME}/{lock_name(service)} cannot be read: {exc}"]
    misfits = cargo_format.lock_fits(crate, lock, root=root)
    return (None, misfits) if misfits else (data, [])


# -- packaging patches ----------------------------------------------------------------------

def unified_diff(rel: str, old: str, new: str) -> str:
    """A `patch -p1` diff of one file (a/ b/ paths), correct for a missing final newline."""
    out = []
    for line in difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                     f"a/{rel}", f"b/{rel}", n=3):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def make_patch(tree: Path, rule: PatchRule, version: str) -> tuple[bytes, list[str]]:
    """The rule's patch against this checkout, and the files it changes (repo-relative)."""
    crate = tree / "guest" / rule.crate
    diffs, touched = [], []
    for f in sorted(crate.rglob("*")):
        if f.is_symlink() or not f.is_file():     # e.g. rustfmt.toml links out of the repository
            continue
        rel = f.relative_to(tree).as_posix()
        try:
            text = tree_file(tree, rel, f"AVF {version}").decode()
        except UnicodeDecodeError:
            continue
        if rule.old not in text:
            continue
        diffs.append(unified_diff(rel, text, text.replace(rule.old, rule.new)))
        touched.append(rel)
    if not diffs:
        raise RenderProblem(f"packaging patch {rule.name} no longer applies at {version}: "
                            f"{rule.old!r} is not in any file of guest/{rule.crate}/ "
                            f"(rule: {rule.why}); adapt PATCH_RULES in {__name__}")
    # no version or commit in the header: an unchanged crate must give the same patch bytes
    header = (f"avfrepo packaging patch {rule.name} for guest/{rule.crate}, generated from the rule\n"
              f"{rule.old!r} -> {rule.new!r}: {rule.why}.\n"
              "Do not edit: change the rule in avfrepo.packages.guest_agents and run `avfrepo sync`.\n\n")
    return (header + "".join(diffs)).encode(), touched


def dry_run(tree: Path, name: str, patch: bytes, files: list[str], version: str) -> None:
    """`patch -p1 --dry-run` of the patch against the checkout; RenderProblem if it fails."""
    with tempfile.TemporaryDirectory(prefix="avfrepo-patch-") as tmp:
        pfile = Path(tmp) / name
        pfile.write_bytes(patch)
        try:
            run(["patch", "-p1", "--dry-run", "--batch", "--forward", "-i", pfile], cwd=tree, timeout=120)
        except ToolError as exc:
            if exc.returncode == 127:
                raise ToolProblem(f"cannot dry-run packaging patch {name} at {version}: {exc}") from None
            raise RenderProblem(f"packaging patch {name} does not apply to {', '.join(files) or '?'} "
                                f"at {version}: {exc.output.strip() or exc}") from None


# -- render ---------------------------------------------------------------------------------

def kernel_headers(ctx: Context) -> str:
    """The headers package of the kernel the image runs: [avf]'s when it has a PKGBUILD."""
    for kernel, headers in KERNEL_HEADERS.items():
        if headers in ctx.available.get(kernel, ()):
            return headers
    return DEFAULT_KERNEL_HEADERS


def render(ctx: Context) -> Rendered:
    release = ctx.releases["avf"]
    tree = ctx.trees["avf"]
    version = release.version
    if not release.commit:
        raise RenderProblem(f"no commit known for {version}: the PKGBUILD must pin one")
    import git      # GitPython: imported by the renders that need it, not by every sync

    from ..checkout import listing
    try:
        found = check_agent_set(listing(tree, "guest") + listing(tree, FAI_CONFIG), tree, version)
    except git.GitCommandError as exc:
        raise RenderProblem(f"cannot list guest/ of the checkout at {version}: {exc}") from None
    binaries = {c: plain_name(binary_name(tree, c, version), f"binary of guest/{c}") for c in found.crates}
    # the units are read first: what they are (a link out of the tree, not UTF-8) is a verdict on
    # this tag that must not hide behind a Cargo.lock that cannot be made offline
    units = {c: tree_file(tree, f"guest/{c}/{UNIT}", f"AVF {version}", text=True) for c in found.agents}

    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []
    notes: list[str] = []
    for svc, lock in generate_locks(ctx, tree, version, found.crates).items():
        name = lock_name(svc)
        files[name] = lock
        sources.append(SourceFile(name, sha256(lock), f"guest/{svc}/Cargo.lock"))
    patches = []
    for rule in PATCH_RULES:
        patch, touched = make_patch(tree, rule, version)
        dry_run(tree, rule.name, patch, touched, version)
        files[rule.name] = patch
        sources.append(SourceFile(rule.name, sha256(patch)))
        patches.append(rule.name)
        notes.append(f"{rule.name}: {', '.join(touched)} ({rule.why})")

    headers = kernel_headers(ctx)
    packages = []
    for crate in found.crates:
        unit = preset = None
        install = None
        if crate in found.agents:
            adapted, changes = adapt_unit(units[crate])
            unit, preset, install = f"{crate}.service", f"80-{pkgname(crate)}.preset", f"{pkgname(crate)}.install"
            files[unit] = adapted.encode()
            files[preset] = template("avf-guest-agents/agent.preset", unit=unit, pkgname=pkgname(crate))
            files[install] = template("avf-guest-agents/agent.install", unit=unit)
            sources += [SourceFile(unit, sha256(files[unit]), f"/usr/lib/systemd/system/{unit}"),
                        SourceFile(preset, sha256(files[preset]), f"/usr/lib/systemd/system-preset/{preset}")]
            if changes:
                notes.append(f"{unit}: " + ", ".join(changes))
        extra = [headers if d == "@KERNEL_HEADERS@" else d for d in EXTRA_DEPENDS.get(crate, ())]
        depends = [*RUST_DEPENDS, *(pkgname(c) for c in found.companions.get(crate, ())), *extra]
        packages.append({"name": pkgname(crate), "crate": crate, "binary": binaries[crate],
                         "desc": SERVICES[crate], "depends": depends, "unit": unit, "preset": preset,
                         "install": install})
    files["PKGBUILD"] = template(
        "avf-guest-agents/PKGBUILD.j2", pkgbase=NAME, packages=packages, crates=list(found.crates),
        homepage=AVF_URL, url=ctx.config.upstream("avf").url, commit=release.commit,
        sources=sources, patches=patches)
    return Rendered(NAME, release.pkgver, {"avf": version}, files, tuple(notes))
