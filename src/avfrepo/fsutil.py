"""Small filesystem helpers: atomic writes and directory swaps, and the one way a file of an
upstream checkout is read (read_tree_file)."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path, PurePosixPath

# The largest file avfrepo reads from an upstream tree (a checkout or a blob of a git
# upstream): AVF's largest, build/debian/ttyd/xtermjs_a11y.patch, is ~2.4 MB; ALARM's largest
# PKGBUILD-directory file sync reads (core/linux-aarch64's config) ~250 KB.
MAX_UPSTREAM_FILE = 16 * 1024 * 1024


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
    """Remove the staging and old copies replace_dir's killed runs left under parent, and the
    temporary files of atomic_write's (`.<name>.<random>.tmp`), so that a later
    `git add --all` never commits them. Returns what was removed."""
    gone = []
    if parent.is_dir():
        for p in parent.iterdir():
            if not p.name.startswith(".") or p.is_symlink():
                continue
            if (".new." in p.name or p.name.endswith(".old")) and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                gone.append(p)
            elif p.name.endswith(".tmp") and p.name.count(".") >= 3 and p.is_file():
                p.unlink(missing_ok=True)
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


class TreeFileError(ValueError):
    """A path of an upstream tree that is not read: not a regular file reached without a
    symbolic link, too large, or (as text) not UTF-8. `local` is True for what git cannot
    check out (a FIFO, device or socket): something on this machine put it there."""

    def __init__(self, rel: str, reason: str, *, local: bool = False):
        self.rel, self.reason, self.local = rel, reason, local
        super().__init__(f"{rel} {reason}")


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISREG, "a regular file"))


def _not_regular(rel: str, where: str, st: os.stat_result, dir_fd: int, name: str) -> TreeFileError:
    kind = next((k for test, k in _KINDS if test(st.st_mode)), f"of file mode {st.st_mode:o}")
    if stat.S_ISLNK(st.st_mode):
        try:
            kind += f" (to {os.readlink(name, dir_fd=dir_fd)[:200]!r})"
        except OSError:
            pass
        return TreeFileError(rel, f"{'is' if where == rel else f'has {where}, which is'} {kind}: "
                             "a link in an upstream tree is never followed")
    if where != rel:
        return TreeFileError(rel, f"has {where}, which is {kind}, not a directory")
    local = not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode))
    return TreeFileError(rel, f"is {kind}, not a regular file", local=local)


def read_tree_file(tree: Path, rel: str, max_bytes: int | None = None, *, text: bool = False) -> bytes | str:
    """The content of the regular file `rel` (a relative path) of the upstream tree `tree`,
    opened component by component below it (openat with O_NOFOLLOW): nothing outside the
    tree is ever read.

    A symbolic link anywhere on the path, even one pointing inside the tree, is a
    TreeFileError naming the path (simplest and safe: no upstream file sync reads is a link);
    so is a directory, FIFO, device or socket where the file should be (these are checked
    before opening, so a FIFO never blocks and a device is never opened), a file larger
    than max_bytes (default MAX_UPSTREAM_FILE, checked before reading and while reading),
    and with text=True content that is not UTF-8 (the str is returned). A missing file is
    FileNotFoundError."""
    limit = MAX_UPSTREAM_FILE if max_bytes is None else max_bytes
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or "\0" in rel or any(p in (".", "..") for p in parts):
        raise TreeFileError(rel, "is not a plain relative path")
    dir_fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, name in enumerate(parts):
            where = "/".join(parts[:i + 1])
            try:
                st = os.lstat(name, dir_fd=dir_fd)
            except FileNotFoundError:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", rel) from None
            last = i == len(parts) - 1
            if not (stat.S_ISREG(st.st_mode) if last else stat.S_ISDIR(st.st_mode)):
                raise _not_regular(rel, where, st, dir_fd, name)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_NONBLOCK | os.O_NOCTTY if last
                                                                   else os.O_DIRECTORY)
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except OSError as exc:          # replaced since lstat: say what it is now
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
                    raise
                raise _not_regular(rel, where, os.lstat(name, dir_fd=dir_fd), dir_fd, name) from None
            os.close(dir_fd)
            dir_fd = fd
        st = os.fstat(dir_fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(rel, rel, st, dir_fd, "")
        if st.st_size > limit:
            raise TreeFileError(rel, f"has {st.st_size} bytes, more than the {limit} an upstream file may have")
        chunks, total = [], 0
        while chunk := os.read(dir_fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise TreeFileError(rel, f"has more than the {limit} bytes an upstream file may have")
    finally:
        os.close(dir_fd)
    data = b"".join(chunks)
    if not text:
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TreeFileError(rel, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
