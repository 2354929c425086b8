"""A client of ttyd as the Terminal app is one: TLS with a client certificate, HTTP, then the
WebSocket ttyd speaks (subprotocol `tty`: a JSON hello, then frames whose first byte is the
message type; `0` carries terminal input or output).

Through it the boot runs its in-guest checks in the shell the user would get (`login -f droid`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import struct
import time
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\r")


def _context(cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE       # the server certificate is made by the guest on first boot
    if cert and key:
        ctx.load_cert_chain(cert, key)
    return ctx


def _connect(port: int, cert: Path | None, key: Path | None, timeout: float) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return _context(cert, key).wrap_socket(raw)
    except BaseException:
        raw.close()
        raise


def https_get(port: int, cert: Path | None, key: Path | None, path: str = "/", timeout: float = 20) -> tuple[int, bytes]:
    """(status, body) of a GET over TLS; raises OSError/ssl.SSLError when the server refuses."""
    s = _connect(port, cert, key, timeout)
    with s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if not data.startswith(b"HTTP/1."):
        raise ConnectionError(f"no HTTP response ({len(data)} bytes)")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def refused(port: int, cert: Path | None, key: Path | None) -> tuple[bool, str]:
    """(True, how) when the TLS server refuses a client with this certificate (or none)."""
    try:
        status, _ = https_get(port, cert, key, timeout=15)
    except (ssl.SSLError, OSError, ConnectionError) as exc:
        return True, type(exc).__name__ + ": " + (str(exc).splitlines() or [""])[0][:120]
    return False, f"answered HTTP {status}"


class Shell:
    """ttyd's terminal: run a command, get its output and exit status."""

    def __init__(self, port: int, cert: Path, key: Path, timeout: float = 30, ready: float = 15):
        """ready: how long login may take to write its first output. A terminal that stays
        silent for good is a ttyd that stopped reading it: ttyd 1.7.7 does so when util-linux
        login hangs the terminal up at the start of the session (vhangup; ttyd-avf carries
        login-vhangup.patch against it), in most sessions under TCG. So a silent terminal is
        given up early and the caller opens another (Session._shell), instead of waiting on it."""
        self.sock = _connect(port, cert, key, timeout)
        self.sock.settimeout(timeout)
        self.pings = 0
        k = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Sec-WebSocket-Protocol: tty\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("ttyd closed the connection during the WebSocket handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError("ttyd refused the WebSocket: " + head.split(b"\r\n", 1)[0].decode(errors="replace"))
        self._send(json.dumps({"AuthToken": "", "columns": 200, "rows": 50}).encode(), opcode=1)
        self.out = ""
        self.n = 0
        deadline = time.monotonic() + ready
        silent = TimeoutError(f"ttyd's terminal (login -f droid) wrote nothing in {ready:.0f} s (a ttyd that stops "
                              "reading when login hangs the terminal up: see ttyd-avf's login-vhangup.patch)")
        while True:                 # the login shell's first output: the terminal is ready for input
            if time.monotonic() > deadline:
                raise silent
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                op, data = self._frame()
            except TimeoutError:
                raise silent from None
            if op == 8:
                raise ConnectionError("ttyd closed the terminal before it started")
            if op in (1, 2) and data[:1] == b"0":
                self.out += _ANSI.sub("", data[1:].decode(errors="replace"))
                break
        self.sock.settimeout(timeout)
        self._input("stty -echo; export PS1='' PROMPT_COMMAND=''; unset HISTFILE\r")

    def _send(self, payload: bytes, opcode: int = 2) -> None:
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _input(self, text: str) -> None:
        self._send(b"0" + text.encode())

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("ttyd closed the connection")
            buf += chunk
        return buf

    def _frame(self) -> tuple[int, bytes]:
        """The next data or close frame; a PING is answered with its PONG on the way.

        ttyd (1.7: libwebsockets' retry policy, ping 5 s, hang-up 10 s) PINGs a client that sent
        no PONG for 5 s and drops the connection when none came for 10 s: an unanswered PING is
        why a terminal used for longer than that "closed the connection". A browser's WebSocket,
        as in the Terminal app's WebView, answers every PING (RFC 6455 5.5.2); so does this one.
        A PING is returned too (op 9), so that a caller's deadline still holds while ttyd keeps
        the connection alive with PINGs and nothing else comes."""
        b1, b2 = self._recv_exact(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._recv_exact(8))[0]
        op, data = b1 & 0x0F, self._recv_exact(n)
        if op == 9:
            self._send(data, opcode=10)
            self.pings += 1
        return op, data

    def run(self, command: str, timeout: float = 60) -> tuple[int, str]:
        self.n += 1
        n = self.n
        self._input(f"printf '\\n@@%s\\n' B{n}; {command}; printf '\\n@@E{n}:%s\\n' $?\r")
        end = re.compile(rf"@@B{n}\n(.*?)\n?@@E{n}:(\d+)\n", re.S)
        deadline = time.monotonic() + timeout
        while True:
            m = end.search(self.out)
            if m:
                self.out = self.out[m.end():]
                return int(m.group(2)), m.group(1).strip("\n")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the guest shell to {command!r} in {timeout:.0f} s")
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            op, data = self._frame()
            if op == 8:
                raise ConnectionError("ttyd closed the terminal")
            if op in (1, 2) and data[:1] == b"0":
                self.out += _ANSI.sub("", data[1:].decode(errors="replace"))

    def close(self) -> None:
        """Log out and close the WebSocket politely (ttyd restarts when a client just vanishes)."""
        try:
            self._input("exit\r")
            self._send(struct.pack(">H", 1000), opcode=8)
            self.sock.settimeout(2)
            deadline = time.monotonic() + 5
            while self._frame()[0] != 8 and time.monotonic() < deadline:
                pass
        except (OSError, ConnectionError, ValueError):
            pass
        try:
            self.sock.close()
        except OSError:
            pass
