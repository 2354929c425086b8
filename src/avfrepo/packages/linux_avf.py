"""linux-avf: the kernel.org LTS kernel AVF's patches target, with those patches and a config.

- Source: the kernel.org tarball of the tracked release (upstream `kernel`, e.g. 6.1.158; a
  maintainer can hold it with `max_version` or `pin`), downloaded once into the cache at sync
  time for its real sha256.
- Patches: the ones AVF lists in `build/debian/kernel/patches/series`, in that order, copied
  next to the PKGBUILD. At sync time every one is dry-run (`patch -p1 --dry-run`) against
  the files it touches, extracted from the tarball into a scratch directory, and then
  applied there for real, because later patches of a series build on earlier ones. A patch
  that does not apply (GNU patch's "Reversed (or previously applied) patch detected" is a
  failure too: it is what a changed context looks like), or a series entry without its file,
  refuses the render (RenderProblem naming the patch, the file, the kernel and the AVF
  version). A check that passed is remembered in the cache.
- Carried patches ([[packages.linux-avf.carry]], files committed in pkgbuilds/linux-avf/ by a
  maintainer): one with `replaces = "<series entry>"` stands in for that entry while the
  entry does not apply, and is dropped with a notice as soon as AVF's applies again; one
  without is applied after the series. Each is dry-run like AVF's.
- config, merged at build time, each file listed in the PKGBUILD: ALARM's core/linux-aarch64
  `config` (upstream `alarm-pkgbuilds`: the newest revision of the tracked series, else the
  oldest of the next series ALARM packaged, else the newest before it) as the base ALARM users
  know, then AVF's fragment (`build/debian/kernel/config`), then avfrepo's own fragment
  (templates/linux-avf/avfrepo.config: what [avf]'s payload needs: bcc's tcpstates, kernel
  headers, virtio-gpu, nftables, virtiofs, ...), with the kernel's merge_config.sh and
  `make olddefconfig`. prepare() then fails if a symbol avfrepo's fragment sets to y or m is not
  y or m (a dependency missing); olddefconfig() runs the same merge on a real tree for tests.
- Packages, ALARM's layout: linux-avf (Image as /usr/lib/modules/$kernver/vmlinuz with its
  pkgbase, where the image step and mkinitcpio's hook find it; the modules; the mkinitcpio
  preset /etc/mkinitcpio.d/linux-avf.preset) and linux-avf-headers.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from .. import alarm_pkgbuilds
from ..config import ALARM_PKGBUILDS, CarriedPatch
from ..downloads import cached, file_sha256
from ..errors import AvfrepoError, UpstreamError
from ..formats import jsondoc
from ..fsutil import atomic_write
from ..run import run
from . import Context, Rendered, RenderProblem, SourceFile, ToolProblem, sha256, template, tree_file

NAME = "linux-avf"
UPSTREAMS = ("kernel", "avf", ALARM_PKGBUILDS)
ALARM_DIR = "core/linux-aarch64"
CONFIGS = ("config.alarm", "avf.config", "avfrepo.config")     # merged in this order
KERNEL_DIR = "build/debian/kernel"
TREES = {"avf": (KERNEL_DIR,)}


def kept_inputs(config, rel: str) -> bool:
    """Files of pkgbuilds/linux-avf/ the render reads back: the carried patches a maintainer
    committed there (sync's check for hand edits leaves them alone)."""
    return rel in {c.file for c in config.carry.get(NAME, ())}

_SYMBOL = re.compile(r"^(?:(CONFIG_[A-Za-z0-9_]+)=.*|# (CONFIG_[A-Za-z0-9_]+) is not set)$")
_TARBALL = re.compile(r"^(?P<src>.+?)\.tar(?:\.(?:xz|gz|bz2|zst))?$")


# --- config -------------------------------------------------------------------------------

def config_symbol(line: str) -> str | None:
    """The CONFIG_ symbol a config line sets (`CONFIG_X=y`, `# CONFIG_X is not set`), else None."""
    m = _SYMBOL.match(line.strip())
    return (m.group(1) or m.group(2)) if m else None


def parse_fragment(text: str, where: str) -> dict[str, str]:
    """A config fragment -> {symbol: its line}; the last line of a symbol wins (as the
    kernel's merge_config.sh does). Any other non-comment line is an error naming it."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        sym = config_symbol(line)
        if sym:
            out[sym] = line
        elif line and not line.startswith("#"):
            raise ValueError(f"{where} line {n}: not a config line: {raw!r}")
    return out


def required_symbols(fragment: str) -> list[str]:
    """The symbols a fragment sets to y or m: what the built config must have as y or m."""
    out = []
    for line in fragment.splitlines():
        m = re.match(r"^(CONFIG_[A-Za-z0-9_]+)=[ym]\s*$", line.strip())
        if m:
            out.append(m.group(1))
    return out


def missing_symbols(config: str, required: list[str]) -> list[str]:
    """The required symbols a .config does not set to y or m."""
    have = {m.group(1) for m in re.finditer(r"^(CONFIG_[A-Za-z0-9_]+)=[ym]$", config, re.M)}
    return [sym for sym in required if sym not in have]


def olddefconfig(tree: Path, configs: dict[str, bytes], out: Path, *, arch: str = "arm64",
                 timeout: float = 900) -> str:
    """What prepare() does to the config, on the kernel source `tree` (left untouched: the
    build directory is `out`): merge CONFIGS in order with scripts/kconfig/merge_config.sh,
    then `make olddefconfig`. Returns the resulting .config."""
    out.mkdir(parents=True, exist_ok=True)
    for name in CONFIGS:
        (out / name).write_bytes(configs[name])
    (out / ".config").write_bytes(configs[CONFIGS[0]])
    env = {"ARCH": arch, "KCONFIG_CONFIG": str(out / ".config")}
    run(["sh", tree / "scripts/kconfig/merge_config.sh", "-m", "-O", out, out / ".config",
         *(out / n for n in CONFIGS[1:])], cwd=out, env=env, timeout=timeout)
    env.pop("KCONFIG_CONFIG")
    run(["make", "-s", "-C", tree, f"O={out}", f"ARCH={arch}", "olddefconfig"], env=env, timeout=timeout)
    return (out / ".config").read_text()


# --- series and patches -------------------------------------------------------------------

def read_series(tree: Path, at: str = "AVF") -> list[str]:
    """The patch paths of patches/series (relative to patches/), in order. Quilt syntax:
    `#` comments, blank lines, an optional `-p1` after the name (other options: error).
    FileNotFoundError when the tree has no series."""
    series = tree_file(tree, f"{KERNEL_DIR}/patches/series", at, text=True)
    entries = []
    for n, raw in enumerate(series.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, *opts = line.split()
        if any(o != "-p1" for o in opts):
            raise RenderProblem(f"{KERNEL_DIR}/patches/series line {n}: unsupported options {' '.join(opts)!r} "
                                f"for {name} (only -p1 is applied)")
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            raise RenderProblem(f"{KERNEL_DIR}/patches/series line {n}: {name!r} points outside patches/")
        entries.append(name)
    return entries


def source_name(entry: str) -> str:
    """The file name a series entry gets next to the PKGBUILD: avf/x.patch -> avf-x.patch."""
    return entry.replace("/", "-")


_PATCH_PATH = re.compile(r"^(?:--- |\+\+\+ |rename from |copy from )(\S+)")


def touched_files(patch: bytes) -> set[str]:
    """The paths (after -p1) a patch reads or writes."""
    out = set()
    for line in patch.decode(errors="replace").splitlines():
        m = _PATCH_PATH.match(line)
        if not m or m.group(1) == "/dev/null":
            continue
        path = m.group(1)
        if line.startswith(("--- ", "+++ ")):
            parts = path.split("/", 1)
            if len(parts) < 2:
                continue
            path = parts[1]
        out.add(path)
    return out


@dataclass(frozen=True)
class PatchFailure:
    file: str
    reason: str


def patch_failures(output: str) -> list[PatchFailure]:
    """What GNU patch complained about, per file (from its --dry-run output)."""
    failures: list[PatchFailure] = []
    current = "?"
    lines = output.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(?:checking|patching) file '?(.+?)'?$", line)
        if m:
            current = m.group(1)
        elif "FAILED" in line and line.startswith("Hunk"):
            failures.append(PatchFailure(current, line.strip()))
        elif line.startswith("can't find file to patch"):
            missing = "?"
            j = i + 1
            while j < len(lines) and not lines[j].startswith("No file to patch"):
                hm = re.match(r"^\|(?:---|\+\+\+) (\S+)", lines[j])
                if hm and hm.group(1) != "/dev/null" and missing == "?":
                    missing = hm.group(1).split("/", 1)[-1]
                j += 1
            failures.append(PatchFailure(missing, "file to patch not found"))
            i = j
        elif "Reversed (or previously applied) patch detected" in line:
            failures.append(PatchFailure(current, "reversed or previously applied patch"))
        i += 1
    # one entry per file, first reason
    seen: dict[str, PatchFailure] = {}
    for f in failures:
        seen.setdefault(f.file, f)
    return list(seen.values())


def src_dir_name(url: str) -> str:
    """linux-6.1.158.tar.xz -> linux-6.1.158 (the tarball's top directory)."""
    name = PurePosixPath(urlparse(url).path).name
    m = _TARBALL.match(name)
    if not m:
        raise RenderProblem(f"kernel source {url} is not a tarball (.tar, .tar.xz, .tar.gz, ...)")
    return m.group("src")


@dataclass(frozen=True)
class Step:
    entry: str                                   # series entry, or the carried file for an addition
    data: bytes | None                           # AVF's patch (None: a carried addition)
    carried: tuple[str, bytes] | None = None     # (file, data) of a carried patch


def _dry_run(tree: Path, scratch: Path, name: str, data: bytes) -> tuple[Path, str | None]:
    patch_file = scratch / ("dry-" + source_name(name))
    patch_file.write_bytes(data)
    # -N --batch: a patch that looks reversed or already applied is skipped and fails (plain
    # --batch would apply it in reverse and succeed; --force would force it in with fuzz)
    base = ["patch", "-p1", "-N", "--batch", "--no-backup-if-mismatch", "-i", patch_file]
    dry = run([*base, "--dry-run"], cwd=tree, check=False, timeout=300)
    if dry.returncode == 0:
        return patch_file, None
    out = dry.stdout + dry.stderr
    failures = patch_failures(out)
    return patch_file, "; ".join(f"{f.file}: {f.reason}" for f in failures) or \
        (out.strip().splitlines() or ["patch failed"])[0]


def check_patches(tarball: Path, srcname: str, steps: list[Step], scratch_root: Path,
                  *, kernel: str, avf: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Dry-run each step in order against the files of the tarball it touches, applying the
    one used for real before the next. Returns ([(series entry or carried file, "avf" |
    "carried")], notes); RenderProblem on the first step nothing applies for."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="linux-avf-", dir=scratch_root))
    used: list[tuple[str, str]] = []
    notes: list[str] = []
    try:
        datas = [d for st in steps for d in (st.data, st.carried[1] if st.carried else None) if d is not None]
        members = sorted({f"{srcname}/{f}" for data in datas for f in touched_files(data)})
        if members:
            res = run(["tar", "-xf", tarball, "-C", scratch, "--no-same-owner", "--", *members],
                      check=False, timeout=1800)
            other = [ln for ln in res.stderr.splitlines()
                     if "Not found in archive" not in ln and "due to previous errors" not in ln and ln.strip()]
            if res.returncode != 0 and other:
                raise ToolProblem(f"cannot extract Linux {kernel} ({tarball.name}) to check AVF {avf}'s "
                                    f"kernel patches: {other[0]}")
        tree = scratch / srcname
        tree.mkdir(exist_ok=True)
        for st in steps:
            if st.data is None:                   # a carried addition
                file, data = st.carried
                pf, why = _dry_run(tree, scratch, file, data)
                if why:
                    raise RenderProblem(f"carried patch {file} (pkgbuilds/linux-avf/) does not apply to Linux "
                                        f"{kernel} after AVF {avf}'s series: {why}")
                used.append((file, "carried"))
            else:
                pf, why = _dry_run(tree, scratch, st.entry, st.data)
                if why is None:
                    used.append((st.entry, "avf"))
                    if st.carried:
                        notes.append(f"AVF {avf}'s {st.entry} applies again to Linux {kernel}: the carried "
                                     f"{st.carried[0]} is dropped; remove it from [[packages.linux-avf.carry]]")
                elif st.carried:
                    file, data = st.carried
                    pf, cwhy = _dry_run(tree, scratch, file, data)
                    if cwhy:
                        raise RenderProblem(f"AVF {avf} kernel patch {st.entry} does not apply to Linux {kernel} "
                                            f"({why}), nor does the carried {file} that replaces it: {cwhy}")
                    used.append((file, "carried"))
                    notes.append(f"carrying {file} instead of AVF {avf}'s {st.entry}, which does not apply to "
                                 f"Linux {kernel}: {why}")
                else:
                    raise RenderProblem(f"AVF {avf} kernel patch {st.entry} does not apply to Linux {kernel}: {why}; "
                                        "hold [upstreams.kernel] (max_version) or carry a rebased patch")
            run(["patch", "-p1", "-N", "--batch", "--no-backup-if-mismatch", "-i", pf], cwd=tree, timeout=300)
    except AvfrepoError as exc:
        if isinstance(exc, RenderProblem):
            raise
        raise ToolProblem(f"checking AVF {avf}'s kernel patches against Linux {kernel}: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return used, notes


def remembered_check(stamp: Path) -> tuple[list[tuple[str, str]], list[str]] | None:
    """The (used, notes) of a patch check remembered in the cache; None when there is none,
    or it cannot be read as one (then the patches are checked again)."""
    try:
        data = jsondoc.read(stamp)
    except (OSError, ValueError):
        return None
    used, notes = (data.get("used"), data.get("notes")) if isinstance(data, dict) else (None, None)
    if not (isinstance(used, list) and all(isinstance(u, list) and len(u) == 2 and u[1] in ("avf", "carried")
                                           and isinstance(u[0], str) for u in used)
            and isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        return None
    return [(u[0], u[1]) for u in used], notes


def carried_steps(ctx: Context, entries: list[str], patches: dict[str, bytes]) -> list[Step]:
    """The series as steps, with the maintainer's carried patches in place or appended."""
    carry: tuple[CarriedPatch, ...] = ctx.config.carry.get(NAME, ())
    by_entry: dict[str, tuple[str, bytes]] = {}
    additions: list[Step] = []
    taken = {source_name(e) for e in entries} | set(CONFIGS) | {"linux-avf.preset", "PKGBUILD"}
    for c in carry:
        f = ctx.config.pkgbuilds / NAME / c.file
        if c.file in taken:
            raise RenderProblem(f"carried patch {c.file} has the name of another file of linux-avf: rename it")
        if not f.is_file():
            raise RenderProblem(f"carried patch {c.file} is not in {ctx.config.pkgbuilds / NAME}: commit it there "
                                "(or remove it from [[packages.linux-avf.carry]])")
        if c.replaces is not None:
            if c.replaces not in entries:
                raise RenderProblem(f"carried patch {c.file} replaces {c.replaces}, which AVF's series no longer "
                                    f"lists ({', '.join(entries)}): update or remove the carry")
            by_entry[c.replaces] = (c.file, f.read_bytes())
        else:
            additions.append(Step(c.file, None, (c.file, f.read_bytes())))
    return [Step(e, patches[e], by_entry.get(e)) for e in entries] + additions


# --- render -------------------------------------------------------------------------------

def alarm_config(ctx: Context) -> tuple[bytes, alarm_pkgbuilds.Revision, str]:
    """ALARM's linux-aarch64 `config` at the revision nearest the tracked series."""
    series = ctx.config.upstream("kernel").series
    head = ctx.releases[ALARM_PKGBUILDS]
    try:
        repo = alarm_pkgbuilds.PkgbuildsRepo.open(ctx.config.upstream(ALARM_PKGBUILDS), head.commit or "",
                                                   ctx.config.cache)
        rev, why = alarm_pkgbuilds.nearest_series(repo.revisions(ALARM_DIR), series)
        if rev is None:
            raise RenderProblem(f"ALARM's {ALARM_DIR} has {why}: no base config for Linux {series}")
        return repo.files(rev.commit, ALARM_DIR, only=("config",))["config"], rev, why
    except UpstreamError as exc:        # git could not fetch it: asked again next sync
        raise ToolProblem(f"cannot read ALARM's {ALARM_DIR}/config: {exc}") from None
    except ValueError as exc:
        raise RenderProblem(f"cannot read ALARM's {ALARM_DIR}/config: {exc}") from None


def render(ctx: Context) -> Rendered:
    kernel, avf = ctx.releases["kernel"], ctx.releases["avf"]
    tree, at = ctx.trees["avf"], f"AVF {avf.version}"
    try:
        entries: list[str] | None = read_series(tree, at)
    except FileNotFoundError:
        entries = None
    try:
        fragment: str | None = tree_file(tree, f"{KERNEL_DIR}/config", at, text=True)
    except FileNotFoundError:
        fragment = None
    if entries is None or fragment is None:
        missing = [rel for rel, got in ((f"{KERNEL_DIR}/patches/series", entries), (f"{KERNEL_DIR}/config", fragment))
                   if got is None]
        raise RenderProblem(f"AVF {avf.version} has no {', '.join(missing)}: the kernel packaging moved")
    if not entries:
        raise RenderProblem(f"AVF {avf.version}: {KERNEL_DIR}/patches/series lists no patch")
    patches: dict[str, bytes] = {}
    names: set[str] = set()
    for entry in entries:
        try:
            data = tree_file(tree, f"{KERNEL_DIR}/patches/{entry}", at)
        except FileNotFoundError:
            raise RenderProblem(f"AVF {avf.version}: {KERNEL_DIR}/patches/series lists {entry}, "
                                f"but {KERNEL_DIR}/patches/{entry} does not exist (kernel {kernel.version})") from None
        if source_name(entry) in names:
            raise RenderProblem(f"AVF {avf.version}: two series entries map to {source_name(entry)}")
        names.add(source_name(entry))
        patches[entry] = data
    steps = carried_steps(ctx, entries, patches)

    try:
        parse_fragment(fragment, f"{KERNEL_DIR}/config")
    except ValueError as exc:
        raise RenderProblem(f"AVF {avf.version} {exc}") from None
    base, rev, why = alarm_config(ctx)

    srcname = src_dir_name(kernel.url)
    tarball = cached("kernel", kernel.url, ctx.config.cache, ctx.config.upstream("kernel").net)
    tarball_sha256 = file_sha256(tarball)
    # a successful check is remembered (the same tarball and patches apply the same way), so a
    # sync that changes nothing does not decompress the kernel again
    key = sha256("\n".join([tarball_sha256, srcname, *(
        f"{st.entry} {sha256(st.data or b'')} {st.carried[0] + ' ' + sha256(st.carried[1]) if st.carried else ''}"
        for st in steps)]).encode())
    stamp = ctx.config.cache / "linux-avf" / "patches-apply" / (key + ".json")
    if remembered := remembered_check(stamp):
        used, notes = remembered
    else:
        used, notes = check_patches(tarball, srcname, steps, ctx.config.cache / "scratch",
                                    kernel=kernel.version, avf=avf.version)
        atomic_write(stamp, json.dumps({"url": kernel.url, "used": used, "notes": notes}).encode())

    ours = template("linux-avf/avfrepo.config")
    files: dict[str, bytes] = {"config.alarm": base, "avf.config": fragment.encode(), "avfrepo.config": ours,
                               "linux-avf.preset": template("linux-avf/linux-avf.preset")}
    sources = [SourceFile(n, sha256(files[n])) for n in (*CONFIGS, "linux-avf.preset")]
    patch_sources = []
    carried = {st.carried[0]: st.carried[1] for st in steps if st.carried}
    for name, origin in used:
        data = patches[name] if origin == "avf" else carried[name]
        fname = source_name(name) if origin == "avf" else name
        files[fname] = data
        patch_sources.append(SourceFile(fname, sha256(data)))
    files["PKGBUILD"] = template(
        "linux-avf/PKGBUILD.j2", tarball_url=kernel.url, tarball_sha256=tarball_sha256,
        srcname=srcname, sources=sources, patches=patch_sources, configs=CONFIGS,
        required=required_symbols(ours.decode()), alarm_revision=rev.commit, alarm_version=rev.version)
    notes = [f"Linux {kernel.version} with {len(used)} patch(es): "
             + ", ".join(n if o == "avf" else f"{n} (carried)" for n, o in used),
             f"base config: ALARM {ALARM_DIR} {rev.version} at {rev.commit[:12]} ({why})", *notes]
    if kernel.note:
        notes.insert(0, f"Linux {kernel.note}")
    upstreams = {"kernel": kernel.version, "avf": avf.version, ALARM_PKGBUILDS: rev.commit}
    return Rendered(NAME, kernel.pkgver, upstreams, files, tuple(notes))
