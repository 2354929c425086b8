"""One run lock per repository (flock), with a timeout and a message naming the holder.

The lock file `<repo>/.lock` stays; flock is released by the kernel when the holder exits,
even on SIGKILL, so a crashed run never leaves the repository locked. The holder writes
who it is into the file so a waiting run can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import AvfrepoError


class LockTimeout(AvfrepoError):
    """Another avfrepo holds the repository lock for longer than we may wait."""


def _holder(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "unknown holder"
    except OSError:
        return "unknown holder"


def _open(path: Path, write: bool = True):
    """The lock file, never through a symbolic link, and only a regular file with one link:
    the holder truncates and writes it, so a planted symbolic or hard link to another file
    would have that file truncated. write=False: open an existing one read-only (a shared
    lock needs no more)."""
    flags = (os.O_RDWR | os.O_CREAT) if write else os.O_RDONLY
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AvfrepoError(f"{path}: is a symbolic link; the lock must be a regular file "
                               "(remove the link)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise AvfrepoError(f"{path}: not a regular file; the lock must be one")
    if st.st_nlink != 1:
        os.close(fd)
        raise AvfrepoError(f"{path}: has {st.st_nlink} hard links; the lock must be a file of its own "
                           "(remove it: avfrepo creates it again)")
    return fd


def _tell(fd: int, text: str) -> None:
    """Name the holder in the lock file: a courtesy to waiting runs, so a full disk (ENOSPC)
    must not fail the run that holds the lock."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass


@contextlib.contextmanager
def repo_lock(repo: Path, timeout: float, what: str = "",
              progress: Callable[[str], None] = lambda s: None, *, shared: bool = False) -> Iterator[None]:
    """Hold the repository lock: exclusive for changes, shared (any number of readers, no
    writer) for `verify`.

    A reader that may not write the repository (another user's, or a read-only mount) takes
    the shared lock on the existing lock file opened read-only; when there is none it reads
    without one: no avfrepo has published there yet, and this user could not have created it."""
    path = repo / ".lock"
    try:
        repo.mkdir(parents=True, exist_ok=True)
        fh = _open(path)      # a file descriptor
    except OSError as exc:
        if not shared or exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:
            fh = _open(path, write=False)
        except FileNotFoundError:
            yield
            return
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fh, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fh)
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{repo} is locked by {holder}; gave up after {timeout:g} s "
                                      f"(raise [repo] lock_timeout to wait longer)") from None
                if not told:
                    progress(f"waiting up to {timeout:g} s for the lock on {repo}, held by {holder}")
                    told = True
                time.sleep(0.05)
        if not shared:
            _tell(fh, f"pid {os.getpid()} on {socket.gethostname()} ({what or ' '.join(sys.argv[:3])}) "
                      f"since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        try:
            yield
        finally:
            if not shared:
                _tell(fh, "")
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        os.close(fh)
