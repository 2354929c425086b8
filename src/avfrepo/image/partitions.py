"""The two partition images, made from directories without mounting anything.

- root_part: `mkfs.ext4 -d ROOT` (no orphan_file: Android's e2fsck does not know it), then
  shrunk with resize2fs to its estimated minimum plus the configured headroom, and the file
  truncated to the filesystem's size.
- efi_part: a file of the configured size, `mkfs.vfat`, filled with mtools (`mmd`, `mcopy`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

from ..errors import ToolError
from ..run import run
from .errors import ImageError
from .rootfs import tree_bytes

BLOCK = 4096
MIB = 1 << 20
EXT4_FEATURES = "^orphan_file"


def _no_space(exc: ToolError) -> bool:
    return any(s in exc.output for s in ("No space left", "Could not allocate block", "Disk full",
                                         "disk full", "Not enough space", "not enough space"))


def make_root_part(root: Path, image: Path, *, label: str, uuid: str, headroom_mib: int,
                   progress: Callable[[str], None]) -> dict[str, int]:
    content, inodes = tree_bytes(root, BLOCK)
    # generous first size: content + inode tables/journal/metadata; shrunk right after
    size = int(content * 1.25) + inodes * 256 * 2 + 96 * MIB + headroom_mib * MIB
    for attempt in range(3):
        size = -(-size // BLOCK) * BLOCK
        image.unlink(missing_ok=True)
        with open(image, "wb") as fh:
            fh.truncate(size)
        progress(f"image: mkfs.ext4 -d ({size // MIB} MiB, content {content // MIB} MiB)")
        try:
            run(["mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", str(BLOCK), "-O", EXT4_FEATURES, "-L", label,
                 "-U", uuid, "-m", "1", "-E", "root_owner=0:0", "-d", str(root), str(image)], timeout=3600)
            break
        except ToolError as exc:
            if not (_no_space(exc) and "-d" in exc.argv) or attempt == 2:
                raise
            if _disk_full(image.parent, size):
                raise
            size *= 2
    minimum = _minimum_blocks(image)
    target = minimum + -(-headroom_mib * MIB // BLOCK)
    if target * BLOCK < size:
        progress(f"image: resize2fs to {target * BLOCK // MIB} MiB (minimum {minimum * BLOCK // MIB} MiB "
                 f"+ headroom {headroom_mib} MiB)")
        run(["e2fsck", "-fy", str(image)], check=False)      # resize2fs wants a freshly checked fs
        run(["resize2fs", str(image), f"{target}"], timeout=3600)
        with open(image, "r+b") as fh:
            fh.truncate(target * BLOCK)
        size = target * BLOCK
    res = run(["e2fsck", "-fn", str(image)], check=False)
    if res.returncode != 0:
        raise ImageError(f"the new root filesystem does not check clean (e2fsck -fn exited {res.returncode}):\n  "
                         + "\n  ".join((res.stdout + res.stderr).strip().splitlines()[-8:]))
    return {"bytes": size, "content_bytes": content, "inodes": inodes, "minimum_bytes": minimum * BLOCK}


def _disk_full(folder: Path, wanted: int) -> bool:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize < wanted


def _minimum_blocks(image: Path) -> int:
    out = run(["resize2fs", "-P", str(image)]).stdout
    m = re.search(r"minimum size of the filesystem:\s*(\d+)", out)
    if not m:
        raise ImageError(f"resize2fs -P gave no minimum size for {image}: {out.strip()}")
    return int(m.group(1))


def make_efi_part(esp: Path, image: Path, *, label: str, volume_id: str, size_mib: int,
                  progress: Callable[[str], None]) -> dict[str, int]:
    content, _ = tree_bytes(esp, 4096)
    usable = size_mib * MIB - 2 * MIB     # FATs, root dir, reserved sectors (a safe bound)
    if content > usable:
        raise ImageError(f"the ESP content ({content / MIB:.1f} MiB: kernel, initramfs, systemd-boot) does not fit "
                         f"[image] efi_size_mib = {size_mib}: raise it")
    image.unlink(missing_ok=True)
    with open(image, "wb") as fh:
        fh.truncate(size_mib * MIB)
    progress(f"image: mkfs.vfat ({size_mib} MiB) + mcopy")
    run(["mkfs.vfat", "-n", label, "-i", volume_id, str(image)])
    env = {"MTOOLS_SKIP_CHECK": "1"}
    for dirpath, dirnames, filenames in os.walk(esp):
        rel = Path(dirpath).relative_to(esp)
        for d in sorted(dirnames):
            run(["mmd", "-i", str(image), f"::/{(rel / d).as_posix()}"], env=env)
        for f in sorted(filenames):
            try:
                run(["mcopy", "-i", str(image), "-m", "-Q", str(Path(dirpath) / f), f"::/{(rel / f).as_posix()}"], env=env)
            except ToolError as exc:
                if _no_space(exc):
                    raise ImageError(f"the ESP content does not fit [image] efi_size_mib = {size_mib}: raise it") from None
                raise
    return {"bytes": size_mib * MIB, "content_bytes": content}
