"""Small filesystem helpers: atomic writes and directory swaps."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write data to path so readers see the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _leftovers(target: Path) -> list[Path]:
    return [p for p in target.parent.glob(f".{target.name}.new.*")] + \
        [p for p in (target.parent / f".{target.name}.old",) if os.path.lexists(p)]


def remove_swap_leftovers(parent: Path) -> list[Path]:
    """Remove the staging and old copies replace_dir's killed runs left under parent (so a
    later `git add --all` never commits them). Returns what was removed."""
    gone = []
    if parent.is_dir():
        for p in parent.iterdir():
            if p.name.startswith(".") and (".new." in p.name or p.name.endswith(".old")) and p.is_dir() \
                    and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
    return gone


def replace_dir(target: Path, files: dict[str, bytes], modes: dict[str, int] | None = None) -> None:
    """Make directory `target` hold exactly `files`, swapping a fully written copy into place:
    one atomic exchange where the kernel offers it, so a kill at any instant leaves the old or
    the new directory, never none. Leftovers of a killed earlier run are removed first."""
    modes = modes or {}
    target.parent.mkdir(parents=True, exist_ok=True)
    for p in _leftovers(target):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() and not p.is_symlink() else p.unlink()
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.new."))
    old = target.parent / f".{target.name}.old"
    try:
        for rel, data in files.items():
            p = staging / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            os.chmod(p, modes.get(rel, 0o644))
        os.chmod(staging, 0o755)
        if target.is_dir() and not target.is_symlink() and _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)      # it holds the old content now
            return
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise


def link_or_copy(src: Path, dest: Path) -> None:
    """A hard link to src at dest, or a copy when they are on different file systems (EXDEV)."""
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copy2(src, dest)


def read_tree(root: Path) -> dict[str, bytes]:
    """Every regular file below root, by relative path."""
    if not root.is_dir():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (packages, tarballs, images)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
