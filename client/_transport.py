"""The SDK's only door to gRPC: channels, stubs, protobuf <-> core values, status -> error.

Owns one gRPC channel per node address (``grpc.aio`` channels for ``AsyncClient``,
grpc's own blocking channels for ``Client``), shared by the object and admin services
and kept for the life of the client, the conversion between the core's plain
dataclasses (``cairn._core``) and the generated ``cairn.v1`` messages, and the one
table that turns a failed call's status into a ``CairnError``. It makes no decision:
no retries, no routing, no verification; the facades and the core do that. No other
SDK module imports ``grpc`` or a ``*_pb2`` module.

Entry points: ``AsyncTransport`` and ``SyncTransport`` (same methods: ``call`` for the
unary RPCs, ``get`` and ``put`` for the two streams, ``close``), ``error_from_status``.
``docs/sdk.md`` ("Errors") lists the mapping for users.

Why two transports and not a sync facade over an event loop thread: grpc's blocking
channels are native, thread-safe and need no hidden thread or loop, so a ``Client``
works inside any program (threads, forks, code that already runs an event loop), a
Ctrl-C interrupts a call, and callbacks run where the caller expects them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Generator,
    Iterable,
    Iterator,
)
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import grpc
import grpc.aio

from cairn import _core as core
from cairn._retry import NOT_SENT
from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.ids import NodeId
from cairn.errors import (
    AlreadyExists,
    CairnError,
    Conflict,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
    error_for_code,
)
from cairn.types import Version
from cairn.v1 import admin_pb2, admin_pb2_grpc, common_pb2, object_pb2, object_pb2_grpc

__all__ = [
    "CHANNEL_OPTIONS",
    "ERROR_CODE_KEY",
    "ERROR_DETAIL_KEY",
    "STATUS_ERRORS",
    "AsyncTransport",
    "SyncTransport",
    "error_from_rpc",
    "error_from_status",
]

T = TypeVar("T")

ERROR_CODE_KEY: Final = "cairn-error-code"
"""Trailing metadata: the precise cairn error code of a failed call (docs/protocol.md)."""
ERROR_DETAIL_KEY: Final = "cairn-error-bin"
"""Trailing metadata: a serialized ``cairn.v1.Error`` with details (optional)."""

STATUS_ERRORS: Final[dict[grpc.StatusCode, type[CairnError]]] = {
    # The one table of this side. Used when a failed call names no cairn code that this
    # SDK knows (the status came from gRPC itself, a proxy, a newer node); a known
    # ``cairn-error-code`` picks the exact class instead (BucketNotFound vs NotFound).
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Timeout,
    grpc.StatusCode.DATA_LOSS: IntegrityError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: Unauthenticated,
    # The caller's own cancellation never gets here (it stays KeyboardInterrupt or
    # asyncio.CancelledError). A CANCELLED status therefore comes from the other end,
    # e.g. a node that stopped with calls in flight: retryable, like a node going away.
    grpc.StatusCode.CANCELLED: Unavailable,
    # Everything else (INTERNAL, UNKNOWN, UNIMPLEMENTED, ...) is InternalError.
}

CHANNEL_OPTIONS: Final = (
    # grpc backs off between reconnection attempts to a node that went away, up to
    # 120 s by default; a call meanwhile fails at once as not sent. Capped at 2 s, a
    # node that restarts is reachable again within about 2 s of listening.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

_NOT_SENT_HINTS: Final = (
    # What grpc-core says when a call failed before any byte of it left this process.
    "failed to connect to all addresses",
    "connection refused",
    "dns resolution failed",
    "name resolution failure",
)

_CONSISTENCY_PB: Final = {
    None: common_pb2.CONSISTENCY_DEFAULT,
    "one": common_pb2.CONSISTENCY_ONE,
    "quorum": common_pb2.CONSISTENCY_QUORUM,
    "all": common_pb2.CONSISTENCY_ALL,
}


# --- status -> error --------------------------------------------------------------------


def error_from_status(
    status: grpc.StatusCode | None,
    message: str,
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
    address: str,
) -> CairnError:
    """Rebuild the ``CairnError`` a node sent, or the closest one for a bare status.

    Args:
        status: the call's gRPC status code.
        message: the status details.
        trailing_metadata: the call's trailing metadata (``cairn-error-code``,
            ``cairn-error-bin``).
        address: the node called, recorded in ``details["address"]``.
    """
    code = ""
    detail: common_pb2.Error | None = None
    for key, value in trailing_metadata or ():
        if key == ERROR_CODE_KEY and isinstance(value, str):
            code = value
        elif key == ERROR_DETAIL_KEY and isinstance(value, bytes):
            detail = common_pb2.Error()
            try:
                detail.ParseFromString(value)
            except Exception:  # a detail we cannot read must not hide the error itself
                detail = None
    details: dict[str, Any] = {
        "address": address,
        "grpc_status": status.name if status is not None else "",
    }
    if detail is not None:
        message = detail.message or message
        code = code or detail.code
        if detail.HasField("current"):
            details["current"] = _version(detail.current)
        if detail.outcomes:
            details["outcomes"] = {o.node_id: (o.code, o.message) for o in detail.outcomes}
    if code:
        # A cairn handler answered: the node is alive, whatever the error says.
        details[core.ANSWERED] = True
    error = error_for_code(code, message, **details) if code else None
    if error is None or (type(error) is InternalError and code != InternalError.code):
        cls = STATUS_ERRORS.get(status, InternalError) if status is not None else InternalError
        text = message or "no details"
        error = cls(f"{address}: {status.name if status else 'no status'}: {text}", **details)
        if cls is Unavailable and any(h in text.lower() for h in _NOT_SENT_HINTS):
            error.details[NOT_SENT] = True
    return error


def error_from_rpc(exc: grpc.RpcError, address: str) -> CairnError:
    """The ``CairnError`` for a failed gRPC call (sync or ``grpc.aio``)."""
    status = exc.code() if hasattr(exc, "code") else None
    message = (exc.details() if hasattr(exc, "details") else "") or ""
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return error_from_status(status, message, metadata, address)


# --- core values <-> protobuf -----------------------------------------------------------


def _version(pb: common_pb2.Version) -> Version:
    return Version(pb.physical_ms, pb.logical, pb.node_id)


def _version_pb(version: Version) -> common_pb2.Version:
    return common_pb2.Version(
        physical_ms=version.physical_ms, logical=version.logical, node_id=version.node_id
    )


def _header_pb(header: core.RequestHeader) -> common_pb2.RequestHeader:
    return common_pb2.RequestHeader(
        request_id=header.request_id,
        epoch=header.epoch,
        clock=_version_pb(header.clock),
        consistency=_CONSISTENCY_PB[header.consistency],
    )


def _response_header(pb: common_pb2.ResponseHeader) -> core.ResponseHeader:
    return core.ResponseHeader(epoch=pb.epoch, clock=_version(pb.clock), node_id=pb.node_id)


def _info(pb: common_pb2.ObjectInfo) -> core.ObjectInfo:
    return core.object_info(
        bucket=pb.bucket,
        key=pb.key,
        size=pb.size,
        version=_version(pb.version),
        checksum=pb.checksum,
        codec=pb.codec,
        metadata=pb.metadata,
        tier=pb.tier,
        deleted=pb.deleted,
        partition=pb.partition,
        modified_ms=pb.modified_ms,
    )


def _put_header_pb(head: core.PutHead) -> object_pb2.PutHeader:
    pb = object_pb2.PutHeader(
        request=_header_pb(head.header),
        bucket=head.bucket,
        key=head.key,
        codec=head.codec,
        metadata=head.metadata,
    )
    if head.size is not None:
        pb.size = head.size
    return pb


def _put_request_pb(message: core.PutMessage) -> object_pb2.PutRequest:
    pb = object_pb2.PutRequest(chunk=message.chunk)
    if message.head is not None:
        pb.header.CopyFrom(_put_header_pb(message.head))
    if message.end is not None:
        pb.end.size = message.end.size
        pb.end.checksum = message.end.checksum
    return pb


def _get_request_pb(request: core.GetRequest) -> object_pb2.GetRequest:
    pb = object_pb2.GetRequest(
        header=_header_pb(request.header), bucket=request.bucket, key=request.key
    )
    if request.start is not None:
        pb.range_start = request.start
    if request.end is not None:
        pb.range_end = request.end
    return pb


def _get_part(pb: object_pb2.GetResponse) -> core.GetPart:
    head = None
    if pb.HasField("header"):
        head = core.GetHead(
            info=_info(pb.header.info),
            range_start=pb.header.range_start,
            range_end=pb.header.range_end,
        )
    end = pb.end.checksum if pb.HasField("end") else None
    return core.GetPart(head=head, chunk=pb.chunk, end_checksum=end)


def _bucket_names(pb: object_pb2.ListBucketsResponse) -> list[str]:
    return [b.name.decode("ascii", "replace") for b in pb.buckets]


def _fetched_map(pb: admin_pb2.GetClusterMapResponse) -> core.FetchedMap:
    """The map a node sent, validated like any ``ClusterMap``.

    Raises:
        InternalError: the node sent a map that breaks the map's rules.
    """
    m = pb.map
    try:
        cluster_map = ClusterMap(
            epoch=m.epoch,
            nodes=tuple(
                NodeInfo(id=NodeId(n.id), address=n.address, zone=n.zone, weight=n.weight)
                for n in m.nodes
            ),
            replicas_n=m.replicas_n,
            write_quorum=m.write_quorum,
            read_quorum=m.read_quorum,
            partitions=m.partitions,
        )
    except InvalidArgument as exc:
        raise InternalError(f"a node sent an invalid cluster map: {exc}") from exc
    return core.FetchedMap(map=cluster_map, placement=m.placement)


def _node_status(pb: admin_pb2.StatusResponse) -> core.NodeStatus:
    s = pb.status
    return core.NodeStatus(
        node_id=s.node_id,
        address=s.address,
        software_version=s.software_version,
        uptime_s=s.uptime_s,
        epoch=s.epoch,
        disks=tuple(
            core.DiskStatus(
                path=d.path,
                disk_id=d.disk_id,
                state=d.state,
                error=d.error,
                used_bytes=d.used_bytes,
                free_bytes=d.free_bytes,
                object_count=d.object_count,
                segment_count=d.segment_count,
                live_bytes=d.live_bytes,
                dead_bytes=d.dead_bytes,
            )
            for d in s.disks
        ),
        object_count=s.object_count,
        pending_hints=s.pending_hints,
        zone=s.zone,
        counters=dict(s.counters),
        labels=dict(s.labels),
        tombstone_count=s.tombstone_count,
        repair=_repair_status(s.repair),
    )


def _repair_status(r: admin_pb2.RepairStatus) -> core.RepairStatus:
    """All zeros when the node sent none (it runs no repair workers, or predates them)."""
    return core.RepairStatus(
        partitions_held=r.partitions_held,
        partitions_below_redundancy=r.partitions_below_redundancy,
        bytes_to_copy=r.bytes_to_copy,
        eta_s=r.eta_s,
        rate_bytes_s=r.rate_bytes_s,
        antientropy_passes=r.antientropy_passes,
        antientropy_last_pass_ms=r.antientropy_last_pass_ms,
        objects_pulled=r.objects_pulled,
        objects_pushed=r.objects_pushed,
        bytes_copied=r.bytes_copied,
        scrub_progress=r.scrub_progress,
        scrub_passes=r.scrub_passes,
        scrub_last_pass_ms=r.scrub_last_pass_ms,
        scrub_checked=r.scrub_checked,
        scrub_repaired=r.scrub_repaired,
        scrub_lost=r.scrub_lost,
        scrub_deferred=r.scrub_deferred,
        partitions_rebuilding=r.partitions_rebuilding,
    )


def _repair_request_pb(request: core.RepairRequest) -> admin_pb2.RepairRequest:
    pb = admin_pb2.RepairRequest(header=_header_pb(request.header), wait=request.wait)
    if request.partition is not None:
        pb.partition = request.partition  # optional: set only when given, even 0
    return pb


def _repair_result(pb: admin_pb2.RepairResponse) -> core.RepairResult:
    return core.RepairResult(
        partitions=pb.partitions,
        objects_pulled=pb.objects_pulled,
        objects_pushed=pb.objects_pushed,
        errors=tuple(pb.errors),
    )


@dataclass(frozen=True, slots=True)
class _Unary:
    """How one unary RPC travels: its method name, its two conversions, its service."""

    method: str
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]
    admin: bool = False


_UNARY: Final[dict[type, _Unary]] = {
    core.CreateBucketRequest: _Unary(
        "CreateBucket",
        lambda r: object_pb2.CreateBucketRequest(header=_header_pb(r.header), bucket=r.bucket),
        lambda resp: None,
    ),
    core.DeleteBucketRequest: _Unary(
        "DeleteBucket",
        lambda r: object_pb2.DeleteBucketRequest(header=_header_pb(r.header), bucket=r.bucket),
        lambda resp: None,
    ),
    core.ListBucketsRequest: _Unary(
        "ListBuckets",
        lambda r: object_pb2.ListBucketsRequest(header=_header_pb(r.header)),
        _bucket_names,
    ),
    core.PutSmallRequest: _Unary(
        "PutSmall",
        lambda r: object_pb2.PutSmallRequest(
            header=_put_header_pb(r.head), value=r.value, checksum=r.checksum
        ),
        lambda resp: _info(resp.info),
    ),
    core.GetSmallRequest: _Unary(
        "GetSmall",
        lambda r: object_pb2.GetSmallRequest(
            header=_header_pb(r.header), bucket=r.bucket, key=r.key, max_bytes=r.max_bytes
        ),
        lambda resp: core.SmallValue(
            info=_info(resp.info), value=None if resp.too_large else resp.value
        ),
    ),
    core.HeadRequest: _Unary(
        "Head",
        lambda r: object_pb2.HeadRequest(header=_header_pb(r.header), bucket=r.bucket, key=r.key),
        lambda resp: _info(resp.info),
    ),
    core.DeleteRequest: _Unary(
        "Delete",
        lambda r: object_pb2.DeleteRequest(
            header=_header_pb(r.header), bucket=r.bucket, key=r.key
        ),
        lambda resp: _version(resp.version),
    ),
    core.ListRequest: _Unary(
        "List",
        lambda r: object_pb2.ListRequest(
            header=_header_pb(r.header),
            bucket=r.bucket,
            prefix=r.prefix,
            start_after=r.start_after,
            page_token=r.page_token,
            limit=r.limit,
            include_deleted=r.include_deleted,
        ),
        lambda resp: core.ListPage(
            objects=tuple(_info(o) for o in resp.objects),
            next_page_token=resp.next_page_token,
        ),
    ),
    core.ClusterMapRequest: _Unary(
        "GetClusterMap",
        lambda r: admin_pb2.GetClusterMapRequest(header=_header_pb(r.header)),
        _fetched_map,
        admin=True,
    ),
    core.NodeStatusRequest: _Unary(
        "Status",
        lambda r: admin_pb2.StatusRequest(header=_header_pb(r.header)),
        _node_status,
        admin=True,
    ),
    core.ScrubRequest: _Unary(
        "Scrub",
        lambda r: admin_pb2.ScrubRequest(header=_header_pb(r.header)),
        lambda resp: None,
        admin=True,
    ),
    core.RepairRequest: _Unary("Repair", _repair_request_pb, _repair_result, admin=True),
    core.SetRepairRateRequest: _Unary(
        "SetRepairRate",
        lambda r: admin_pb2.SetRepairRateRequest(
            header=_header_pb(r.header), rate_bytes_s=r.rate_bytes_s
        ),
        lambda resp: None,
        admin=True,
    ),
}


@dataclass(frozen=True, slots=True)
class _Stubs:
    """The stubs of one node's channel: one channel carries both services."""

    object: object_pb2_grpc.ObjectServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    @classmethod
    def of(cls, channel: grpc.Channel | grpc.aio.Channel) -> _Stubs:
        return cls(
            object_pb2_grpc.ObjectServiceStub(channel),  # type: ignore[no-untyped-call]
            admin_pb2_grpc.AdminServiceStub(channel),  # type: ignore[no-untyped-call]
        )

    def method(self, rpc: _Unary) -> Any:
        return getattr(self.admin if rpc.admin else self.object, rpc.method)


class _Base:
    """What both transports share: the header observer and the closed flag."""

    def __init__(self, observe: Callable[[core.ResponseHeader], None]) -> None:
        self._observe = observe
        self._closed = False

    def _saw(self, header: common_pb2.ResponseHeader, present: bool) -> None:
        if present:
            self._observe(_response_header(header))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this cairn client is closed")


# --- async ------------------------------------------------------------------------------


class AsyncTransport(_Base):
    """``grpc.aio`` channels, one per node address, created on first use.

    Bound to the event loop that first used it: grpc.aio channels cannot move between
    loops, so a call from another loop raises instead of hanging.
    """

    def __init__(self, observe: Callable[[core.ResponseHeader], None]) -> None:
        super().__init__(observe)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, _Stubs] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The nodes this transport holds a channel to (one each)."""
        return tuple(self._channels)

    def _stub(self, address: str) -> _Stubs:
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this cairn.AsyncClient was first used in another event loop; grpc.aio "
                "channels belong to one loop, so make one client per loop"
            )
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = self._stubs[address] = _Stubs.of(channel)
        return stub

    async def call(self, address: str, request: core.Request[T], timeout_s: float) -> T:
        """Send one unary request; return what the core's request type says.

        Raises:
            CairnError: the call failed (the class rebuilt from the node's answer).
        """
        rpc = _UNARY[type(request)]
        method = self._stub(address).method(rpc)
        try:
            response = await method(rpc.encode(request), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address) from exc
        self._saw(response.header, response.HasField("header"))
        return cast(T, rpc.decode(response))

    async def get(
        self, address: str, request: core.GetRequest, timeout_s: float
    ) -> AsyncGenerator[core.GetPart, None]:
        """Stream a Get; close the generator (``aclosing``) to cancel it early.

        Raises:
            CairnError: the call failed, before or during the stream.
        """
        call = self._stub(address).object.Get(_get_request_pb(request), timeout=timeout_s)
        try:
            async for message in call:
                if message.HasField("header"):
                    self._saw(message.header.response, message.header.HasField("response"))
                yield _get_part(message)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address) from exc
        finally:
            call.cancel()  # a no-op once the call is over; else the stream is dropped

    async def put(
        self, address: str, messages: AsyncIterable[core.PutMessage], timeout_s: float
    ) -> core.ObjectInfo:
        """Send a Put stream. If ``messages`` raises, the call is cancelled (nothing is
        stored) and that exception propagates.

        Raises:
            CairnError: the call failed.
        """
        call = self._stub(address).object.Put(timeout=timeout_s)
        try:
            try:
                async for message in messages:
                    await call.write(_put_request_pb(message))
                await call.done_writing()
            except asyncio.InvalidStateError:
                # The call ended while we wrote (e.g. the connection was refused): grpc.aio
                # says so with InvalidStateError, and the call's own status says why.
                await call
                raise InternalError(f"{address}: a Put call ended without a status") from None
            response = await call
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address) from exc
        finally:
            call.cancel()  # a no-op once the call is over; else the upload is abandoned
        self._saw(response.header, response.HasField("header"))
        return _info(response.info)

    async def close(self) -> None:
        """Close every channel; calls still running fail. Idempotent."""
        self._closed = True
        channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            await channel.close()


# --- sync -------------------------------------------------------------------------------


class SyncTransport(_Base):
    """grpc's blocking channels, one per node address; safe to share between threads."""

    def __init__(self, observe: Callable[[core.ResponseHeader], None]) -> None:
        super().__init__(observe)
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._stubs: dict[str, _Stubs] = {}

    @property
    def addresses(self) -> tuple[str, ...]:
        """The nodes this transport holds a channel to (one each)."""
        with self._lock:
            return tuple(self._channels)

    def _stub(self, address: str) -> _Stubs:
        stub = self._stubs.get(address)
        if stub is not None and not self._closed:
            return stub
        with self._lock:
            self._check_open()
            stub = self._stubs.get(address)
            if stub is None:
                channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
                self._channels[address] = channel
                stub = self._stubs[address] = _Stubs.of(channel)
            return stub

    def call(self, address: str, request: core.Request[T], timeout_s: float) -> T:
        """Send one unary request; return what the core's request type says.

        Raises:
            CairnError: the call failed (the class rebuilt from the node's answer).
        """
        rpc = _UNARY[type(request)]
        method = self._stub(address).method(rpc)
        try:
            response = method(rpc.encode(request), timeout=timeout_s)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address) from exc
        self._saw(response.header, response.HasField("header"))
        return cast(T, rpc.decode(response))

    def get(
        self, address: str, request: core.GetRequest, timeout_s: float
    ) -> Generator[core.GetPart, None, None]:
        """Stream a Get; close the generator (``closing``) to cancel it early.

        Raises:
            CairnError: the call failed, before or during the stream.
        """
        call = self._stub(address).object.Get(_get_request_pb(request), timeout=timeout_s)
        try:
            for message in call:
                if message.HasField("header"):
                    self._saw(message.header.response, message.header.HasField("response"))
                yield _get_part(message)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, address) from exc
        finally:
            call.cancel()

    def put(
        self, address: str, messages: Iterable[core.PutMessage], timeout_s: float
    ) -> core.ObjectInfo:
        """Send a Put stream. If ``messages`` raises, the stream ends without its PutEnd
        (so the node stores nothing) and that exception propagates.

        grpc's blocking API reads ``messages`` on a thread of its own; an upload's
        ``progress`` callback therefore runs on that thread.

        Raises:
            CairnError: the call failed.
        """
        failure: list[Exception] = []
        stopped = threading.Event()
        # Held while a message is made (a chunk read from the source): once the call is
        # over, the caller takes it and sets `stopped`, so grpc's thread never reads the
        # source again; a retry may then rewind the source safely.
        reading = threading.Lock()

        def requests() -> Iterator[object_pb2.PutRequest]:
            iterator = iter(messages)
            while True:
                with reading:
                    if stopped.is_set():
                        return
                    try:
                        message = next(iterator)
                    except StopIteration:
                        return
                    except Exception as exc:
                        # Not raised into grpc, which would log it as its own error:
                        # returning half-closes the stream without PutEnd, a cut-off
                        # upload, which stores nothing.
                        failure.append(exc)
                        return
                yield _put_request_pb(message)

        call = self._stub(address).object.Put.future(requests(), timeout=timeout_s)
        try:
            response = call.result()
        except grpc.RpcError as exc:
            if failure:
                raise failure[0] from None
            raise error_from_rpc(exc, address) from exc
        except BaseException:  # KeyboardInterrupt: stop the upload
            call.cancel()
            raise
        finally:
            with reading:
                stopped.set()
        if failure:  # only a node that broke the protocol accepts a stream without PutEnd
            raise failure[0]
        self._saw(response.header, response.HasField("header"))
        return _info(response.info)

    def close(self) -> None:
        """Close every channel; calls still running fail. Idempotent."""
        with self._lock:
            self._closed = True
            channels, self._channels, self._stubs = list(self._channels.values()), {}, {}
        for channel in channels:
            channel.close()
