"""The plain values the SDK passes between its parts: objects, headers, requests, stream
messages, node status. Frozen dataclasses, no behaviour beyond building them.

The facades build these, the transport (``cairn._transport``) turns them into protobuf
messages and back, and ``cairn._core`` makes its decisions on them; no module but the
transport ever sees a generated message. ``ObjectInfo``, ``GetResult``, ``NodeStatus``,
``DiskStatus``, ``RepairStatus`` and ``RepairResult`` are public (``cairn.ObjectInfo``,
...). ``cairn._core`` re-exports everything here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, NamedTuple, TypeVar

from cairn.cluster.clustermap import ClusterMap
from cairn.errors import InternalError
from cairn.types import Version

__all__ = [
    "ClusterMapRequest",
    "Consistency",
    "CreateBucketRequest",
    "DeleteBucketRequest",
    "DeleteRequest",
    "DiskStatus",
    "FetchedMap",
    "GetHead",
    "GetPart",
    "GetRequest",
    "GetResult",
    "GetSmallRequest",
    "HeadRequest",
    "ListBucketsRequest",
    "ListPage",
    "ListRequest",
    "NodeStatus",
    "NodeStatusRequest",
    "ObjectInfo",
    "PutEnd",
    "PutHead",
    "PutMessage",
    "PutSmallRequest",
    "RepairRequest",
    "RepairResult",
    "RepairStatus",
    "Request",
    "RequestHeader",
    "ResponseHeader",
    "ScrubRequest",
    "SetRepairRateRequest",
    "SmallValue",
    "object_info",
]

Consistency = Literal["one", "quorum", "all"]
"""How many replicas must answer; None (not a value here) means the cluster's default."""

T = TypeVar("T")


# --- objects and headers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """Everything about one object except its bytes: what ``head`` answers.

    Attributes:
        bucket: the bucket name.
        key: the object key (UTF-8 decoded).
        size: size of the whole stored value in bytes.
        version: the version stamp the coordinator gave the write (newest wins).
        checksum: CRC32C of the whole stored value, computed by the writer.
        codec: the codec the value was stored with (``raw``, ``text``, ``json``, ...).
        metadata: the user metadata given to ``put``.
        tier: where the bytes live: ``local`` or ``s3`` (empty if the node did not say).
        deleted: True only for tombstones (listed with ``include_deleted``).
        partition: the partition of (bucket, key).
        modified_ms: wall-clock time of the write, ms since the Unix epoch (for display).
    """

    bucket: str
    key: str
    size: int
    version: Version
    checksum: int
    codec: str = "raw"
    metadata: dict[str, str] = field(default_factory=dict, hash=False)
    tier: str = ""
    deleted: bool = False
    partition: int = 0
    modified_ms: int = 0


def object_info(
    *,
    bucket: bytes,
    key: bytes,
    size: int,
    version: Version,
    checksum: int,
    codec: str,
    metadata: Mapping[str, str],
    tier: str,
    deleted: bool,
    partition: int,
    modified_ms: int,
) -> ObjectInfo:
    """Build an ``ObjectInfo`` from the wire's fields (names and keys as bytes).

    An empty codec means ``raw`` (object.proto ``PutHeader.codec``).

    Raises:
        InternalError: the node sent a bucket name or key that is not valid text
            (it validates both, so this is a bug).
    """
    try:
        bucket_text = bucket.decode("ascii")
        key_text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InternalError(f"a node sent an undecodable bucket name or key: {exc}") from exc
    return ObjectInfo(
        bucket=bucket_text,
        key=key_text,
        size=size,
        version=version,
        checksum=checksum,
        codec=codec or "raw",
        metadata=dict(metadata),
        tier=tier,
        deleted=deleted,
        partition=partition,
        modified_ms=modified_ms,
    )


class GetResult(NamedTuple):
    """What ``get_object`` returns: the decoded value and its ``ObjectInfo``.

    A tuple, so ``value, info = c.get_object(...)`` works too.
    """

    value: Any
    info: ObjectInfo


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """The wire's ``RequestHeader`` (docs/protocol.md "Headers")."""

    request_id: str
    epoch: int
    clock: Version
    consistency: Consistency | None


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """The wire's ``ResponseHeader``: the answering node's epoch, clock and id."""

    epoch: int
    clock: Version
    node_id: int


# --- requests: one dataclass per unary RPC; Request[T] says what the call returns ------


class Request(Generic[T]):
    """Base of the unary requests; ``T`` is what the transport returns for it."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class CreateBucketRequest(Request[None]):
    header: RequestHeader
    bucket: bytes


@dataclass(frozen=True, slots=True)
class DeleteBucketRequest(Request[None]):
    header: RequestHeader
    bucket: bytes


@dataclass(frozen=True, slots=True)
class ListBucketsRequest(Request[list[str]]):
    header: RequestHeader


@dataclass(frozen=True, slots=True)
class PutHead:
    """What a Put stores (the wire's ``PutHeader``); ``size`` when known up front."""

    header: RequestHeader
    bucket: bytes
    key: bytes
    codec: str
    metadata: dict[str, str]
    size: int | None


@dataclass(frozen=True, slots=True)
class PutSmallRequest(Request[ObjectInfo]):
    head: PutHead
    value: bytes
    checksum: int


@dataclass(frozen=True, slots=True)
class SmallValue:
    """A ``GetSmall`` answer: ``value`` is None when the object is too large for it."""

    info: ObjectInfo
    value: bytes | None


@dataclass(frozen=True, slots=True)
class GetSmallRequest(Request[SmallValue]):
    header: RequestHeader
    bucket: bytes
    key: bytes
    max_bytes: int


@dataclass(frozen=True, slots=True)
class HeadRequest(Request[ObjectInfo]):
    header: RequestHeader
    bucket: bytes
    key: bytes


@dataclass(frozen=True, slots=True)
class DeleteRequest(Request[Version]):
    header: RequestHeader
    bucket: bytes
    key: bytes


@dataclass(frozen=True, slots=True)
class ListPage:
    """One List page; an empty ``next_page_token`` ends the listing."""

    objects: tuple[ObjectInfo, ...]
    next_page_token: bytes


@dataclass(frozen=True, slots=True)
class ListRequest(Request[ListPage]):
    header: RequestHeader
    bucket: bytes
    prefix: bytes
    start_after: bytes
    page_token: bytes
    limit: int
    include_deleted: bool


@dataclass(frozen=True, slots=True)
class GetRequest:
    """A streaming Get of the whole value or of ``[start, end)``."""

    header: RequestHeader
    bucket: bytes
    key: bytes
    start: int | None
    end: int | None


# --- the admin service ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedMap:
    """A ``GetClusterMap`` answer: the map and the name of its placement function.

    ``placement`` travels next to the map (it is not part of ``ClusterMap``): a client
    computes replicas itself only when it knows that name (docs/protocol.md).
    """

    map: ClusterMap
    placement: str


@dataclass(frozen=True, slots=True)
class ClusterMapRequest(Request[FetchedMap]):
    header: RequestHeader


@dataclass(frozen=True, slots=True)
class DiskStatus:
    """One data directory (disk) of a node, as ``AdminService.Status`` reports it.

    Attributes:
        path: the data directory's path on the node.
        disk_id: the identity written in the disk's marker file.
        state: ``"ok"``, ``"full"``, ``"read_only"`` or ``"failed"``; a string, so that
            a state added later shows as it is. Anything but ``"ok"`` is not ok.
        error: why the disk is not ok (the last error seen); empty when ok.
        used_bytes: bytes used on the file system that holds the directory.
        free_bytes: bytes free on that file system.
        object_count: objects (not tombstones) indexed on this disk.
        segment_count: segment files on this disk, sealed and open.
        live_bytes: segment bytes that belong to the newest version of some object.
        dead_bytes: segment bytes no index entry points to (compaction reclaims them).
    """

    path: str
    disk_id: str
    state: str
    error: str = ""
    used_bytes: int = 0
    free_bytes: int = 0
    object_count: int = 0
    segment_count: int = 0
    live_bytes: int = 0
    dead_bytes: int = 0

    @property
    def ok(self) -> bool:
        """Whether the disk serves reads and writes (state ``"ok"``)."""
        return self.state == "ok"


@dataclass(frozen=True, slots=True)
class RepairStatus:
    """What a node's repair workers see and do: ``NodeStatus.repair`` (docs/repair.md).

    Mirrors ``cairn.v1.RepairStatus`` (proto/cairn/v1/admin.proto). All zeros from a
    node that runs no repair workers or predates them.

    Attributes:
        partitions_held: partitions this node holds a replica of.
        partitions_below_redundancy: of those, how many differed from another replica
            (or a replica did not answer) at the last comparison and are not yet level.
        bytes_to_copy: object bytes known to be missing here or on a peer, still to copy.
        eta_s: estimated seconds until redundancy is whole at the current rate (0 when
            whole or unknown).
        rate_bytes_s: the repair rate limit in bytes per second (0 = unlimited).
        antientropy_passes: completed anti-entropy passes over all held partitions.
        antientropy_last_pass_ms: when the last pass ended, ms since the Unix epoch
            (0 = never).
        objects_pulled: objects copied to this node by anti-entropy and rebuild.
        objects_pushed: objects copied from this node to another replica.
        bytes_copied: object bytes copied, both directions.
        scrub_progress: progress of the current scrub pass, 0.0 to 1.0.
        scrub_passes: completed scrub passes.
        scrub_last_pass_ms: when the last scrub pass ended, ms since the Unix epoch
            (0 = never).
        scrub_checked: records the scrubber verified.
        scrub_repaired: damaged records it replaced with a verified copy from a replica.
        scrub_lost: damaged records no replica had a good copy of (reads fail with
            DATA_LOSS).
        scrub_deferred: damaged records whose repair waits for a replica that did
            not answer (tried again with backoff).
        partitions_rebuilding: partitions this node is refilling after a lost disk;
            its answers about them do not count in read quorums until then.
    """

    partitions_held: int = 0
    partitions_below_redundancy: int = 0
    bytes_to_copy: int = 0
    eta_s: float = 0.0
    rate_bytes_s: int = 0
    antientropy_passes: int = 0
    antientropy_last_pass_ms: int = 0
    objects_pulled: int = 0
    objects_pushed: int = 0
    bytes_copied: int = 0
    scrub_progress: float = 0.0
    scrub_passes: int = 0
    scrub_last_pass_ms: int = 0
    scrub_checked: int = 0
    scrub_repaired: int = 0
    scrub_lost: int = 0
    scrub_deferred: int = 0
    partitions_rebuilding: int = 0


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as it sees itself: what ``Client.node_status(address)`` returns.

    Mirrors ``cairn.v1.NodeStatus`` (proto/cairn/v1/admin.proto).

    Attributes:
        node_id: the node's id in the cluster map.
        address: the address (``host:port``) it serves gRPC on.
        software_version: cairn's version on the node.
        uptime_s: seconds since the node process started.
        epoch: the epoch of the cluster map the node uses.
        disks: one entry per data directory, in configuration order.
        object_count: objects (not tombstones) indexed on all healthy disks.
        pending_hints: hints held for replicas that were down, not yet replayed.
        zone: the node's zone ("" when zones are unused).
        counters: further counters and gauges by name (informational: nothing may
            depend on a name being present).
        labels: free-form facts for display.
        tombstone_count: tombstones indexed on all healthy disks.
        repair: scrub, anti-entropy and rebuild on this node.
    """

    node_id: int
    address: str
    software_version: str = ""
    uptime_s: float = 0.0
    epoch: int = 0
    disks: tuple[DiskStatus, ...] = ()
    object_count: int = 0
    pending_hints: int = 0
    zone: str = ""
    counters: dict[str, int] = field(default_factory=dict, hash=False)
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    tombstone_count: int = 0
    repair: RepairStatus = field(default_factory=RepairStatus)


@dataclass(frozen=True, slots=True)
class NodeStatusRequest(Request[NodeStatus]):
    header: RequestHeader


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What ``Client.repair(address, wait=True)`` returns: what the pass levelled.

    Attributes:
        partitions: partitions the pass levelled: 1 for a ``partition=`` call, else
            those that differed from another replica (0 when every one was level, and
            without ``wait``, whose pass runs in the background).
        objects_pulled: objects copied to the node.
        objects_pushed: objects copied from the node to another replica.
        errors: why some partitions could not be levelled (a replica did not answer,
            a copy failed), one line each, at most 20; empty when every one was.
    """

    partitions: int = 0
    objects_pulled: int = 0
    objects_pushed: int = 0
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScrubRequest(Request[None]):
    header: RequestHeader


@dataclass(frozen=True, slots=True)
class RepairRequest(Request[RepairResult]):
    """``partition`` None: every partition the node holds."""

    header: RequestHeader
    partition: int | None
    wait: bool


@dataclass(frozen=True, slots=True)
class SetRepairRateRequest(Request[None]):
    """``rate_bytes_s`` 0: unlimited."""

    header: RequestHeader
    rate_bytes_s: int


# --- the messages of the Put and Get streams --------------------------------------


@dataclass(frozen=True, slots=True)
class PutEnd:
    """The wire's ``PutEnd``: bytes sent and their CRC32C."""

    size: int
    checksum: int


@dataclass(frozen=True, slots=True)
class PutMessage:
    """One message of a Put stream: ``head`` on the first, ``end`` on the last."""

    head: PutHead | None
    chunk: bytes
    end: PutEnd | None


@dataclass(frozen=True, slots=True)
class GetHead:
    """The wire's ``GetHeader``: the whole object's info and the range actually sent."""

    info: ObjectInfo
    range_start: int
    range_end: int


@dataclass(frozen=True, slots=True)
class GetPart:
    """One message of a Get stream (``head`` first, ``end_checksum`` last)."""

    head: GetHead | None
    chunk: bytes
    end_checksum: int | None
