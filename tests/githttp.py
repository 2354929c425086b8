"""A smart-HTTP git server on 127.0.0.1 for the network-bound tests: `git http-backend` (real
git, both protocol versions) behind a small threaded HTTP server, which can misbehave on
exactly the request that transfers objects (protocol v2 `command=fetch`, v0 `want` lines):

- "stall": no answer at all, as a server hung behind a load balancer;
- "trickle": a valid start of a fetch answer (HTTP headers, the `packfile` section), then one
  sideband progress byte every 0.2 s and never a pack: too fast for any per-read or low-speed
  limit, so only an overall deadline stops it.

The listing (`ls-refs`, `info/refs`) is always answered, so ls-remote and the start of a fetch
work. A misbehaving answer ends on its own after `give_up` seconds (the connection is closed,
which a client sees as a failed fetch): a test against code without a deadline fails on its
time assertion, it does not hang. `fetches` counts the object requests seen.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class GitHttp:
    def __init__(self, root: Path, mode: str = "serve", give_up: float = 30.0):
        assert mode in ("serve", "stall", "trickle")
        self.root, self.mode, self.give_up = root, mode, give_up
        self.fetches = 0
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server._backend(self, b"")

            def do_POST(self) -> None:  # noqa: N802
                server._backend(self, self._body())

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while (size := int(self.rfile.readline().strip() or b"0", 16)):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="test-git-http", daemon=True)
        self.thread.start()

    def url(self, repo: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{repo}"

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- one request ----------------------------------------------------------------------

    def _asks_for_objects(self, handler, body: bytes) -> bool:
        if handler.command != "POST" or not handler.path.split("?")[0].endswith("/git-upload-pack"):
            return False
        if handler.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        return b"command=fetch" in body or b"want " in body

    def _backend(self, handler, body: bytes) -> None:
        if self._asks_for_objects(handler, body):
            self.fetches += 1
            if self.mode == "stall":
                self.stopping.wait(self.give_up)
                handler.close_connection = True
                return
            if self.mode == "trickle":
                self._trickle(handler)
                return
        url = urlsplit(handler.path)
        env = {**os.environ, "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "REQUEST_METHOD": handler.command, "PATH_INFO": url.path, "QUERY_STRING": url.query,
               "CONTENT_TYPE": handler.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""), "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": handler.headers.get("Content-Encoding", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        handler.send_response(status)
        for name, value in headers:
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _trickle(self, handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/x-git-upload-pack-result")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data: bytes) -> None:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            handler.wfile.flush()
        try:
            chunk(b"000dpackfile\n")
            for _ in range(int(self.give_up / 0.2)):
                if self.stopping.wait(0.2):
                    break
                chunk(b"0006\x02.")          # band 2: one byte of progress text
        except OSError:
            pass                              # the client gave up (killed at its deadline)
        handler.close_connection = True


def bare_copy(src: Path, root: Path, name: str) -> Path:
    """A bare clone of the git repository `src` under root (what the server exports), with the
    partial-clone settings avfrepo's fetches need."""
    dest = root / name
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True, capture_output=True)
    for key in ("uploadpack.allowFilter", "uploadpack.allowAnySHA1InWant"):
        subprocess.run(["git", "--git-dir", str(dest), "config", key, "true"], check=True)
    return dest
