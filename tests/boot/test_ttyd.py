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
