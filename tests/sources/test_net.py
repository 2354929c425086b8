"""Bounded network input: an overall deadline per answer, caps on bytes, clean errors."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from avfrepo import downloads
from avfrepo.config import NetPolicy
from avfrepo.errors import UpstreamError
from avfrepo.sources.net import http_get

from .conftest import Answer


@pytest.fixture
def trickle():
    """A raw HTTP server on 127.0.0.1 that sends its headers, then one byte every 0.2 s for
    ever (never slow enough to trip a per-read timeout)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            def drip(c=conn):
                try:
                    c.recv(4096)
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    while not stop.is_set():
                        c.sendall(b"x")
                        time.sleep(0.2)
                except OSError:
                    pass
                finally:
                    c.close()
            threading.Thread(target=drip, daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/core.db"
    stop.set()
    t.join()
    srv.close()


@pytest.fixture
def header_trickle():
    """A raw HTTP server on 127.0.0.1 that sends its status line, then one header line every
    0.5 s (each read returns long before a per-read timeout); after 12 s it ends the headers and
    sends a small body, so a client without a deadline on the header phase gets an answer late
    instead of hanging the test."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue

            def drip(c=conn):
                try:
                    c.recv(4096)
                    c.sendall(b"HTTP/1.1 200 OK\r\n")
                    for n in range(24):
                        if stop.wait(0.5):
                            return
                        c.sendall(b"X-Slow-%d: x\r\n" % n)
                    c.sendall(b"Content-Length: 2\r\n\r\nok")
                except OSError:
                    pass
                finally:
                    c.close()
            threading.Thread(target=drip, daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/core.db"
    stop.set()
    t.join()
    srv.close()


def test_headers_trickled_line_by_line_meet_the_overall_deadline(header_trickle):
    net = NetPolicy(timeout=2.0, retries=0, backoff=0.001, deadline=1.5)
    start = time.monotonic()
    with pytest.raises(UpstreamError, match=r"no complete answer within 1.5 s$"):
        http_get("alarm", header_trickle, net)
    assert time.monotonic() - start < 3 * 1.5


def test_a_trickling_server_meets_the_overall_deadline(trickle):
    net = NetPolicy(timeout=2.0, retries=0, backoff=0.001, deadline=1.0)
    start = time.monotonic()
    with pytest.raises(UpstreamError, match="no complete answer within 1 s"):
        http_get("alarm", trickle, net)
    assert time.monotonic() - start < 3.0


def test_a_trickling_download_meets_the_overall_deadline(trickle, tmp_path):
    net = NetPolicy(timeout=2.0, retries=0, backoff=0.001, deadline=1.0)
    with pytest.raises(UpstreamError, match="no complete answer"):
        downloads.cached("linux", trickle, tmp_path, net)
    assert not list((tmp_path / "downloads").rglob("*.part"))


def test_a_download_larger_than_the_cap_is_refused(http_server, tmp_path, monkeypatch):
    monkeypatch.setattr(downloads, "MAX_DOWNLOAD", 1000)
    s = http_server({"/big.tar.gz": b"y" * 5000})
    with pytest.raises(UpstreamError, match="larger than 1000 bytes"):
        downloads.cached("linux", s.url("/big.tar.gz"), tmp_path, NetPolicy(timeout=5, retries=0))


def test_a_redirect_loop_in_a_download_is_one_upstream_error(http_server, tmp_path):
    s = http_server({})
    s.routes["/loop"] = Answer(302, b"", {"Location": s.url("/loop")})
    with pytest.raises(UpstreamError, match="request failed: .*redirect"):
        downloads.cached("linux", s.url("/loop"), tmp_path, NetPolicy(timeout=5, retries=0))


def test_a_body_that_does_not_decode_is_one_upstream_error(http_server, tmp_path):
    s = http_server({"/x.tar.gz": Answer(200, b"this is not gzip", {"Content-Encoding": "gzip"})})
    with pytest.raises(UpstreamError, match="decode"):
        downloads.cached("linux", s.url("/x.tar.gz"), tmp_path, NetPolicy(timeout=5, retries=0))
