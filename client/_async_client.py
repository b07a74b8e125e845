"""``AsyncClient``: the SDK's facade; it only runs the I/O loop of each call.

Every decision is made elsewhere: argument checks, request building, Put framing, Get
verification and paging in ``cairn._core``; routing (the cluster map, the key's
replicas, health, each attempt's share of the deadline) in ``cairn._routing``; codec
choice in ``cairn.codecs``; retry decisions and backoff in ``cairn._retry``; gRPC in
``cairn._transport``; local files in ``cairn._files``. This module loops: fetching the
cluster map, attempts and their deadlines, the nodes of an attempt, the messages of a
stream.

``client/_async_client.py`` is the source. ``client/_client.py`` is generated from it
by ``.ci/unasync.py`` (like httpcore's unasync), and a test fails when the generated
copy is out of date: edit the source, then run ``python .ci/unasync.py``.
"""

# ASYNC109: a `timeout` argument is this API's contract: it becomes the gRPC deadline of
# every attempt, which a timeout scope around the call could not hand on to the node.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import builtins
import collections.abc
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, Final, TypeVar

from cairn import _core as core
from cairn._core import (
    DEFAULT_TIMEOUT_S,
    MAX_PAGE_SIZE,
    SMALL_OBJECT_BYTES,
    Consistency,
    GetResult,
    NodeStatus,
    ObjectInfo,
    RepairResult,
    RequestHeader,
)
from cairn._files import AsyncFileSink, AsyncFileSource, Progress, Source, Target
from cairn._mapping import DEFAULT_SHELF_CODEC, AsyncBucket
from cairn._retry import Deadline, Retry
from cairn._transport import AsyncTransport
from cairn.cluster.clustermap import ClusterMap
from cairn.codecs import Codec, CodecRegistry
from cairn.errors import CairnError, InvalidArgument, ResourceExhausted, Timeout
from cairn.types import Version

__all__ = ["AsyncClient"]

T = TypeVar("T")

_NO_RETRY: Final = Retry(max_attempts=1)
"""For uploads from a source that cannot seek: its bytes cannot be sent twice."""

Attempt = Callable[[str, Deadline], collections.abc.Awaitable[T]]
"""One attempt of a call, sent to one node: ``attempt(address, deadline)``."""


class AsyncClient:
    """A cairn client: ``async with cairn.AsyncClient(["127.0.0.1:7101"]) as c: ...``.

    Args:
        seeds: node addresses (``host:port``), a list or one comma-separated string;
            None reads ``$CAIRN_SEEDS``.
        timeout: seconds each call may take, all its retries included (per-call
            ``timeout=`` overrides it). Every call has a deadline.
        retry: what is retried and how long to wait (``cairn.Retry``); the default
            makes 3 attempts with full-jitter backoff.
        allow_pickle: let the ``pickle`` codec encode and decode (unsafe with data
            from others; see docs/sdk-codecs.md).
        codecs: extra codecs to register, or a ``CodecRegistry`` to use.
        consistency: the default of each call's ``consistency``: ``"one"``,
            ``"quorum"``, ``"all"``, or None for the cluster's own default.

    Raises:
        InvalidArgument: no seed, a bad address, timeout, retry or consistency.
        CodecError: a codec in ``codecs`` is invalid.
    """

    def __init__(
        self,
        seeds: Sequence[str] | str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: Retry | None = None,
        allow_pickle: bool = False,
        codecs: Iterable[Codec] | CodecRegistry | None = None,
        consistency: Consistency | None = None,
    ) -> None:
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidArgument(f"retry must be a cairn.Retry, not {type(retry).__name__}")
        self._seeds = core.parse_seeds(seeds)
        self._timeout_s = core.check_timeout(timeout)
        self._retry = retry or Retry()
        self._codecs = core.make_registry(allow_pickle, codecs)
        self._session = core.Session(consistency)
        self._clock = time.monotonic
        self._router = core.Router(self._seeds, lambda: self._clock())
        self._transport = AsyncTransport(self._session.observe)
        self._rng = random.Random()

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seed addresses this client was given."""
        return self._seeds

    @property
    def codecs(self) -> CodecRegistry:
        """This client's codecs; ``register`` adds one."""
        return self._codecs

    def __repr__(self) -> str:
        return f"<cairn.AsyncClient seeds={list(self._seeds)!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections. Calls still running fail; later calls raise."""
        await self._transport.close()

    # --- buckets ----------------------------------------------------------------------

    async def create_bucket(self, bucket: str, *, timeout: float | None = None) -> None:
        """Create a bucket (S3 naming rules).

        Raises:
            AlreadyExists: the bucket exists.
            InvalidArgument: the name breaks the rules.
            Unavailable: no node answered (not retried once sent: not idempotent).
        """
        name = core.check_bucket(bucket)
        await self._unary(
            lambda h: core.CreateBucketRequest(h, name), idempotent=False, timeout=timeout
        )

    async def delete_bucket(self, bucket: str, *, timeout: float | None = None) -> None:
        """Delete an empty bucket.

        Raises:
            BucketNotFound: no such bucket.
            FailedPrecondition: the bucket still holds objects.
            Unavailable: no node answered (not retried once sent: not idempotent).
        """
        name = core.check_bucket(bucket)
        await self._unary(
            lambda h: core.DeleteBucketRequest(h, name), idempotent=False, timeout=timeout
        )

    async def list_buckets(self, *, timeout: float | None = None) -> builtins.list[str]:
        """The names of every bucket, sorted.

        Raises:
            Unavailable: no node answered.
        """
        return await self._unary(core.ListBucketsRequest, idempotent=True, timeout=timeout)

    def bucket(self, name: str, *, codec: str = DEFAULT_SHELF_CODEC) -> AsyncBucket:
        """The bucket ``name`` as a mapping (values that are not bytes or str use ``codec``).

        Raises:
            InvalidArgument: a bad bucket name; CodecError: an unknown ``codec``.
        """
        return AsyncBucket(self, name, codec=codec)

    # --- the cluster ------------------------------------------------------------------

    async def cluster_map(self, *, timeout: float | None = None) -> ClusterMap:
        """The cluster map as a seed knows it (``AdminService.GetClusterMap``).

        Asks the seeds in order (the last one that answered first), the next one when
        one fails, each with a share of the deadline. A map newer than the one this
        client routes with replaces it.

        Raises:
            Unavailable: no seed answered.
            Timeout: the deadline passed first.
            InternalError: a node sent a map that breaks the map's rules.
        """
        fetched = await self._fetch_map(self._router.seeds, self._deadline(timeout))
        self._install_map(fetched)
        return fetched.map

    async def node_status(self, address: str, *, timeout: float | None = None) -> NodeStatus:
        """What the node at ``address`` says about itself (``AdminService.Status``).

        Sent to exactly that node, never to another one (retried on it under the
        retry policy).

        Raises:
            InvalidArgument: ``address`` is not ``host:port``.
            Unavailable: the node did not answer, after retries.
            Timeout: the deadline passed first.
        """
        target = core.check_address(address)
        return await self._unary(
            core.NodeStatusRequest, idempotent=True, timeout=timeout, addresses=(target,)
        )

    # The three repair calls below are sent like node_status: to that node only, and
    # idempotent (a repeated Scrub or Repair starts a pass that finds less to do; a
    # repeated SetRepairRate sets the same rate), so they are retried there.

    async def scrub(self, address: str, *, timeout: float | None = None) -> None:
        """Start a scrub pass on the node at ``address`` now (``AdminService.Scrub``).

        Returns once the pass is started, not when it ends: its progress is in
        ``node_status(address).repair`` (``scrub_progress``, ``scrub_passes``).

        Raises:
            InvalidArgument: ``address`` is not ``host:port``.
            FailedPrecondition: the node runs no repair workers.
            Unavailable: the node did not answer, after retries.
            Timeout: the deadline passed first.
        """
        target = core.check_address(address)
        await self._unary(core.ScrubRequest, idempotent=True, timeout=timeout, addresses=(target,))

    async def repair(
        self,
        address: str,
        *,
        partition: int | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> RepairResult:
        """Run anti-entropy on the node at ``address`` now (``AdminService.Repair``).

        The node compares its partitions with their other replicas and copies what
        differs, both ways, at its repair rate (docs/repair.md).

        Args:
            address: the node, ``host:port``.
            partition: only this partition (the node levels it before answering, as
                with ``wait``); None: every partition the node holds.
            wait: answer once the pass has levelled everything; else the pass runs in
                the background and the result is all zeros. Give a ``timeout`` long
                enough for the copying.
            timeout: seconds for the call (the client's default if None).

        Raises:
            InvalidArgument: a bad ``address`` or ``partition``, or a partition the
                cluster does not have.
            FailedPrecondition: the node runs no repair workers.
            Unavailable: the node did not answer, after retries.
            Timeout: the deadline passed first; the node stops this call's levelling
                there (what it copied stays copied; the next pass copies the rest).
        """
        target = core.check_address(address)
        part = core.check_partition(partition)
        return await self._unary(
            lambda h: core.RepairRequest(h, part, bool(wait)),
            idempotent=True,
            timeout=timeout,
            addresses=(target,),
        )

    async def set_repair_rate(
        self, address: str, rate_bytes_s: int, *, timeout: float | None = None
    ) -> None:
        """Set the node's repair rate limit while it runs (``AdminService.SetRepairRate``).

        Anti-entropy and rebuild copy at most ``rate_bytes_s`` bytes per second on that
        node; 0 means unlimited. The node's configured rate returns at its restart.

        Raises:
            InvalidArgument: a bad ``address``, or a rate that is not an int >= 0.
            FailedPrecondition: the node runs no repair workers.
            Unavailable: the node did not answer, after retries.
            Timeout: the deadline passed first.
        """
        target = core.check_address(address)
        rate = core.check_rate(rate_bytes_s)
        await self._unary(
            lambda h: core.SetRepairRateRequest(h, rate),
            idempotent=True,
            timeout=timeout,
            addresses=(target,),
        )

    # --- objects: small calls -----------------------------------------------------------

    async def put(
        self,
        bucket: str,
        key: str | bytes,
        value: Any,
        *,
        codec: str | None = None,
        metadata: Mapping[str, str] | None = None,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Store ``value`` under ``key``, encoded with ``codec`` (bytes: raw, str: text).

        Values up to 1 MiB encoded travel in one unary call; larger ones stream in 1 MiB
        chunks. The node stores nothing unless the CRC32C computed here matches.

        Returns:
            The object as stored, with its new version.

        Raises:
            CodecError: no codec fits the value, or the codec cannot encode it.
            PickleRefused: ``codec="pickle"`` without ``allow_pickle=True``.
            InvalidArgument: a bad bucket name, key or metadata.
            BucketNotFound: the bucket does not exist.
            IntegrityError: the bytes were damaged on the way.
            Unavailable: not enough replicas answered, after retries.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        meta = core.check_metadata(metadata)
        consistency = core.check_consistency(consistency)
        codec_name, data = self._codecs.encode(value, codec)
        return await self._put_bytes(name, raw_key, codec_name, meta, data, consistency, timeout)

    async def get(
        self,
        bucket: str,
        key: str | bytes,
        *,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> Any:
        """The value under ``key``, decoded with the codec it was stored with.

        Raises:
            NotFound: no such object (a ``KeyError``).
            BucketNotFound: no such bucket.
            CodecError: this client lacks the object's codec.
            PickleRefused: a pickled object, without ``allow_pickle=True``.
            IntegrityError: the bytes failed their checksum (nothing is returned).
            Unavailable: not enough replicas answered, after retries.
        """
        result = await self.get_object(bucket, key, consistency=consistency, timeout=timeout)
        return result.value

    async def get_object(
        self,
        bucket: str,
        key: str | bytes,
        *,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> GetResult:
        """The decoded value and its ``ObjectInfo``: ``value, info = get_object(...)``.

        Raises:
            The same as ``get``.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        consistency = core.check_consistency(consistency)
        info, data = await self._read_value(name, raw_key, consistency, timeout)
        return GetResult(self._codecs.decode(info.codec, data), info)

    async def get_bytes(
        self,
        bucket: str,
        key: str | bytes,
        *,
        start: int | None = None,
        end: int | None = None,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> bytes:
        """The stored bytes, not decoded: the whole value, or the range ``[start, end)``.

        ``end`` past the size is clamped to it; None means from 0 / to the end.

        Raises:
            NotFound, BucketNotFound: no such object or bucket.
            InvalidArgument: ``start > end``, or ``start`` past the size.
            IntegrityError: the bytes failed their checksum (nothing is returned).
            Unavailable: not enough replicas answered, after retries.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        start, end = core.check_range(start, end)
        consistency = core.check_consistency(consistency)
        if start is None and end is None:
            _, data = await self._read_value(name, raw_key, consistency, timeout)
            return data
        request_id = core.new_request_id()

        async def attempt(address: str, deadline: Deadline) -> bytes:
            header = self._session.header(request_id, consistency)
            request = core.GetRequest(header, name, raw_key, start, end)
            verifier = core.GetVerifier(start, end)
            chunks = [chunk async for chunk in self._chunks(address, request, verifier, deadline)]
            verifier.finish()
            return b"".join(chunks)

        return await self._run(attempt, idempotent=True, timeout=timeout, bucket=name, key=raw_key)

    async def head(
        self,
        bucket: str,
        key: str | bytes,
        *,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Everything about an object but its bytes.

        Raises:
            NotFound, BucketNotFound: no such object or bucket.
            Unavailable: not enough replicas answered, after retries.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        return await self._unary(
            lambda h: core.HeadRequest(h, name, raw_key),
            idempotent=True,
            timeout=timeout,
            consistency=core.check_consistency(consistency),
            bucket=name,
            key=raw_key,
        )

    async def delete(
        self,
        bucket: str,
        key: str | bytes,
        *,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> Version:
        """Delete an object. Deleting a missing key succeeds too (it writes a tombstone).

        Returns:
            The version of the tombstone.

        Raises:
            BucketNotFound: no such bucket.
            Unavailable: not enough replicas answered, after retries.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        return await self._unary(
            lambda h: core.DeleteRequest(h, name, raw_key),
            idempotent=True,
            timeout=timeout,
            consistency=core.check_consistency(consistency),
            bucket=name,
            key=raw_key,
        )

    def list(
        self,
        bucket: str,
        *,
        prefix: str | bytes = "",
        start_after: str | bytes | None = None,
        page_size: int = MAX_PAGE_SIZE,
        include_deleted: bool = False,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> collections.abc.AsyncIterator[ObjectInfo]:
        """The objects of a bucket in byte order of their keys, fetched a page at a time.

        Args:
            prefix: only keys that start with it.
            start_after: only keys after it (exclusive).
            page_size: objects per page (1..1000).
            include_deleted: tombstones too (``info.deleted``).
            timeout: per page.

        Raises (while iterating):
            BucketNotFound: no such bucket.
            Unavailable: not enough replicas answered, after retries.
        """
        cursor = core.ListCursor(
            core.check_bucket(bucket),
            prefix=core.check_prefix("prefix", prefix),
            start_after=core.check_prefix("start_after", start_after),
            page_size=core.check_page_size(page_size),
            include_deleted=bool(include_deleted),
        )
        return self._pages(cursor, core.check_consistency(consistency), timeout)

    # --- objects: streams ---------------------------------------------------------------

    async def upload(
        self,
        bucket: str,
        key: str | bytes,
        source: Source,
        *,
        codec: str = "raw",
        metadata: Mapping[str, str] | None = None,
        progress: Progress | None = None,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Store a file's bytes under ``key``, streamed in 1 MiB chunks (bounded memory).

        Args:
            source: a path, or a readable binary file object (read from its position).
            codec: the codec name recorded with the bytes (they are stored as they are).
            progress: called as ``progress(bytes_sent, total)`` (total None if unknown).

        A retry reads the source again from the start, so a source that cannot seek is
        sent once, without retries.

        Raises:
            InvalidArgument: a bad name, key, metadata or source, or a file that
                changed size during the upload.
            BucketNotFound: no such bucket.
            IntegrityError: the bytes were damaged on the way (nothing is stored).
            ResourceExhausted: the object is larger than the node accepts.
            Unavailable: not enough replicas answered, after retries.
            OSError: the file could not be read.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        meta = core.check_metadata(metadata)
        consistency = core.check_consistency(consistency)
        self._codecs.get(codec)  # an unknown codec, or pickle refused, fails before any I/O
        src = await AsyncFileSource.open(source)
        try:
            size = src.size
            if size is not None and core.use_put_small(size):
                data = await src.read(size)
                core.check_source_size(len(data), size)
                info = await self._put_bytes(name, raw_key, codec, meta, data, consistency, timeout)
                if progress is not None:
                    progress(size, size)
                return info
            request_id = core.new_request_id()
            calls = 0

            async def attempt(address: str, deadline: Deadline) -> ObjectInfo:
                nonlocal calls
                calls += 1
                if calls > 1:
                    await src.rewind()  # a new stream starts from the first byte
                head = core.PutHead(
                    self._session.header(request_id, consistency), name, raw_key, codec, meta, size
                )
                messages = _source_messages(head, src, progress)
                return await self._transport.put(address, messages, self._left_s(deadline))

            rewindable = src.rewindable
            return await self._run(
                attempt,
                idempotent=True,
                timeout=timeout,
                retry=None if rewindable else _NO_RETRY,
                failover=rewindable,
                bucket=name,
                key=raw_key,
            )
        finally:
            await src.close()

    async def download(
        self,
        bucket: str,
        key: str | bytes,
        target: Target,
        *,
        start: int | None = None,
        end: int | None = None,
        progress: Progress | None = None,
        consistency: Consistency | None = None,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Write an object's bytes (or the range ``[start, end)``) to a file.

        Nothing reaches ``target`` before the whole stream was verified: a path gets a
        temporary file next to it, renamed over it at the end; a file object gets the
        bytes only after the verification (from a temporary spool file).

        Args:
            target: a path, or a writable binary file object.
            progress: called as ``progress(bytes_received, total)``.

        Returns:
            The object's ``ObjectInfo`` (of the whole object, even for a range).

        Raises:
            NotFound, BucketNotFound: no such object or bucket.
            InvalidArgument: a bad range or target.
            IntegrityError: the bytes failed their checksum (the target is untouched).
            Unavailable: not enough replicas answered, after retries.
            OSError: the file could not be written.
        """
        name, raw_key = core.check_bucket(bucket), core.check_key(key)
        start, end = core.check_range(start, end)
        consistency = core.check_consistency(consistency)
        request_id = core.new_request_id()

        async def attempt(address: str, deadline: Deadline) -> ObjectInfo:
            header = self._session.header(request_id, consistency)
            request = core.GetRequest(header, name, raw_key, start, end)
            verifier = core.GetVerifier(start, end)
            sink = await AsyncFileSink.open(target)  # a fresh one per attempt
            try:
                async with aclosing(self._chunks(address, request, verifier, deadline)) as chunks:
                    async for chunk in chunks:
                        await sink.write(chunk)
                        if progress is not None:
                            progress(verifier.received, verifier.expected_bytes)
                head = verifier.finish()
                await sink.commit()
            except BaseException:
                await sink.discard()
                raise
            return head.info

        return await self._run(attempt, idempotent=True, timeout=timeout, bucket=name, key=raw_key)

    # --- the loops --------------------------------------------------------------------

    async def _put_bytes(
        self,
        bucket: bytes,
        key: bytes,
        codec: str,
        metadata: dict[str, str],
        data: bytes,
        consistency: Consistency | None,
        timeout: float | None,
    ) -> ObjectInfo:
        crc = core.checksum(data)
        small = core.use_put_small(len(data))
        request_id = core.new_request_id()

        async def attempt(address: str, deadline: Deadline) -> ObjectInfo:
            nonlocal small
            header = self._session.header(request_id, consistency)
            head = core.PutHead(header, bucket, key, codec, metadata, len(data))
            if small:
                request = core.PutSmallRequest(head, data, crc)
                try:
                    return await self._transport.call(address, request, self._left_s(deadline))
                except ResourceExhausted:
                    small = False  # the node's small-object limit is below ours: stream it
            messages = _value_messages(head, data)
            return await self._transport.put(address, messages, self._left_s(deadline))

        return await self._run(attempt, idempotent=True, timeout=timeout, bucket=bucket, key=key)

    async def _read_value(
        self,
        bucket: bytes,
        key: bytes,
        consistency: Consistency | None,
        timeout: float | None,
    ) -> tuple[ObjectInfo, bytes]:
        request_id = core.new_request_id()

        async def attempt(address: str, deadline: Deadline) -> tuple[ObjectInfo, bytes]:
            header = self._session.header(request_id, consistency)
            request = core.GetSmallRequest(header, bucket, key, SMALL_OBJECT_BYTES)
            small = await self._transport.call(address, request, self._left_s(deadline))
            if small.value is not None:
                core.verify_value(small.info, small.value)
                return small.info, small.value
            # Too large for the fast path: stream it from the same node.
            header = self._session.header(request_id, consistency)
            verifier = core.GetVerifier()
            stream = core.GetRequest(header, bucket, key, None, None)
            chunks = [chunk async for chunk in self._chunks(address, stream, verifier, deadline)]
            return verifier.finish().info, b"".join(chunks)

        return await self._run(attempt, idempotent=True, timeout=timeout, bucket=bucket, key=key)

    async def _chunks(
        self, address: str, request: core.GetRequest, verifier: core.GetVerifier, deadline: Deadline
    ) -> collections.abc.AsyncGenerator[bytes, None]:
        """The chunks of one Get stream, checked by ``verifier`` (``finish`` it after)."""
        parts = self._transport.get(address, request, self._left_s(deadline))
        async with aclosing(parts):
            async for part in parts:
                chunk = verifier.accept(part)
                if chunk:
                    yield chunk

    async def _pages(
        self, cursor: core.ListCursor, consistency: Consistency | None, timeout: float | None
    ) -> collections.abc.AsyncIterator[ObjectInfo]:
        request_id = core.new_request_id()
        while not cursor.done:
            page: core.ListPage = await self._unary(
                cursor.request,
                idempotent=True,
                timeout=timeout,
                consistency=consistency,
                request_id=request_id,
                bucket=cursor.bucket,
            )
            cursor.advance(page)
            for info in page.objects:
                yield info

    async def _unary(
        self,
        build: Callable[[RequestHeader], core.Request[T]],
        *,
        idempotent: bool,
        timeout: float | None,
        consistency: Consistency | None = None,
        request_id: str | None = None,
        bucket: bytes | None = None,
        key: bytes | None = None,
        addresses: tuple[str, ...] | None = None,
    ) -> T:
        request_id = request_id or core.new_request_id()

        async def attempt(address: str, deadline: Deadline) -> T:
            request = build(self._session.header(request_id, consistency))
            return await self._transport.call(address, request, self._left_s(deadline))

        return await self._run(
            attempt,
            idempotent=idempotent,
            timeout=timeout,
            bucket=bucket,
            key=key,
            addresses=addresses,
        )

    async def _run(
        self,
        attempt: Attempt[T],
        *,
        idempotent: bool,
        timeout: float | None,
        retry: Retry | None = None,
        failover: bool = True,
        bucket: bytes | None = None,
        key: bytes | None = None,
        addresses: tuple[str, ...] | None = None,
    ) -> T:
        """Make attempts until one succeeds, ``retry`` gives up, or the deadline passes.

        ``bucket`` and ``key`` pick the nodes (``Router.route``: the key's replicas once
        the cluster map is known, which is fetched first when due); ``addresses`` pins
        the call to those nodes instead. Each attempt gets a share of the time left; the
        next one goes at once to a node this call has not tried, or after a backoff
        (``core.retry_delay_s`` decides). The error raised is the most telling one: what
        a node answered, rather than a later refusal from nodes that are down.
        """
        deadline = self._deadline(timeout)
        policy = retry or self._retry
        if addresses is None:
            await self._refresh_map(deadline)
        tried: set[str] = set()
        best: CairnError | None = None
        attempts = 0
        route = addresses or self._router.route(bucket, key)
        while True:
            attempts += 1
            try:
                return await self._attempt(
                    attempt,
                    core.attempt_route(route, tried),
                    deadline,
                    tried,
                    failover=failover,
                    attempts_left=policy.max_attempts - attempts + 1,
                    nodes=len(set(route)),
                    idempotent=idempotent,
                )
            except CairnError as err:
                best = core.telling_error(best, err)
                if addresses:
                    route = core.avoid(addresses, tried)
                    fresh = route[0] not in tried
                else:
                    route, fresh = self._router.next_route(bucket, key, tried)
                delay = core.retry_delay_s(
                    policy,
                    best,
                    attempts,
                    idempotent=idempotent,
                    deadline_left_s=deadline.left_s(self._clock()),
                    fresh_node=fresh,
                    rng=self._rng,
                )
                if delay is None:
                    if best is err:
                        raise
                    raise best from err
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _attempt(
        self,
        attempt: Attempt[T],
        route: tuple[str, ...],
        deadline: Deadline,
        tried: set[str],
        *,
        failover: bool,
        attempts_left: int,
        nodes: int,
        idempotent: bool,
    ) -> T:
        """One attempt: the route's first node, and the next ones only while the request
        was provably not sent (no node saw it, and no time was lost). ``nodes``: how
        many nodes the whole call can reach (for the attempt's share of the deadline)."""
        error: CairnError | None = None
        for address in route if failover else route[:1]:
            now = self._clock()
            if deadline.expired(now):
                raise Timeout("the call's deadline passed before a node answered") from error
            share = core.attempt_deadline(
                deadline, now, attempts_left=attempts_left, nodes=nodes, idempotent=idempotent
            )
            try:
                result = await attempt(address, share)
            except CairnError as err:
                tried.add(address)
                self._router.failed(address, err)
                if not core.is_failover(err):
                    raise
                error = err
                continue
            self._router.succeeded(address)
            return result
        assert error is not None
        raise error

    # --- the cluster map --------------------------------------------------------------

    async def _refresh_map(self, deadline: Deadline) -> None:
        """Fetch the cluster map first if it is due (first use, or a newer epoch seen).

        A failed fetch is not the call's failure: the call routes by seeds meanwhile.
        """
        sources = self._router.begin_map_fetch(
            self._session.newest_epoch, self._session.newest_epoch_node
        )
        if sources is None:
            return
        fetched: core.FetchedMap | None = None
        failed = False
        try:
            budget = core.map_fetch_deadline(deadline, self._clock())
            fetched = await self._fetch_map(sources, budget)
        except CairnError:
            failed = True  # seed routing until the next fetch is due
        finally:
            # Also on cancellation: the claim is released, so a later call fetches.
            if self._router.end_map_fetch(fetched, failed=failed):
                self._session.map_epoch = self._router.epoch

    async def _fetch_map(
        self, sources: tuple[str, ...], deadline: Deadline
    ) -> core.FetchedMap:
        """``GetClusterMap`` from the first of ``sources`` that answers, each asked
        with a share of the time left."""
        error: CairnError | None = None
        for i, address in enumerate(sources):
            now = self._clock()
            if deadline.expired(now):
                raise Timeout("the deadline passed before a node sent the cluster map") from error
            share = core.attempt_deadline(
                deadline, now, attempts_left=len(sources) - i, nodes=len(sources), idempotent=True
            )
            request = core.ClusterMapRequest(self._session.header(core.new_request_id()))
            try:
                fetched = await self._transport.call(address, request, self._left_s(share))
            except CairnError as err:
                self._router.failed(address, err)
                error = err
                continue
            self._router.succeeded(address)
            return fetched
        assert error is not None
        raise error

    def _install_map(self, fetched: core.FetchedMap) -> None:
        if self._router.install(fetched):
            self._session.map_epoch = self._router.epoch

    def _deadline(self, timeout: float | None) -> Deadline:
        timeout_s = self._timeout_s if timeout is None else core.check_timeout(timeout)
        return Deadline.after(timeout_s, self._clock())

    def _left_s(self, deadline: Deadline) -> float:
        left_s = deadline.left_s(self._clock())
        if left_s <= 0:
            raise Timeout("the deadline of this attempt passed")
        return left_s


async def _value_messages(
    head: core.PutHead, data: bytes
) -> collections.abc.AsyncIterator[core.PutMessage]:
    """The Put stream of a value held in memory."""
    framer = core.PutFramer(head)
    for chunk, last in core.split_value(data):
        yield framer.frame(chunk, last=last)


async def _source_messages(
    head: core.PutHead, source: AsyncFileSource, progress: Progress | None
) -> collections.abc.AsyncIterator[core.PutMessage]:
    """The Put stream of a file, one chunk read ahead so that the last message can carry
    the PutEnd; at most two chunks are in memory."""
    framer = core.PutFramer(head)
    chunk = await source.read()
    while True:
        following = await source.read() if chunk else b""
        last = not following
        yield framer.frame(chunk, last=last)
        if progress is not None:
            progress(framer.size, source.size)
        if last:
            return
        chunk = following
