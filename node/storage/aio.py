"""The one adapter between the event loop and the synchronous engine (STYLE 2.5).

It owns a bounded thread pool for reads of bytes and large writes. Index lookups
(``head``) run on the loop. A small write is appended on
the event loop itself (a ``write`` of a few KiB to the page cache and one LMDB lookup:
microseconds, cheaper than two thread hand-offs) and then waits on the group commit's
future without holding a thread. Committed writes come back to the loop in one wake-up
per group commit (``_Completions``), not one per write.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Final, TypeVar

from cairn.types import Version

from .engine import Engine, WriteResult
from .reader import ObjectInfo, ObjectReader
from .scrub import ScrubReport

__all__ = ["AsyncEngine", "StreamAborted"]

T = TypeVar("T")
PIPE_DEPTH: Final = 4  # chunks buffered between the network and the disk thread
LOOP_APPEND_BYTES: Final = 64 * 1024  # writes up to this size are appended on the loop
_END: Final = object()


class StreamAborted(Exception):
    """The sender of a streamed put went away; the engine stores nothing."""


class _ChunkPipe:
    """A bounded hand-over of chunks from the event loop to a disk thread."""

    def __init__(self) -> None:
        self._q: queue.Queue[object] = queue.Queue(maxsize=PIPE_DEPTH)
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item

    async def send(self, item: object, consumer: asyncio.Future[Any]) -> bool:
        """Hand ``item`` over; False if the consumer finished (it will take no more)."""
        delay = 0.0002
        while True:
            try:
                self._q.put_nowait(item)
                return True
            except queue.Full:
                if consumer.done():
                    return False
                await asyncio.sleep(delay)  # the disk is slower than the network: wait
                delay = min(delay * 2, 0.002)

    def abort(self, why: str) -> None:
        """Unblock the disk thread with an error (never blocks the loop)."""
        while True:
            try:
                self._q.put_nowait(StreamAborted(why))
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._q.get_nowait()


class _Completions:
    """Hands futures resolved by the committer thread back to one event loop, with one
    ``call_soon_threadsafe`` for everything that finished together (a group commit
    resolves its whole batch at once) instead of one per write."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._ready: builtins.list[tuple[asyncio.Future[Any], Future[Any]]] = []

    def watch(self, done: Future[T]) -> asyncio.Future[T]:
        waiter: asyncio.Future[T] = self.loop.create_future()
        done.add_done_callback(partial(self._resolved, waiter))
        return waiter

    def _resolved(self, waiter: asyncio.Future[Any], done: Future[Any]) -> None:
        # Runs in the thread that resolved ``done`` (or here, if it was done already).
        with self._lock:
            self._ready.append((waiter, done))
            first = len(self._ready) == 1
        if first:
            self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for waiter, done in ready:
            if waiter.done():  # its caller was cancelled
                continue
            if done.cancelled():
                waiter.cancel()
            elif (exc := done.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(done.result())


class AsyncEngine:
    """Coroutine versions of the engine calls the server needs."""

    def __init__(self, engine: Engine, max_workers: int = 8) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="cairn-engine")
        self._completions: _Completions | None = None

    def _committed(self, done: Future[T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        if self._completions is None or self._completions.loop is not loop:
            self._completions = _Completions(loop)
        return self._completions.watch(done)

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.close()

    async def put(self, bucket: str, key: bytes, value: bytes, *, version: Version,
                  partition: int = 0, codec: str = "raw",
                  metadata: Mapping[str, str] | None = None, checksum: int | None = None
                  ) -> WriteResult:
        submit = partial(self.engine.submit_put, bucket, key, value, version=version,
                         partition=partition, codec=codec, metadata=metadata,
                         checksum=checksum)
        future = submit() if len(value) <= LOOP_APPEND_BYTES else await self._run(submit)
        return await self._committed(future)

    async def delete(self, bucket: str, key: bytes, *, version: Version, partition: int = 0
                     ) -> WriteResult:
        future = self.engine.submit_delete(bucket, key, version=version, partition=partition)
        return await self._committed(future)

    async def put_stream(self, bucket: str, key: bytes, chunks: AsyncIterator[bytes], *,
                         version: Version, partition: int = 0, codec: str = "raw",
                         metadata: Mapping[str, str] | None = None, size: int | None = None,
                         checksum: int | None = None) -> WriteResult:
        """Store a value arriving as async chunks, memory bounded by the pipe depth.

        If ``chunks`` raises or the caller is cancelled, the disk thread is told to
        abort and nothing is stored.
        """
        pipe = _ChunkPipe()
        task = asyncio.ensure_future(self._run(
            self.engine.put_stream, bucket, key, pipe, version=version, partition=partition,
            codec=codec, metadata=metadata, size=size, checksum=checksum,
        ))
        try:
            async for chunk in chunks:
                if not await pipe.send(chunk, task):
                    break  # the engine stopped early (refused the write): surface its error
            else:
                await pipe.send(_END, task)
        except BaseException:
            pipe.abort("the upload was cut off")
            with contextlib.suppress(BaseException):  # the original error wins
                await asyncio.shield(task)
            raise
        return await task

    async def head(self, bucket: str, key: bytes, *, include_deleted: bool = False
                   ) -> ObjectInfo:
        # On the loop: one LMDB lookup in mapped memory, no file read; two thread
        # hand-offs would cost more than the lookup (a quorum read asks every replica).
        return self.engine.head(bucket, key, include_deleted=include_deleted)

    async def get(self, bucket: str, key: bytes, *, start: int | None = None,
                  end: int | None = None) -> ObjectReader:
        return await self._run(self.engine.get, bucket, key, start=start, end=end)

    async def read_small(self, bucket: str, key: bytes, max_bytes: int
                         ) -> tuple[ObjectInfo, bytes | None]:
        """The newest local version's info and, if it is at most ``max_bytes``, its
        verified bytes: one hop to the pool instead of one per step."""

        def work() -> tuple[ObjectInfo, bytes | None]:
            reader = self.engine.get(bucket, key)
            if reader.info.size > max_bytes:
                reader.close()
                return reader.info, None
            return reader.info, reader.read()

        return await self._run(work)

    async def chunks(self, reader: ObjectReader) -> AsyncIterator[bytes]:
        """Yield a reader's verified chunks, each read on the pool."""
        it = iter(reader)
        try:
            while True:
                chunk = await self._run(next, it, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            await self._run(reader.close)

    async def list(self, bucket: str, **kwargs: Any) -> builtins.list[ObjectInfo]:
        return await self._run(self.engine.list, bucket, **kwargs)

    async def create_bucket(self, name: str) -> None:
        await self._run(self.engine.create_bucket, name)

    async def delete_bucket(self, name: str) -> None:
        await self._run(self.engine.delete_bucket, name)

    async def scrub(self) -> builtins.list[ScrubReport]:
        return await self._run(self.engine.scrub)
