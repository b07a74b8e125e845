"""The node's protocol against raw gRPC: the bad-input catalogue of issue 3.

Every bad input gets the right status and a clear message, nothing is stored, and the
node keeps serving (checked after each case by a good write).
"""

from __future__ import annotations

import threading
import time

import crc32c
import grpc
import pytest

from cairn.v1 import common_pb2, object_pb2, object_pb2_grpc

pytestmark = pytest.mark.integration

SC = grpc.StatusCode


@pytest.fixture
def stub(node):
    with grpc.insecure_channel(node.address) as channel:
        s = object_pb2_grpc.ObjectServiceStub(channel)
        s.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        s.channel = channel
        yield s


def put_small(stub, key=b"k", value=b"v", bucket=b"app", **header):
    return stub.PutSmall(object_pb2.PutSmallRequest(
        header=object_pb2.PutHeader(bucket=bucket, key=key, **header), value=value,
        checksum=crc32c.crc32c(value)))


def put_stream(stub, messages, timeout=10):
    return stub.Put(iter(messages), timeout=timeout)


def header(key=b"k", **kw):
    return object_pb2.PutRequest(header=object_pb2.PutHeader(bucket=b"app", key=key, **kw))


def chunk(data):
    return object_pb2.PutRequest(chunk=data)


def end(value):
    return object_pb2.PutRequest(end=object_pb2.PutEnd(size=len(value),
                                                       checksum=crc32c.crc32c(value)))


def expect(code, fn, *args, match="", cairn_code=None, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    err = info.value
    assert err.code() == code, err.details()
    assert match in err.details()
    if cairn_code:
        assert dict(err.trailing_metadata())["cairn-error-code"] == cairn_code
    return err


def assert_not_stored(stub, key=b"k"):
    expect(SC.NOT_FOUND, stub.Head, object_pb2.HeadRequest(bucket=b"app", key=key),
           cairn_code="NOT_FOUND")


def assert_still_serving(stub):
    value = b"still here %f" % time.time()
    put_small(stub, key=b"canary", value=value)
    reply = stub.GetSmall(object_pb2.GetSmallRequest(bucket=b"app", key=b"canary"))
    assert reply.value == value


@pytest.mark.parametrize(("key", "match"), [
    (b"", "empty"), (b"k" * 1025, "limit"), (b"a\x00b", "NUL"), (b"\xff\xfe", "UTF-8"),
])
def test_bad_keys(stub, key, match):
    expect(SC.INVALID_ARGUMENT, put_small, stub, key=key, match=match,
           cairn_code="INVALID_ARGUMENT")
    expect(SC.INVALID_ARGUMENT, stub.Head, object_pb2.HeadRequest(bucket=b"app", key=key))
    assert_still_serving(stub)


@pytest.mark.parametrize("bucket", [b"A_B", b"ab", b"\xff\xfe\xfd", b"", b"-bad-"])
def test_invalid_bucket_names(stub, bucket):
    expect(SC.INVALID_ARGUMENT, put_small, stub, bucket=bucket, match="bucket")
    expect(SC.INVALID_ARGUMENT, stub.CreateBucket,
           object_pb2.CreateBucketRequest(bucket=bucket), match="bucket")
    assert_still_serving(stub)


def test_missing_bucket(stub):
    expect(SC.NOT_FOUND, put_small, stub, bucket=b"nope", cairn_code="BUCKET_NOT_FOUND",
           match="does not exist")
    expect(SC.NOT_FOUND, stub.List, object_pb2.ListRequest(bucket=b"nope"),
           cairn_code="BUCKET_NOT_FOUND")
    assert_still_serving(stub)


def test_metadata_over_the_limit(stub):
    expect(SC.INVALID_ARGUMENT, put_small, stub, metadata={"big": "x" * 20_000},
           match="metadata")
    assert_not_stored(stub)
    assert_still_serving(stub)


def test_checksum_mismatch_small_and_streamed(stub):
    bad = object_pb2.PutSmallRequest(header=object_pb2.PutHeader(bucket=b"app", key=b"k"),
                                     value=b"abc", checksum=crc32c.crc32c(b"abd"))
    expect(SC.DATA_LOSS, stub.PutSmall, bad, match="checksum", cairn_code="INTEGRITY")
    value = b"x" * 100_000
    wrong = object_pb2.PutRequest(end=object_pb2.PutEnd(size=len(value), checksum=1))
    expect(SC.DATA_LOSS, put_stream, stub, [header(), chunk(value), wrong], match="checksum")
    assert_not_stored(stub)
    assert_still_serving(stub)


def test_stream_cut_off_before_end(stub):
    value = b"y" * 3_000_000
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [header(), chunk(value[:1_000_000])],
           match="without PutEnd")
    assert_not_stored(stub)
    assert_still_serving(stub)


def test_stream_cancelled_mid_upload_stores_nothing(stub):
    gate = threading.Event()

    def slow():
        yield header(key=b"cancelled")
        for _ in range(3):
            yield chunk(b"z" * 1_000_000)
        gate.wait(10)  # the client cancels while the node waits for more
        yield end(b"")

    future = stub.Put.future(slow(), timeout=30)
    time.sleep(0.5)
    future.cancel()
    gate.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    time.sleep(0.3)
    assert_not_stored(stub, b"cancelled")
    assert_still_serving(stub)


def test_deadline_expires_mid_stream(stub):
    def slow():
        yield header(key=b"slow")
        yield chunk(b"z" * 1_000_000)
        time.sleep(1.5)
        yield chunk(b"z")
        yield end(b"z" * 1_000_001)

    expect(SC.DEADLINE_EXCEEDED, put_stream, stub, slow(), timeout=0.5)
    time.sleep(1.5)
    assert_not_stored(stub, b"slow")
    assert_still_serving(stub)


def test_chunks_after_the_end(stub):
    value = b"abc"
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [header(), chunk(value), end(value),
                                                   chunk(b"more")], match="after PutEnd")
    assert_not_stored(stub)
    assert_still_serving(stub)


def test_no_header(stub):
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [chunk(b"abc"), end(b"abc")],
           match="PutHeader")
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [], match="empty")
    expect(SC.INVALID_ARGUMENT, stub.PutSmall, object_pb2.PutSmallRequest(value=b"v"),
           match="header")
    assert_still_serving(stub)


def test_second_header_and_size_mismatch(stub):
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [header(), header(), end(b"")],
           match="one PutHeader")
    expect(SC.INVALID_ARGUMENT, put_stream, stub, [header(size=10), chunk(b"abc"), end(b"abc")],
           match="announced")
    assert_not_stored(stub)


def test_range_beyond_the_object(stub):
    put_small(stub, key=b"r", value=b"0123456789")
    expect(SC.INVALID_ARGUMENT, lambda: list(stub.Get(object_pb2.GetRequest(
        bucket=b"app", key=b"r", range_start=11))), match="range")
    parts = list(stub.Get(object_pb2.GetRequest(bucket=b"app", key=b"r", range_start=2,
                                                range_end=100)))
    assert b"".join(p.chunk for p in parts) == b"23456789", "an end past the size is clamped"
    assert parts[-1].end.checksum == crc32c.crc32c(b"23456789")
    assert_still_serving(stub)


def test_codec_name_must_be_printable_ascii(stub):
    expect(SC.INVALID_ARGUMENT, put_small, stub, codec="j\u00e9son", match="codec")
    assert_still_serving(stub)


def test_oversized_put_small_is_refused(stub):
    expect(SC.RESOURCE_EXHAUSTED, put_small, stub, value=b"x" * (1024 * 1024 + 1),
           match="Put stream")
    assert_not_stored(stub)


@pytest.mark.parametrize("method", ["PutSmall", "Head", "GetSmall", "List", "Delete",
                                    "CreateBucket"])
def test_malformed_protobuf_bytes(stub, method):
    raw = stub.channel.unary_unary(f"/cairn.v1.ObjectService/{method}",
                                   request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
    expect(SC.INVALID_ARGUMENT, raw, b"\xff\xff\xff\xff\x0f", match="not a valid")
    assert_still_serving(stub)


def test_malformed_message_inside_a_put_stream(stub):
    raw = stub.channel.stream_unary("/cairn.v1.ObjectService/Put",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
    good = header().SerializeToString()
    expect(SC.INVALID_ARGUMENT, raw, iter([good, b"\xff\xff\xff"]), match="not a valid")
    assert_not_stored(stub)


def test_bad_page_token(stub):
    expect(SC.INVALID_ARGUMENT, stub.List,
           object_pb2.ListRequest(bucket=b"app", page_token=b"\x01garbage"), match="token")


def test_one_message_put_and_get(stub):
    value = b"small and whole"
    single = object_pb2.PutRequest(header=object_pb2.PutHeader(bucket=b"app", key=b"one"),
                                   chunk=value,
                                   end=object_pb2.PutEnd(size=len(value),
                                                         checksum=crc32c.crc32c(value)))
    put_stream(stub, [single])
    parts = list(stub.Get(object_pb2.GetRequest(bucket=b"app", key=b"one")))
    assert len(parts) == 1
    assert parts[0].HasField("header")
    assert parts[0].HasField("end")
    assert parts[0].chunk == value


def test_paging_with_tokens(stub):
    for i in range(25):
        put_small(stub, key=b"p/%02d" % i)
    seen, token = [], b""
    while True:
        page = stub.List(object_pb2.ListRequest(bucket=b"app", prefix=b"p/", limit=10,
                                                page_token=token))
        seen += [o.key for o in page.objects]
        token = page.next_page_token
        if not token:
            break
    assert seen == [b"p/%02d" % i for i in range(25)]


def test_versions_move_forward_and_clock_is_carried(stub):
    first = put_small(stub, key=b"v").info.version
    ahead = common_pb2.Version(physical_ms=first.physical_ms + 60_000, logical=0, node_id=9)
    reply = stub.PutSmall(object_pb2.PutSmallRequest(
        header=object_pb2.PutHeader(bucket=b"app", key=b"v",
                                    request=common_pb2.RequestHeader(clock=ahead)),
        value=b"w", checksum=crc32c.crc32c(b"w")))
    second = reply.info.version
    assert (second.physical_ms, second.logical) > (ahead.physical_ms, ahead.logical)
    assert reply.header.clock.physical_ms >= ahead.physical_ms
