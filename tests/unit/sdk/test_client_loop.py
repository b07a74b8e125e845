"""The facades' loops against a scripted transport (no sockets), for Client and AsyncClient.

Retries and failover between seeds, request ids and clocks across attempts, the small
object fast path and its fallbacks, verification of what comes back, downloads that
leave the target alone on failure.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cairn
from cairn import _core as core
from cairn._retry import NOT_SENT
from cairn.errors import (
    IntegrityError,
    InternalError,
    NotFound,
    ResourceExhausted,
    Timeout,
    Unavailable,
)
from cairn.types import Version

pytestmark = pytest.mark.unit

FAST = cairn.Retry(max_attempts=3, backoff=cairn.Backoff(base_s=0.0, max_s=0.0))


def refused() -> Unavailable:
    return Unavailable("connection refused", **{NOT_SENT: True})


def info(data: bytes, key: str = "k") -> core.ObjectInfo:
    return core.ObjectInfo("app", key, len(data), Version(1, 0, 1), core.checksum(data), "raw")


def no_map(address: str) -> core.FetchedMap:
    raise InternalError("UNIMPLEMENTED: an old node without GetClusterMap")


class Script:
    """A transport whose answers are functions of (address, request).

    ``GetClusterMap`` requests are answered by ``on_map`` and kept apart in
    ``map_calls``; by default no map can be had, so the client routes by seeds.
    """

    def __init__(self, session: core.Session) -> None:
        self.session = session
        self.calls: list[tuple[str, Any]] = []
        self.map_calls: list[tuple[str, float]] = []
        self.on_map: Callable[[str], core.FetchedMap] = no_map
        self.on_call: Callable[[str, Any], Any] = lambda a, r: None
        self.on_get: Callable[[str, core.GetRequest], Iterator[core.GetPart]] = (
            lambda a, r: iter(()))
        self.on_put: Callable[[str, list[core.PutMessage]], Any] = lambda a, m: None

    def call(self, address, request, timeout_s):
        assert timeout_s > 0
        if isinstance(request, core.ClusterMapRequest):
            self.map_calls.append((address, timeout_s))
            return self.on_map(address)
        self.calls.append((address, request))
        self.session.observe(core.ResponseHeader(1, Version(len(self.calls), 0, 9), 9))
        return self.on_call(address, request)

    def get(self, address, request, timeout_s):
        self.calls.append((address, request))
        yield from self.on_get(address, request)

    def put(self, address, messages, timeout_s):
        messages = list(messages)
        self.calls.append((address, messages))
        return self.on_put(address, messages)

    def close(self):
        pass


class AsyncScript:
    def __init__(self, script: Script) -> None:
        self.script = script

    async def call(self, address, request, timeout_s):
        return self.script.call(address, request, timeout_s)

    async def get(self, address, request, timeout_s):
        for part in self.script.get(address, request, timeout_s):
            yield part

    async def put(self, address, messages, timeout_s):
        return self.script.put(address, [m async for m in messages], timeout_s)

    async def close(self):
        pass


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


def make(kind: str, seeds=("a:1",), **kwargs) -> tuple[Any, Script]:
    cls = cairn.Client if kind == "sync" else cairn.AsyncClient
    client = cls(list(seeds), retry=kwargs.pop("retry", FAST), **kwargs)
    script = Script(client._session)
    client._transport = script if kind == "sync" else AsyncScript(script)
    return client, script


async def call(client, name: str, *args, **kwargs) -> Any:
    result = getattr(client, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if name == "list":
        if hasattr(result, "__aiter__"):
            return [x async for x in result]
        return list(result)
    return result


# --- retries and failover -------------------------------------------------------------------


async def test_fails_over_to_the_next_seed_when_not_sent(kind):
    client, script = make(kind, seeds=("a:1", "b:1"))

    def answer(address, request):
        if address == "a:1":
            raise refused()
        return info(b"x")

    script.on_call = answer
    assert (await call(client, "head", "app", "k")).key == "k"
    assert [a for a, _ in script.calls] == ["a:1", "b:1"]
    await call(client, "head", "app", "k")
    assert script.calls[-1][0] == "b:1"  # the seed that answered goes first now


async def test_idempotent_calls_are_retried_with_the_same_request_id(kind):
    client, script = make(kind)
    failures = [Unavailable("quorum failed"), Timeout("slow")]

    def answer(address, request):
        if failures:
            raise failures.pop(0)
        return info(b"x")

    script.on_call = answer
    await call(client, "head", "app", "k")
    requests = [r for _, r in script.calls]
    assert len(requests) == 3
    assert len({r.header.request_id for r in requests}) == 1
    # each attempt carries the greatest clock seen so far
    assert [r.header.clock.physical_ms for r in requests] == [0, 1, 2]


async def test_retries_stop_at_max_attempts(kind):
    client, script = make(kind)

    def answer(address, request):
        raise Unavailable("down")

    script.on_call = answer
    with pytest.raises(Unavailable):
        await call(client, "head", "app", "k")
    assert len(script.calls) == 3


async def test_not_found_is_not_retried(kind):
    client, script = make(kind)

    def answer(address, request):
        raise NotFound("no")

    script.on_call = answer
    with pytest.raises(KeyError):
        await call(client, "head", "app", "k")
    assert len(script.calls) == 1


async def test_create_bucket_is_retried_only_when_not_sent(kind):
    client, script = make(kind)

    def answer(address, request):
        raise Unavailable("lost after sending")

    script.on_call = answer
    with pytest.raises(Unavailable):
        await call(client, "create_bucket", "app")
    assert len(script.calls) == 1

    client, script = make(kind)
    failures = [refused()]

    def answer_later(address, request):
        if failures:
            raise failures.pop(0)

    script.on_call = answer_later
    await call(client, "create_bucket", "app")
    assert len(script.calls) == 2


async def test_no_retry_sleeps_past_the_deadline(kind):
    slow = cairn.Retry(max_attempts=5, backoff=cairn.Backoff(base_s=10, max_s=10,
                                                              jitter="none"))
    client, script = make(kind, retry=slow, timeout=1.0)

    def answer(address, request):
        raise Unavailable("down")

    script.on_call = answer
    with pytest.raises(Unavailable):
        await call(client, "head", "app", "k")
    assert len(script.calls) == 1


async def test_an_expired_deadline_is_a_timeout(kind):
    client, script = make(kind, seeds=("a:1", "b:1"))
    now = [0.0]
    client._clock = lambda: now[0]

    def answer(address, request):
        now[0] += 100  # the call took all the time there was
        raise refused()

    script.on_call = answer
    with pytest.raises(Timeout):  # b:1 is not tried: no time was left for it
        await call(client, "head", "app", "k")
    assert [a for a, _ in script.calls] == ["a:1"]


async def test_consistency_travels_in_the_header(kind):
    client, script = make(kind, consistency="all")
    script.on_call = lambda a, r: info(b"x")
    await call(client, "head", "app", "k")
    await call(client, "head", "app", "k", consistency="one")
    assert [r.header.consistency for _, r in script.calls] == ["all", "one"]


# --- put ------------------------------------------------------------------------------------


async def test_small_values_take_the_unary_fast_path(kind):
    client, script = make(kind)
    script.on_call = lambda a, r: info(r.value)
    await call(client, "put", "app", "k", {"a": 1}, codec="json", metadata={"m": "v"})
    (_, request), = script.calls
    assert isinstance(request, core.PutSmallRequest)
    assert request.value == b'{"a":1}'
    assert request.checksum == core.checksum(b'{"a":1}')
    assert request.head.codec == "json" and request.head.metadata == {"m": "v"}


async def test_large_values_stream_in_chunks(kind):
    client, script = make(kind)
    data = bytes(range(256)) * (5 * 4096 + 1)  # a little over 5 MiB
    script.on_put = lambda a, messages: info(data)
    await call(client, "put", "app", "k", data)
    (_, messages), = script.calls
    assert len(messages) == 6
    assert all(len(m.chunk) == core.CHUNK_BYTES for m in messages[:-1])
    assert messages[0].head is not None and messages[0].head.size == len(data)
    assert messages[-1].end == core.PutEnd(len(data), core.checksum(data))


async def test_put_small_refused_as_too_large_falls_back_on_the_stream(kind):
    client, script = make(kind)

    def answer(address, request):
        raise ResourceExhausted("over this node's small_object_bytes")

    script.on_call = answer
    script.on_put = lambda a, messages: info(b"x")
    await call(client, "put", "app", "k", b"x")
    assert isinstance(script.calls[0][1], core.PutSmallRequest)
    assert isinstance(script.calls[1][1], list)


async def test_codec_errors_fail_before_any_call(kind):
    client, script = make(kind)
    with pytest.raises(cairn.CodecError):
        await call(client, "put", "app", "k", {"a": 1})  # no codec for a dict
    with pytest.raises(cairn.PickleRefused):
        await call(client, "put", "app", "k", {"a": 1}, codec="pickle")
    assert script.calls == []


# --- get ------------------------------------------------------------------------------------


def whole_stream(data: bytes, *, end_crc: int | None = None, writer_crc: int | None = None):
    crc = core.checksum(data)
    obj = info(data)
    if writer_crc is not None:
        obj = core.ObjectInfo("app", "k", len(data), obj.version, writer_crc, "raw")
    yield core.GetPart(core.GetHead(obj, 0, len(data)), data[: len(data) // 2], None)
    yield core.GetPart(None, data[len(data) // 2 :], crc if end_crc is None else end_crc)


async def test_get_verifies_the_small_value(kind):
    client, script = make(kind)
    good = info(b"abc")
    script.on_call = lambda a, r: core.SmallValue(good, b"abc")
    assert await call(client, "get", "app", "k") == b"abc"
    script.on_call = lambda a, r: core.SmallValue(good, b"abd")
    with pytest.raises(IntegrityError):
        await call(client, "get", "app", "k")
    assert len(script.calls) == 2  # integrity errors are not retried


async def test_get_of_a_large_value_streams_it(kind):
    client, script = make(kind)
    data = b"0123456789"
    script.on_call = lambda a, r: core.SmallValue(info(data), None)
    script.on_get = lambda a, r: whole_stream(data)
    value, got = await call(client, "get_object", "app", "k")
    assert value == data and got.size == len(data)
    assert [type(r).__name__ for _, r in script.calls] == ["GetSmallRequest", "GetRequest"]


async def test_streamed_get_checks_the_writers_checksum(kind):
    client, script = make(kind)
    data = b"0123456789"
    script.on_call = lambda a, r: core.SmallValue(info(data), None)
    script.on_get = lambda a, r: whole_stream(data, writer_crc=1)
    with pytest.raises(IntegrityError):
        await call(client, "get", "app", "k")


async def test_ranges_are_streamed_and_verified(kind):
    client, script = make(kind)
    data = b"0123456789"

    def stream(address, request):
        piece = data[request.start : request.end]
        obj = info(data)
        yield core.GetPart(core.GetHead(obj, request.start, request.end), piece,
                           core.checksum(piece))

    script.on_get = stream
    assert await call(client, "get_bytes", "app", "k", start=2, end=5) == b"234"
    (_, request), = script.calls
    assert (request.start, request.end) == (2, 5)


# --- download and upload ------------------------------------------------------------------


async def test_download_of_a_bad_stream_leaves_the_target_alone(kind, tmp_path):
    client, script = make(kind)
    target = tmp_path / "out"
    target.write_bytes(b"old")
    data = b"0123456789"
    script.on_get = lambda a, r: whole_stream(data, end_crc=1)
    with pytest.raises(IntegrityError):
        await call(client, "download", "app", "k", target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


async def test_download_retries_on_a_fresh_file(kind, tmp_path):
    client, script = make(kind)
    data = b"0123456789"
    broken = [True]

    def stream(address, request):
        parts = whole_stream(data)
        yield next(parts)
        if broken:
            broken.clear()
            raise Unavailable("node went away mid-stream")
        yield from parts

    script.on_get = stream
    seen: list[tuple[int, int | None]] = []
    got = await call(client, "download", "app", "k", tmp_path / "out",
                     progress=lambda done, total: seen.append((done, total)))
    assert got.size == len(data)
    assert (tmp_path / "out").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert seen[-1] == (len(data), len(data))


async def test_upload_of_a_large_file_streams_and_reports_progress(kind, tmp_path):
    client, script = make(kind)
    data = bytes(range(256)) * (4096 * 2 + 100)  # just over 2 MiB
    path = tmp_path / "f"
    path.write_bytes(data)
    script.on_put = lambda a, messages: info(data)
    seen: list[tuple[int, int | None]] = []
    await call(client, "upload", "app", "k", path,
               progress=lambda done, total: seen.append((done, total)))
    (_, messages), = script.calls
    assert b"".join(m.chunk for m in messages) == data
    assert messages[0].head.size == len(data)
    assert messages[-1].end == core.PutEnd(len(data), core.checksum(data))
    assert len(messages) == 3 and seen[-1] == (len(data), len(data))


async def test_upload_of_a_small_file_takes_the_fast_path(kind, tmp_path):
    client, script = make(kind)
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    script.on_call = lambda a, r: info(r.value)
    await call(client, "upload", "app", "k", path)
    (_, request), = script.calls
    assert isinstance(request, core.PutSmallRequest) and request.value == b"abc"


async def test_upload_retry_rewinds_the_source(kind):
    client, script = make(kind)
    data = b"x" * (core.SMALL_OBJECT_BYTES + 10)
    failures = [Unavailable("node restarted")]

    def answer(address, messages):
        if failures:
            raise failures.pop(0)
        assert b"".join(m.chunk for m in messages) == data
        return info(data)

    script.on_put = answer
    await call(client, "upload", "app", "k", io.BytesIO(data))
    assert len(script.calls) == 2


class Pipe(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        out, self._data = self._data[:n], self._data[n:]
        return out


async def test_upload_from_a_pipe_is_not_retried(kind):
    client, script = make(kind, seeds=("a:1", "b:1"))

    def answer(address, messages):
        raise refused()

    script.on_put = answer
    with pytest.raises(Unavailable):
        await call(client, "upload", "app", "k", Pipe(b"abc"))
    assert len(script.calls) == 1


# --- list and the mapping ------------------------------------------------------------------


async def test_list_follows_page_tokens(kind):
    client, script = make(kind)
    pages = {
        b"": core.ListPage((info(b"", "a"), info(b"", "b")), b"t1"),
        b"t1": core.ListPage((), b"t2"),
        b"t2": core.ListPage((info(b"", "c"),), b""),
    }
    script.on_call = lambda a, r: pages[r.page_token]
    keys = [o.key for o in await call(client, "list", "app", prefix="", page_size=2)]
    assert keys == ["a", "b", "c"]
    assert [r.limit for _, r in script.calls] == [2, 2, 2]
    assert len({r.header.request_id for _, r in script.calls}) == 1


def test_list_checks_its_arguments_when_called():
    client, _ = make("sync")
    with pytest.raises(cairn.InvalidArgument):
        client.list("app", page_size=0)
    aclient, _ = make("async")
    with pytest.raises(cairn.InvalidArgument):
        aclient.list("Bad_Bucket")


def test_mapping_deletes_only_what_exists():
    client, script = make("sync")

    def answer(address, request):
        if isinstance(request, core.DeleteRequest):
            raise AssertionError("delete must not be sent")
        raise NotFound("no")

    script.on_call = answer
    shelf = client.bucket("app")
    with pytest.raises(KeyError):
        del shelf["k"]
    assert "k" not in shelf
    assert shelf.get("k", 5) == 5


def test_mapping_lets_a_missing_bucket_through():
    client, script = make("sync")

    def answer(address, request):
        raise cairn.BucketNotFound("no bucket")

    script.on_call = answer
    shelf = client.bucket("app")
    with pytest.raises(cairn.BucketNotFound):
        shelf.get("k")
    with pytest.raises(cairn.BucketNotFound):
        "k" in shelf  # noqa: B015


def test_mapping_codec_choice():
    client, script = make("sync")
    script.on_call = lambda a, r: info(r.value)
    shelf = client.bucket("app")
    shelf["b"] = b"raw"
    shelf["t"] = "text"
    shelf["j"] = [1, 2, 3]
    assert [r.head.codec for _, r in script.calls] == ["raw", "text", "json"]
    with pytest.raises(cairn.PickleRefused):
        client.bucket("app", codec="pickle")
