"""The gRPC services of a node: ObjectService and AdminService.

Handlers only translate: validate the message, call the coordinator with plain values,
turn the answer back into a message. Errors are cairn errors, mapped to a status in
``errors.py``; anything else is a bug, logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, TypeVar

import grpc

from cairn.cluster.placement import PLACEMENT_NAME, replicas
from cairn.errors import (
    CairnError,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    ResourceExhausted,
)
from cairn.node.coordinator import CALL_DEADLINE, Coordinator
from cairn.node.storage import Engine
from cairn.node.storage import format as fmt
from cairn.v1 import admin_pb2, common_pb2, object_pb2

from . import wire
from .config import NodeConfig
from .errors import abort
from .logs import request_id
from .metrics import Metrics

log = logging.getLogger("cairn.server")

LIST_LIMIT_MAX: Final = 1000
REPAIR_ERRORS_MAX: Final = 20  # distinct errors a waited-for repair answers with
CONSISTENCY: Final = {
    common_pb2.CONSISTENCY_DEFAULT: "quorum",
    common_pb2.CONSISTENCY_ONE: "one",
    common_pb2.CONSISTENCY_QUORUM: "quorum",
    common_pb2.CONSISTENCY_ALL: "all",
}
SOFTWARE_VERSION: Final = "0.1.0"

R = TypeVar("R")


class _Context:
    """What every handler needs besides its request."""

    def __init__(self, config: NodeConfig, coordinator: Coordinator, metrics: Metrics) -> None:
        self.config = config
        self.coordinator = coordinator
        self.metrics = metrics

    def response_header(self) -> common_pb2.ResponseHeader:
        return common_pb2.ResponseHeader(
            epoch=self.coordinator.cluster_map.epoch,
            clock=wire.version_to_pb(self.coordinator.clock.now()),
            node_id=self.config.node_id,
        )

    def observe(self, header: common_pb2.RequestHeader) -> str:
        """Note the request id and clock of a request; return its consistency level."""
        request_id.set(header.request_id or uuid.uuid4().hex)
        clock = wire.version_from_pb(header.clock) if header.HasField("clock") else None
        self.coordinator.observe(clock, header.epoch, header.node_id)
        return CONSISTENCY.get(header.consistency, "quorum")


def _finish(ctx: _Context, method: str, started: float, code: str) -> None:
    ctx.metrics.requests.labels(method, code).inc()
    ctx.metrics.latency.labels(method).observe(time.perf_counter() - started)


def _note_deadline(context: grpc.aio.ServicerContext) -> None:
    """The caller's deadline bounds the calls this node makes to others for it."""
    remaining = context.time_remaining()
    if remaining is not None:
        CALL_DEADLINE.set(time.monotonic() + remaining)


def unary(method: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]
          ) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """Wrap a unary (or client-streaming) handler: malformed input, errors, metrics."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        started = time.perf_counter()
        code = "OK"
        try:
            _note_deadline(context)
            wire.check_malformed(request)
            return await method(self, request, context)
        except CairnError as exc:
            code = exc.code
            await abort(context, exc)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = "INTERNAL"
            log.exception("handler %s failed", method.__name__)
            await abort(context, InternalError(f"internal error in {method.__name__}: {exc}"))
        finally:
            _finish(self.ctx, method.__name__, started, code)
        raise AssertionError("unreachable")  # pragma: no cover

    return handler


def streaming(method: Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[R]]
              ) -> Callable[[Any, Any, grpc.aio.ServicerContext], AsyncIterator[R]]:
    """Like ``unary`` for handlers that stream their response."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[R]:
        started = time.perf_counter()
        code = "OK"
        try:
            _note_deadline(context)
            wire.check_malformed(request)
            async for item in method(self, request, context):
                yield item
        except CairnError as exc:
            code = exc.code
            await abort(context, exc)
        except Exception as exc:
            if isinstance(exc, grpc.aio.AbortError):
                raise
            code = "INTERNAL"
            log.exception("handler %s failed", method.__name__)
            await abort(context, InternalError(f"internal error in {method.__name__}: {exc}"))
        finally:
            _finish(self.ctx, method.__name__, started, code)

    return handler


class ObjectService:
    """cairn.v1.ObjectService (docs/protocol.md)."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx

    @property
    def _coord(self) -> Coordinator:
        return self.ctx.coordinator

    # ------------------------------------------------------------------ buckets

    @unary
    async def CreateBucket(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)  # buckets are created on every node
        name = wire.bucket_name(request.bucket)
        await self._coord.create_bucket(name)
        created = self._coord.engine.engine.bucket_created_ms(name)
        return object_pb2.CreateBucketResponse(
            header=self.ctx.response_header(),
            info=object_pb2.BucketInfo(name=name.encode(), created_ms=created),
        )

    @unary
    async def DeleteBucket(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        await self._coord.delete_bucket(wire.bucket_name(request.bucket))
        return object_pb2.DeleteBucketResponse(header=self.ctx.response_header())

    @unary
    async def ListBuckets(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        buckets = await self._coord.list_buckets()
        return object_pb2.ListBucketsResponse(
            header=self.ctx.response_header(),
            buckets=[object_pb2.BucketInfo(name=n.encode(), created_ms=buckets[n])
                     for n in sorted(buckets)],
        )

    # ------------------------------------------------------------------ writes

    def _put_target(self, header: Any) -> tuple[str, bytes, str, dict[str, str], str]:
        consistency = self.ctx.observe(header.request)
        bucket = wire.bucket_name(header.bucket)
        key = wire.object_key(header.key, self.ctx.config.max_key_bytes)
        codec = wire.codec_name(header.codec)
        meta = wire.metadata(header.metadata, self.ctx.config.max_metadata_bytes)
        if header.HasField("size") and header.size > self.ctx.config.max_object_bytes:
            raise ResourceExhausted(
                f"object of {header.size} bytes is over the limit of "
                f"{self.ctx.config.max_object_bytes}"
            )
        return bucket, key, codec, meta, consistency

    @unary
    async def PutSmall(self, request: Any, context: Any) -> Any:
        if not request.HasField("header"):
            raise InvalidArgument("PutSmall needs a header")
        bucket, key, codec, meta, consistency = self._put_target(request.header)
        value = request.value
        if len(value) > self.ctx.config.small_object_bytes:
            raise ResourceExhausted(
                f"PutSmall carries at most {self.ctx.config.small_object_bytes} bytes; "
                "use the Put stream"
            )
        if request.header.HasField("size") and request.header.size != len(value):
            raise InvalidArgument(
                f"header announced {request.header.size} bytes but the value has {len(value)}"
            )
        self.ctx.metrics.bytes_in.inc(len(value))
        info = await self._coord.put(bucket, key, value, codec=codec, metadata=meta,
                                     checksum=request.checksum, consistency=consistency)
        return object_pb2.PutResponse(header=self.ctx.response_header(),
                                      info=wire.info_to_pb(info))

    @unary
    async def Put(self, request_iterator: Any, context: Any) -> Any:
        stream = request_iterator.__aiter__()
        first = await anext(stream, None)
        if first is None:
            raise InvalidArgument("empty Put stream: the first message must carry a PutHeader")
        wire.check_malformed(first)
        if not first.HasField("header"):
            raise InvalidArgument("the first message of a Put stream must carry a PutHeader")
        header = first.header
        bucket, key, codec, meta, consistency = self._put_target(header)
        limit = self.ctx.config.max_object_bytes
        metrics = self.ctx.metrics

        async def chunks() -> AsyncIterator[bytes]:
            message: Any = first
            received, crc, end = 0, 0, None
            while message is not None:
                wire.check_malformed(message)
                if message is not first and message.HasField("header"):
                    raise InvalidArgument("a Put stream carries one PutHeader, in its first "
                                          "message")
                if end is not None:
                    raise InvalidArgument("a message came after PutEnd; nothing was stored")
                chunk = message.chunk  # each access copies the bytes out of protobuf
                if chunk:
                    received += len(chunk)
                    if received > limit:
                        raise ResourceExhausted(f"object is over the limit of {limit} bytes")
                    crc = fmt.crc32c(chunk, crc)
                    metrics.bytes_in.inc(len(chunk))
                    yield chunk
                if message.HasField("end"):
                    end = message.end
                message = await anext(stream, None)
            if end is None:
                raise InvalidArgument("the upload ended without PutEnd (cut off); nothing "
                                      "was stored")
            if end.size != received:
                raise InvalidArgument(f"PutEnd says {end.size} bytes but {received} arrived")
            if header.HasField("size") and header.size != received:
                raise InvalidArgument(
                    f"header announced {header.size} bytes but {received} arrived")
            if end.checksum != crc:
                raise IntegrityError(
                    f"checksum mismatch: the bytes received have CRC32C {crc:#010x}, the "
                    f"client sent {end.checksum:#010x}; nothing was stored")

        size = header.size if header.HasField("size") else None
        info = await self._coord.put_stream(bucket, key, chunks(), codec=codec, metadata=meta,
                                            size=size, checksum=None, consistency=consistency)
        return object_pb2.PutResponse(header=self.ctx.response_header(),
                                      info=wire.info_to_pb(info))

    @unary
    async def Delete(self, request: Any, context: Any) -> Any:
        consistency = self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        key = wire.object_key(request.key, self.ctx.config.max_key_bytes)
        version = await self._coord.delete(bucket, key, consistency)
        return object_pb2.DeleteResponse(header=self.ctx.response_header(),
                                         version=wire.version_to_pb(version))

    # ------------------------------------------------------------------ reads

    def _read_target(self, request: Any) -> tuple[str, bytes, str]:
        consistency = self.ctx.observe(request.header)
        return (wire.bucket_name(request.bucket),
                wire.object_key(request.key, self.ctx.config.max_key_bytes), consistency)

    @unary
    async def Head(self, request: Any, context: Any) -> Any:
        bucket, key, consistency = self._read_target(request)
        info = await self._coord.head(bucket, key, consistency)
        return object_pb2.HeadResponse(header=self.ctx.response_header(),
                                       info=wire.info_to_pb(info))

    @unary
    async def GetSmall(self, request: Any, context: Any) -> Any:
        bucket, key, consistency = self._read_target(request)
        limit = self.ctx.config.small_object_bytes
        max_bytes = min(request.max_bytes or limit, limit)
        info, value = await self._coord.read_small(bucket, key, max_bytes, consistency)
        if value is None:
            return object_pb2.GetSmallResponse(header=self.ctx.response_header(),
                                               info=wire.info_to_pb(info), too_large=True)
        self.ctx.metrics.bytes_out.inc(len(value))
        return object_pb2.GetSmallResponse(header=self.ctx.response_header(),
                                           info=wire.info_to_pb(info), value=value)

    @streaming
    async def Get(self, request: Any, context: Any) -> AsyncIterator[Any]:
        bucket, key, consistency = self._read_target(request)
        start = request.range_start if request.HasField("range_start") else None
        end = request.range_end if request.HasField("range_end") else None
        read = await self._coord.read(bucket, key, start, end, consistency)
        header = object_pb2.GetHeader(response=self.ctx.response_header(),
                                      info=wire.info_to_pb(read.info),
                                      range_start=read.start, range_end=read.end)
        crc = 0
        pending: bytes | None = None
        first = True
        async for chunk in read.chunks:
            if pending is not None:
                yield object_pb2.GetResponse(header=header if first else None, chunk=pending)
                first = False
            crc = fmt.crc32c(chunk, crc)
            self.ctx.metrics.bytes_out.inc(len(chunk))
            pending = chunk
        # The last message carries the end (and, for one-chunk objects, the header too).
        yield object_pb2.GetResponse(header=header if first else None, chunk=pending or b"",
                                     end=object_pb2.GetEnd(checksum=crc))

    @unary
    async def List(self, request: Any, context: Any) -> Any:
        consistency = self.ctx.observe(request.header)
        bucket = wire.bucket_name(request.bucket)
        prefix = request.prefix
        after = request.start_after
        if request.page_token:
            after = max(after, wire.parse_page_token(request.page_token, bucket, prefix))
        limit = min(request.limit or LIST_LIMIT_MAX, LIST_LIMIT_MAX)
        page = await self._coord.list(bucket, prefix=prefix, start_after=after, limit=limit,
                                      include_deleted=request.include_deleted,
                                      consistency=consistency)
        token = b""
        if page.resume_after is not None:
            token = wire.page_token(bucket, prefix, page.resume_after)
        return object_pb2.ListResponse(header=self.ctx.response_header(),
                                       objects=[wire.info_to_pb(i) for i in page.objects],
                                       next_page_token=token)


class AdminService:
    """cairn.v1.AdminService: status and the cluster map."""

    def __init__(self, ctx: _Context, engine: Engine, started: float,
                 pending_hints: Callable[[], int] = lambda: 0, repair: Any = None) -> None:
        self.ctx = ctx
        self.engine = engine
        self.started = started
        self.pending_hints = pending_hints
        self.repair = repair

    @unary
    async def Status(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        disks_now = self.engine.status()
        disks = [
            admin_pb2.DiskStatus(
                path=d.path, disk_id=d.disk_id, state=d.state, error=d.error,
                used_bytes=d.used_bytes, free_bytes=d.free_bytes, object_count=d.objects,
                segment_count=d.segments, live_bytes=d.live_bytes, dead_bytes=d.dead_bytes,
            )
            for d in disks_now
        ]
        config = self.ctx.config
        status = admin_pb2.NodeStatus(
            node_id=config.node_id, address=config.listen, software_version=SOFTWARE_VERSION,
            uptime_s=time.monotonic() - self.started,
            epoch=self.ctx.coordinator.cluster_map.epoch, disks=disks,
            object_count=sum(d.objects for d in disks_now),
            tombstone_count=sum(d.tombstones for d in disks_now),
            pending_hints=self.pending_hints(), zone=config.zone,
            counters={"integrity_errors": sum(d.integrity_errors for d in disks_now)},
        )
        if self.repair is not None:
            fields: dict[str, Any] = {
                k: (int(v) if k not in ("eta_s", "scrub_progress") else float(v))
                for k, v in self.repair.status().items()}
            status.repair.CopyFrom(admin_pb2.RepairStatus(**fields))
        return admin_pb2.StatusResponse(header=self.ctx.response_header(), status=status)

    def _repair(self) -> Any:
        if self.repair is None:
            raise FailedPrecondition("this node runs no repair workers")
        return self.repair

    @unary
    async def Scrub(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        self._repair().scrub_now()
        return admin_pb2.ScrubResponse(header=self.ctx.response_header())

    @unary
    async def Repair(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        partition = request.partition if request.HasField("partition") else None
        cmap = self.ctx.coordinator.cluster_map
        if partition is not None and partition >= cmap.partitions:
            raise InvalidArgument(f"partition {partition} does not exist")
        if partition is not None and self.ctx.config.node_id not in replicas(cmap, partition):
            raise FailedPrecondition(
                f"this node holds no replica of partition {partition}; ask one that does")
        results = await self._repair().repair_now(partition, request.wait or
                                                  partition is not None)
        errors = list(dict.fromkeys(
            f"partition {r.partition}: {' '.join(e.split())}" for r in results
            for e in r.errors))
        return admin_pb2.RepairResponse(
            header=self.ctx.response_header(), partitions=len(results),
            objects_pulled=sum(r.pulled for r in results),
            objects_pushed=sum(r.pushed for r in results),
            errors=errors[:REPAIR_ERRORS_MAX])

    @unary
    async def SetRepairRate(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        self._repair().set_rate(float(request.rate_bytes_s))
        return admin_pb2.SetRepairRateResponse(header=self.ctx.response_header())

    @unary
    async def GetClusterMap(self, request: Any, context: Any) -> Any:
        self.ctx.observe(request.header)
        m = self.ctx.coordinator.cluster_map
        return admin_pb2.GetClusterMapResponse(
            header=self.ctx.response_header(),
            map=admin_pb2.ClusterMap(
                epoch=m.epoch, replicas_n=m.replicas_n, write_quorum=m.write_quorum,
                read_quorum=m.read_quorum, partitions=m.partitions, placement=PLACEMENT_NAME,
                nodes=[admin_pb2.NodeInfo(id=n.id, address=n.address, zone=n.zone,
                                          weight=n.weight) for n in m.nodes],
            ),
        )


def make_context(config: NodeConfig, coordinator: Coordinator, metrics: Metrics) -> _Context:
    return _Context(config, coordinator, metrics)
