"""The boot tests' images: built by `avfrepo image` from stand-in repositories whose packages
carry real Debian arm64 binaries (standins.py, userland.py), then changed one defect at a time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Callable

import pytest

from avfrepo.image import archive as image_archive
from avfrepo.image import build_image

from ..conftest import require_build_user, require_tools, shared
from ..image.standins import image_config
from ..repo.conftest import trusted_gpgdir  # noqa: F401
from . import standins, userland

BOOT_TOOLS = ("qemu-system-aarch64", "openssl", "mtype", "mdel", "debugfs", "tar", "makepkg", "repo-add", "pacman",
              "mkfs.ext4", "mkfs.vfat")
FIRMWARE = Path("/usr/share/qemu-efi-aarch64/QEMU_EFI.fd")


@pytest.fixture(scope="session")
def arm64_userland() -> Path:
    require_tools(*BOOT_TOOLS)
    require_build_user()
    if not FIRMWARE.is_file():
        pytest.skip("needs qemu-efi-aarch64 (scripts/setup-debian.sh)")
    tree = userland.cached()
    if tree is None:
        why = userland.missing_requirements() or "not made yet"
        pytest.skip(f"no arm64 userland in {userland.cache_root()} ({why}): `bash scripts/setup-debian.sh --tests` "
                    "makes it (network to Debian's archive, as an install step: the tests use no network)")
    return tree


@pytest.fixture(scope="session")
def boot_repos(tmp_path_factory, signing_home, arm64_userland) -> tuple[Path, Path, Path]:
    """Made once per run, not once per xdist worker (shared): read-only to the tests."""
    return tuple(Path(p) for p in shared(tmp_path_factory, "boot-repos", lambda base: [
        str(p) for p in standins.make_repos(base, signing_home, arm64_userland)]))


@pytest.fixture(scope="session")
def stock_image(tmp_path_factory, signing_home, boot_repos, trusted_gpgdir) -> Path:  # noqa: F811
    """images.tar.gz exactly as `avfrepo image` makes it from the stand-in repositories (once per run)."""
    def make(base: Path) -> str:
        gpg = base / "gnupg"
        shutil.copytree(trusted_gpgdir, gpg, symlinks=True, ignore=shutil.ignore_patterns("S.*"))
        core, avf, _ = boot_repos
        cfg = image_config(base / "avfrepo.toml", signing_home, core, avf, gpg,
                           packages=("avf-base", "linux-avf", "avf-guest-agents"), headroom_mib=192,
                           efi_size_mib=256, memory_mib=1024)
        return str(build_image(cfg).output)
    return Path(shared(tmp_path_factory, "boot-image", make))


def rewrite(members: Path, dest: Path, edit: Callable[[Path], None], copy: tuple[str, ...] = ()) -> Path:
    """images.tar.gz of the good image's members (good_image_members) with edit(folder) applied.
    The small members and those named in `copy` are copies the edit may change; the partition
    files not named are hard links to the run's one extraction, checked unchanged afterwards (an
    edit that wrote to one would change every later defect image). Written as image_archive.write
    writes it, a gzip'd GNU tar of the same members, at gzip level 0 (stored blocks): still the
    format the app reads; what these images test is the edit, not the compression (level 1 cost
    ~9 s of CPU for the ~1 GB, level 0 ~2.4 s; each boot then inflates stored blocks, ~2 s, not ~4)."""
    folder = dest.parent / (dest.name + ".d")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    linked = {}
    for name in image_archive.MEMBERS:
        src = members / name
        if name in copy or src.stat().st_size < 1 << 20:
            shutil.copyfile(src, folder / name)
        else:
            os.link(src, folder / name)
            linked[name] = _stamp(src)
    edit(folder)
    changed = [n for n, stamp in linked.items() if _stamp(members / n) != stamp]
    assert not changed, f"the edit changed {changed}, hard links to the run's shared extraction: name them in copy="
    comp = image_archive.compressor()
    level = 0 if comp == "pigz" else 1                          # gzip(1) has no level 0
    res = subprocess.run(["tar", "--create", "--format=gnu", "--owner=0", "--group=0", "--numeric-owner",
                          f"--use-compress-program={comp} -{level}", "--file", str(dest),
                          "-C", str(folder), *image_archive.MEMBERS], capture_output=True, text=True)
    # GNU tar says "file changed as we read it" (exit 1) when a file's ctime moves while it reads:
    # another worker's rewrite linking the same shared partition does that (a link count is in the
    # inode). Not a change of content: the stamps (size, mtime) of the linked files must not move.
    raced = [ln for ln in res.stderr.splitlines() if ln.strip()]
    benign = res.returncode == 1 and raced and all(
        ln.endswith("file changed as we read it") and ln.split(": ")[1] in linked for ln in raced)
    if res.returncode != 0 and not benign:
        raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout, res.stderr)
    assert all(_stamp(members / n) == stamp for n, stamp in linked.items())
    shutil.rmtree(folder)
    return dest


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def edit_vm_config(folder: Path, change: Callable[[dict], None]) -> None:
    """Apply change to the image folder's vm_config.json, in place."""
    path = folder / "vm_config.json"
    cfg = json.loads(path.read_text())
    change(cfg)
    path.write_text(json.dumps(cfg, indent=2) + "\n")


def set_esp_writable(writable: bool) -> Callable[[Path], None]:
    def change(cfg: dict) -> None:
        for p in cfg["disks"][0]["partitions"]:
            if p["label"] == "EFI":
                p["writable"] = writable
    return lambda folder: edit_vm_config(folder, change)


@pytest.fixture(scope="session")
def good_image(stock_image) -> Path:
    """The image exactly as `avfrepo image` makes it: its ESP is writable (issue 10's default:
    /boot is mounted rw), so the good boot boots what ships, with no rewrite."""
    with tarfile.open(stock_image, "r|gz") as tar:         # vm_config.json is the second member: read no further
        cfg = next(json.load(tar.extractfile(m)) for m in tar if m.name == "vm_config.json")
    esp = [p["writable"] for p in cfg["disks"][0]["partitions"] if p["label"] == "EFI"]
    assert esp == [True], f"the image step's vm_config.json: EFI writable {esp}"
    return stock_image


@pytest.fixture(scope="session")
def good_image_members(tmp_path_factory, good_image) -> Path:
    """The good image's members, extracted once per run (shared): read-only to the tests, which
    make their defect images from it with rewrite()."""
    def make(base: Path) -> str:
        subprocess.run(["tar", "-xzf", str(good_image), "-C", str(base)], check=True)
        return str(base)
    return Path(shared(tmp_path_factory, "boot-image-members", make))


def one_cpu(folder: Path) -> None:
    """cpu_topology "one_cpu", the app's other setting: the defect boots run on one vCPU (the good
    boot keeps the image's match_host), so two boots at once do not put 4 vCPU threads on 2 cores."""
    edit_vm_config(folder, lambda cfg: cfg.update(cpu_topology="one_cpu"))


def without_kernel(folder: Path) -> None:
    subprocess.run(["mdel", "-i", str(folder / "efi_part"), "::/vmlinuz-linux-avf"], check=True,
                   env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})


def wrong_root_guid(folder: Path) -> None:
    edit_vm_config(folder, lambda cfg: cfg["disks"][0]["partitions"][1].update(guid=str(uuid.uuid4())))


FAILING_UNIT = "standin-fails.service"


def with_failing_unit(folder: Path) -> None:
    """A unit enabled for multi-user.target whose program exits 1, written into root_part."""
    unit = folder / FAILING_UNIT
    unit.write_text("[Unit]\nDescription=Boot test unit that fails\n\n[Service]\nType=oneshot\n"
                    "ExecStart=/usr/bin/false\n\n[Install]\nWantedBy=multi-user.target\n")
    cmds = (f"write {unit} /usr/lib/systemd/system/{FAILING_UNIT}\n"
            f"symlink /etc/systemd/system/multi-user.target.wants/{FAILING_UNIT} "
            f"/usr/lib/systemd/system/{FAILING_UNIT}\n")
    subprocess.run(["debugfs", "-w", "-f", "-", str(folder / "root_part")], input=cmds.encode(), check=True,
                   capture_output=True)
    unit.unlink()
