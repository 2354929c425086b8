"""avf-guest-agents: the four AVF guest agents, built from AVF's source at the tracked tag.

One split pkgbase (`avf-guest-agents`) builds `forwarder-guest`, `forwarder-guest-launcher`,
`shutdown-runner` and `storage-balloon-agent`: makepkg clones the large AVF repository once
and builds the four crates from that one checkout (one pkgver, one source, one build).

Upstream has no Cargo.lock and no workspace (facts file §1), so sync generates one lock per
crate with `cargo generate-lockfile` on a scratch copy of the checkout; the PKGBUILD builds
`--locked` against it. The Arch-specific changes are this project's own patches, generated
here from PATCH_RULES (old text -> new text in one crate), never copied: each is dry-run
against the exact checkout before it is offered to makepkg.

Refused (RenderProblem, so sync keeps the previous PKGBUILD): a service added, removed or
no longer a Cargo crate upstream (Android 17 replaces the four with guest/linux_vm_manager,
Android.bp only), a patch rule whose old text is gone, a patch that does not apply, a lock
that cargo cannot generate.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..config import AVF_URL
from ..errors import ToolError
from ..formats import cargo as cargo_format
from ..run import run
from . import Context, RenderProblem, Rendered, SourceFile, sha256, template

NAME = "avf-guest-agents"
UPSTREAMS = ("avf",)
TREES = {"avf": ("guest", "libs")}   # the crates, their path deps (libs/libforwarder) and protos

# guest/<service> -> pkgdesc of its package (named after the service, `_` -> `-`)
SERVICES = {
    "forwarder_guest": "AVF Terminal guest agent: forwards TCP connections between the Android host and the guest",
    "forwarder_guest_launcher": "AVF Terminal guest agent: reports guest TCP listeners to the host and starts forwarding",
    "shutdown_runner": "AVF Terminal guest agent: powers the guest off when the Android host asks",
    "storage_balloon_agent": "AVF Terminal guest agent: reports the guest's free disk space to the Android host",
}
# runtime dependencies besides what every Rust binary needs (gcc-libs, glibc)
EXTRA_DEPENDS = {
    "forwarder_guest_launcher": ("bcc-tools", "python"),   # runs `python3 -u .../tcpstates`
}
CRATE_PATHS = TREES["avf"]          # what cargo sees of the checkout


def pkgname(service: str) -> str:
    return service.replace("_", "-")


# a split package: what an image installs are its four packages, not the pkgbase
IMAGE_PACKAGES = tuple(pkgname(s) for s in SERVICES)


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


# -- the service set ------------------------------------------------------------------------

def check_services(tree: Path, version: str) -> None:
    """The guest/<svc>/ directories must be exactly SERVICES, each a Cargo crate."""
    guest = tree / "guest"
    found = sorted(p.name for p in guest.iterdir()
                   if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")) if guest.is_dir() else []
    known = set(SERVICES)
    removed = sorted(known - set(found))
    added = [s for s in found if s not in known]
    unbuildable = [s for s in found if s in known and not (guest / s / "Cargo.toml").is_file()]
    if not (removed or added or unbuildable):
        return
    parts = []
    if removed:
        parts.append("removed " + ", ".join(removed))
    if added:
        parts.append("added " + ", ".join(
            s if (guest / s / "Cargo.toml").is_file() else f"{s} (no Cargo.toml: not buildable with cargo)"
            for s in added))
    if unbuildable:
        parts.append("no Cargo.toml any more (not buildable with cargo): " + ", ".join(unbuildable))
    raise RenderProblem(f"guest services changed at {version}: " + "; ".join(parts) +
                        f"; adapt {__name__} (SERVICES) before packaging this version")


def binary_name(tree: Path, service: str, version: str) -> str:
    """The name cargo gives the service's binary (its [[bin]] or its package name)."""
    manifest = tree / "guest" / service / "Cargo.toml"
    try:
        data = tomllib.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RenderProblem(f"guest/{service}/Cargo.toml at {version} cannot be read: {exc}") from None
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


# -- Cargo.lock per crate -------------------------------------------------------------------

def lock_name(service: str) -> str:
    """The Cargo.lock of guest/<service>, as committed next to the PKGBUILD."""
    return f"{service}.Cargo.lock"


def generate_locks(ctx: Context, tree: Path, version: str) -> dict[str, bytes]:
    """service -> the Cargo.lock guest/<service> is built with at this checkout.

    The lock kept from the last sync is reused, without running cargo, while it still fits
    the crate (formats.cargo.lock_fits, offline). Otherwise cargo generates one on a scratch
    copy (never in the cached checkout) with each crate's .cargo/config.toml removed, as the
    PKGBUILD's prepare() does; that needs crates.io for registry dependencies. When crates.io
    cannot be reached (cargo's network failure, or CARGO_NET_OFFLINE=true) the refusal says
    why the kept lock no longer fits and that crates.io is out of reach.
    """
    env = {"CARGO_HOME": str(ctx.config.cache / "cargo-home")}
    locks: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="avfrepo-cargo-lock-") as tmp:
        scratch = Path(tmp) / "avf"
        for part in CRATE_PATHS:
            if (tree / part).is_dir():
                shutil.copytree(tree / part, scratch / part, symlinks=True)
        for service in SERVICES:
            crate = scratch / "guest" / service
            (crate / ".cargo" / "config.toml").unlink(missing_ok=True)
            (crate / "Cargo.lock").unlink(missing_ok=True)
            kept, misfits = _previous_lock_still_fits(ctx, crate, service, scratch)
            if kept is not None:
                locks[service] = kept
                continue
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
                    raise RenderProblem(f"cannot generate the Cargo.lock of guest/{service} at {version}: {why} "
                                        f"and crates.io cannot be reached to make a new one ({said})") from None
                raise RenderProblem(f"cannot generate the Cargo.lock of guest/{service} at {version}: {exc}") from None
            locks[service] = (crate / "Cargo.lock").read_bytes()
    return locks


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
    dependencies it reaches inside root (the scratch copy of the checkout).
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
        try:
            text = f.read_text()
        except UnicodeDecodeError:
            continue
        if rule.old not in text:
            continue
        rel = f.relative_to(tree).as_posix()
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
                raise RenderProblem(f"cannot dry-run packaging patch {name} at {version}: {exc}") from None
            raise RenderProblem(f"packaging patch {name} does not apply to {', '.join(files) or '?'} "
                                f"at {version}: {exc.output.strip() or exc}") from None


# -- render ---------------------------------------------------------------------------------

def render(ctx: Context) -> Rendered:
    release = ctx.releases["avf"]
    tree = ctx.trees["avf"]
    version = release.version
    if not release.commit:
        raise RenderProblem(f"no commit known for {version}: the PKGBUILD must pin one")
    check_services(tree, version)
    binaries = {svc: binary_name(tree, svc, version) for svc in SERVICES}

    files: dict[str, bytes] = {}
    sources: list[SourceFile] = []
    notes: list[str] = []
    for svc, lock in generate_locks(ctx, tree, version).items():
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

    packages = [{"name": pkgname(svc), "service": svc, "binary": binaries[svc], "desc": desc,
                 "depends": ["gcc-libs", "glibc", *EXTRA_DEPENDS.get(svc, ())]}
                for svc, desc in SERVICES.items()]
    files["PKGBUILD"] = template(
        "avf-guest-agents/PKGBUILD.j2", pkgbase=NAME, packages=packages, services=list(SERVICES),
        homepage=AVF_URL, url=ctx.config.upstream("avf").url, commit=release.commit,
        sources=sources, patches=patches)
    return Rendered(NAME, release.pkgver, {"avf": version}, files, tuple(notes))
