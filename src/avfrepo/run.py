"""The one place external programs are started.

Every call is logged, captured, bounded by a timeout and turned into a ToolError naming the
tool on failure, so no bare subprocess.run is scattered around the code base.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Mapping, Sequence, TypeVar

from .errors import ToolError

log = logging.getLogger("avfrepo.run")
T = TypeVar("T")

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def which(tool: str) -> str | None:
    return shutil.which(tool)


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    check: bool = True,
    input: str | None = None,
    hint: str = "",
    log_file: Path | None = None,
    tool: str | None = None,
) -> Result:
    """Run argv; raise ToolError (naming argv[0]) when it fails or times out.

    env is added on top of the current environment; tool names the program in errors when
    argv[0] is only a wrapper (runuser, env). With log_file, stdout and stderr go
    to that file (for long builds) instead of being captured.
    """
    args = [os.fspath(a) for a in argv]
    tool = tool or Path(args[0]).name
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    log.debug("run %s (cwd=%s)", " ".join(args), cwd)
    try:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "ab") as fh:
                proc = subprocess.run(
                    args, cwd=cwd, env=full_env, timeout=timeout, stdout=fh,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )
            out, err = "", ""
        else:
            proc = subprocess.run(
                args, cwd=cwd, env=full_env, timeout=timeout, capture_output=True, text=True,
                input=input, stdin=None if input is not None else subprocess.DEVNULL,
            )
            out, err = proc.stdout, proc.stderr
    except FileNotFoundError as exc:
        raise ToolError(tool, args, 127, str(exc), hint or f"{tool} is not installed (see scripts/setup-debian.sh)") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(tool, args, None, f"no answer within {timeout} s", hint) from exc
    if check and proc.returncode != 0:
        output = (out or "") + (err or "")
        if log_file is not None:
            output = _tail(log_file)
        raise ToolError(tool, args, proc.returncode, output, hint)
    return Result(args, proc.returncode, out, err)


def run_bounded(argv: Sequence[str | os.PathLike[str]], *, limit: int, timeout: float = DEFAULT_TIMEOUT,
                hint: str = "") -> bytes:
    """Run argv and return its stdout, but never more than `limit` bytes of it: a tool that
    would write more (a decompression bomb) is killed and that is a ToolError."""
    import time
    args = [os.fspath(a) for a in argv]
    tool = Path(args[0]).name
    log.debug("run %s (output limit %d bytes)", " ".join(args), limit)
    end = time.monotonic() + timeout

    def read_all(pipe: IO[bytes]) -> bytes:
        out = bytearray()
        while chunk := pipe.read1(1 << 16):
            out += chunk
            if len(out) > limit:
                raise ToolError(tool, args, None, f"wrote more than {limit} bytes; stopped", hint)
            if time.monotonic() > end:
                raise ToolError(tool, args, None, f"no answer within {timeout} s", hint)
        return bytes(out)
    return stream(args, read_all, timeout=timeout, hint=hint)


def stream(argv: Sequence[str | os.PathLike[str]], consume: Callable[[IO[bytes]], T], *,
           timeout: float = DEFAULT_TIMEOUT, hint: str = "") -> T:
    """Run argv and hand its stdout, as a pipe, to consume(); return what consume returns.
    The tool failing (or not finishing within timeout after consume returned) is a ToolError;
    an exception in consume kills the tool and goes on up."""
    import tempfile
    args = [os.fspath(a) for a in argv]
    tool = Path(args[0]).name
    log.debug("run %s (streamed)", " ".join(args))
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)
        except FileNotFoundError as exc:
            raise ToolError(tool, args, 127, str(exc), hint or f"{tool} is not installed") from exc
        assert proc.stdout is not None
        try:
            result = consume(proc.stdout)
            while proc.stdout.read(1 << 16):      # what consume left unread
                pass
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolError(tool, args, None, f"no answer within {timeout} s", hint) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        if rc != 0:
            err.seek(0)
            raise ToolError(tool, args, rc, err.read().decode("utf-8", "replace"), hint)
    return result


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) + f"\n(full log: {path})"
