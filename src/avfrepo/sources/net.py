"""The network half every source shares: bounded requests, retries with exponential back-off,
and one error (UpstreamError naming the upstream and the URL) when it finally fails.

Every try is bounded by the upstream's NetPolicy: `timeout` without a byte (a connection, a
read, a git transfer over http(s) that stalls) and `deadline` for the whole answer, however
slowly it trickles in: an HTTP answer's headers and body (stream), a git fetch, clone or
checkout from its first byte to its last (git).

A failure is either transient (connection refused or reset, timeout, HTTP 429 or 5xx, a git
remote that hung up): retried after `backoff`, `2*backoff`, `4*backoff`, ... seconds, up to
`retries` times; or permanent (HTTP 404, a git URL that is no repository): reported at once,
since asking again cannot help.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence, TypeVar

from ..config import NetPolicy
from ..errors import UpstreamError

log = logging.getLogger("avfrepo.sources")

T = TypeVar("T")

USER_AGENT = "avfrepo (+https://example.invalid/avf)"
MAX_BYTES = 256 * 1024 * 1024   # ALARM's core.db is well under 1 MiB; refuse anything absurd
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})

# tests replace this to observe the delays without waiting for them
sleep: Callable[[float], None] = time.sleep


class Transient(Exception):
    """A failure worth another try; `str(exc)` is the reason shown if every try fails."""


def with_retries(upstream: str, url: str, net: NetPolicy, attempt: Callable[[], T]) -> T:
    """attempt() until it returns; Transient failures are retried by net's schedule.

    attempt raises Transient for a failure worth retrying and UpstreamError for a final one.
    """
    delays = net.delays()
    tries = len(delays) + 1
    for i in range(tries):
        try:
            return attempt()
        except Transient as exc:
            if i == tries - 1:
                suffix = f" (gave up after {tries} attempts)" if tries > 1 else ""
                raise UpstreamError(upstream, url, f"{exc}{suffix}") from None
            log.warning("upstream %s (%s): %s; retrying in %.3g s (%d/%d)",
                        upstream, url, exc, delays[i], i + 1, len(delays))
            sleep(delays[i])
    raise AssertionError("unreachable")  # pragma: no cover


class _Deadline:
    """Shuts down every socket one answer opens once `seconds` have passed: the only way to stop
    a server that trickles its headers (every recv returns before the per-read timeout, and
    http.client reads the header lines with no clock of its own)."""

    def __init__(self, seconds: float):
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._token = _WATCH.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        _WATCH.reset(self._token)

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:        # the plain socket's shutdown, under TLS too: a blocked reader wakes up at once
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


_WATCH: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("avfrepo_net_deadline", default=None)


@functools.cache
def _adapter_class():
    """A requests adapter whose connections register their socket with the running _Deadline
    (made on first use: requests and urllib3 are imported only by syncs that use HTTP)."""
    import requests.adapters
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    def watched(cls):
        class Watched(cls):
            def _new_conn(self):
                sock = super()._new_conn()
                if (watch := _WATCH.get()) is not None:
                    watch.add(sock)
                return sock
        return Watched

    pools = {"http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": watched(HTTPConnection)}),
             "https": type("HTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": watched(HTTPSConnection)})}

    class Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, *args, **kwargs):
            manager = super().proxy_manager_for(*args, **kwargs)
            manager.pool_classes_by_scheme = pools
            return manager
    return Adapter


def stream(upstream: str, url: str, net: NetPolicy, write: Callable[[bytes], None], *,
           accept: str = "*/*", limit: int = MAX_BYTES) -> None:
    """One GET of url, its body handed to write() piece by piece: at most `limit` bytes, each
    read within net.timeout and the whole answer, headers included, within net.deadline (a
    server sending one byte or one header line every few seconds never trips a per-read
    timeout). Raises Transient for a failure worth retrying, UpstreamError otherwise."""
    late = f"no complete answer within {net.deadline:g} s"
    with _Deadline(net.deadline) as watch:
        try:
            _stream(upstream, url, net, write, accept, limit, late)
        except (Transient, UpstreamError):
            if watch.fired:         # whatever broke, it broke because the deadline shut the socket
                raise Transient(late) from None
            raise
        if watch.fired:             # the shut socket looked like the end of the body
            raise Transient(late)


def _stream(upstream: str, url: str, net: NetPolicy, write: Callable[[bytes], None], accept: str, limit: int,
            late: str) -> None:
    # imported here: a sync whose upstreams are all git repositories never pays for them (~0.1 s)
    import http.client

    import requests
    import urllib3
    end = time.monotonic() + net.deadline
    try:
        with requests.Session() as session:
            session.mount("http://", _adapter_class()())
            session.mount("https://", _adapter_class()())
            resp = session.get(url, timeout=(net.timeout, net.timeout), stream=True,
                               headers={"User-Agent": USER_AGENT, "Accept": accept})
            with resp:
                _body(upstream, url, resp, write, limit, end, late)
    except requests.Timeout:
        raise Transient(f"no answer within {net.timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise Transient(f"connection failed: {_root_cause(exc)}") from None
    except requests.RequestException as exc:
        # a malformed URL, too many redirects, a broken chunked body, ...
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                            requests.exceptions.ContentDecodingError)):
            raise Transient(f"broken answer: {_root_cause(exc)}") from None
        raise UpstreamError(upstream, url, f"request failed: {_root_cause(exc)}") from None
    except urllib3.exceptions.ReadTimeoutError:
        raise Transient(f"no answer within {net.timeout:g} s") from None
    except urllib3.exceptions.DecodeError as exc:
        raise UpstreamError(upstream, url, f"cannot decode the answer: {_root_cause(exc)}") from None
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError) as exc:
        raise Transient(f"broken answer: {_root_cause(exc)}") from None


def _body(upstream: str, url: str, resp, write: Callable[[bytes], None], limit: int, end: float,
          late: str) -> None:
    if resp.status_code in RETRY_STATUS:
        raise Transient(f"HTTP {resp.status_code} {resp.reason or ''}".rstrip())
    if resp.status_code != 200:
        raise UpstreamError(upstream, url, f"HTTP {resp.status_code} {resp.reason or ''}".rstrip())
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpstreamError(upstream, url, f"answer of {declared} bytes, larger than {limit} bytes")
    total = 0
    while True:
        if time.monotonic() > end:
            raise Transient(late)
        # read1: whatever arrived (at most 64 KiB), so the deadline is checked often
        chunk = resp.raw.read1(64 * 1024, decode_content=True)
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise UpstreamError(upstream, url, f"answer larger than {limit} bytes")
        write(chunk)


def http_get(upstream: str, url: str, net: NetPolicy, *, accept: str = "*/*") -> bytes:
    """GET url and return the body, retrying transient failures; UpstreamError otherwise."""
    def attempt() -> bytes:
        body = bytearray()
        stream(upstream, url, net, body.extend, accept=accept)
        return bytes(body)

    return with_retries(upstream, url, net, attempt)


# git's words for "this will not get better by asking again"
GIT_PERMANENT = ("does not appear to be a git repository", "repository not found", "not found",
                 "authentication failed", "could not read username", "invalid username or password",
                 "couldn't find remote ref", "not our ref")


def _git_verb(args: Sequence[str]) -> str:
    it = iter(args)
    for a in it:
        if a in ("-c", "-C", "--git-dir"):
            next(it, None)
        elif not a.startswith("-"):
            return a
    return "git"


class GitResult(NamedTuple):
    stdout: bytes
    stderr: str         # git's warnings of a command that succeeded


def git(upstream: str, url: str, net: NetPolicy, args: Sequence[str], *, cwd: Path | None = None,
        input: bytes | None = None, before: Callable[[], None] | None = None) -> GitResult:
    """`git ARGS`, a command that may talk to url (a fetch, a clone, a checkout or
    cat-file of a partial clone fetching blobs), bounded by the upstream's NetPolicy:

    - each try as a whole by net.deadline: git runs in a process group of its own, killed with
      its transport helpers (git-remote-https, ssh, a lazy fetch) when the deadline passes;
    - over http(s), by net.timeout without a byte: curl's low-speed limit (http.lowSpeedLimit=1,
      http.lowSpeedTime=timeout), so a server that stalls is left long before the deadline;
    - retried by net's schedule unless git's words say asking again
      cannot help (GIT_PERMANENT); before() runs before each try (to clear a clone's debris).

    Raises UpstreamError naming the upstream, the url and the git command."""
    verb = _git_verb(args)
    stall = max(1, math.ceil(net.timeout))
    argv = ["git", "-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={stall}", *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}

    def attempt() -> GitResult:
        if before is not None:
            before()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE,
                                    stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL)
        except FileNotFoundError:
            raise UpstreamError(upstream, url, "git is not installed") from None
        try:
            out, err = proc.communicate(input, timeout=net.deadline)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise Transient(f"git {verb} did not finish within {net.deadline:g} s (the deadline)") from None
        finally:
            if proc.poll() is None:         # an exception of our own (KeyboardInterrupt)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stderr = err.decode("utf-8", "replace")
        if proc.returncode == 0:
            return GitResult(out, stderr)
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        if "Operation too slow" in stderr or "curl 28" in stderr:
            raise Transient(f"git {verb}: no data for {stall} s")
        reason = f"git {verb} failed: " + (lines[-1] if lines else f"exit status {proc.returncode}")
        if proc.returncode < 0:
            raise Transient(f"git {verb} was killed by signal {-proc.returncode}")
        if any(word in stderr.lower() for word in GIT_PERMANENT):
            raise UpstreamError(upstream, url, reason)
        raise Transient(reason)

    return with_retries(upstream, url, net, attempt)


def _root_cause(exc: BaseException) -> str:
    """The innermost reason, without urllib3's long wrapper messages."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        nxt = seen.__cause__ or seen.__context__
        if nxt is None or nxt is seen:
            break
        seen = nxt
    text = str(seen) or type(seen).__name__
    if "Connection refused" in str(exc) or "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in str(exc) or "Temporary failure in name resolution" in str(exc):
        return "host name not found"
    return text if len(text) < 300 else text[:300] + "..."
