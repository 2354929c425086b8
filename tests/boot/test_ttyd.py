"""The ttyd WebSocket client without a VM: ttyd PINGs and hangs up a client that sends no PONG."""

from __future__ import annotations

import socket

from avfrepo.boot import ttyd


def _unmask(frame: bytes) -> tuple[int, bytes]:
    op, n = frame[0] & 0x0F, frame[1] & 0x7F
    mask, payload = frame[2:6], frame[6:6 + n]
    return op, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def test_a_ping_is_answered_with_its_pong():
    ours, theirs = socket.socketpair()
    sh = object.__new__(ttyd.Shell)
    sh.sock, sh.pings, sh.out = ours, 0, ""
    ours.settimeout(5)
    theirs.sendall(bytes([0x89, 4]) + b"abcd" + bytes([0x82, 3]) + b"0hi")   # PING "abcd", then output "hi"
    assert sh._frame() == (9, b"abcd")          # returned too, so that the caller's deadline holds
    assert sh._frame() == (2, b"0hi")
    assert sh.pings == 1
    theirs.settimeout(5)
    assert _unmask(theirs.recv(64)) == (10, b"abcd")                        # PONG with the PING's payload
    ours.close()
    theirs.close()


def test_ttyd_closing_mid_frame_is_a_connection_error():
    ours, theirs = socket.socketpair()
    sh = object.__new__(ttyd.Shell)
    sh.sock, sh.pings, sh.out = ours, 0, ""
    theirs.sendall(bytes([0x82, 10]) + b"0ab")
    theirs.close()
    try:
        sh._frame()
    except ConnectionError:
        pass
    else:
        raise AssertionError("no ConnectionError")
    ours.close()


def test_a_terminal_that_stays_silent_is_given_up_naming_the_cause(monkeypatch):
    """ttyd answers the WebSocket and sends its title and preferences, then no output ever (what
    a ttyd that stopped reading the pty after login's vhangup does): a TimeoutError after `ready`
    that says so, not a bare socket timeout."""
    import threading
    import time

    import pytest
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(ttyd, "_connect", lambda *a: ours)

    def server():
        req = b""
        while b"\r\n\r\n" not in req:
            req += theirs.recv(1)
        theirs.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        theirs.recv(4096)                                           # the client's size JSON
        theirs.sendall(bytes([0x82, 6]) + b"1title" + bytes([0x82, 3]) + b"2{}")
    t = threading.Thread(target=server, daemon=True)
    t.start()
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"wrote nothing in 1 s .*login-vhangup\.patch"):
        ttyd.Shell(7681, None, None, timeout=5, ready=1)
    assert time.monotonic() - start < 4
    t.join(5)
    ours.close()
    theirs.close()
