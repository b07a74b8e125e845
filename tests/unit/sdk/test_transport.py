"""cairn._transport without sockets: the status -> error table and the message conversions."""

from __future__ import annotations

import grpc
import pytest

from cairn import _core as core
from cairn import _transport as transport
from cairn._retry import NOT_SENT
from cairn.errors import (
    AlreadyExists,
    BucketNotFound,
    CairnError,
    Conflict,
    DiskFull,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from cairn.types import Version
from cairn.v1 import common_pb2, object_pb2

pytestmark = pytest.mark.unit

S = grpc.StatusCode
ADDRESS = "127.0.0.1:7101"


def error(status, message="m", metadata=None) -> CairnError:
    return transport.error_from_status(status, message, metadata, ADDRESS)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (S.NOT_FOUND, NotFound),
        (S.INVALID_ARGUMENT, InvalidArgument),
        (S.OUT_OF_RANGE, InvalidArgument),
        (S.UNAVAILABLE, Unavailable),
        (S.DEADLINE_EXCEEDED, Timeout),
        (S.DATA_LOSS, IntegrityError),
        (S.RESOURCE_EXHAUSTED, ResourceExhausted),
        (S.FAILED_PRECONDITION, FailedPrecondition),
        (S.ALREADY_EXISTS, AlreadyExists),
        (S.UNAUTHENTICATED, Unauthenticated),
        (S.PERMISSION_DENIED, Unauthenticated),
        (S.ABORTED, Conflict),
        (S.CANCELLED, Unavailable),
        (S.INTERNAL, InternalError),
        (S.UNKNOWN, InternalError),
        (S.UNIMPLEMENTED, InternalError),
    ],
)
def test_bare_status_maps_by_the_table(status, cls):
    err = error(status, "what the server said")
    assert type(err) is cls
    assert "what the server said" in str(err)
    assert ADDRESS in str(err)
    assert err.details["address"] == ADDRESS
    assert err.details["grpc_status"] == status.name


def test_every_status_has_a_class():
    for status in S:
        assert isinstance(error(status), CairnError)
    assert type(transport.error_from_status(None, "", None, ADDRESS)) is InternalError


def test_cairn_code_rebuilds_the_exact_class():
    code = [("cairn-error-code", "BUCKET_NOT_FOUND")]
    err = error(S.NOT_FOUND, "bucket 'x' does not exist", code)
    assert type(err) is BucketNotFound
    assert str(err) == "bucket 'x' does not exist"
    assert isinstance(err, KeyError)
    assert type(error(S.UNAVAILABLE, "full", [("cairn-error-code", "DISK_FULL")])) is DiskFull


def test_unknown_cairn_code_falls_back_on_the_status():
    err = error(S.UNAVAILABLE, "new", [("cairn-error-code", "SOME_FUTURE_CODE")])
    assert type(err) is Unavailable
    assert err.retryable


def test_error_detail_carries_current_version_and_outcomes():
    detail = common_pb2.Error(
        code="CONFLICT",
        message="newer version held",
        current=common_pb2.Version(physical_ms=5, logical=1, node_id=2),
        outcomes=[common_pb2.ReplicaOutcome(node_id=2, code="OK"),
                  common_pb2.ReplicaOutcome(node_id=3, code="UNAVAILABLE", message="down")],
    )
    err = error(S.ABORTED, "x", [("cairn-error-bin", detail.SerializeToString())])
    assert type(err) is Conflict
    assert str(err) == "newer version held"
    assert err.details["current"] == Version(5, 1, 2)
    assert err.details["outcomes"] == {2: ("OK", ""), 3: ("UNAVAILABLE", "down")}


def test_unreadable_error_detail_does_not_hide_the_error():
    err = error(S.NOT_FOUND, "gone", [("cairn-error-code", "NOT_FOUND"),
                                     ("cairn-error-bin", b"\xff\xff\xff")])
    assert type(err) is NotFound


def test_connection_failures_are_marked_not_sent():
    refused = error(S.UNAVAILABLE, "failed to connect to all addresses; last error: "
                    "UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: "
                    "Connection refused")
    assert refused.details.get(NOT_SENT) is True
    assert core.is_failover(refused)
    answered = error(S.UNAVAILABLE, "quorum failed", [("cairn-error-code", "UNAVAILABLE")])
    assert not answered.details.get(NOT_SENT)
    reset = error(S.UNAVAILABLE, "Socket closed")
    assert not reset.details.get(NOT_SENT)


class FakeRpcError(grpc.RpcError):
    def code(self):
        return S.NOT_FOUND

    def details(self):
        return "object app/k not found"

    def trailing_metadata(self):
        return (("cairn-error-code", "NOT_FOUND"),)


def test_error_from_rpc_reads_the_call():
    err = transport.error_from_rpc(FakeRpcError(), ADDRESS)
    assert type(err) is NotFound and str(err) == "object app/k not found"


# --- conversions --------------------------------------------------------------------------

HEADER = core.RequestHeader("rid", 0, Version(7, 1, 3), "quorum")


def test_request_header_travels_whole():
    pb = transport._header_pb(HEADER)
    assert pb.request_id == "rid"
    assert (pb.clock.physical_ms, pb.clock.logical, pb.clock.node_id) == (7, 1, 3)
    assert pb.consistency == common_pb2.CONSISTENCY_QUORUM
    assert transport._header_pb(core.RequestHeader("r", 0, Version(0), None)).consistency == (
        common_pb2.CONSISTENCY_DEFAULT)


def test_put_messages_set_size_only_when_known():
    known = core.PutHead(HEADER, b"app", b"k", "json", {"a": "b"}, 5)
    unknown = core.PutHead(HEADER, b"app", b"k", "raw", {}, None)
    pb = transport._put_request_pb(core.PutMessage(known, b"abc", core.PutEnd(3, 9)))
    assert pb.header.HasField("size") and pb.header.size == 5
    assert pb.header.codec == "json" and dict(pb.header.metadata) == {"a": "b"}
    assert pb.chunk == b"abc" and pb.end.size == 3 and pb.end.checksum == 9
    pb = transport._put_request_pb(core.PutMessage(unknown, b"", None))
    assert not pb.header.HasField("size") and not pb.HasField("end")
    pb = transport._put_request_pb(core.PutMessage(None, b"x", None))
    assert not pb.HasField("header")


def test_get_request_ranges_keep_presence():
    whole = transport._get_request_pb(core.GetRequest(HEADER, b"app", b"k", None, None))
    assert not whole.HasField("range_start") and not whole.HasField("range_end")
    ranged = transport._get_request_pb(core.GetRequest(HEADER, b"app", b"k", 0, 0))
    assert ranged.HasField("range_start") and ranged.HasField("range_end")


def test_get_parts_from_messages():
    msg = object_pb2.GetResponse(chunk=b"ab")
    msg.header.info.bucket = b"app"
    msg.header.info.key = b"k"
    msg.header.info.size = 2
    msg.header.range_end = 2
    msg.end.checksum = 0
    part = transport._get_part(msg)
    assert part.head is not None and part.head.range_end == 2 and part.head.info.key == "k"
    assert part.chunk == b"ab" and part.end_checksum == 0
    bare = transport._get_part(object_pb2.GetResponse(chunk=b"c"))
    assert bare.head is None and bare.end_checksum is None


def test_every_unary_request_has_a_route():
    requests = {c for c in vars(core).values()
                if isinstance(c, type) and issubclass(c, core.Request) and c is not core.Request}
    assert requests == set(transport._UNARY)


def test_an_async_transport_belongs_to_one_event_loop():
    import asyncio

    t = transport.AsyncTransport(lambda header: None)

    async def stub():
        return t._stub(ADDRESS)  # makes a channel; connects only when a call is made

    asyncio.run(stub())
    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(stub())


def test_a_closed_transport_refuses_calls():
    t = transport.SyncTransport(lambda header: None)
    t._stub(ADDRESS)
    t.close()
    t.close()
    with pytest.raises(RuntimeError, match="closed"):
        t._stub(ADDRESS)


# --- the admin service --------------------------------------------------------------------


def test_errors_from_a_cairn_handler_are_marked_answered():
    answered = error(S.UNAVAILABLE, "quorum failed", [("cairn-error-code", "UNAVAILABLE")])
    assert answered.details.get(core.ANSWERED) is True
    assert not core.is_node_failure(answered)
    bare = error(S.UNAVAILABLE, "Socket closed")
    assert core.ANSWERED not in bare.details
    assert core.is_node_failure(bare)


def test_cluster_map_from_the_wire():
    from cairn.cluster.placement import PLACEMENT_NAME
    from cairn.v1 import admin_pb2

    pb = admin_pb2.GetClusterMapResponse()
    m = pb.map
    m.epoch, m.replicas_n, m.write_quorum, m.read_quorum, m.partitions = 7, 2, 2, 1, 64
    m.placement = PLACEMENT_NAME
    m.nodes.add(id=2, address="b:2", zone="z2", weight=2.0)
    m.nodes.add(id=1, address="a:1", zone="z1", weight=1.0)
    fetched = transport._fetched_map(pb)
    assert fetched.placement == PLACEMENT_NAME
    got = fetched.map
    assert (got.epoch, got.replicas_n, got.write_quorum, got.read_quorum, got.partitions) == (
        7, 2, 2, 1, 64)
    assert [(n.id, n.address, n.zone, n.weight) for n in got.nodes] == [
        (1, "a:1", "z1", 1.0), (2, "b:2", "z2", 2.0)]


def test_an_invalid_cluster_map_is_an_internal_error():
    from cairn.v1 import admin_pb2

    pb = admin_pb2.GetClusterMapResponse()  # epoch 0, no nodes
    with pytest.raises(InternalError, match="invalid cluster map"):
        transport._fetched_map(pb)


def test_node_status_from_the_wire():
    from cairn.v1 import admin_pb2

    pb = admin_pb2.StatusResponse()
    s = pb.status
    s.node_id, s.address, s.software_version, s.uptime_s, s.epoch = 3, "c:3", "0.1.0", 5.5, 9
    s.object_count, s.pending_hints, s.zone, s.tombstone_count = 10, 2, "z", 4
    s.counters["integrity_errors"] = 1
    s.labels["python"] = "3.11"
    s.disks.add(path="/d1", disk_id="i1", state="ok", used_bytes=1, free_bytes=2,
                object_count=3, segment_count=4, live_bytes=5, dead_bytes=6)
    s.disks.add(path="/d2", disk_id="i2", state="failed", error="EIO")
    got = transport._node_status(pb)
    assert got == core.NodeStatus(
        node_id=3, address="c:3", software_version="0.1.0", uptime_s=5.5, epoch=9,
        disks=(core.DiskStatus("/d1", "i1", "ok", "", 1, 2, 3, 4, 5, 6),
               core.DiskStatus("/d2", "i2", "failed", "EIO")),
        object_count=10, pending_hints=2, zone="z", counters={"integrity_errors": 1},
        labels={"python": "3.11"}, tombstone_count=4,
    )
    assert [d.ok for d in got.disks] == [True, False]
    assert got.repair == core.RepairStatus()  # the node sent none: all zeros


def test_node_status_carries_the_repair_status():
    from cairn.v1 import admin_pb2

    pb = admin_pb2.StatusResponse()
    pb.status.node_id, pb.status.address = 1, "a:1"
    values = {
        "partitions_held": 342, "partitions_below_redundancy": 3, "bytes_to_copy": 5 << 30,
        "eta_s": 81.5, "rate_bytes_s": 64 << 20, "antientropy_passes": 7,
        "antientropy_last_pass_ms": 1_700_000_000_000, "objects_pulled": 11,
        "objects_pushed": 12, "bytes_copied": 13 << 20, "scrub_progress": 0.25,
        "scrub_passes": 2, "scrub_last_pass_ms": 1_700_000_001_000, "scrub_checked": 1000,
        "scrub_repaired": 4, "scrub_lost": 1, "scrub_deferred": 2,
        "partitions_rebuilding": 9,
    }
    pb.status.repair.CopyFrom(admin_pb2.RepairStatus(**values))
    got = transport._node_status(pb).repair
    assert got == core.RepairStatus(**values)
    # Every field of the wire's RepairStatus has its twin, so none is silently dropped.
    wire = {f.name for f in admin_pb2.RepairStatus.DESCRIPTOR.fields}
    assert wire == set(core.RepairStatus.__dataclass_fields__) == set(values)


def header() -> core.RequestHeader:
    return core.RequestHeader("rid", 3, Version(5, 1, 2), None)


def encode(request):
    rpc = transport._UNARY[type(request)]
    assert rpc.admin
    return rpc, rpc.encode(request)


def test_repair_requests_to_the_wire():
    rpc, pb = encode(core.RepairRequest(header(), None, False))
    assert rpc.method == "Repair"
    assert pb.header.request_id == "rid"
    assert not pb.HasField("partition")  # every partition the node holds
    assert pb.wait is False
    _, pb = encode(core.RepairRequest(header(), 0, True))
    assert pb.HasField("partition")  # partition 0 is a partition, not "unset"
    assert (pb.partition, pb.wait) == (0, True)
    _, pb = encode(core.RepairRequest(header(), 17, False))
    assert pb.partition == 17


def test_repair_result_from_the_wire():
    from cairn.v1 import admin_pb2

    rpc = transport._UNARY[core.RepairRequest]
    got = rpc.decode(admin_pb2.RepairResponse(partitions=3, objects_pulled=10, objects_pushed=2))
    assert got == core.RepairResult(partitions=3, objects_pulled=10, objects_pushed=2)
    assert rpc.decode(admin_pb2.RepairResponse()) == core.RepairResult()
    failed = rpc.decode(admin_pb2.RepairResponse(partitions=1, errors=["partition 4: x"]))
    assert failed.errors == ("partition 4: x",)


def test_scrub_and_set_repair_rate_to_the_wire():
    from cairn.v1 import admin_pb2

    rpc, pb = encode(core.ScrubRequest(header()))
    assert (rpc.method, pb.header.epoch) == ("Scrub", 3)
    assert rpc.decode(admin_pb2.ScrubResponse()) is None
    rpc, pb = encode(core.SetRepairRateRequest(header(), 1 << 20))
    assert (rpc.method, pb.rate_bytes_s) == ("SetRepairRate", 1 << 20)
    assert rpc.decode(admin_pb2.SetRepairRateResponse()) is None
    _, pb = encode(core.SetRepairRateRequest(header(), core.MAX_UINT64))
    assert pb.rate_bytes_s == core.MAX_UINT64


def test_one_channel_per_node_carries_both_services():
    t = transport.SyncTransport(lambda header: None)
    first = t._stub(ADDRESS)
    assert t._stub(ADDRESS) is first
    t._stub("127.0.0.1:7102")
    assert t.addresses == (ADDRESS, "127.0.0.1:7102")
    assert first.method(transport._UNARY[core.ClusterMapRequest]) is not None
    t.close()


def test_channels_reconnect_quickly_to_a_node_that_restarted():
    options = dict(transport.CHANNEL_OPTIONS)
    assert options["grpc.max_reconnect_backoff_ms"] <= 2000
