"""How the coordinator reaches other nodes: the ``Peers`` seam (STYLE 1, 2.6).

The coordinator never imports gRPC; ``cairn.node.server.peers.GrpcPeers`` implements
this protocol over ReplicaService, and a deterministic simulation can implement it in
memory.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.ids import NodeId
from cairn.node.storage.digest import Digest
from cairn.node.storage.reader import ObjectInfo
from cairn.types import Version

__all__ = ["Peers", "RemoteRead", "ReplicaAck", "ReplicaWrite"]


@dataclass(frozen=True, slots=True)
class ReplicaWrite:
    """One versioned put or tombstone, as sent to a replica."""

    bucket: str
    key: bytes
    version: Version
    partition: int
    deleted: bool = False
    codec: str = "raw"
    metadata: Mapping[str, str] | None = None
    size: int = 0
    checksum: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaAck:
    """A replica's answer to a write.

    Attributes:
        applied: the write is now this replica's newest version (or it already was).
        current: the replica's newest version when it holds a newer one than the write.
    """

    applied: bool
    current: Version | None = None


@dataclass(frozen=True, slots=True)
class RemoteRead:
    """A verified stream of an exact version's bytes from a replica."""

    info: ObjectInfo
    start: int
    end: int
    chunks: AsyncIterator[bytes]


class Peers(Protocol):
    """Calls to other nodes. Every call has a deadline and raises a ``CairnError``
    (``Unavailable``/``Timeout`` when the node cannot be reached)."""

    async def write(self, node: NodeId, write: ReplicaWrite, value: bytes,
                    timeout_s: float) -> ReplicaAck:
        """Apply a small put (``value`` whole) or a tombstone on ``node``."""
        ...

    async def write_stream(self, node: NodeId, write: ReplicaWrite,
                           chunks: AsyncIterator[bytes], timeout_s: float) -> ReplicaAck:
        """Apply a put whose value arrives as chunks (large objects)."""
        ...

    async def head(self, node: NodeId, bucket: str, key: bytes, timeout_s: float
                   ) -> ObjectInfo | None:
        """The newest version ``node`` holds (tombstones included), or None."""
        ...

    async def read(self, node: NodeId, bucket: str, key: bytes, version: Version | None,
                   start: int | None, end: int | None, timeout_s: float) -> RemoteRead:
        """Stream exactly ``version``'s bytes from ``node`` (Conflict if it holds another);
        ``version`` None: the newest version ``node`` holds."""
        ...

    async def list(self, node: NodeId, bucket: str, prefix: bytes, start_after: bytes,
                   limit: int, timeout_s: float) -> list[ObjectInfo]:
        """``node``'s own listing, newest local versions, tombstones included."""
        ...

    async def list_buckets(self, node: NodeId, timeout_s: float) -> dict[str, int]:
        """``node``'s own buckets: name -> created (ms since the epoch)."""
        ...

    async def bucket(self, node: NodeId, bucket: str, delete: bool, created_ms: int,
                     timeout_s: float) -> bool:
        """Create (or delete) a bucket on ``node`` only; returns whether it existed."""
        ...

    async def partition_digest(self, node: NodeId, partition: int, leaf_count: int,
                               timeout_s: float) -> Digest:
        """The hash tree of ``partition`` as ``node`` holds it."""
        ...

    async def list_partition(self, node: NodeId, partition: int, leaves: builtins.list[int],
                             leaf_count: int, timeout_s: float) -> builtins.list[ObjectInfo]:
        """``node``'s entries (tombstones included) in these leaves of ``partition``."""
        ...

    async def fetch_map(self, node: NodeId, timeout_s: float) -> ClusterMap:
        """The cluster map ``node`` holds."""
        ...

    def use_map(self, cluster_map: ClusterMap) -> None:
        """Route by a newer map from now on (addresses may have changed)."""
        ...

    async def ping(self, node: NodeId, timeout_s: float) -> bool:
        """True if ``node`` answers its health check as SERVING."""
        ...

    async def close(self) -> None:
        ...
