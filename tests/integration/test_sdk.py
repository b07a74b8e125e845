"""The SDK against a real node process, every call through Client and AsyncClient alike.

One node (``python -m cairn.node`` on 127.0.0.1, an ephemeral port) serves the whole
module; each test works in a bucket of its own. Tests are ``async`` so that one body
drives both clients: ``call`` awaits what the AsyncClient returns and takes what the
Client returns as it is.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import os
import socket
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import crc32c
import pytest

import cairn
from cairn._retry import NOT_SENT
from tests.support.node import NodeProcess

pytestmark = pytest.mark.integration

MiB = 1 << 20
NO_RETRY = cairn.Retry(max_attempts=1)


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Any:
    with NodeProcess(tmp_path_factory.mktemp("sdk-node") / "data") as proc:
        yield proc


@pytest.fixture(params=["sync", "async"])
def kind(request) -> str:
    return request.param


def new_client(kind: str, seeds: Any, **kwargs: Any) -> Any:
    return (cairn.Client if kind == "sync" else cairn.AsyncClient)(seeds, **kwargs)


async def close(client: Any) -> None:
    result = client.close()
    if inspect.isawaitable(result):
        await result


@pytest.fixture
async def client(kind, node) -> AsyncIterator[Any]:
    c = new_client(kind, [node.address])
    yield c
    await close(c)


async def call(client: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call on either client; ``list`` is collected into a list."""
    result = getattr(client, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if name == "list":
        if hasattr(result, "__aiter__"):
            return [x async for x in result]
        return list(result)
    return result


def unique_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
async def bucket(client) -> str:
    name = unique_bucket()
    await call(client, "create_bucket", name)
    return name


# --- buckets ----------------------------------------------------------------------------


async def test_bucket_lifecycle(client):
    name = unique_bucket()
    await call(client, "create_bucket", name)
    assert name in await call(client, "list_buckets")
    with pytest.raises(cairn.AlreadyExists):
        await call(client, "create_bucket", name)
    await call(client, "put", name, "k", b"x")
    with pytest.raises(cairn.FailedPrecondition):
        await call(client, "delete_bucket", name)
    await call(client, "delete", name, "k")
    await call(client, "delete_bucket", name)
    assert name not in await call(client, "list_buckets")
    with pytest.raises(cairn.BucketNotFound):
        await call(client, "delete_bucket", name)
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "create_bucket", "Not_A_Bucket")


# --- codecs -----------------------------------------------------------------------------

VALUES = [
    pytest.param(b"\x00raw\xff", None, "raw", id="raw"),
    pytest.param(bytearray(b"ba"), None, "raw", id="bytearray"),
    pytest.param("héllo ✓", None, "text", id="text"),
    pytest.param({"retries": 3, "nested": [1, 2.5, None, True, "é"]}, "json", "json",
                 id="json"),
    pytest.param([1, 2, 3], "json", "json", id="json-list"),
    pytest.param(b"", None, "raw", id="empty"),
]


@pytest.mark.parametrize(("value", "codec", "stored"), VALUES)
async def test_every_codec_round_trips(client, bucket, value, codec, stored):
    info = await call(client, "put", bucket, "k", value, codec=codec)
    assert info.codec == stored
    got, got_info = await call(client, "get_object", bucket, "k")
    assert got == (bytes(value) if isinstance(value, bytearray) else value)
    assert got_info.codec == stored
    assert got_info.version == info.version


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


async def test_pickle_round_trips_with_the_opt_in(kind, node, bucket):
    c = new_client(kind, [node.address], allow_pickle=True)
    try:
        await call(c, "put", bucket, "p", [Point(1, 2), {3}], codec="pickle")
        assert await call(c, "get", bucket, "p") == [Point(1, 2), {3}]
    finally:
        await close(c)


async def test_pickle_without_the_opt_in_is_refused_both_ways(kind, node, client, bucket):
    with pytest.raises(cairn.PickleRefused, match="allow_pickle=True"):
        await call(client, "put", bucket, "p", [1], codec="pickle")
    trusting = new_client(kind, [node.address], allow_pickle=True)
    try:
        await call(trusting, "put", bucket, "p", [1], codec="pickle")
    finally:
        await close(trusting)
    with pytest.raises(cairn.PickleRefused):
        await call(client, "get", bucket, "p")
    assert (await call(client, "head", bucket, "p")).codec == "pickle"
    assert await call(client, "get_bytes", bucket, "p")  # the raw read still works


async def test_custom_codecs_and_unknown_codecs(kind, node, client, bucket):
    upper = cairn.FunctionCodec("upper", lambda v: v.upper().encode(), lambda b: b.decode())
    c = new_client(kind, [node.address], codecs=[upper])
    try:
        await call(c, "put", bucket, "u", "shout", codec="upper")
        assert await call(c, "get", bucket, "u") == "SHOUT"
    finally:
        await close(c)
    with pytest.raises(cairn.CodecError, match="unknown codec 'upper'"):
        await call(client, "get", bucket, "u")  # this client lacks it
    with pytest.raises(cairn.CodecError, match="known codecs"):
        await call(client, "put", bucket, "u", "x", codec="nope")
    with pytest.raises(cairn.CodecError, match="codec='json'"):
        await call(client, "put", bucket, "u", {"a": 1})  # no guessing for a dict


# --- objects ------------------------------------------------------------------------------


async def test_head_reports_size_checksum_version_and_metadata(client, bucket):
    first = await call(client, "put", bucket, "k", b"abc", metadata={"owner": "ana"})
    info = await call(client, "head", bucket, "k")
    assert (info.bucket, info.key, info.size) == (bucket, "k", 3)
    assert info.checksum == crc32c.crc32c(b"abc")
    assert info.metadata == {"owner": "ana"}
    assert info.codec == "raw" and info.tier == "local" and not info.deleted
    assert info.version == first.version
    second = await call(client, "put", bucket, "k", b"abcd")
    assert second.version > first.version
    assert (await call(client, "head", bucket, "k")).metadata == {}


async def test_keys_may_be_str_or_bytes(client, bucket):
    await call(client, "put", bucket, "clé/ü", b"1")
    assert await call(client, "get", bucket, "clé/ü".encode()) == b"1"
    await call(client, "put", bucket, b"bytes-key", b"2")
    assert await call(client, "get", bucket, "bytes-key") == b"2"
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "put", bucket, b"\xff", b"x")
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "put", bucket, "", b"x")


async def test_not_found_is_a_key_error_and_delete_of_a_missing_key_succeeds(client, bucket):
    with pytest.raises(KeyError):
        await call(client, "get", bucket, "missing")
    with pytest.raises(cairn.NotFound) as caught:
        await call(client, "head", bucket, "missing")
    assert type(caught.value) is cairn.NotFound
    version = await call(client, "delete", bucket, "missing")
    assert isinstance(version, cairn.Version)
    await call(client, "put", bucket, "k", b"x")
    tombstone = await call(client, "delete", bucket, "k")
    with pytest.raises(cairn.NotFound):
        await call(client, "get", bucket, "k")
    listed = await call(client, "list", bucket, include_deleted=True)
    assert {(o.key, o.deleted) for o in listed} >= {("k", True)}
    assert [o.version for o in listed if o.key == "k"] == [tombstone]
    assert await call(client, "list", bucket) == []


async def test_a_missing_bucket_is_bucket_not_found(client):
    for name, args in [("get", ("k",)), ("head", ("k",)), ("put", ("k", b"x")),
                       ("delete", ("k",)), ("list", ())]:
        with pytest.raises(cairn.BucketNotFound):
            await call(client, name, "no-such-bucket", *args)


async def test_large_values_stream_both_ways(client, bucket):
    value = os.urandom(3 * MiB + 17)
    info = await call(client, "put", bucket, "big", value)
    assert info.size == len(value) and info.checksum == crc32c.crc32c(value)
    assert await call(client, "get", bucket, "big") == value


async def test_byte_ranges(client, bucket):
    value = os.urandom(2 * MiB + 100)
    await call(client, "put", bucket, "r", value)
    for start, end in [(0, 10), (MiB - 5, MiB + 5), (2 * MiB, None), (None, 3),
                       (5, 5), (0, None), (100, 10 * MiB)]:
        got = await call(client, "get_bytes", bucket, "r", start=start, end=end)
        assert got == value[start:end], (start, end)
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "get_bytes", bucket, "r", start=5, end=2)  # refused here
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "get_bytes", bucket, "r", start=3 * MiB)  # refused by the node
    await call(client, "put", bucket, "j", {"a": 1}, codec="json")
    assert await call(client, "get_bytes", bucket, "j", start=1, end=4) == b'"a"'


async def test_consistency_levels_are_accepted(client, bucket):
    for level in ("one", "quorum", "all"):
        await call(client, "put", bucket, "c", level, consistency=level)
        assert await call(client, "get", bucket, "c", consistency=level) == level
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "get", bucket, "c", consistency="most")


# --- list -----------------------------------------------------------------------------------

KEYS = 10_000


@pytest.fixture(scope="module")
def big_bucket(node) -> str:
    """A bucket of 10,000 keys, written by 64 concurrent puts of one AsyncClient."""
    name = unique_bucket()

    async def fill() -> None:
        async with cairn.AsyncClient([node.address]) as c:
            await c.create_bucket(name)
            gate = asyncio.Semaphore(64)

            async def put(i: int) -> None:
                async with gate:
                    await c.put(name, f"k{i:05d}", i.to_bytes(2, "big"))

            await asyncio.gather(*(put(i) for i in range(KEYS)))

    asyncio.run(fill())
    return name


async def test_list_pages_through_ten_thousand_keys(client, big_bucket):
    keys = [o.key for o in await call(client, "list", big_bucket)]
    assert keys == [f"k{i:05d}" for i in range(KEYS)]
    small_pages = await call(client, "list", big_bucket, prefix="k09", page_size=7)
    assert [o.key for o in small_pages] == [f"k{i:05d}" for i in range(9000, 10_000)]
    after = await call(client, "list", big_bucket, prefix="k099", start_after="k09994")
    assert [o.key for o in after] == [f"k{i:05d}" for i in range(9995, 10_000)]
    assert all(o.size == 2 and o.codec == "raw" for o in small_pages)


async def test_list_is_lazy(client, big_bucket):
    listing = client.list(big_bucket, page_size=3)
    if hasattr(listing, "__anext__"):
        first = [await listing.__anext__() for _ in range(4)]
        await listing.aclose()
    else:
        first = [next(listing) for _ in range(4)]
        listing.close()
    assert [o.key for o in first] == ["k00000", "k00001", "k00002", "k00003"]


# --- upload and download ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("files") / "big.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(64):
            block = os.urandom(MiB)
            digest.update(block)
            f.write(block)
    return path, digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


async def test_upload_and_download_64_mib_in_bounded_memory(client, bucket, big_file,
                                                            tmp_path):
    path, digest = big_file
    sent: list[tuple[int, int | None]] = []
    tracemalloc.start()
    try:
        info = await call(client, "upload", bucket, "big.iso", path,
                          progress=lambda done, total: sent.append((done, total)))
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        got: list[tuple[int, int | None]] = []
        target = tmp_path / "big.out"
        down = await call(client, "download", bucket, "big.iso", target,
                          progress=lambda done, total: got.append((done, total)))
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.size == 64 * MiB and down.size == 64 * MiB
    assert info.checksum == down.checksum
    assert sha256_of(target) == digest
    assert sent[-1] == (64 * MiB, 64 * MiB) and len(sent) == 64
    assert got[-1] == (64 * MiB, 64 * MiB)
    # Python-level allocations of this process: a few chunks, never the whole file.
    assert upload_peak < 16 * MiB, upload_peak
    assert download_peak < 16 * MiB, download_peak
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.out"]


async def test_upload_from_a_file_object_and_download_a_range_into_one(client, bucket):
    data = os.urandom(MiB + 5000)
    info = await call(client, "upload", bucket, "f", io.BytesIO(data), codec="raw",
                      metadata={"from": "bytesio"})
    assert info.size == len(data) and info.metadata == {"from": "bytesio"}
    out = io.BytesIO()
    whole = await call(client, "download", bucket, "f", out, start=MiB - 10, end=MiB + 10)
    assert out.getvalue() == data[MiB - 10 : MiB + 10]
    assert whole.size == len(data)
    small = io.BytesIO()
    await call(client, "upload", bucket, "s", io.BytesIO(b"tiny"))  # the unary fast path
    await call(client, "download", bucket, "s", small)
    assert small.getvalue() == b"tiny"


async def test_download_of_a_missing_object_leaves_the_target_alone(client, bucket, tmp_path):
    target = tmp_path / "keep"
    target.write_bytes(b"old")
    with pytest.raises(cairn.NotFound):
        await call(client, "download", bucket, "missing", target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


# --- the mapping --------------------------------------------------------------------------------


async def test_bucket_as_a_mapping(kind, client, bucket):
    if kind == "sync":
        shelf = client.bucket(bucket)
        shelf["k"] = [1, 2, 3]
        shelf["b"] = b"raw"
        shelf["t"] = "text"
        assert shelf["k"] == [1, 2, 3] and shelf["b"] == b"raw" and shelf["t"] == "text"
        assert "k" in shelf and "zz" not in shelf
        assert sorted(shelf) == ["b", "k", "t"] and len(shelf) == 3
        assert dict(shelf.items())["k"] == [1, 2, 3]
        del shelf["k"]
        with pytest.raises(KeyError):
            del shelf["k"]
        with pytest.raises(KeyError):
            shelf["k"]
        assert shelf.get("k", "default") == "default"
        assert shelf.pop("b") == b"raw" and len(shelf) == 1
    else:
        shelf = client.bucket(bucket)
        await shelf.set("k", [1, 2, 3])
        await shelf.set("b", b"raw")
        assert await shelf.get("k") == [1, 2, 3]
        assert await shelf.contains("k") and not await shelf.contains("zz")
        assert sorted([k async for k in shelf]) == ["b", "k"]
        assert await shelf.count() == 2
        assert dict([kv async for kv in shelf.items()]) == {"k": [1, 2, 3], "b": b"raw"}
        await shelf.delete("k")
        with pytest.raises(KeyError):
            await shelf.delete("k")
        assert await shelf.get("k", "default") == "default"
    assert (await call(client, "head", bucket, "t" if kind == "sync" else "b")).codec in (
        "text", "raw")


# --- errors and routing --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_dead_seed_is_unavailable_and_marked_not_sent(kind):
    c = new_client(kind, [f"127.0.0.1:{free_port()}"], retry=NO_RETRY, timeout=5)
    try:
        with pytest.raises(cairn.Unavailable) as caught:
            await call(c, "list_buckets")
        assert caught.value.details.get(NOT_SENT)
    finally:
        await close(c)


async def test_the_next_seed_is_tried_when_the_first_is_down(kind, node):
    c = new_client(kind, [f"127.0.0.1:{free_port()}", node.address], retry=NO_RETRY)
    try:
        name = unique_bucket()
        await call(c, "create_bucket", name)  # not idempotent, but provably not sent
        assert name in await call(c, "list_buckets")
    finally:
        await close(c)


async def test_a_node_that_never_answers_is_a_timeout(kind):
    with socket.socket() as silent:  # accepts TCP connections, never speaks HTTP/2
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        c = new_client(kind, [address], retry=NO_RETRY, timeout=0.5)
        try:
            with pytest.raises(cairn.Timeout):
                await call(c, "head", "app", "k")
        finally:
            await close(c)


async def test_seeds_from_the_environment(kind, node, monkeypatch):
    monkeypatch.setenv("CAIRN_SEEDS", f" {node.address} ,")
    c = new_client(kind, None)
    try:
        assert c.seeds == (node.address,)
        assert isinstance(await call(c, "list_buckets"), list)
    finally:
        await close(c)


async def test_closed_client_refuses_calls(kind, node):
    c = new_client(kind, [node.address])
    await call(c, "list_buckets")
    await close(c)
    with pytest.raises(RuntimeError, match="closed"):
        await call(c, "list_buckets")


async def test_context_managers(node):
    with cairn.Client([node.address]) as c:
        assert isinstance(c.list_buckets(), list)
    async with cairn.AsyncClient([node.address]) as ac:
        assert isinstance(await ac.list_buckets(), list)


async def test_a_node_with_a_smaller_fast_path_limit(kind, tmp_path):
    """PutSmall refused as too large falls back on the stream; GetSmall's too_large too."""
    with NodeProcess(tmp_path / "data", env={"CAIRN_SMALL_OBJECT_BYTES": "4096"}) as small:
        c = new_client(kind, [small.address])
        try:
            name = unique_bucket()
            await call(c, "create_bucket", name)
            value = os.urandom(10_000)
            await call(c, "put", name, "k", value)
            assert await call(c, "get", name, "k") == value
        finally:
            await close(c)


async def test_a_cancelled_download_leaves_nothing_behind(node, big_file, tmp_path):
    """STYLE 2.9: a cancelled stream's state is discarded, and the client goes on."""
    path, _ = big_file
    async with cairn.AsyncClient([node.address]) as c:
        name = unique_bucket()
        await c.create_bucket(name)
        await c.upload(name, "big", path)
        target = tmp_path / "out"
        started = asyncio.Event()
        task = asyncio.create_task(
            c.download(name, "big", target, progress=lambda done, total: started.set())
        )
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert list(tmp_path.iterdir()) == []
        assert (await c.head(name, "big")).size == 64 * MiB  # the channel still works
        assert await c.get_bytes(name, "big", start=0, end=4) == path.read_bytes()[:4]


async def test_per_call_timeouts(kind, client, bucket):
    await call(client, "put", bucket, "k", b"x", timeout=5)
    assert await call(client, "get", bucket, "k", timeout=5) == b"x"
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "get", bucket, "k", timeout=0)


def test_one_client_shared_by_threads(node):
    from concurrent.futures import ThreadPoolExecutor

    with cairn.Client([node.address]) as c:
        name = unique_bucket()
        c.create_bucket(name)

        def work(i: int) -> bytes:
            value = os.urandom(i * 1000 + (2 * MiB if i % 4 == 0 else 0))
            c.put(name, f"k{i}", value)
            assert c.get(name, f"k{i}") == value
            return value

        with ThreadPoolExecutor(8) as pool:
            values = list(pool.map(work, range(32)))
        assert len(c.bucket(name)) == 32
        assert c.get(name, "k4") == values[4]
