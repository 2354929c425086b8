"""Local upstreams for the source tests: HTTP servers on 127.0.0.1 and small git repositories.

No test here touches the network: every URL is 127.0.0.1:<port 0> or a file:// repository.
"""

from __future__ import annotations

import io
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator, Union

import pytest

from avfrepo.config import NetPolicy
from avfrepo.demo import FakeAvf
from avfrepo.sources import net

DB_PATH = "/aarch64/core/core.db"   # ALARM layout: $server/$arch/$repo/$repo.db

# what a test passes as net=: real timeouts, retries without real waiting
FAST = NetPolicy(timeout=5.0, retries=3, backoff=0.001)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


Route = Union[bytes, Answer, Callable[["Server", str], Answer]]


class Server:
    """A ThreadingHTTPServer in a thread; `routes` maps a path to an answer (bytes, Answer, or
    a callable(server, path) -> Answer). Every request's path is recorded in `requests`."""

    def __init__(self, routes: dict[str, Route]):
        self.routes = dict(routes)
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()    # slow handlers wake up when the test ends
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                with server.lock:
                    server.requests.append(self.path)
                    server.headers.append(dict(self.headers))
                route = server.routes.get(self.path)
                if route is None:
                    answer = Answer(404, b"not here\n")
                elif isinstance(route, bytes):
                    answer = Answer(200, route)
                elif isinstance(route, Answer):
                    answer = route
                else:
                    answer = route(server, self.path)
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up (a timeout test)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       name="test-http", daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[Callable[[dict[str, Route]], Server]]:
    """Factory: http_server({"/path": b"body", ...}) -> a running Server (stopped after the test)."""
    servers: list[Server] = []

    def start(routes: dict[str, Route]) -> Server:
        s = Server(routes)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


@pytest.fixture(autouse=True)
def no_proxy_and_recorded_sleeps(monkeypatch) -> list[float]:
    """Requests to 127.0.0.1 must not go to a proxy from the environment; back-off delays are
    recorded instead of slept, so retry tests are instant and can check the schedule."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    slept: list[float] = []
    monkeypatch.setattr(net, "sleep", slept.append)
    return slept


@pytest.fixture
def slept(no_proxy_and_recorded_sleeps) -> list[float]:
    return no_proxy_and_recorded_sleeps


def flaky(failures: int, body: bytes, status: int = 500) -> Callable[[Server, str], Answer]:
    """A route that answers `status` to its first `failures` requests, then `body`."""
    count = {"n": 0}

    def route(server: Server, path: str) -> Answer:
        with server.lock:
            count["n"] += 1
            n = count["n"]
        return Answer(status, b"try again\n") if n <= failures else Answer(200, body)

    return route


def git_repo(path: Path) -> FakeAvf:
    """An empty git repository with a `main` branch and a fixed identity (FakeAvf is generic)."""
    return FakeAvf(path)


def desc_db(packages: dict[str, str], extra: dict[str, bytes] | None = None) -> bytes:
    """A gzip'd db of `<name>-<version>/desc` entries written by hand (name -> version)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, version in packages.items():
            desc = (f"%FILENAME%\n{name}-{version}-aarch64.pkg.tar.xz\n\n%NAME%\n{name}\n\n"
                    f"%VERSION%\n{version}\n\n%ARCH%\naarch64\n\n").encode()
            info = tarfile.TarInfo(f"{name}-{version}/desc")
            info.size = len(desc)
            tar.addfile(info, io.BytesIO(desc))
        for path, data in (extra or {}).items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
