"""The coordinator of requests that reach this node (one node for now: N=1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.hlc import HybridClock
from cairn.cluster.placement import partition_of
from cairn.errors import NotFound
from cairn.node.storage.aio import AsyncEngine
from cairn.node.storage.reader import ObjectInfo
from cairn.types import Version

__all__ = ["Coordinator", "ReadResult"]

MAX_STALE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class ReadResult:
    """An object's information and its verified bytes ``[start, end)``."""

    info: ObjectInfo
    start: int
    end: int
    chunks: AsyncIterator[bytes]


class Coordinator:
    """Versioned object operations for requests that reach this node."""

    def __init__(self, engine: AsyncEngine, clock: HybridClock, cluster_map: ClusterMap
                 ) -> None:
        self.engine = engine
        self.clock = clock
        self.cluster_map = cluster_map

    def partition(self, bucket: str, key: bytes) -> int:
        return int(partition_of(bucket, key, self.cluster_map.partitions))

    def observe(self, remote: Version | None) -> None:
        """Advance the clock past a stamp seen in a message (every message carries one)."""
        if remote is not None and remote.physical_ms:
            self.clock.update(remote)

    async def _version_for(self, bucket: str, key: bytes) -> Version:
        """A new stamp, strictly newer than what this node already stores for the key.

        Clocks lie: a stored version from a node whose clock ran ahead must not make a
        later write lose (DESIGN, "The cluster").
        """
        version = self.clock.now()
        try:
            stored = await self.engine.head(bucket, key, include_deleted=True)
        except NotFound:
            return version
        if stored.version >= version:
            version = self.clock.advance_past(stored.version)
        return version

    # ------------------------------------------------------------------ writes

    async def put(self, bucket: str, key: bytes, value: bytes, *, codec: str,
                  metadata: Mapping[str, str], checksum: int | None) -> ObjectInfo:
        """Store a whole value as a new version.

        Raises:
            InvalidArgument, BucketNotFound, IntegrityError, DiskUnavailable, ...
        """
        partition = self.partition(bucket, key)
        version = await self._version_for(bucket, key)
        for _ in range(MAX_STALE_RETRIES):
            result = await self.engine.put(bucket, key, value, version=version,
                                           partition=partition, codec=codec,
                                           metadata=metadata, checksum=checksum)
            if result.applied:
                return result.info
            version = self.clock.advance_past(result.info.version)
        return result.info  # pragma: no cover - a clock racing ahead three times

    async def put_stream(self, bucket: str, key: bytes, chunks: AsyncIterator[bytes], *,
                         codec: str, metadata: Mapping[str, str], size: int | None,
                         checksum: int | None) -> ObjectInfo:
        """Store a streamed value as a new version (memory bounded)."""
        partition = self.partition(bucket, key)
        version = await self._version_for(bucket, key)
        result = await self.engine.put_stream(bucket, key, chunks, version=version,
                                              partition=partition, codec=codec,
                                              metadata=metadata, size=size, checksum=checksum)
        return result.info

    async def delete(self, bucket: str, key: bytes) -> Version:
        """Write a tombstone; returns its version."""
        partition = self.partition(bucket, key)
        version = await self._version_for(bucket, key)
        for _ in range(MAX_STALE_RETRIES):
            result = await self.engine.delete(bucket, key, version=version, partition=partition)
            if result.applied:
                return result.info.version
            version = self.clock.advance_past(result.info.version)
        return result.info.version  # pragma: no cover

    # ------------------------------------------------------------------ reads

    async def head(self, bucket: str, key: bytes) -> ObjectInfo:
        return await self.engine.head(bucket, key)

    async def read(self, bucket: str, key: bytes, start: int | None, end: int | None
                   ) -> ReadResult:
        """Open a verified read of ``[start, end)``."""
        reader = await self.engine.get(bucket, key, start=start, end=end)
        return ReadResult(reader.info, reader.start, reader.end, self.engine.chunks(reader))

    async def read_small(self, bucket: str, key: bytes, max_bytes: int
                         ) -> tuple[ObjectInfo, bytes | None]:
        """The whole value if it is at most ``max_bytes``, else only the info."""
        reader = await self.engine.get(bucket, key)
        if reader.info.size > max_bytes:
            reader.close()
            return reader.info, None
        return reader.info, await self.engine.read_all(reader)

    async def list(self, bucket: str, *, prefix: bytes, start_after: bytes, limit: int,
                   include_deleted: bool) -> list[ObjectInfo]:
        return await self.engine.list(bucket, prefix=prefix, start_after=start_after,
                                      limit=limit, include_deleted=include_deleted)

    # ------------------------------------------------------------------ buckets

    async def create_bucket(self, name: str) -> None:
        await self.engine.create_bucket(name)

    async def delete_bucket(self, name: str) -> None:
        await self.engine.delete_bucket(name)

    def list_buckets(self) -> list[str]:
        return self.engine.engine.list_buckets()
