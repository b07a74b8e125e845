"""cairn._core: argument checks, headers and clock, routing, Put framing, Get checks, paging."""

from __future__ import annotations

import pytest

from cairn import _core as core
from cairn._retry import NOT_SENT
from cairn.codecs import CodecRegistry
from cairn.errors import (
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    Timeout,
    Unavailable,
)
from cairn.types import Version

pytestmark = pytest.mark.unit

HEADER = core.RequestHeader("rid", 0, core.ZERO_VERSION, None)


def info(size: int, checksum: int, *, key: str = "k") -> core.ObjectInfo:
    return core.ObjectInfo("app", key, size, Version(1, 0, 1), checksum)


# --- checksums and ObjectInfo -------------------------------------------------------


def test_checksum_is_crc32c_and_continues():
    assert core.checksum(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert core.checksum(b"6789", core.checksum(b"12345")) == 0xE3069283
    assert core.checksum(memoryview(b"x123456789")[1:]) == 0xE3069283
    assert core.checksum(b"") == 0


def test_object_info_from_wire_fields():
    got = core.object_info(
        bucket=b"app", key="clé".encode(), size=3, version=Version(5, 1, 2), checksum=7,
        codec="", metadata={"a": "b"}, tier="local", deleted=False, partition=9,
        modified_ms=5,
    )
    assert got.key == "clé"
    assert got.codec == "raw"  # empty means raw (object.proto PutHeader.codec)
    assert got.metadata == {"a": "b"}
    assert hash(got) == hash(got)  # hashable although metadata is a dict


def test_object_info_refuses_undecodable_keys():
    with pytest.raises(InternalError):
        core.object_info(
            bucket=b"app", key=b"\xff", size=0, version=Version(1), checksum=0, codec="raw",
            metadata={}, tier="", deleted=False, partition=0, modified_ms=0,
        )


def test_get_result_unpacks():
    result = core.GetResult([1], info(1, 2))
    value, got = result
    assert value == result.value == [1]
    assert got is result.info


# --- argument checks -----------------------------------------------------------------


def test_check_key_encodes_str_and_keeps_bytes():
    assert core.check_key("clé") == "clé".encode()
    assert core.check_key(b"raw") == b"raw"
    assert core.check_key(bytearray(b"ba")) == b"ba"


@pytest.mark.parametrize("bad", ["", b"", "a\x00b", b"\xff", "x" * 1025, 5, None, "\ud800"])
def test_check_key_refuses(bad):
    with pytest.raises(InvalidArgument):
        core.check_key(bad)


def test_check_bucket():
    assert core.check_bucket("app-1") == b"app-1"
    for bad in ("A", "ab", "a" * 64, "192.168.1.1", 5, b"app"):
        with pytest.raises(InvalidArgument):
            core.check_bucket(bad)


def test_check_metadata():
    assert core.check_metadata(None) == {}
    md = {"owner": "ana"}
    copy = core.check_metadata(md)
    assert copy == md and copy is not md
    for bad in ({"": "x"}, {"a": 1}, {1: "a"}, ["a"], {"a": "x" * 2048}):
        with pytest.raises(InvalidArgument):
            core.check_metadata(bad)


def test_check_consistency():
    for ok in (None, "one", "quorum", "all"):
        assert core.check_consistency(ok) == ok
    with pytest.raises(InvalidArgument):
        core.check_consistency("most")


def test_check_range():
    assert core.check_range(None, None) == (None, None)
    assert core.check_range(2, 5) == (2, 5)
    assert core.check_range(5, 5) == (5, 5)
    for start, end in ((5, 2), (-1, None), (None, -1), (1.5, None), (True, None)):
        with pytest.raises(InvalidArgument):
            core.check_range(start, end)


def test_check_page_size_and_timeout():
    assert core.check_page_size(1) == 1
    assert core.check_page_size(1000) == 1000
    for bad in (0, 1001, 2.0, True):
        with pytest.raises(InvalidArgument):
            core.check_page_size(bad)
    assert core.check_timeout(1) == 1.0
    for bad in (0, -1, float("inf"), float("nan"), "1", True):
        with pytest.raises(InvalidArgument):
            core.check_timeout(bad)


def test_check_prefix():
    assert core.check_prefix("prefix", None) == b""
    assert core.check_prefix("prefix", "") == b""
    assert core.check_prefix("prefix", "é") == "é".encode()
    assert core.check_prefix("prefix", b"\xff") == b"\xff"  # any bytes: it only compares
    with pytest.raises(InvalidArgument):
        core.check_prefix("prefix", 3)
    with pytest.raises(InvalidArgument):
        core.check_prefix("prefix", "x" * 1025)


def test_parse_seeds():
    assert core.parse_seeds(["a:1", "b:2", "a:1"]) == ("a:1", "b:2")
    assert core.parse_seeds("a:1, b:2,") == ("a:1", "b:2")
    assert core.parse_seeds(None, {"CAIRN_SEEDS": "127.0.0.1:7101"}) == ("127.0.0.1:7101",)
    for bad in ([], "", ["nope"], [5]):
        with pytest.raises(InvalidArgument):
            core.parse_seeds(bad)
    with pytest.raises(InvalidArgument, match="CAIRN_SEEDS"):
        core.parse_seeds(None, {})


def test_make_registry():
    assert not core.make_registry(False, None).allow_pickle
    assert core.make_registry(True, None).allow_pickle
    mine = CodecRegistry()
    assert core.make_registry(False, mine) is mine
    with pytest.raises(InvalidArgument):
        core.make_registry(True, mine)


# --- headers and the clock ---------------------------------------------------------


def test_session_headers_carry_the_greatest_clock():
    session = core.Session("quorum")
    first = session.header("r1")
    assert first.clock == core.ZERO_VERSION
    assert first.epoch == 0
    assert first.consistency == "quorum"
    assert session.header("r1", "one").consistency == "one"
    session.observe(core.ResponseHeader(epoch=3, clock=Version(10, 2, 1), node_id=1))
    session.observe(core.ResponseHeader(epoch=2, clock=Version(9, 9, 9), node_id=2))
    assert session.clock == Version(10, 2, 1)
    assert session.header("r2").clock == Version(10, 2, 1)
    assert session.newest_epoch == 3
    assert session.header("r2").epoch == 0  # no map fetched yet


def test_request_ids_are_uuid4_hex():
    a, b = core.new_request_id(), core.new_request_id()
    assert a != b and len(a) == 32 and int(a, 16) >= 0


# --- routing --------------------------------------------------------------------------


def test_seed_router_prefers_what_answered_and_moves_on_retryable_failures():
    router = core.SeedRouter(["a:1", "b:1", "c:1"])
    assert router.route() == ("a:1", "b:1", "c:1")
    router.succeeded("b:1")
    assert router.route() == ("b:1", "c:1", "a:1")
    router.failed("b:1", NotFound("x"))  # not retryable: the node answered
    assert router.route()[0] == "b:1"
    router.failed("b:1", Unavailable("x"))
    assert router.route()[0] == "c:1"
    router.failed("a:1", Unavailable("x"))  # not the preferred one: no change
    assert router.route()[0] == "c:1"


def test_failover_only_when_the_request_was_not_sent():
    assert core.is_failover(Unavailable("refused", **{NOT_SENT: True}))
    assert not core.is_failover(Unavailable("quorum failed"))
    assert not core.is_failover(Timeout("slow"))
    assert not core.is_failover(NotFound("x", **{NOT_SENT: True}))


# --- Put --------------------------------------------------------------------------------


def test_put_small_threshold():
    assert core.use_put_small(0)
    assert core.use_put_small(core.SMALL_OBJECT_BYTES)
    assert not core.use_put_small(core.SMALL_OBJECT_BYTES + 1)


def test_split_value():
    assert [(bytes(c), last) for c, last in core.split_value(b"")] == [(b"", True)]
    assert [(bytes(c), last) for c, last in core.split_value(b"abcd", 2)] == [
        (b"ab", False), (b"cd", True)]
    assert [(bytes(c), last) for c, last in core.split_value(b"abcde", 2)] == [
        (b"ab", False), (b"cd", False), (b"e", True)]


def head(size: int | None) -> core.PutHead:
    return core.PutHead(HEADER, b"app", b"k", "raw", {}, size)


def test_put_framer_puts_head_first_and_end_last():
    data = b"abcdefg"
    framer = core.PutFramer(head(len(data)))
    messages = [framer.frame(c, last=last) for c, last in core.split_value(data, 3)]
    assert [m.head is not None for m in messages] == [True, False, False]
    assert [m.end is not None for m in messages] == [False, False, True]
    assert b"".join(m.chunk for m in messages) == data
    assert messages[-1].end == core.PutEnd(len(data), core.checksum(data))


def test_put_framer_one_message_for_one_chunk():
    (message,) = [core.PutFramer(head(None)).frame(b"xy", last=True)]
    assert message.head is not None and message.end == core.PutEnd(2, core.checksum(b"xy"))


def test_put_framer_catches_a_source_that_changed_size():
    framer = core.PutFramer(head(4))
    framer.frame(b"ab", last=False)
    with pytest.raises(InvalidArgument, match="change"):
        framer.frame(b"c", last=True)  # shrank
    framer = core.PutFramer(head(2))
    with pytest.raises(InvalidArgument):
        framer.frame(b"abc", last=False)  # grew
    with pytest.raises(InvalidArgument):
        core.check_source_size(3, 4)


# --- Get --------------------------------------------------------------------------------


def get_head(size: int, crc: int, start: int = 0, end: int | None = None) -> core.GetHead:
    return core.GetHead(info(size, crc), start, size if end is None else end)


def run(verifier: core.GetVerifier, parts: list[core.GetPart]) -> bytes:
    data = b"".join(verifier.accept(p) for p in parts)
    verifier.finish()
    return data


def test_get_verifier_accepts_a_whole_value_in_parts():
    data = b"hello world"
    crc = core.checksum(data)
    parts = [
        core.GetPart(get_head(len(data), crc), data[:4], None),
        core.GetPart(None, data[4:], None),
        core.GetPart(None, b"", crc),
    ]
    verifier = core.GetVerifier()
    assert run(verifier, parts) == data
    assert verifier.received == len(data)


def test_get_verifier_accepts_a_clamped_range():
    data = b"hello world"
    piece = data[6:]
    part = core.GetPart(get_head(len(data), core.checksum(data), 6, 11), piece,
                        core.checksum(piece))
    assert run(core.GetVerifier(6, 100), [part]) == piece


def test_get_verifier_compares_whole_values_with_the_writers_checksum():
    data = b"abc"
    # GetEnd agrees with the bytes, but the writer's checksum does not: rot on the node
    # before it computed GetEnd, or a wrong value served.
    part = core.GetPart(get_head(3, core.checksum(b"abd")), data, core.checksum(data))
    with pytest.raises(IntegrityError, match="writer"):
        run(core.GetVerifier(), [part])


def test_get_verifier_catches_a_flipped_bit():
    part = core.GetPart(get_head(3, core.checksum(b"abc")), b"abd", core.checksum(b"abc"))
    with pytest.raises(IntegrityError, match="GetEnd"):
        run(core.GetVerifier(), [part])


def test_get_verifier_needs_get_end():
    part = core.GetPart(get_head(3, core.checksum(b"abc")), b"abc", None)
    with pytest.raises(IntegrityError, match="incomplete"):
        run(core.GetVerifier(), [part])
    with pytest.raises(IntegrityError):
        core.GetVerifier().finish()  # an empty stream


def test_get_verifier_catches_short_and_long_streams():
    crc = core.checksum(b"ab")
    with pytest.raises(IntegrityError, match="received 2 bytes"):
        run(core.GetVerifier(), [core.GetPart(get_head(3, 0), b"ab", crc)])
    with pytest.raises(IntegrityError, match="more than"):
        run(core.GetVerifier(), [core.GetPart(get_head(1, 0), b"ab", crc)])


def test_get_verifier_grammar():
    h = get_head(0, 0)
    with pytest.raises(InternalError, match="start"):
        core.GetVerifier().accept(core.GetPart(None, b"", 0))
    v = core.GetVerifier()
    v.accept(core.GetPart(h, b"", None))
    with pytest.raises(InternalError, match="second"):
        v.accept(core.GetPart(h, b"", None))
    v = core.GetVerifier()
    v.accept(core.GetPart(h, b"", 0))
    with pytest.raises(InternalError, match="after GetEnd"):
        v.accept(core.GetPart(None, b"", None))
    with pytest.raises(InternalError, match="was asked"):
        core.GetVerifier(0, 2).accept(core.GetPart(get_head(5, 0, 1, 2), b"", None))


def test_verify_value():
    core.verify_value(info(3, core.checksum(b"abc")), b"abc")
    with pytest.raises(IntegrityError):
        core.verify_value(info(3, core.checksum(b"abc")), b"abd")
    with pytest.raises(IntegrityError):
        core.verify_value(info(4, core.checksum(b"abc")), b"abc")


# --- List -------------------------------------------------------------------------------


def test_list_cursor_follows_tokens_until_an_empty_one():
    cursor = core.ListCursor(b"app", prefix=b"p", start_after=b"p1", page_size=2)
    first = cursor.request(HEADER)
    assert (first.prefix, first.start_after, first.page_token, first.limit) == (
        b"p", b"p1", b"", 2)
    cursor.advance(core.ListPage((info(1, 1, key="p2"),), b"t1"))
    assert not cursor.done
    assert cursor.request(HEADER).page_token == b"t1"
    cursor.advance(core.ListPage((), b"t2"))  # an empty page while more remain
    assert not cursor.done
    cursor.advance(core.ListPage((info(1, 1, key="p3"),), b""))
    assert cursor.done


def test_list_cursor_refuses_a_token_that_makes_no_progress():
    cursor = core.ListCursor(b"app")
    cursor.advance(core.ListPage((), b"t"))
    with pytest.raises(InternalError):
        cursor.advance(core.ListPage((), b"t"))


# --- the mapping's codec choice -------------------------------------------------------------


def test_shelf_codec():
    assert core.shelf_codec(b"x", "json") is None
    assert core.shelf_codec(bytearray(b"x"), "json") is None
    assert core.shelf_codec("x", "json") is None
    assert core.shelf_codec([1], "json") == "json"
    assert core.shelf_codec({"a": 1}, "pickle") == "pickle"
