"""A stand-in of the Terminal app's DebianService gRPC server (the Android side of the agents).

The Python stubs are generated at run time by grpcio-tools from `libs/debian_service/proto`
of the AVF checkout (never committed: the proto is upstream's and changes with it). Every
method the proto declares is served:
- unary calls are recorded (method, request as text) and answered with the default response;
- server-streaming calls (the agents' request queues, e.g. OpenShutdownRequestQueue) are
  recorded as a connection and kept open until the stand-in is asked to send a request or stops.
`request_shutdown()` sends one message on every open OpenShutdownRequestQueue stream, as the
app does when the user stops the VM.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BootError

PROTO_DIR = "libs/debian_service/proto"


@dataclass
class Call:
    method: str
    peer: str
    seconds: float                 # since the stand-in started
    request: str
    streaming: bool
    client: str = ""               # x-standin-agent metadata, else the client's user-agent


@dataclass
class Recorder:
    start: float = field(default_factory=time.monotonic)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, ctx, request: object, streaming: bool) -> None:
        text = " ".join(str(request).split())[:300]
        md = {k: v for k, v in (ctx.invocation_metadata() or ())}
        client = md.get("x-standin-agent") or md.get("user-agent", "")
        with self.lock:
            self.calls.append(Call(method, ctx.peer(), round(time.monotonic() - self.start, 2), text, streaming,
                                   str(client)))


class Stubs:
    """The compiled proto in a private descriptor pool (so two checkouts' protos, or two boots in
    one process, never clash in protobuf's global pool); messages by name."""

    def __init__(self, pool, files):
        from google.protobuf import message_factory
        self.pool, self.files = pool, files
        self._factory = message_factory

    def __getattr__(self, name: str):
        for f in self.files:
            if name in f.message_types_by_name:
                return self._factory.GetMessageClass(f.message_types_by_name[name])
        raise AttributeError(name)


def generate_stubs(avf_tree: Path, out: Path) -> tuple[Stubs, Path, Path]:
    """(compiled proto, proto file, folder of the generated Python stubs) from the checkout's
    DebianService proto, by grpcio-tools' protoc at run time."""
    try:
        from grpc_tools import protoc
        from google.protobuf import descriptor_pb2, descriptor_pool
    except ImportError:
        raise BootError("grpcio-tools is not installed (pip install 'avfrepo[boot]')") from None
    proto_dir = avf_tree / PROTO_DIR
    protos = sorted(proto_dir.glob("*.proto"))
    if not protos:
        raise BootError(f"no .proto in {proto_dir} (is {avf_tree} an AVF checkout with {PROTO_DIR}?)")
    main = next((p for p in protos if p.stem == "DebianService"), protos[0])
    import grpc_tools
    include = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    dset = out / "descriptors.pb"
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", f"--descriptor_set_out={dset}", "--include_imports",
                      *[str(p) for p in protos]])
    if rc != 0:
        raise BootError(f"grpc_tools.protoc could not compile {main} (exit {rc})")
    fds = descriptor_pb2.FileDescriptorSet.FromString(dset.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    files = [pool.FindFileByName(p.name) for p in protos]
    return Stubs(pool, files), main, out


class DebianServiceStandIn:
    """DebianService on 127.0.0.1:<port> (the guest reaches it as 10.0.2.2:<port>)."""

    def __init__(self, avf_tree: Path):
        import grpc
        from google.protobuf import message_factory
        self._grpc = grpc
        self._tmp = tempfile.TemporaryDirectory(prefix="avfrepo-debian-service-")
        self.pb2, self.proto, _ = generate_stubs(avf_tree, Path(self._tmp.name))
        self.recorder = Recorder()
        self._streams: list[queue.Queue] = []
        self._stop = threading.Event()
        services = [s for f in self.pb2.files for s in f.services_by_name.values()]
        if not services:
            raise BootError(f"{self.proto} declares no service")
        self.service = next((s for s in services if s.name == "DebianService"), services[0])
        handlers = {}
        for m in self.service.methods:
            req_cls = message_factory.GetMessageClass(m.input_type)
            resp_cls = message_factory.GetMessageClass(m.output_type)
            handlers[m.name] = self._handler(m, req_cls, resp_cls)
        self.methods = [m.name for m in self.service.methods]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(self.service.full_name,
                                                                                    handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _handler(self, m, req_cls, resp_cls):
        grpc = self._grpc
        rec = self.recorder
        if m.client_streaming:
            def client_stream(it, ctx):
                n = 0
                for req in it:
                    rec.add(m.name, ctx, req, True)
                    n += 1
                return resp_cls()
            if m.server_streaming:
                def bidi(it, ctx):
                    for req in it:
                        rec.add(m.name, ctx, req, True)
                    return iter(())
                return grpc.stream_stream_rpc_method_handler(bidi, req_cls.FromString, resp_cls.SerializeToString)
            return grpc.stream_unary_rpc_method_handler(client_stream, req_cls.FromString, resp_cls.SerializeToString)
        if m.server_streaming:
            def server_stream(req, ctx):
                rec.add(m.name, ctx, req, True)
                q: queue.Queue = queue.Queue()
                q.method = m.name          # type: ignore[attr-defined]
                self._streams.append(q)
                while not self._stop.is_set() and ctx.is_active():
                    try:
                        item = q.get(timeout=0.5)
                    except queue.Empty:
                        continue
                    yield item if item is not None else resp_cls()
            return grpc.unary_stream_rpc_method_handler(server_stream, req_cls.FromString, resp_cls.SerializeToString)

        def unary(req, ctx):
            rec.add(m.name, ctx, req, False)
            return resp_cls()
        return grpc.unary_unary_rpc_method_handler(unary, req_cls.FromString, resp_cls.SerializeToString)

    def request_shutdown(self) -> int:
        """Send a request on every open shutdown queue; returns how many agents were asked."""
        n = 0
        for q in list(self._streams):
            if "shutdown" in getattr(q, "method", "").lower():
                q.put(None)
                n += 1
        return n

    def connected(self) -> dict[str, list[str]]:
        """method -> what was received, in order."""
        out: dict[str, list[str]] = {}
        with self.recorder.lock:
            for c in self.recorder.calls:
                out.setdefault(c.method, []).append(
                    f"{c.client or c.peer} at {c.seconds}s" + (f": {c.request}" if c.request else ""))
        return out

    def stop(self) -> None:
        self._stop.set()
        self.server.stop(grace=1).wait(3)
        self._tmp.cleanup()
