"""``Peers`` over gRPC: how this node's coordinator reaches the other nodes.

One channel per node. Small writes ride one long-lived ``Replicate`` stream per node
(many writes in flight, matched by ``seq``): a 4 KiB message on an open stream costs
about a third of a unary call here (DESIGN). Large values use a ``ReplicaPut`` stream
each; heads, reads and listings are ordinary calls. Every call has a deadline.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from types import MappingProxyType
from typing import Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.health import HealthView
from cairn.cluster.ids import NodeId
from cairn.errors import CairnError, IntegrityError, Timeout, Unavailable, error_for_code
from cairn.node.coordinator.peers import RemoteRead, ReplicaAck, ReplicaWrite
from cairn.node.storage import format as fmt
from cairn.node.storage.digest import DIGEST_BYTES, Digest
from cairn.node.storage.reader import ObjectInfo
from cairn.types import Version
from cairn.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    object_pb2,
    replica_pb2,
    replica_pb2_grpc,
)

from . import wire
from .errors import ERROR_CODE_KEY

log = logging.getLogger("cairn.peers")

CHUNK_BYTES: Final = 1024 * 1024
# A Replicate message carries every write waiting to go out, up to these bounds.
BATCH_MAX_WRITES: Final = 128
BATCH_MAX_BYTES: Final = 1024 * 1024
CHANNEL_OPTIONS: Final = (
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)

_STATUS_CODES: Final = {
    grpc.StatusCode.NOT_FOUND: "NOT_FOUND",
    grpc.StatusCode.ALREADY_EXISTS: "ALREADY_EXISTS",
    grpc.StatusCode.INVALID_ARGUMENT: "INVALID_ARGUMENT",
    grpc.StatusCode.ABORTED: "CONFLICT",
    grpc.StatusCode.FAILED_PRECONDITION: "FAILED_PRECONDITION",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
    grpc.StatusCode.DATA_LOSS: "INTEGRITY",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
}


def error_from_rpc(node: NodeId, err: grpc.RpcError) -> CairnError:
    """The cairn error a peer's failed call stands for (one table, like the SDK's)."""
    code = ""
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == ERROR_CODE_KEY:
            code = str(value)
    status = err.code() if hasattr(err, "code") else None
    if not code:
        code = _STATUS_CODES.get(status, "UNAVAILABLE")
    details = err.details() if hasattr(err, "details") else str(err)
    return error_for_code(code, f"node {node}: {details}")


def _info_from_pb(pb: common_pb2.ObjectInfo) -> ObjectInfo:
    return ObjectInfo(
        bucket=pb.bucket.decode("ascii"), key=pb.key, version=wire.version_from_pb(pb.version),
        size=pb.size, checksum=pb.checksum, codec=pb.codec,
        metadata=MappingProxyType(dict(pb.metadata)), partition=pb.partition,
        deleted=pb.deleted, stored_ms=pb.modified_ms, tier=pb.tier or "local",
    )


def _object_pb(w: ReplicaWrite) -> replica_pb2.ReplicaObject:
    return replica_pb2.ReplicaObject(
        bucket=w.bucket.encode("ascii"), key=w.key, version=wire.version_to_pb(w.version),
        partition=w.partition, codec=w.codec, metadata=dict(w.metadata or {}), size=w.size,
        checksum=w.checksum, modified_ms=w.version.physical_ms,
    )


def _tombstone_pb(w: ReplicaWrite) -> replica_pb2.ReplicaTombstone:
    return replica_pb2.ReplicaTombstone(
        bucket=w.bucket.encode("ascii"), key=w.key, version=wire.version_to_pb(w.version),
        partition=w.partition, modified_ms=w.version.physical_ms,
    )


def _ack(applied: bool, current: Any, has_current: bool) -> ReplicaAck:
    return ReplicaAck(applied, wire.version_from_pb(current) if has_current else None)


class _Link:
    """One node's ``Replicate`` stream: writes in flight matched to replies by seq.

    Writes that wait to go out together travel as one batch message (one header, one
    gRPC message write); the replica answers in batches the same way."""

    def __init__(self, node: NodeId, channel: grpc.aio.Channel,
                 stub: replica_pb2_grpc.ReplicaServiceStub,
                 patient: Callable[[NodeId], bool],
                 header: Callable[[], common_pb2.RequestHeader]) -> None:
        self.node = node
        self.channel = channel
        self.stub = stub
        self.patient = patient
        self.header = header
        self.seq = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[replica_pb2.ReplicateResponse]] = {}
        # (write without a header, its value's size), or None to end the stream
        self.outbox: asyncio.Queue[tuple[replica_pb2.ReplicateRequest, int] | None] = (
            asyncio.Queue())
        self.task: asyncio.Task[None] | None = None
        self.heads = True  # the node answers heads on the stream

    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.outbox = asyncio.Queue()
            self.task = asyncio.ensure_future(self._run())

    async def _requests(self) -> AsyncIterator[replica_pb2.ReplicateRequest]:
        ending = False
        while not ending:
            item = await self.outbox.get()
            if item is None:
                return
            batch: list[replica_pb2.ReplicateRequest] = []
            size = 0
            while True:
                # A write whose sender gave up (deadline) was answered as failed (and
                # hinted): do not deliver it late, and do not let writes to a node that
                # is down pile up here.
                if item[0].seq in self.waiting:
                    batch.append(item[0])
                    size += item[1]
                if (len(batch) >= BATCH_MAX_WRITES or size >= BATCH_MAX_BYTES
                        or self.outbox.empty()):
                    break
                next_item = self.outbox.get_nowait()
                if next_item is None:
                    ending = True
                    break
                item = next_item
            if len(batch) == 1:
                batch[0].header.CopyFrom(self.header())
                yield batch[0]
            elif batch:
                yield replica_pb2.ReplicateRequest(header=self.header(), batch=batch)

    async def _run(self) -> None:
        # Fail fast: ``send`` waits for the connection itself, with each write's own
        # deadline, so a message is never left queued inside gRPC for a node that is
        # down and delivered long after its writer gave up.
        call = self.stub.Replicate(self._requests(), wait_for_ready=False)
        try:
            async for reply in call:
                for answer in reply.batch or (reply,):
                    future = self.waiting.pop(answer.seq, None)
                    if future is not None and not future.done():
                        future.set_result(answer)
        except grpc.RpcError as exc:
            self._fail_all(error_from_rpc(self.node, exc))
        except asyncio.CancelledError:
            call.cancel()
            self._fail_all(Unavailable(f"node {self.node}: replication stream closed"))
            raise
        else:
            self._fail_all(Unavailable(f"node {self.node}: replication stream ended"))

    def _fail_all(self, error: CairnError) -> None:
        waiting, self.waiting = self.waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)

    async def send(self, make: Callable[[int], replica_pb2.ReplicateRequest], size: int,
                   timeout_s: float) -> replica_pb2.ReplicateResponse:
        """Send the write ``make(seq)`` builds (without a header: the batch adds it) and
        wait for its answer; ``size`` is its value's length, for batching."""
        state = self.channel.get_state(try_to_connect=True)
        if state != grpc.ChannelConnectivity.READY:
            if not self.patient(self.node):
                raise Unavailable(f"node {self.node} is down")
            try:
                await asyncio.wait_for(self.channel.channel_ready(), timeout_s)
            except TimeoutError:
                raise Timeout(f"node {self.node} could not be reached within "
                              f"{timeout_s:.1f} s") from None
        self.ensure_running()
        seq = next(self.seq)
        future: asyncio.Future[replica_pb2.ReplicateResponse] = (
            asyncio.get_running_loop().create_future())
        self.waiting[seq] = future
        self.outbox.put_nowait((make(seq), size))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self.waiting.pop(seq, None)
            raise Timeout(f"node {self.node} did not answer within {timeout_s:.1f} s") from None

    async def close(self) -> None:
        if self.task is not None:
            self.outbox.put_nowait(None)
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


class GrpcPeers:
    """The gRPC implementation of ``cairn.node.coordinator.peers.Peers``."""

    def __init__(self, cluster_map: ClusterMap, self_id: NodeId,
                 clock: Callable[[], Version], health: HealthView | None = None) -> None:
        self.cluster_map = cluster_map
        # A node believed up is waited for (up to the call's deadline) while its channel
        # reconnects; a node known to be down fails fast, so a lost quorum is reported
        # at once instead of after a deadline.
        self.health = health or HealthView()
        self.self_id = self_id
        self._clock = clock
        self._channels: dict[NodeId, grpc.aio.Channel] = {}
        self._stubs: dict[NodeId, replica_pb2_grpc.ReplicaServiceStub] = {}
        self._links: dict[NodeId, _Link] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _stub(self, node: NodeId) -> replica_pb2_grpc.ReplicaServiceStub:
        stub = self._stubs.get(node)
        if stub is None:
            address = self.cluster_map.node(node).address
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[node] = channel
            stub = self._stubs[node] = replica_pb2_grpc.ReplicaServiceStub(channel)  # type: ignore[no-untyped-call]
        return stub

    def _patient(self, node: NodeId) -> bool:
        return self.health.is_up(node)

    def _header(self) -> common_pb2.RequestHeader:
        return common_pb2.RequestHeader(request_id=uuid.uuid4().hex,
                                        epoch=self.cluster_map.epoch,
                                        clock=wire.version_to_pb(self._clock()),
                                        node_id=self.self_id)

    async def _call(self, node: NodeId, coro: Any) -> Any:
        try:
            return await coro
        except grpc.RpcError as exc:
            raise error_from_rpc(node, exc) from None

    def _link(self, node: NodeId) -> _Link:
        link = self._links.get(node)
        if link is None:
            stub = self._stub(node)
            link = self._links[node] = _Link(node, self._channels[node], stub, self._patient,
                                             self._header)
        return link

    async def write(self, node: NodeId, write: ReplicaWrite, value: bytes, timeout_s: float
                    ) -> ReplicaAck:
        link = self._link(node)

        def make(seq: int) -> replica_pb2.ReplicateRequest:
            if write.deleted:
                return replica_pb2.ReplicateRequest(seq=seq, delete=_tombstone_pb(write))
            return replica_pb2.ReplicateRequest(
                seq=seq, put=replica_pb2.ReplicaWrite(object=_object_pb(write), value=value))

        reply = await link.send(make, len(value), timeout_s)
        if reply.HasField("error"):
            raise error_for_code(reply.error.code, f"node {node}: {reply.error.message}")
        return _ack(reply.applied, reply.current, reply.HasField("current"))

    async def write_stream(self, node: NodeId, write: ReplicaWrite,
                           chunks: AsyncIterator[bytes], timeout_s: float) -> ReplicaAck:
        header = replica_pb2.ReplicaPutHeader(request=self._header(), object=_object_pb(write))

        async def requests() -> AsyncIterator[replica_pb2.ReplicaPutRequest]:
            yield replica_pb2.ReplicaPutRequest(header=header)
            size, crc = 0, 0
            async for chunk in chunks:
                size += len(chunk)
                crc = fmt.crc32c(chunk, crc)
                yield replica_pb2.ReplicaPutRequest(chunk=chunk)
            yield replica_pb2.ReplicaPutRequest(end=object_pb2.PutEnd(size=size, checksum=crc))

        # The deadline covers the whole transfer: a large object needs time, so the
        # per-call timeout bounds only silence (keepalive), not the stream's length.
        reply = await self._call(node, self._stub(node).ReplicaPut(
            requests(), wait_for_ready=self._patient(node)))
        return _ack(reply.applied, reply.current, reply.HasField("current"))

    async def head(self, node: NodeId, bucket: str, key: bytes, timeout_s: float
                   ) -> ObjectInfo | None:
        """On the node's Replicate stream (a message, not a call of its own); through
        ReplicaHead for a node that does not take heads there (an older version)."""
        link = self._link(node)
        if link.heads:
            def make(seq: int) -> replica_pb2.ReplicateRequest:
                return replica_pb2.ReplicateRequest(
                    seq=seq, head=replica_pb2.ReplicateHead(bucket=bucket.encode("ascii"),
                                                            key=key))

            reply = await link.send(make, 0, timeout_s)
            if not reply.HasField("error"):
                return _info_from_pb(reply.info) if reply.found else None
            if reply.error.code != "INVALID_ARGUMENT":
                raise error_for_code(reply.error.code, f"node {node}: {reply.error.message}")
            # The coordinator validated bucket and key: the node does not know the op.
            log.info("node %s takes no heads on its Replicate stream: %s", node,
                     reply.error.message)
            link.heads = False
        return await self._unary_head(node, bucket, key, timeout_s)

    async def _unary_head(self, node: NodeId, bucket: str, key: bytes, timeout_s: float
                          ) -> ObjectInfo | None:
        reply = await self._call(node, self._stub(node).ReplicaHead(
            replica_pb2.ReplicaHeadRequest(header=self._header(), bucket=bucket.encode("ascii"),
                                           key=key),
            timeout=timeout_s, wait_for_ready=self._patient(node)))
        return _info_from_pb(reply.info) if reply.found else None

    async def read(self, node: NodeId, bucket: str, key: bytes, version: Version | None,
                   start: int | None, end: int | None, timeout_s: float) -> RemoteRead:
        request = replica_pb2.ReplicaGetRequest(
            header=self._header(), bucket=bucket.encode("ascii"), key=key)
        if version is not None:  # None: whatever version the node holds now
            request.version.CopyFrom(wire.version_to_pb(version))
        if start is not None:
            request.range_start = start
        if end is not None:
            request.range_end = end
        call = self._stub(node).ReplicaGet(request, timeout=None,
                                           wait_for_ready=self._patient(node))
        try:
            first = await asyncio.wait_for(call.read(), timeout_s)
        except TimeoutError:
            call.cancel()
            raise Timeout(f"node {node} did not answer within {timeout_s:.1f} s") from None
        except grpc.RpcError as exc:
            raise error_from_rpc(node, exc) from None
        if first is grpc.aio.EOF or not first.HasField("header"):
            raise Unavailable(f"node {node} sent no header")
        info = _info_from_pb(first.header.info)

        async def chunks() -> AsyncIterator[bytes]:
            crc, ended = 0, False
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        break
                    if message.chunk:
                        crc = fmt.crc32c(message.chunk, crc)
                        yield message.chunk
                    if message.HasField("end"):
                        ended = True
                        if message.end.checksum != crc:
                            raise IntegrityError(f"node {node} sent bytes that fail their "
                                                 "checksum")
            except grpc.RpcError as exc:
                raise error_from_rpc(node, exc) from None
            finally:
                call.cancel()
            if not ended:
                raise Unavailable(f"node {node} ended the read without its checksum")

        return RemoteRead(info, first.header.range_start, first.header.range_end, chunks())

    async def list(self, node: NodeId, bucket: str, prefix: bytes, start_after: bytes,
                   limit: int, timeout_s: float) -> list[ObjectInfo]:
        reply = await self._call(node, self._stub(node).ReplicaList(
            replica_pb2.ReplicaListRequest(header=self._header(), bucket=bucket.encode("ascii"),
                                           prefix=prefix, start_after=start_after,
                                           limit=limit), timeout=timeout_s,
            wait_for_ready=self._patient(node)))
        return [_info_from_pb(o) for o in reply.objects]

    async def list_buckets(self, node: NodeId, timeout_s: float) -> dict[str, int]:
        reply = await self._call(node, self._stub(node).ReplicaListBuckets(
            object_pb2.ListBucketsRequest(header=self._header()), timeout=timeout_s,
            wait_for_ready=False))
        return {b.name.decode("ascii"): b.created_ms for b in reply.buckets}

    async def bucket(self, node: NodeId, bucket: str, delete: bool, created_ms: int,
                     timeout_s: float) -> bool:
        reply = await self._call(node, self._stub(node).ReplicaBucket(
            replica_pb2.ReplicaBucketRequest(header=self._header(),
                                             bucket=bucket.encode("ascii"), delete=delete,
                                             created_ms=created_ms), timeout=timeout_s,
            # Bucket calls are rare and must reach every node: always wait for the
            # connection (a peer marked down may just have come back).
            wait_for_ready=True))
        return bool(reply.existed)

    async def partition_digest(self, node: NodeId, partition: int, leaf_count: int,
                               timeout_s: float) -> Digest:
        reply = await self._call(node, self._stub(node).PartitionDigest(
            replica_pb2.PartitionDigestRequest(header=self._header(), partition=partition,
                                               leaf_count=leaf_count),
            timeout=timeout_s, wait_for_ready=self._patient(node)))
        size = DIGEST_BYTES
        leaves = tuple(reply.leaves[i:i + size] for i in range(0, len(reply.leaves), size))
        return Digest(reply.root, leaves, reply.entries, reply.bytes)

    async def list_partition(self, node: NodeId, partition: int, leaves: builtins.list[int],
                             leaf_count: int, timeout_s: float
                             ) -> builtins.list[ObjectInfo]:
        call = self._stub(node).ListPartition(
            replica_pb2.ListPartitionRequest(header=self._header(), partition=partition,
                                             leaves=leaves, leaf_count=leaf_count),
            timeout=timeout_s * 4, wait_for_ready=self._patient(node))
        out: builtins.list[ObjectInfo] = []
        try:
            async for reply in call:
                out.extend(_info_from_pb(o) for o in reply.objects)
        except grpc.RpcError as exc:
            raise error_from_rpc(node, exc) from None
        return out

    async def fetch_map(self, node: NodeId, timeout_s: float) -> ClusterMap:
        self._stub(node)
        stub = admin_pb2_grpc.AdminServiceStub(self._channels[node])  # type: ignore[no-untyped-call]
        reply = await self._call(node, stub.GetClusterMap(
            admin_pb2.GetClusterMapRequest(header=self._header()), timeout=timeout_s))
        m = reply.map
        return ClusterMap.from_dict({
            "epoch": m.epoch, "replicas_n": m.replicas_n, "write_quorum": m.write_quorum,
            "read_quorum": m.read_quorum, "partitions": m.partitions,
            "nodes": [{"id": n.id, "address": n.address, "zone": n.zone, "weight": n.weight}
                      for n in m.nodes],
        })

    def use_map(self, cluster_map: ClusterMap) -> None:
        old = self.cluster_map
        self.cluster_map = cluster_map
        for node in list(self._channels):
            moved = node not in cluster_map.node_ids or (
                node in old.node_ids and old.node(node).address != cluster_map.node(node).address)
            if moved:  # a node that left or moved: its channel and link go
                channel = self._channels.pop(node)
                self._stubs.pop(node, None)
                link = self._links.pop(node, None)
                closing = [channel.close()] + ([link.close()] if link is not None else [])
                for coro in closing:
                    task = asyncio.ensure_future(coro)
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    async def object_count(self, node: NodeId, timeout_s: float) -> int:
        """How many objects ``node`` holds (its admin status), failing fast if it is down."""
        self._stub(node)
        stub = admin_pb2_grpc.AdminServiceStub(self._channels[node])  # type: ignore[no-untyped-call]
        reply = await self._call(node, stub.Status(admin_pb2.StatusRequest(),
                                                   timeout=timeout_s))
        return int(reply.status.object_count)

    async def ping(self, node: NodeId, timeout_s: float) -> bool:
        self._stub(node)
        stub = health_pb2_grpc.HealthStub(self._channels[node])
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""),
                                     timeout=timeout_s)
        except grpc.RpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()
        for channel in self._channels.values():
            await channel.close()
        self._links.clear()
        self._channels.clear()
        self._stubs.clear()
