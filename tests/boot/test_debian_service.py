"""The DebianService stand-in: stubs generated at run time from the AVF checkout's proto, every
method served and recorded; a real gRPC client calls it as a guest agent would."""

from __future__ import annotations

import pytest

grpc = pytest.importorskip("grpc")

from avfrepo.boot.debian_service import DebianServiceStandIn, generate_stubs  # noqa: E402
from avfrepo.boot.errors import BootError  # noqa: E402

PROTO = """\
syntax = "proto3";
package com.android.virtualization.terminal.proto;
service DebianService {
  rpc ReportVmActivePorts (ReportVmActivePortsRequest) returns (ReportVmActivePortsResponse) {}
  rpc OpenShutdownRequestQueue (ShutdownQueueOpeningRequest) returns (stream ShutdownRequestItem) {}
}
message ReportVmActivePortsRequest { repeated int32 ports = 1; }
message ReportVmActivePortsResponse { bool success = 1; }
message ShutdownQueueOpeningRequest {}
message ShutdownRequestItem {}
"""


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "avf" / "libs/debian_service/proto"
    d.mkdir(parents=True)
    (d / "DebianService.proto").write_text(PROTO)
    return tmp_path / "avf"


def test_serves_and_records_every_method_of_the_proto(tree):
    svc = DebianServiceStandIn(tree)
    try:
        assert svc.methods == ["ReportVmActivePorts", "OpenShutdownRequestQueue"]
        ch = grpc.insecure_channel(f"127.0.0.1:{svc.port}")
        req = svc.pb2.ReportVmActivePortsRequest(ports=[7681, 22])
        call = ch.unary_unary("/com.android.virtualization.terminal.proto.DebianService/ReportVmActivePorts",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=svc.pb2.ReportVmActivePortsResponse.FromString)
        call(req, metadata=(("x-standin-agent", "forwarder_guest_launcher"),), timeout=10)
        stream = ch.unary_stream("/com.android.virtualization.terminal.proto.DebianService/OpenShutdownRequestQueue",
                                 request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=svc.pb2.ShutdownRequestItem.FromString)
        it = stream(svc.pb2.ShutdownQueueOpeningRequest(), timeout=20)
        import time
        deadline = time.monotonic() + 10
        while "OpenShutdownRequestQueue" not in svc.connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.request_shutdown() == 1          # the app asks the shutdown agent
        assert next(it) is not None
        got = svc.connected()
        assert got["ReportVmActivePorts"][0].startswith("forwarder_guest_launcher at ")
        assert "ports: 7681 ports: 22" in got["ReportVmActivePorts"][0]
        assert len(got["OpenShutdownRequestQueue"]) == 1
        ch.close()
    finally:
        svc.stop()


def test_no_proto_is_a_clear_error(tmp_path):
    with pytest.raises(BootError, match="no .proto in .*libs/debian_service/proto"):
        generate_stubs(tmp_path, tmp_path / "out")


def test_a_broken_proto_is_a_clear_error(tree, tmp_path):
    (tree / "libs/debian_service/proto/DebianService.proto").write_text("syntax = \"proto3\";\nservice {")
    with pytest.raises(BootError, match="could not compile"):
        generate_stubs(tree, tmp_path / "out")
