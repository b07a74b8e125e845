"""cairn.v1.ReplicaService: what other nodes' coordinators ask of this node.

Every call here acts on this node's engine only; no call fans out again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Final

from cairn.errors import CairnError, Conflict, IntegrityError, InvalidArgument
from cairn.node.coordinator.peers import ReplicaWrite
from cairn.node.storage import format as fmt
from cairn.node.storage.digest import MAX_LEAVES
from cairn.v1 import common_pb2, object_pb2, replica_pb2

from . import wire
from .services import _Context, streaming, unary

log = logging.getLogger("cairn.replica")

REPLICATE_IN_FLIGHT: Final = 512  # writes applied concurrently per Replicate stream
LIST_MAX: Final = 10_000


def write_from_pb(obj: Any, deleted: bool = False) -> ReplicaWrite:
    bucket = wire.bucket_name(obj.bucket)
    if not obj.HasField("version") or obj.version.physical_ms == 0:
        raise InvalidArgument("a replica write needs a version")
    if deleted:
        return ReplicaWrite(bucket, wire.object_key(obj.key, 1024),
                            wire.version_from_pb(obj.version), obj.partition, deleted=True)
    return ReplicaWrite(bucket, wire.object_key(obj.key, 1024), wire.version_from_pb(obj.version),
                        obj.partition, False, wire.codec_name(obj.codec), dict(obj.metadata),
                        obj.size, obj.checksum)


class ReplicaService:
    """Applies replica writes and answers replica reads on this node's engine."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        # Set at shutdown: long-lived Replicate streams finish their in-flight writes
        # and end, so the server's graceful stop does not wait out its whole grace.
        self.closing = asyncio.Event()

    @property
    def _coord(self) -> Any:
        return self.ctx.coordinator

    def _ack(self, ack: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"header": self.ctx.response_header(), "applied": ack.applied}
        if ack.current is not None:
            out["current"] = wire.version_to_pb(ack.current)
        return out

    @unary
    async def ReplicaDelete(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        w = write_from_pb(request.tombstone, deleted=True)
        ack = await self._coord.apply_replica_write(w, None)
        return replica_pb2.ReplicaDeleteResponse(**self._ack(ack))

    @unary
    async def ReplicaPut(self, request_iterator: Any, context: Any) -> Any:
        stream = request_iterator.__aiter__()
        first = await anext(stream, None)
        if first is None or isinstance(first, wire.Malformed) or not first.HasField("header"):
            raise InvalidArgument("a ReplicaPut stream starts with its header")
        self.ctx.observe(first.header.request)
        w = write_from_pb(first.header.object)

        async def chunks() -> AsyncIterator[bytes]:
            received, crc, end = 0, 0, None
            async for message in stream:
                wire.check_malformed(message)
                if end is not None:
                    raise InvalidArgument("a message came after PutEnd")
                part = message.WhichOneof("part")
                if part == "chunk":
                    chunk = message.chunk  # each access copies the bytes out of protobuf
                    received += len(chunk)
                    crc = fmt.crc32c(chunk, crc)
                    yield chunk
                elif part == "end":
                    end = message.end
                else:
                    raise InvalidArgument("a second ReplicaPut header")
            if end is None:
                raise InvalidArgument("the replica upload ended without PutEnd")
            if end.size != received or end.checksum != crc:
                raise IntegrityError("replica upload does not match its size and checksum")

        ack = await self._coord.apply_replica_write(w, None, chunks())
        return replica_pb2.ReplicaPutResponse(**self._ack(ack))

    async def Replicate(self, request_iterator: Any, context: Any) -> AsyncIterator[Any]:
        """Many small writes on one long-lived stream, applied concurrently (so they
        share group commits) and answered by ``seq`` in completion order. Answers ready
        at the same time go out as one batch message, as writes may come in."""
        out: asyncio.Queue[Any] = asyncio.Queue()
        slots = asyncio.Semaphore(REPLICATE_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()
        done = object()

        async def apply(message: Any) -> None:
            try:
                if message.HasField("header"):  # a batch's writes share its header
                    self.ctx.observe(message.header)
                op = message.WhichOneof("op")
                if op == "put":
                    w = write_from_pb(message.put.object)
                    ack = await self._coord.apply_replica_write(w, message.put.value)
                elif op == "delete":
                    w = write_from_pb(message.delete, deleted=True)
                    ack = await self._coord.apply_replica_write(w, None)
                else:
                    raise InvalidArgument("a Replicate message carries a put, a delete, a "
                                          "head or a batch of them")
                reply = replica_pb2.ReplicateResponse(seq=message.seq, applied=ack.applied)
                if ack.current is not None:
                    reply.current.CopyFrom(wire.version_to_pb(ack.current))
            except CairnError as exc:
                reply = replica_pb2.ReplicateResponse(
                    seq=message.seq, error=common_pb2.Error(code=exc.code, message=str(exc)))
            except Exception as exc:  # a bug: answer it, keep the stream
                log.exception("replicate op failed")
                reply = replica_pb2.ReplicateResponse(
                    seq=message.seq, error=common_pb2.Error(code="INTERNAL", message=repr(exc)))
            finally:
                slots.release()
            await out.put(reply)

        async def start(message: Any) -> None:
            if message.WhichOneof("op") == "head":
                # A head is answered at once, on the loop (the engine's head does not
                # block): no task, no slot.
                if message.HasField("header"):
                    self.ctx.observe(message.header)
                out.put_nowait(await self._head_reply(message.seq, message.head))
                return
            await slots.acquire()
            task = asyncio.ensure_future(apply(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async def read_requests() -> None:
            try:
                async for message in request_iterator:
                    if isinstance(message, wire.Malformed):
                        continue
                    if len(message.batch):
                        self.ctx.observe(message.header)
                        for write in message.batch:
                            await start(write)
                    else:
                        await start(message)
                while tasks:
                    await asyncio.gather(*list(tasks), return_exceptions=True)
            finally:
                await out.put(done)

        def framed(replies: list[Any]) -> Any:
            if len(replies) == 1:
                replies[0].header.CopyFrom(self.ctx.response_header())
                return replies[0]
            return replica_pb2.ReplicateResponse(header=self.ctx.response_header(),
                                                 batch=replies)

        def ready(first: Any) -> tuple[list[Any], bool]:
            """``first`` and every answer already waiting; True if the stream ended."""
            replies = [first]
            while not out.empty():
                item = out.get_nowait()
                if item is done:
                    return replies, True
                replies.append(item)
            return replies, False

        reader = asyncio.ensure_future(read_requests())
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            while True:
                getter = asyncio.ensure_future(out.get())
                await asyncio.wait({getter, closing}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    reader.cancel()  # take no new writes; answer the ones in flight
                    if tasks:
                        await asyncio.gather(*list(tasks), return_exceptions=True)
                    rest: list[Any] = []
                    while not out.empty():
                        item = out.get_nowait()
                        if item is not done:
                            rest.append(item)
                    if rest:
                        yield framed(rest)
                    return
                item = getter.result()
                if item is done:
                    return
                replies, ended = ready(item)
                yield framed(replies)
                if ended:
                    return
        finally:
            reader.cancel()
            closing.cancel()

    async def _head_reply(self, seq: int, head: Any) -> Any:
        try:
            bucket = wire.bucket_name(head.bucket)
            key = wire.object_key(head.key, 1024)
            info = await self._coord.replica_head(bucket, key)
        except CairnError as exc:
            return replica_pb2.ReplicateResponse(
                seq=seq, error=common_pb2.Error(code=exc.code, message=str(exc)))
        except Exception as exc:  # a bug: answer it, keep the stream
            log.exception("replicate head failed")
            return replica_pb2.ReplicateResponse(
                seq=seq, error=common_pb2.Error(code="INTERNAL", message=repr(exc)))
        if info is None:
            return replica_pb2.ReplicateResponse(seq=seq, found=False)
        return replica_pb2.ReplicateResponse(seq=seq, found=True, info=wire.info_to_pb(info))

    @unary
    async def ReplicaHead(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        key = wire.object_key(request.key, 1024)
        # What this replica holds, whether or not it is still refilling a lost disk
        # (tests and operators inspect replicas with it); quorum reads ask on the
        # Replicate stream, where a refilling replica answers REBUILDING instead.
        info = await self._coord.local_head(bucket, key)
        if info is None:
            return replica_pb2.ReplicaHeadResponse(header=self.ctx.response_header(),
                                                   found=False)
        return replica_pb2.ReplicaHeadResponse(header=self.ctx.response_header(), found=True,
                                               info=wire.info_to_pb(info))

    @streaming
    async def ReplicaGet(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        key = wire.object_key(request.key, 1024)
        start = request.range_start if request.HasField("range_start") else None
        end = request.range_end if request.HasField("range_end") else None
        engine = self._coord.engine
        reader = await engine.get(bucket, key, start=start, end=end)
        if request.HasField("version") and wire.version_from_pb(request.version) != (
                reader.info.version):
            reader.close()
            raise Conflict(f"this replica holds version {reader.info.version}, not the one "
                           "asked for", current=reader.info.version)
        header = object_pb2.GetHeader(response=self.ctx.response_header(),
                                      info=wire.info_to_pb(reader.info),
                                      range_start=reader.start, range_end=reader.end)
        yield object_pb2.GetResponse(header=header)
        crc = 0
        async for chunk in engine.chunks(reader):
            crc = fmt.crc32c(chunk, crc)
            yield object_pb2.GetResponse(chunk=chunk)
        yield object_pb2.GetResponse(end=object_pb2.GetEnd(checksum=crc))

    @streaming
    async def ListPartition(self, request: Any, context: Any) -> AsyncIterator[Any]:
        self.ctx.observe(request.header)
        batch_size = min(request.batch_size or 1000, 10_000)
        engine = self._coord.engine.engine
        leaves = list(request.leaves) if request.leaves else None
        leaf_count = request.leaf_count or 1
        if leaves is not None and (leaf_count > MAX_LEAVES or leaf_count & (leaf_count - 1)):
            raise InvalidArgument("leaf_count must be a power of two up to 4096")
        infos = await asyncio.to_thread(
            lambda: list(engine.iter_partition(request.partition, leaves, leaf_count)))
        if not infos:
            yield replica_pb2.ListPartitionResponse(header=self.ctx.response_header())
        for i in range(0, len(infos), batch_size):
            yield replica_pb2.ListPartitionResponse(
                header=self.ctx.response_header(),
                objects=[wire.info_to_pb(x) for x in infos[i:i + batch_size]])

    @unary
    async def PartitionDigest(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        leaf_count = request.leaf_count or 1
        if leaf_count > MAX_LEAVES or leaf_count & (leaf_count - 1):
            raise InvalidArgument("leaf_count must be a power of two up to 4096")
        engine = self._coord.engine.engine
        digest = await asyncio.to_thread(engine.partition_digest, request.partition, leaf_count)
        return replica_pb2.PartitionDigestResponse(
            header=self.ctx.response_header(), root=digest.root, leaves=b"".join(digest.leaves),
            entries=digest.entries, bytes=digest.value_bytes)

    @unary
    async def ReplicaList(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        limit = min(request.limit, LIST_MAX)
        infos = await self._coord.replica_list(bucket, request.prefix, request.start_after,
                                               limit)
        return object_pb2.ListResponse(header=self.ctx.response_header(),
                                       objects=[wire.info_to_pb(i) for i in infos])

    @unary
    async def ReplicaListBuckets(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        buckets = self._coord.local_buckets()
        return object_pb2.ListBucketsResponse(
            header=self.ctx.response_header(),
            buckets=[object_pb2.BucketInfo(name=n.encode(), created_ms=buckets[n])
                     for n in sorted(buckets)])

    @unary
    async def ReplicaBucket(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        engine = self._coord.engine
        existed = engine.engine.has_bucket(bucket)
        if request.delete:
            if existed:
                await engine.delete_bucket(bucket)
        elif not existed:
            await self._coord._create_local_bucket(bucket)
        return replica_pb2.ReplicaBucketResponse(header=self.ctx.response_header(),
                                                 existed=existed)

