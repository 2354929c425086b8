"""Typed errors. The CLI maps each family to an exit code; nothing else catches broadly."""

from __future__ import annotations


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
