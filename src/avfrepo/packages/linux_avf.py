"""linux-avf: the kernel.org LTS kernel AVF's patches target, with those patches and a config.

- Source: the kernel.org tarball of the tracked release (upstream `kernel`, e.g. 6.1.158),
  downloaded once into the cache at sync time for its real sha256.
- Patches: the ones AVF lists in `build/debian/kernel/patches/series`, in that order, copied
  next to the PKGBUILD. At sync time every one is dry-run (`patch -p1 --dry-run`) against
  the files it touches, extracted from the tarball into a scratch directory, and then
  applied there for real, because later patches of a series build on earlier ones. A patch
  that does not apply, or a series entry without its file, refuses the render
  (RenderProblem naming the patch, the file, the kernel and the AVF version). A check that
  passed is remembered in the cache by the sha256 of the tarball and of the patches.
- config: this project's small base config for an arm64 AVF guest
  (templates/linux-avf/config.base) with AVF's fragment (`build/debian/kernel/config`)
  merged over it: a fragment line replaces the base line of the same CONFIG_ symbol, in
  either spelling (`CONFIG_X=...` or `# CONFIG_X is not set`). `make olddefconfig` fills in
  everything neither names.
- Packages: linux-avf (the image as /usr/lib/modules/$kernver/vmlinuz plus the modules,
  the Arch layout: mkinitcpio's and kernel-install's hooks copy it to /boot and build the
  initramfs) and linux-avf-headers (what out-of-tree modules build against).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from ..downloads import cached, file_sha256
from ..errors import AvfrepoError
from ..run import run
from . import Context, Rendered, RenderProblem, SourceFile, sha256, template

NAME = "linux-avf"
UPSTREAMS = ("kernel", "avf")
KERNEL_DIR = "build/debian/kernel"
TREES = {"avf": (KERNEL_DIR,)}

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


def merge_config(base: str, fragment: str, *, fragment_name: str = "fragment") -> str:
    """base with fragment merged over it: a fragment line replaces the base line(s) of the same
    symbol in place; symbols the base does not name are appended, in fragment order."""
    overrides = parse_fragment(fragment, fragment_name)
    out: list[str] = []
    done: set[str] = set()
    for raw in base.splitlines():
        sym = config_symbol(raw)
        if sym in overrides:
            if sym not in done:
                out.append(overrides[sym])
                done.add(sym)
            continue
        out.append(raw)
    added = [line for sym, line in overrides.items() if sym not in done]
    if added:
        out += ["", f"# from {fragment_name}", *added]
    return "\n".join(out) + "\n"


# --- series and patches -------------------------------------------------------------------

def read_series(tree: Path) -> list[str]:
    """The patch paths of patches/series (relative to patches/), in order. Quilt syntax:
    `#` comments, blank lines, an optional `-p1` after the name (other options: error)."""
    series = tree / KERNEL_DIR / "patches/series"
    entries = []
    for n, raw in enumerate(series.read_text().splitlines(), 1):
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


def check_patches(tarball: Path, srcname: str, patches: list[tuple[str, bytes]], scratch_root: Path,
                  *, kernel: str, avf: str) -> None:
    """Dry-run each patch in order against the files of the tarball it touches, applying it
    for real before the next. RenderProblem on the first that does not apply."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="linux-avf-", dir=scratch_root))
    try:
        members = sorted({f"{srcname}/{f}" for _, data in patches for f in touched_files(data)})
        if members:
            res = run(["tar", "-xf", tarball, "-C", scratch, "--no-same-owner", "--", *members],
                      check=False, timeout=1800)
            other = [ln for ln in res.stderr.splitlines()
                     if "Not found in archive" not in ln and "due to previous errors" not in ln and ln.strip()]
            if res.returncode != 0 and other:
                raise RenderProblem(f"cannot extract Linux {kernel} ({tarball.name}) to check AVF {avf}'s "
                                    f"kernel patches: {other[0]}")
        tree = scratch / srcname
        tree.mkdir(exist_ok=True)
        for name, data in patches:
            patch_file = scratch / source_name(name)
            patch_file.write_bytes(data)
            base = ["patch", "-p1", "--force", "--batch", "--no-backup-if-mismatch", "-i", patch_file]
            dry = run([*base, "--dry-run"], cwd=tree, check=False, timeout=300)
            if dry.returncode != 0:
                out = dry.stdout + dry.stderr
                failures = patch_failures(out)
                where = "; ".join(f"{f.file}: {f.reason}" for f in failures) or \
                    (out.strip().splitlines() or ["patch failed"])[0]
                raise RenderProblem(f"AVF {avf} kernel patch {name} does not apply to Linux {kernel}: {where}")
            run(base, cwd=tree, timeout=300)
    except AvfrepoError as exc:
        if isinstance(exc, RenderProblem):
            raise
        raise RenderProblem(f"checking AVF {avf}'s kernel patches against Linux {kernel}: {exc}") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --- render -------------------------------------------------------------------------------

def render(ctx: Context) -> Rendered:
    kernel, avf = ctx.releases["kernel"], ctx.releases["avf"]
    kdir = ctx.trees["avf"] / KERNEL_DIR
    series_file = kdir / "patches/series"
    fragment_file = kdir / "config"
    if not series_file.is_file() or not fragment_file.is_file():
        missing = [str(p.relative_to(ctx.trees["avf"])) for p in (series_file, fragment_file) if not p.is_file()]
        raise RenderProblem(f"AVF {avf.version} has no {', '.join(missing)}: the kernel packaging moved")

    entries = read_series(ctx.trees["avf"])
    if not entries:
        raise RenderProblem(f"AVF {avf.version}: {KERNEL_DIR}/patches/series lists no patch")
    patches: list[tuple[str, bytes]] = []
    names: set[str] = set()
    for entry in entries:
        f = kdir / "patches" / entry
        if not f.is_file():
            raise RenderProblem(f"AVF {avf.version}: {KERNEL_DIR}/patches/series lists {entry}, "
                                f"but {KERNEL_DIR}/patches/{entry} does not exist (kernel {kernel.version})")
        if source_name(entry) in names:
            raise RenderProblem(f"AVF {avf.version}: two series entries map to {source_name(entry)}")
        names.add(source_name(entry))
        patches.append((entry, f.read_bytes()))

    srcname = src_dir_name(kernel.url)
    tarball = cached("kernel", kernel.url, ctx.config.cache, ctx.config.upstream("kernel").net)
    tarball_sha256 = file_sha256(tarball)
    # a successful check is remembered (the same tarball and patches apply the same way), so a
    # sync that changes nothing does not decompress the kernel again
    key = sha256("\n".join([tarball_sha256, srcname, *(f"{n} {sha256(d)}" for n, d in patches)]).encode())
    stamp = ctx.config.cache / "linux-avf" / "patches-apply" / key
    if not stamp.is_file():
        check_patches(tarball, srcname, patches, ctx.config.cache / "scratch",
                      kernel=kernel.version, avf=avf.version)
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f"{kernel.url}\n" + "".join(f"{n}\n" for n, _ in patches))

    base = template("linux-avf/config.base").decode()
    try:   # no version in the file: an AVF tag that changes nothing must not change the inputs
        config = merge_config(base, fragment_file.read_text(), fragment_name=f"{KERNEL_DIR}/config")
    except ValueError as exc:
        raise RenderProblem(f"AVF {avf.version} {exc}") from None

    files: dict[str, bytes] = {"config": config.encode()}
    sources = [SourceFile("config", sha256(files["config"]))]
    patch_sources = []
    for entry, data in patches:
        name = source_name(entry)
        files[name] = data
        patch_sources.append(SourceFile(name, sha256(data)))
    files["PKGBUILD"] = template(
        "linux-avf/PKGBUILD.j2", tarball_url=kernel.url, tarball_sha256=tarball_sha256,
        srcname=srcname, sources=sources, patches=patch_sources)
    notes = (f"Linux {kernel.version} with {len(patches)} AVF {avf.version} patch(es): "
             + ", ".join(entries),)
    return Rendered(NAME, kernel.pkgver, {"kernel": kernel.version, "avf": avf.version}, files, notes)
