"""Typed errors. The CLI maps each family to an exit code; nothing else catches broadly."""

from __future__ import annotations

import errno


class AvfrepoError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code = 1


class ConfigError(AvfrepoError):
    """The configuration file or the command line is wrong (exit 2)."""

    exit_code = 2


class ToolError(AvfrepoError):
    """An external tool (git, makepkg, repo-add, gpg, pacman) failed."""

    def __init__(self, tool: str, argv: list[str], returncode: int | None, output: str, hint: str = ""):
        self.tool = tool
        self.argv = argv
        self.returncode = returncode
        self.output = output
        tail = "\n".join(output.strip().splitlines()[-15:])
        status = "timed out" if returncode is None else f"exited {returncode}"
        msg = f"{tool} {status}" + (f" ({hint})" if hint else "")
        msg += f"\n  command: {' '.join(argv)}"
        if tail:
            msg += "\n  " + tail.replace("\n", "\n  ")
        super().__init__(msg)


class UpstreamError(AvfrepoError):
    """An upstream could not be queried or answered something unusable."""

    def __init__(self, upstream: str, url: str, reason: str):
        self.upstream = upstream
        self.url = url
        super().__init__(f"upstream {upstream} ({url}): {reason}")


class SigningError(AvfrepoError):
    """No usable signing key, or a signature could not be made."""


class NothingSynced(AvfrepoError):
    """pkgbuilds/ holds no package yet: `avfrepo sync` has never run (exit 1)."""

    def __init__(self, pkgbuilds):
        super().__init__(f"nothing synced yet: {pkgbuilds} has no package; run `avfrepo sync` (it queries the "
                         "upstreams over the network), review and commit pkgbuilds/, then build")


class StateError(AvfrepoError):
    """The state file is unreadable or contradicts itself."""


_OS_HINTS = {
    errno.ENOSPC: "the file system is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EXDEV: "source and destination are on different file systems",
    errno.EROFS: "the file system is read-only",
    errno.ELOOP: "a symbolic link where a regular file belongs",
}


def describe(exc: BaseException) -> tuple[str, int]:
    """(one-line message, exit code) for any exception that reaches the command line: an
    AvfrepoError as it says, an OSError naming the file and the cause, a network or git
    failure naming the URL, anything else as an internal error (`--debug` shows the traceback)."""
    if isinstance(exc, AvfrepoError):
        return str(exc), exc.exit_code
    if isinstance(exc, OSError) and exc.errno is not None:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        cause = exc.strerror or errno.errorcode.get(exc.errno, str(exc.errno))
        hint = _OS_HINTS.get(exc.errno)
        return (f"{where + ': ' if where else ''}{cause}" + (f" ({hint})" if hint and hint != cause.lower() else "")), 1
    mod = type(exc).__module__ or ""
    if mod.startswith(("requests", "urllib3")):
        req = getattr(exc, "request", None)
        url = getattr(req, "url", None) or ""
        return f"{url + ': ' if url else ''}{type(exc).__name__}: {_first_line(exc)}", 1
    if mod.startswith("git"):
        text = getattr(exc, "stderr", "") or str(exc)
        return f"git: {_first_line(text)}", 1
    return (f"internal error: {type(exc).__name__}: {_first_line(exc)} "
            "(run with --debug for the traceback)"), 1


def _first_line(obj: object) -> str:
    lines = [l.strip() for l in str(obj).strip().splitlines() if l.strip()]
    text = lines[0] if lines else type(obj).__name__
    return text if len(text) <= 300 else text[:300] + "..."
