"""One run lock per repository (flock), with a timeout and a message naming the holder.

The lock file `<repo>/.lock` stays; flock is released by the kernel when the holder exits,
even on SIGKILL, so a crashed run never leaves the repository locked. The holder writes
who it is into the file so a waiting run can say whom it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import AvfrepoError


class LockTimeout(AvfrepoError):
    """Another avfrepo holds the repository lock for longer than we may wait."""


def _holder(fh) -> str:
    try:
        fh.seek(0)
        return fh.read().strip() or "unknown holder"
    except OSError:
        return "unknown holder"


@contextlib.contextmanager
def repo_lock(repo: Path, timeout: float, what: str = "",
              progress: Callable[[str], None] = lambda s: None) -> Iterator[None]:
    repo.mkdir(parents=True, exist_ok=True)
    path = repo / ".lock"
    fh = open(path, "a+")
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} ({what or ' '.join(sys.argv[:3])}) "
                 f"since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
