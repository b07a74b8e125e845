"""Engine behaviour on real LMDB and real files in tmp_path."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cairn.errors import (
    AlreadyExists,
    BucketNotFound,
    FailedPrecondition,
    IntegrityError,
    InvalidArgument,
    NotFound,
)
from cairn.node.storage import format as fmt
from cairn.types import Version

pytestmark = pytest.mark.unit

V1, V2, V3 = Version(1000, 0, 1), Version(2000, 0, 1), Version(3000, 0, 1)


@pytest.fixture
def engine(make_engine):
    e = make_engine()
    e.create_bucket("app")
    return e


def test_put_get_head_round_trip(engine):
    r = engine.put("app", b"k", b"hello", version=V1, codec="text", metadata={"a": "1"},
                   partition=7)
    assert r.applied
    assert r.info.size == 5
    assert r.info.checksum == fmt.crc32c(b"hello")
    assert engine.get("app", b"k").read() == b"hello"
    info = engine.head("app", b"k")
    assert (info.codec, dict(info.metadata), info.partition, info.version) == (
        "text", {"a": "1"}, 7, V1)


def test_newest_version_wins_in_any_arrival_order(engine):
    assert engine.put("app", b"k", b"two", version=V2).applied
    stale = engine.put("app", b"k", b"one", version=V1)
    assert not stale.applied
    assert stale.info.version == V2
    assert engine.get("app", b"k").read() == b"two"
    again = engine.put("app", b"k", b"two", version=V2)
    assert not again.applied, "the same version twice is a no-op"
    assert not engine.delete("app", b"k", version=V1).applied
    assert engine.get("app", b"k").read() == b"two"


def test_delete_writes_a_tombstone_that_beats_older_puts(engine):
    engine.put("app", b"k", b"v", version=V1)
    assert engine.delete("app", b"k", version=V2).applied
    with pytest.raises(NotFound):
        engine.get("app", b"k")
    with pytest.raises(KeyError):
        engine.head("app", b"k")
    assert engine.head("app", b"k", include_deleted=True).deleted
    assert not engine.put("app", b"k", b"late", version=V1).applied
    assert engine.put("app", b"k", b"new", version=V3).applied
    assert engine.get("app", b"k").read() == b"new"


def test_tombstone_for_unknown_key_is_kept(engine):
    assert engine.delete("app", b"ghost", version=V2).applied
    assert not engine.put("app", b"ghost", b"old", version=V1).applied


def test_range_reads(engine):
    value = os.urandom(300_000)
    engine.put("app", b"k", value, version=V1)
    for lo, hi in [(0, 1), (1, 2), (65535, 65537), (100, 299_999), (0, 300_000), (299_999, None),
                   (300_000, None), (0, 300_001), (5, 5)]:
        assert engine.get("app", b"k", start=lo, end=hi).read() == value[lo:hi]
    for lo, hi in [(300_001, None), (5, 4), (-1, 3)]:
        with pytest.raises(InvalidArgument):
            engine.get("app", b"k", start=lo, end=hi)


def test_empty_value(engine):
    engine.put("app", b"empty", b"", version=V1)
    assert engine.get("app", b"empty").read() == b""
    assert engine.head("app", b"empty").size == 0


def test_streamed_large_object_bounded_chunks(make_engine):
    engine = make_engine(large_object_bytes=1 << 20)
    engine.create_bucket("app")
    chunks = [os.urandom(256 * 1024) for _ in range(20)]
    r = engine.put_stream("app", b"big", iter(chunks), version=V1, size=20 * 256 * 1024)
    assert r.applied
    assert r.info.size == 20 * 256 * 1024
    whole = b"".join(chunks)
    reader = engine.get("app", b"big")
    got = list(reader)
    assert b"".join(got) == whole
    assert max(len(c) for c in got) <= engine.config.read_chunk_bytes
    assert engine.get("app", b"big", start=1_000_000, end=1_000_010).read() == whole[
        1_000_000:1_000_010]


def test_stream_that_fails_stores_nothing(make_engine):
    engine = make_engine(large_object_bytes=1 << 20)
    engine.create_bucket("app")

    def broken():
        yield os.urandom(1 << 20)
        yield os.urandom(1 << 20)
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        engine.put_stream("app", b"big", broken(), version=V1)
    with pytest.raises(NotFound):
        engine.head("app", b"big")
    segs = os.listdir(os.path.join(engine.config.disks[0], "segments"))
    assert not [s for s in segs if s.endswith(".tmp")]


def test_checksum_and_size_are_verified(engine):
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        engine.put("app", b"k", b"abc", version=V1, checksum=fmt.crc32c(b"abd"))
    with pytest.raises(InvalidArgument, match="announced"):
        engine.put_stream("app", b"k", [b"abc"], version=V1, size=4)
    with pytest.raises(NotFound):
        engine.head("app", b"k")


@pytest.mark.parametrize(("key", "why"), [
    (b"", "empty"), (b"a\x00b", "NUL"), (b"\xff\xfe", "UTF-8"), (b"k" * 1025, "limit"),
])
def test_bad_keys_are_refused(engine, key, why):
    with pytest.raises(InvalidArgument, match=why):
        engine.put("app", key, b"v", version=V1)


def test_bad_metadata_is_refused(make_engine):
    engine = make_engine(max_meta_bytes=100)
    engine.create_bucket("app")
    with pytest.raises(InvalidArgument, match="limit"):
        engine.put("app", b"k", b"v", version=V1, metadata={"x": "y" * 200})


def test_buckets(engine):
    with pytest.raises(AlreadyExists):
        engine.create_bucket("app")
    with pytest.raises(InvalidArgument):
        engine.create_bucket("Bad_Name")
    with pytest.raises(BucketNotFound):
        engine.put("nope", b"k", b"v", version=V1)
    engine.create_bucket("other")
    assert engine.list_buckets() == ["app", "other"]
    engine.put("other", b"k", b"v", version=V1)
    with pytest.raises(FailedPrecondition):
        engine.delete_bucket("other")
    engine.delete("other", b"k", version=V2)
    engine.delete_bucket("other")
    assert engine.list_buckets() == ["app"]


def test_list_prefix_start_after_limit(engine):
    for name in ["a1", "a2", "a3", "b1", "b2", "c"]:
        engine.put("app", name.encode(), b"x", version=V1)
    engine.delete("app", b"a2", version=V2)
    keys = lambda **kw: [i.key for i in engine.list("app", **kw)]  # noqa: E731
    assert keys() == [b"a1", b"a3", b"b1", b"b2", b"c"]
    assert keys(prefix=b"a") == [b"a1", b"a3"]
    assert keys(prefix=b"b", start_after=b"b1") == [b"b2"]
    assert keys(start_after=b"a3", limit=2) == [b"b1", b"b2"]
    assert keys(include_deleted=True, prefix=b"a") == [b"a1", b"a2", b"a3"]
    assert keys(prefix=b"zz") == []


def test_list_pages_through_many_keys(engine):
    futures = [engine.submit_put("app", b"key-%05d" % i, b"v", version=V1) for i in range(1500)]
    for f in futures:
        f.result()
    seen, after = [], b""
    while True:
        page = engine.list("app", start_after=after, limit=400)
        if not page:
            break
        seen.extend(i.key for i in page)
        after = page[-1].key
    assert seen == [b"key-%05d" % i for i in range(1500)]


def test_iter_partition_includes_tombstones(engine):
    engine.put("app", b"a", b"x", version=V1, partition=3)
    engine.put("app", b"b", b"x", version=V1, partition=4)
    engine.delete("app", b"c", version=V1, partition=3)
    got = [(i.key, i.deleted) for i in engine.iter_partition(3)]
    assert got == [(b"a", False), (b"c", True)]


def test_reopen_keeps_everything(make_engine, tmp_path):
    engine = make_engine(large_object_bytes=1 << 20)
    engine.create_bucket("app")
    big = os.urandom(3 << 20)
    engine.put("app", b"small", b"s", version=V1)
    engine.put("app", b"big", big, version=V1)
    engine.delete("app", b"small", version=V2)
    engine.close()
    again = make_engine(large_object_bytes=1 << 20)
    assert again.list_buckets() == ["app"]
    assert again.get("app", b"big").read() == big
    with pytest.raises(NotFound):
        again.get("app", b"small")


def test_concurrent_writers_share_fsyncs(engine):
    def put(i):
        return engine.put("app", b"k%d" % i, os.urandom(1024), version=V1)

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(put, range(2000)))
    assert all(r.applied for r in results)
    stats = engine.disks[0].stats
    assert stats.committed_records == 2000
    assert stats.commits < 1000, "group commit should batch concurrent writers"


def test_segments_roll_over_and_compaction_reclaims(make_engine):
    engine = make_engine(segment_max_bytes=1 << 20)
    engine.create_bucket("app")
    payload = {i: os.urandom(20_000) for i in range(200)}
    for i, v in payload.items():
        engine.put("app", b"k%d" % i, v, version=V1)
    for i in range(200):
        if i % 4:
            payload[i] = os.urandom(20_000)
            engine.put("app", b"k%d" % i, payload[i], version=V2)
    engine.delete("app", b"k0", version=V3)
    before = engine.status()[0]
    assert before.segments > 4
    reports = engine.compact()
    assert reports[0].records_moved > 0
    assert reports[0].segments_dropped > 0
    after = engine.status()[0]
    assert after.dead_bytes < before.dead_bytes
    for i, v in payload.items():
        if i == 0:
            with pytest.raises(NotFound):
                engine.get("app", b"k0")
        else:
            assert engine.get("app", b"k%d" % i).read() == v
    assert engine.scrub()[0].damaged == []


def test_compaction_runs_while_writes_go_on(make_engine):
    engine = make_engine(segment_max_bytes=1 << 20)
    engine.create_bucket("app")
    latest: dict[bytes, bytes] = {}
    for i in range(300):
        v = os.urandom(10_000)
        engine.put("app", b"k%d" % (i % 50), v, version=Version(1000 + i, 0, 1))
        latest[b"k%d" % (i % 50)] = v
    stop = threading.Event()
    errors = []

    def writer():
        n = 300
        while not stop.is_set():
            key = b"k%d" % (n % 50)
            v = os.urandom(10_000)
            try:
                engine.put("app", key, v, version=Version(1000 + n, 0, 1))
                latest[key] = v
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(3):
            engine.compact()
    finally:
        stop.set()
        t.join()
    assert not errors
    for key, v in latest.items():
        assert engine.get("app", key).read() == v


def test_tombstones_are_purged_after_grace(make_engine):
    clock = [10_000_000]
    engine = make_engine(segment_max_bytes=1 << 20, tombstone_grace_s=60)
    engine.now_ms = lambda: clock[0]
    for d in engine.disks:
        d.now_ms = engine.now_ms
    engine.create_bucket("app")
    engine.delete("app", b"gone", version=V1)
    for i in range(120):  # push the tombstone's segment to be sealed
        engine.put("app", b"fill%d" % i, os.urandom(10_000), version=V1)
    engine.compact(force=True)
    assert engine.head("app", b"gone", include_deleted=True).deleted, "inside grace: kept"
    engine.now_ms = lambda: clock[0] + 120_000
    engine.compact(force=True)
    with pytest.raises(NotFound):
        engine.head("app", b"gone", include_deleted=True)


def test_map_grows_instead_of_failing(make_engine):
    engine = make_engine(map_size_bytes=1 << 20, inline_max_bytes=4096)
    engine.create_bucket("app")
    for i in range(4000):
        engine.submit_put("app", b"key-%06d" % i, b"v" * 2000, version=V1)
    engine.put("app", b"last", b"v", version=V1)
    assert engine.disks[0].stats.map_resizes >= 1
    assert len(engine.list("app", limit=10_000)) == 4001


def test_inline_values_are_served_and_verified(make_engine):
    engine = make_engine(inline_max_bytes=4096)
    engine.create_bucket("app")
    engine.put("app", b"k", b"small value", version=V1)
    entry = engine.disks[0].lookup(fmt.object_key(b"app", b"k"))
    assert entry.inline == b"small value"
    assert engine.get("app", b"k", start=6).read() == b"value"


def test_two_disks_spread_partitions_and_find_everything(make_engine):
    engine = make_engine(disks=2)
    engine.create_bucket("app")
    for p in range(64):
        engine.put("app", b"k%d" % p, b"v%d" % p, version=V1, partition=p)
    counts = [d.stats.objects for d in engine.disks]
    assert all(c > 10 for c in counts), counts
    for p in range(64):
        assert engine.get("app", b"k%d" % p).read() == b"v%d" % p
    assert len(engine.list("app")) == 64


def test_a_digest_raced_by_a_write_is_not_cached(engine):
    """Regression (repair benchmark): two digests racing a write stored a stale tree."""
    engine.put("app", b"a", b"1", version=V1, partition=9)
    real = engine._partition_entries
    raced = []

    def entries_with_a_write_in_the_middle(partition):
        for item in real(partition):
            if not raced:
                raced.append(True)
                engine.put("app", b"b", b"2", version=V1, partition=9)
            yield item

    engine._partition_entries = entries_with_a_write_in_the_middle
    stale = engine.partition_digest(9, 64)
    engine._partition_entries = real
    fresh = engine.partition_digest(9, 64)
    assert fresh.entries == 2, "the tree computed during the write must not be served"
    assert stale.entries in (1, 2)
