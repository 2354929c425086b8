"""The network half every source shares: bounded requests, retries with exponential back-off,
and one error (UpstreamError naming the upstream and the URL) when it finally fails.

A failure is either transient (connection refused or reset, timeout, HTTP 429 or 5xx, a git
remote that hung up): retried after `backoff`, `2*backoff`, `4*backoff`, ... seconds, up to
`retries` times; or permanent (HTTP 404, a git URL that is no repository): reported at once,
since asking again cannot help.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

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


def stream(upstream: str, url: str, net: NetPolicy, write: Callable[[bytes], None], *,
           accept: str = "*/*", limit: int = MAX_BYTES) -> None:
    """One GET of url, its body handed to write() piece by piece: at most `limit` bytes, each
    read within net.timeout and the whole answer within net.deadline (a server sending one
    byte every few seconds never trips a per-read timeout). Raises Transient for a failure
    worth retrying, UpstreamError otherwise."""
    # imported here: a sync whose upstreams are all git repositories never pays for them (~0.1 s)
    import http.client

    import requests
    import urllib3
    end = time.monotonic() + net.deadline
    try:
        with requests.get(url, timeout=(net.timeout, net.timeout), stream=True,
                          headers={"User-Agent": USER_AGENT, "Accept": accept}) as resp:
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
                    raise Transient(f"no complete answer within {net.deadline:g} s")
                # read1: whatever arrived (at most 64 KiB), so the deadline is checked often
                chunk = resp.raw.read1(64 * 1024, decode_content=True)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise UpstreamError(upstream, url, f"answer larger than {limit} bytes")
                write(chunk)
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


def http_get(upstream: str, url: str, net: NetPolicy, *, accept: str = "*/*") -> bytes:
    """GET url and return the body, retrying transient failures; UpstreamError otherwise."""
    def attempt() -> bytes:
        body = bytearray()
        stream(upstream, url, net, body.extend, accept=accept)
        return bytes(body)

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
