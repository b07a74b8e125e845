"""The Replicate stream against a real node over raw gRPC (docs/protocol.md): single
writes and batches get exactly one answer per seq, whatever the framing of the answers;
a bad write in a batch fails alone and the stream goes on."""

from __future__ import annotations

import crc32c
import grpc
import pytest

from cairn.v1 import common_pb2, object_pb2, object_pb2_grpc, replica_pb2, replica_pb2_grpc

pytestmark = pytest.mark.integration

BUCKET = b"app"
PHYSICAL = 1_700_000_000_000


def header() -> common_pb2.RequestHeader:
    return common_pb2.RequestHeader(request_id="t", node_id=9)


def put(seq: int, key: bytes, value: bytes, physical: int = PHYSICAL
        ) -> replica_pb2.ReplicateRequest:
    obj = replica_pb2.ReplicaObject(
        bucket=BUCKET, key=key, version=common_pb2.Version(physical_ms=physical, node_id=9),
        size=len(value), checksum=crc32c.crc32c(value), modified_ms=physical)
    return replica_pb2.ReplicateRequest(seq=seq, put=replica_pb2.ReplicaWrite(object=obj,
                                                                             value=value))


def answers(replies) -> dict[int, replica_pb2.ReplicateResponse]:
    out: dict[int, replica_pb2.ReplicateResponse] = {}
    for reply in replies:
        for answer in reply.batch or (reply,):
            assert answer.seq not in out, f"seq {answer.seq} answered twice"
            out[answer.seq] = answer
    return out


@pytest.fixture
def channel(node):
    with grpc.insecure_channel(node.address) as ch:
        object_pb2_grpc.ObjectServiceStub(ch).CreateBucket(
            object_pb2.CreateBucketRequest(bucket=BUCKET))
        yield ch


def replicate(channel, messages, replies: list | None = None
              ) -> dict[int, replica_pb2.ReplicateResponse]:
    stub = replica_pb2_grpc.ReplicaServiceStub(channel)
    got = list(stub.Replicate(iter(messages), timeout=20))
    if replies is not None:
        replies.extend(got)
    return answers(got)


def held(channel, key: bytes) -> replica_pb2.ReplicaHeadResponse:
    return replica_pb2_grpc.ReplicaServiceStub(channel).ReplicaHead(
        replica_pb2.ReplicaHeadRequest(header=header(), bucket=BUCKET, key=key), timeout=10)


def test_single_writes_and_batches_are_each_answered_once(channel):
    single = put(1, b"solo", b"one")
    single.header.CopyFrom(header())
    batch = replica_pb2.ReplicateRequest(
        header=header(), batch=[put(seq, b"k%d" % seq, b"v%d" % seq) for seq in range(2, 60)])
    replies: list = []
    got = replicate(channel, [single, batch], replies)
    assert sorted(got) == list(range(1, 60))
    # One group commit makes many durable at once: their answers share messages.
    assert len(replies) < 59 and any(len(r.batch) > 1 for r in replies)
    assert all(r.HasField("header") for r in replies)
    assert all(a.applied and not a.HasField("error") for a in got.values())
    for seq in (1, 2, 30, 59):
        key = b"solo" if seq == 1 else b"k%d" % seq
        assert held(channel, key).found


def test_a_bad_write_in_a_batch_fails_alone_and_the_stream_goes_on(channel):
    bad_checksum = put(2, b"bad", b"abc")
    bad_checksum.put.object.checksum ^= 1
    no_version = put(3, b"nover", b"x")
    no_version.put.object.ClearField("version")
    batch = replica_pb2.ReplicateRequest(header=header(), batch=[
        put(1, b"good1", b"g"), bad_checksum, no_version,
        replica_pb2.ReplicateRequest(seq=4),  # neither put nor delete
        put(5, b"good5", b"g")])
    after = put(6, b"after", b"still serving")
    after.header.CopyFrom(header())
    got = replicate(channel, [batch, after])
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[1].applied and got[5].applied and got[6].applied
    assert got[2].error.code == "INTEGRITY"
    assert got[3].error.code == "INVALID_ARGUMENT"
    assert got[4].error.code == "INVALID_ARGUMENT"
    assert not held(channel, b"bad").found and not held(channel, b"nover").found
    assert held(channel, b"after").found


def test_an_older_version_in_a_batch_is_not_applied_and_names_the_newer(channel):
    got = replicate(channel, [replica_pb2.ReplicateRequest(header=header(), batch=[
        put(1, b"k", b"new", physical=PHYSICAL + 10), put(2, b"k", b"old")])])
    # Applied in any order; whichever came second either lost or superseded the other.
    assert held(channel, b"k").info.version.physical_ms == PHYSICAL + 10
    if not got[2].applied:
        assert got[2].current.physical_ms == PHYSICAL + 10


def head(seq: int, key: bytes, bucket: bytes = BUCKET) -> replica_pb2.ReplicateRequest:
    return replica_pb2.ReplicateRequest(seq=seq,
                                        head=replica_pb2.ReplicateHead(bucket=bucket, key=key))


def test_heads_on_the_stream_answer_as_replica_head_does(channel):
    replicate(channel, [replica_pb2.ReplicateRequest(header=header(), batch=[
        put(1, b"there", b"value"), put(2, b"gone", b"x")])])
    tomb = replica_pb2.ReplicaTombstone(
        bucket=BUCKET, key=b"gone", version=common_pb2.Version(physical_ms=PHYSICAL + 1,
                                                               node_id=9))
    replicate(channel, [replica_pb2.ReplicateRequest(seq=1, header=header(), delete=tomb)])
    got = replicate(channel, [replica_pb2.ReplicateRequest(header=header(), batch=[
        head(1, b"there"), head(2, b"gone"), head(3, b"never"),
        head(4, b"x", bucket=b"Bad Bucket!"), head(5, b"x", bucket=b"nobucket"),
        put(6, b"later", b"v")])])
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    assert got[1].found and got[1].info == held(channel, b"there").info
    assert got[1].info.size == 5 and not got[1].info.deleted
    assert got[2].found and got[2].info.deleted  # tombstones are answered too
    assert not got[3].found and not got[3].HasField("error")
    assert got[4].error.code == "INVALID_ARGUMENT"
    unary = replica_pb2_grpc.ReplicaServiceStub(channel).ReplicaHead(
        replica_pb2.ReplicaHeadRequest(header=header(), bucket=b"nobucket", key=b"x"))
    assert got[5].found == unary.found is False and not got[5].HasField("error")
    assert got[6].applied
