"""The engine: one node's objects over its disks. Sync, thread-safe, no network.

Each partition prefers its disks in a fixed (rendezvous) order; a write goes to the
first writable one and a read asks every readable disk, so an object written while its
preferred disk was full is still found. The newest version wins everywhere: a put or a
delete older than what is stored changes nothing and says so (``WriteResult.applied``).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import heapq
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType

from cairn.errors import (
    AlreadyExists,
    BucketNotFound,
    CairnError,
    DiskUnavailable,
    FailedPrecondition,
    IntegrityError,
    InvalidArgument,
    NotFound,
    Rebuilding,
    ResourceExhausted,
)
from cairn.types import Version, validate_bucket, validate_key

from . import format as fmt
from .compaction import CompactionReport, compact_disk
from .config import EngineConfig
from .digest import Digest, build_digest, leaf_of
from .disk import Disk, DiskState, Outcome
from .fs import FileSystem
from .reader import ObjectInfo, ObjectReader, info_from_entry
from .rebuild import RebuildSet
from .scrub import ScrubReport, scrub_disk

log = logging.getLogger("cairn.storage")

__all__ = ["DiskStatus", "Engine", "WriteResult"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a put or delete did.

    Attributes:
        applied: True if this write is now the newest version on this node; False if
            the node already held a newer (or the same) version, which ``info`` shows.
        info: the object as stored after the call.
    """

    applied: bool
    info: ObjectInfo


@dataclass(frozen=True, slots=True)
class DiskStatus:
    path: str
    disk_id: str
    state: str
    error: str
    objects: int
    tombstones: int
    segments: int
    live_bytes: int
    dead_bytes: int
    used_bytes: int
    free_bytes: int
    integrity_errors: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Engine:
    """Stores objects on one or more disks of a node.

    Open it with ``Engine(config).open()`` (or as a context manager); every public call
    is thread-safe. Puts block until durable; ``submit_put``/``submit_delete`` return a
    future instead, so an async caller needs no thread per write.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        fs: FileSystem | None = None,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.config = config.validate()
        self.fs = fs or FileSystem()
        self.now_ms = now_ms
        self.disks = [Disk(path, self.config, self.fs, now_ms) for path in self.config.disks]
        self._order_cache: dict[int, list[Disk]] = {}
        self._bucket_lock = threading.Lock()
        self._buckets: dict[str, dict[str, object]] = {}
        self._opened = False
        self._digest_lock = threading.Lock()
        self._digests: dict[int, dict[int, Digest]] = {}  # partition -> leaf count -> tree
        # Writes seen per partition: a digest is cached only if no write touched its
        # partition while it was computed (two racing digests cannot store a stale one).
        self._generation: dict[int, int] = {}
        # Failures of disks replaced since (see ``disk_epoch``), and the epoch the cached
        # digests were computed in: a digest of a disk that failed since is not this
        # node's any more.
        self._retired_failures = 0
        self._digest_epoch = 0
        # Partitions to refill before this node's answers about them count (rebuild.py),
        # and the partitions this node holds: set by a node that has replicas to refill
        # from; without it a disk that comes back empty is not marked.
        self.rebuild = RebuildSet()
        self.rebuild_scope: Callable[[], Iterable[int]] | None = None

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> Engine:
        """Open every disk; a disk that fails to open is reported, not fatal.

        Raises:
            DiskUnavailable: no disk could be opened at all.
        """
        for disk in self.disks:
            disk.open()
        if all(d.state == DiskState.FAILED for d in self.disks):
            why = "; ".join(f"{d.path}: {d.error}" for d in self.disks)
            self.close()
            raise DiskUnavailable(f"no disk could be opened: {why}")
        for disk in self._readable():
            for name, info in disk.buckets().items():
                self._buckets.setdefault(name.decode("ascii"), json.loads(info))
            self.rebuild.load(disk)
        self._opened = True
        return self

    def close(self) -> None:
        """Finish queued writes, fsync and close every disk. Safe to call twice."""
        errors = []
        for disk in reversed(self.disks):
            try:
                disk.close()
            except Exception as exc:  # collect, close the others anyway (STYLE 2.11)
                errors.append(exc)
        self._opened = False
        if errors:
            log.error("errors while closing disks: %s", errors)

    def __enter__(self) -> Engine:
        return self.open() if not self._opened else self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ disks

    def _readable(self) -> list[Disk]:
        for d in self.disks:
            d.check_identity()  # a wiped or vanished disk must not be read (rate-limited)
        return [d for d in self.disks if d.state != DiskState.FAILED]

    @property
    def disk_epoch(self) -> int:
        """Grows whenever a disk fails or is taken back: anything computed from the
        disks before (a digest, an anti-entropy survey) may describe data this node no
        longer holds, or miss data it now holds."""
        return self._retired_failures + sum(d.failures for d in self.disks)

    def _disk_order(self, partition: int) -> list[Disk]:
        """Rendezvous order of the disks for a partition (stable while paths stay)."""
        order = self._order_cache.get(partition)
        if order is None:
            def score(disk: Disk) -> bytes:
                data = f"{partition}/{disk.path}".encode()
                return hashlib.blake2b(data, digest_size=8).digest()

            order = sorted(self.disks, key=score, reverse=True)
            self._order_cache[partition] = order
        return order

    def _target_disk(self, partition: int) -> Disk:
        order = self._disk_order(partition)
        for disk in order:
            if disk.writable:
                return disk
        order[0].check_writable()  # raises the most telling error
        raise DiskUnavailable("no disk can take writes")

    # ------------------------------------------------------------------ validation

    def _check_names(self, bucket: str, key: bytes) -> bytes:
        if bucket not in self._buckets:  # a known bucket was validated when created
            why = validate_bucket(bucket)
            if why:
                raise InvalidArgument(f"invalid bucket name {bucket!r}: {why}")
        why = validate_key(key, self.config.max_key_bytes)
        if why:
            raise InvalidArgument(f"invalid key: {why}")
        if bucket not in self._buckets:
            raise BucketNotFound(f"bucket {bucket!r} does not exist")
        return fmt.object_key(bucket.encode("ascii"), key)

    def _check_meta(self, codec: str, metadata: Mapping[str, str], checksum: int) -> bytes:
        if not codec.isascii() or len(codec) > fmt.MAX_CODEC_BYTES:
            raise InvalidArgument(f"codec name must be ASCII, at most {fmt.MAX_CODEC_BYTES} bytes")
        for name, value in metadata.items():
            if not isinstance(name, str) or not isinstance(value, str) or not name:
                raise InvalidArgument("metadata must map non-empty strings to strings")
            if len(name.encode()) > 0xFFFF or len(value.encode()) > 0xFFFF:
                raise InvalidArgument("a metadata name or value is too long")
        meta = fmt.encode_meta(codec, checksum, metadata)
        if len(meta) > self.config.max_meta_bytes:
            raise InvalidArgument(
                f"metadata is {len(meta)} bytes, the limit is {self.config.max_meta_bytes}"
            )
        return meta

    # ------------------------------------------------------------------ buckets

    def create_bucket(self, name: str) -> None:
        """Create a bucket on every readable disk.

        Raises:
            InvalidArgument: the name breaks the bucket naming rules.
            AlreadyExists: the bucket exists.
            DiskUnavailable: no disk could record it.
        """
        why = validate_bucket(name)
        if why:
            raise InvalidArgument(f"invalid bucket name {name!r}: {why}")
        with self._bucket_lock:
            if name in self._buckets:
                raise AlreadyExists(f"bucket {name!r} already exists")
            info = {"created_ms": self.now_ms()}
            self._write_bucket(name, json.dumps(info).encode())
            self._buckets[name] = dict(info)

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket (tombstones do not count as content).

        Raises:
            BucketNotFound: no such bucket.
            FailedPrecondition: the bucket still holds objects.
        """
        with self._bucket_lock:
            if name not in self._buckets:
                raise BucketNotFound(f"bucket {name!r} does not exist")
            if self.list(name, limit=1):
                raise FailedPrecondition(f"bucket {name!r} is not empty")
            self._write_bucket(name, None)
            del self._buckets[name]

    def _write_bucket(self, name: str, info: bytes | None) -> None:
        done = 0
        errors: list[CairnError] = []
        for disk in self._readable():
            try:
                disk.put_bucket(name.encode("ascii"), info)
                done += 1
            except CairnError as exc:
                errors.append(exc)
        if not done:
            raise errors[0] if errors else DiskUnavailable("no disk is available")

    def list_buckets(self) -> list[str]:
        return sorted(self._buckets)

    def bucket_created_ms(self, name: str) -> int:
        """When the bucket was created (ms since the epoch).

        Raises:
            BucketNotFound: no such bucket.
        """
        info = self._buckets.get(name)
        if info is None:
            raise BucketNotFound(f"bucket {name!r} does not exist")
        created = info.get("created_ms", 0)
        return created if isinstance(created, int) else 0

    def has_bucket(self, name: str) -> bool:
        return name in self._buckets

    # ------------------------------------------------------------------ writes

    def put(
        self,
        bucket: str,
        key: bytes,
        value: bytes,
        *,
        version: Version,
        partition: int = 0,
        codec: str = "raw",
        metadata: Mapping[str, str] | None = None,
        checksum: int | None = None,
    ) -> WriteResult:
        """Store ``value`` as ``version`` of (bucket, key); returns once it is durable.

        Raises:
            InvalidArgument: bad bucket name, key, codec or metadata.
            BucketNotFound: the bucket does not exist.
            IntegrityError: ``checksum`` (CRC32C) does not match ``value``.
            ResourceExhausted: the value is larger than ``max_value_bytes``.
            DiskUnavailable: (or DiskFull, DiskReadOnly) no disk can take the write.
        """
        return self.submit_put(
            bucket, key, value, version=version, partition=partition, codec=codec,
            metadata=metadata, checksum=checksum,
        ).result()

    def submit_put(
        self,
        bucket: str,
        key: bytes,
        value: bytes,
        *,
        version: Version,
        partition: int = 0,
        codec: str = "raw",
        metadata: Mapping[str, str] | None = None,
        checksum: int | None = None,
    ) -> Future[WriteResult]:
        """Like ``put`` but returns a future resolved when the write is durable.

        Validation errors and a full or failed disk raise here, before anything is
        written; commit errors are set on the future.
        """
        okey = self._check_names(bucket, key)
        if len(value) > self.config.max_value_bytes:
            raise ResourceExhausted(
                f"object is {len(value)} bytes, max_value_bytes is {self.config.max_value_bytes}"
            )
        actual = fmt.crc32c(value)
        if checksum is not None and checksum != actual:
            raise IntegrityError(
                f"checksum mismatch: the bytes received have CRC32C {actual:#010x}, "
                f"the sender said {checksum:#010x}; nothing was stored"
            )
        meta = self._check_meta(codec, metadata or {}, actual)
        if len(value) >= self.config.large_object_bytes:
            return self._done(self.put_stream(
                bucket, key, [value], version=version, partition=partition, codec=codec,
                metadata=metadata, size=len(value), checksum=actual,
            ))
        return self._write(okey, fmt.RECORD_PUT, version, partition, meta, value, actual)

    @staticmethod
    def _done(result: WriteResult) -> Future[WriteResult]:
        future: Future[WriteResult] = Future()
        future.set_result(result)
        return future

    def put_stream(
        self,
        bucket: str,
        key: bytes,
        chunks: Iterable[bytes],
        *,
        version: Version,
        partition: int = 0,
        codec: str = "raw",
        metadata: Mapping[str, str] | None = None,
        size: int | None = None,
        checksum: int | None = None,
    ) -> WriteResult:
        """Store a value given as an iterable of chunks, holding at most
        ``large_object_bytes`` of it in memory.

        Small streams are buffered and stored like ``put``; a stream that grows past
        ``large_object_bytes`` is written straight into a segment of its own. If
        ``chunks`` raises, nothing is stored and the error propagates.

        Raises:
            everything ``put`` raises; InvalidArgument if ``size`` is given and differs.
        """
        okey = self._check_names(bucket, key)
        meta = self._check_meta(codec, metadata or {}, 0)
        stored = self._newest(okey, skip_corrupt=True)
        if stored is not None and self._is_stale(stored[1], version):
            return WriteResult(False, info_from_entry(okey, stored[1]))
        it = iter(chunks)
        buffered: list[bytes] = []
        total = 0
        for chunk in it:
            buffered.append(chunk)
            total += len(chunk)
            if total >= self.config.large_object_bytes:
                break
        else:
            value = b"".join(buffered)
            if size is not None and size != len(value):
                raise InvalidArgument(
                    f"stream carried {len(value)} bytes but the header announced {size}"
                )
            return self.put(bucket, key, value, version=version, partition=partition,
                            codec=codec, metadata=metadata, checksum=checksum)

        def rest() -> Iterator[bytes]:
            yield from buffered
            buffered.clear()
            yield from it

        bucket_b, key_b = fmt.split_object_key(okey)
        block_size = self.config.block_size

        def prefix_for(value_len: int, value_crc: int = 0) -> tuple[bytes, int]:
            real_meta = fmt.encode_meta(codec, value_crc, metadata or {})
            return fmt.encode_record_prefix(
                fmt.RECORD_PUT, version, partition, bucket_b, key_b, real_meta, value_len,
                block_size,
            )

        placeholder, _ = prefix_for(0)
        self._touch(partition)
        crc_box: dict[str, int] = {}

        def checked() -> Iterator[bytes]:
            crc = 0
            for chunk in rest():
                crc = fmt.crc32c(chunk, crc)
                yield chunk
            if checksum is not None and checksum != crc:
                raise IntegrityError(
                    f"checksum mismatch: the bytes received have CRC32C {crc:#010x}, the "
                    f"sender said {checksum:#010x}; nothing was stored"
                )
            crc_box["crc"] = crc

        entry = fmt.IndexEntry(
            version, 0, partition, 0, 0, 0, 0, 0, block_size, self.now_ms(), meta
        )
        disk = self._target_disk(partition)
        future, _value_len, _value_crc = disk.write_single(
            okey, entry, placeholder, lambda n: prefix_for(n, crc_box["crc"]), checked(), size,
        )
        outcome, current = future.result()
        self._touch(partition)  # see _write: a digest may have run before the commit
        return self._result(okey, outcome, current)

    def delete(self, bucket: str, key: bytes, *, version: Version, partition: int = 0
               ) -> WriteResult:
        """Write a tombstone as ``version``: the object reads as deleted from then on.

        A tombstone is stored even when the object is unknown here, so an older put
        that arrives later (replicas apply writes out of order) cannot bring it back.

        Raises:
            InvalidArgument, BucketNotFound, DiskUnavailable: as for ``put``.
        """
        return self.submit_delete(bucket, key, version=version, partition=partition).result()

    def submit_delete(self, bucket: str, key: bytes, *, version: Version, partition: int = 0
                      ) -> Future[WriteResult]:
        """Like ``delete`` but returns a future."""
        okey = self._check_names(bucket, key)
        meta = fmt.encode_meta("", 0, {})
        return self._write(okey, fmt.RECORD_TOMBSTONE, version, partition, meta, b"", 0)

    @staticmethod
    def _is_stale(stored: fmt.IndexEntry, version: Version) -> bool:
        return stored.version > version or (stored.version == version and not stored.damaged)

    def _write(self, okey: bytes, kind: int, version: Version, partition: int, meta: bytes,
               value: bytes, checksum: int) -> Future[WriteResult]:
        self._touch(partition)
        stored = self._newest(okey, skip_corrupt=True)
        if stored is not None and self._is_stale(stored[1], version):
            return self._done(WriteResult(False, info_from_entry(okey, stored[1])))
        bucket_b, key_b = fmt.split_object_key(okey)
        record = fmt.encode_record(kind, version, partition, bucket_b, key_b, meta, value,
                                   self.config.block_size)
        flags = fmt.ENTRY_TOMBSTONE if kind == fmt.RECORD_TOMBSTONE else 0
        inline = value if 0 < len(value) <= self.config.inline_max_bytes else None
        entry = fmt.IndexEntry(
            version, flags, partition, checksum, 0, 0, 0, len(value), self.config.block_size,
            self.now_ms(), meta, inline,
        )
        disk = self._target_disk(partition)
        inner = disk.append(okey, entry, record)
        outer: Future[WriteResult] = Future()

        def finish(f: Future[tuple[Outcome, fmt.IndexEntry | None]]) -> None:
            # Touched again once committed: a digest computed between the submit and the
            # commit did not see this write and must not stay cached.
            self._touch(partition)
            try:
                outcome, current = f.result()
                outer.set_result(self._result(okey, outcome, current))
            except BaseException as exc:
                outer.set_exception(exc)

        inner.add_done_callback(finish)
        return outer

    @staticmethod
    def _result(okey: bytes, outcome: Outcome, current: fmt.IndexEntry | None) -> WriteResult:
        assert current is not None
        return WriteResult(outcome == Outcome.APPLIED, info_from_entry(okey, current))

    # ------------------------------------------------------------------ reads

    def _newest(self, okey: bytes, *, skip_corrupt: bool = False
                ) -> tuple[Disk, fmt.IndexEntry] | None:
        """The newest entry of ``okey`` over the readable disks.

        ``skip_corrupt``: a corrupt index entry counts as absent (for writes: the commit
        replaces a corrupt entry, so a repair or a newer write can heal it).

        Raises:
            IntegrityError: the only entries found are corrupt (unless ``skip_corrupt``).
            DiskUnavailable: every disk failed.
        """
        best: tuple[Disk, fmt.IndexEntry] | None = None
        corrupt: IntegrityError | None = None
        readable = self._readable()
        if not readable:
            raise DiskUnavailable("every disk of this node has failed")
        for disk in readable:
            try:
                entry = disk.lookup(okey)
            except IntegrityError as exc:
                corrupt = exc
                continue
            except DiskUnavailable:
                continue
            if entry is not None and (best is None or entry.version > best[1].version):
                best = (disk, entry)
        if best is None and corrupt is not None and not skip_corrupt:
            raise corrupt
        return best

    def head(self, bucket: str, key: bytes, *, include_deleted: bool = False) -> ObjectInfo:
        """The newest version's information, without reading its bytes.

        Raises:
            NotFound: no such object (or it is deleted and ``include_deleted`` is False).
            BucketNotFound, InvalidArgument, IntegrityError, DiskUnavailable.
        """
        okey = self._check_names(bucket, key)
        found = self._newest(okey)
        if found is None or (found[1].tombstone and not include_deleted):
            raise NotFound(f"object {bucket}/{key.decode('utf-8', 'replace')} not found")
        return info_from_entry(okey, found[1])

    def get(self, bucket: str, key: bytes, *, start: int | None = None, end: int | None = None
            ) -> ObjectReader:
        """A reader over the object's bytes ``[start, end)`` (default: all of them).

        An ``end`` past the object's size is clamped to it; a ``start`` past the
        (clamped) end is refused. An empty range is valid.

        Raises:
            NotFound: no such object, or it is deleted.
            InvalidArgument: the range is outside the object.
            IntegrityError: the stored copy is known to be damaged (reading it may also
                raise this later, when a block fails its CRC).
            BucketNotFound, DiskUnavailable.
        """
        okey = self._check_names(bucket, key)
        for _attempt in range(3):
            found = self._newest(okey)
            if found is None or found[1].tombstone:
                raise NotFound(f"object {bucket}/{key.decode('utf-8', 'replace')} not found")
            disk, entry = found
            if entry.inline is not None or entry.damaged:
                fd = None
                break
            try:
                fd = disk.acquire_segment(entry.segment_id)
                break
            except FileNotFoundError:
                # Compaction may have moved the record and dropped the file between the
                # lookup and here: look again. If the index still points there, the
                # file is really gone and the reader reports the copy damaged.
                if self._newest(okey) == found:
                    fd = None
                    break
        info = info_from_entry(okey, entry)
        if entry.damaged:
            if fd is not None:
                disk.release_segment(entry.segment_id, fd)
            raise IntegrityError(
                f"object {bucket}/{key!r} version {entry.version} is damaged on {disk.path} "
                "and awaits repair", bucket=bucket, key=key, disk=disk.path,
            )
        size = entry.value_len
        lo = 0 if start is None else start
        hi = size if end is None else min(end, size)  # an end past the size is clamped
        if lo < 0 or lo > hi:
            if fd is not None:
                disk.release_segment(entry.segment_id, fd)
            raise InvalidArgument(
                f"range [{start}, {end}) is outside the object of {size} bytes"
            )
        return ObjectReader(disk, okey, entry, info, lo, hi, self.config.read_chunk_bytes, fd)

    def list(
        self,
        bucket: str,
        *,
        prefix: bytes = b"",
        start_after: bytes = b"",
        limit: int = 1000,
        include_deleted: bool = False,
    ) -> builtins.list[ObjectInfo]:
        """Objects of a bucket in key order: keys starting with ``prefix``, after
        ``start_after``, at most ``limit`` of them.

        Raises:
            BucketNotFound, InvalidArgument, DiskUnavailable.
        """
        return list(self.iter_objects(bucket, prefix=prefix, start_after=start_after,
                                      limit=limit, include_deleted=include_deleted))

    def iter_objects(
        self,
        bucket: str,
        *,
        prefix: bytes = b"",
        start_after: bytes = b"",
        limit: int | None = None,
        include_deleted: bool = False,
    ) -> Iterator[ObjectInfo]:
        """Like ``list`` but lazy (reads the index in short batches)."""
        why = validate_bucket(bucket)
        if why:
            raise InvalidArgument(f"invalid bucket name {bucket!r}: {why}")
        if bucket not in self._buckets:
            raise BucketNotFound(f"bucket {bucket!r} does not exist")
        if limit is not None and limit < 0:
            raise InvalidArgument("limit must be >= 0")
        base = fmt.object_key(bucket.encode("ascii"), b"")
        scan_prefix = base + prefix
        if start_after and start_after >= prefix:
            start, after = base + start_after, True
        else:
            start, after = scan_prefix, False
        streams = [disk.scan(start, scan_prefix, after) for disk in self._readable()]
        merged = heapq.merge(*streams, key=lambda item: item[0])
        count = 0
        for okey, entry in self._newest_per_key(merged):
            if entry is None or (entry.tombstone and not include_deleted):
                continue
            if limit is not None and count >= limit:
                return
            yield info_from_entry(okey, entry)
            count += 1

    @staticmethod
    def _newest_per_key(items: Iterator[tuple[bytes, fmt.IndexEntry | None]]
                        ) -> Iterator[tuple[bytes, fmt.IndexEntry | None]]:
        current_key: bytes | None = None
        best: fmt.IndexEntry | None = None
        for okey, entry in items:
            if okey != current_key:
                if current_key is not None:
                    yield current_key, best
                current_key, best = okey, entry
            elif entry is not None and (best is None or entry.version > best.version):
                best = entry
        if current_key is not None:
            yield current_key, best

    def iter_partition(self, partition: int, leaves: Iterable[int] | None = None,
                       leaf_count: int = 1) -> Iterator[ObjectInfo]:
        """Every object and tombstone of one partition on this node, in key order;
        with ``leaves``, only those in these leaves of the partition's hash tree."""
        wanted = set(leaves) if leaves is not None else None
        for okey, entry in self._partition_entries(partition):
            if wanted is None or leaf_of(okey, leaf_count) in wanted:
                yield info_from_entry(okey, entry)

    def _partition_entries(self, partition: int) -> Iterator[tuple[bytes, fmt.IndexEntry]]:
        streams = [((k, d) for k in d.partition_keys(partition)) for d in self._readable()]
        last: bytes | None = None
        for okey, _disk in heapq.merge(*streams, key=lambda item: item[0]):
            if okey == last:
                continue
            last = okey
            try:
                found = self._newest(okey)
            except IntegrityError:
                # A corrupt index entry: left out, so anti-entropy sees the object
                # missing here and copies it back (the write replaces the entry).
                continue
            if found is not None and found[1].partition == partition:
                yield okey, found[1]

    def partition_digest(self, partition: int, leaf_count: int) -> Digest:
        """The hash tree of one partition as this node holds it (cached until a write
        to the partition)."""
        epoch = self.disk_epoch
        with self._digest_lock:
            if epoch != self._digest_epoch:  # a disk failed or came back: trees are stale
                self._digests.clear()
                self._digest_epoch = epoch
            generation = self._generation.get(partition, 0)
            cached = self._digests.get(partition, {}).get(leaf_count)
        if cached is not None:
            return cached
        digest = build_digest(((okey, e.version, e.checksum, e.tombstone, e.value_len)
                               for okey, e in self._partition_entries(partition)), leaf_count)
        with self._digest_lock:
            # Cached only if no write raced the scan and no disk failed or came back.
            if (self._generation.get(partition, 0) == generation
                    and self.disk_epoch == epoch == self._digest_epoch):
                self._digests.setdefault(partition, {})[leaf_count] = digest
        return digest

    def _touch(self, partition: int) -> None:
        """A write to ``partition``: its cached digests are stale."""
        with self._digest_lock:
            self._generation[partition] = self._generation.get(partition, 0) + 1
            self._digests.pop(partition, None)

    # ------------------------------------------------------------------ maintenance

    def check_disks(self) -> builtins.list[str]:
        """Notice disks that vanished, and take back replaced ones.

        A disk whose identity marker vanished is failed (``_refresh_state``). A failed
        disk whose directory is now empty (a new disk, or a wiped one) is opened fresh:
        it is empty, and anti-entropy fills it from the other replicas. Returns the
        paths that were taken back.
        """
        reopened = []
        for i, disk in enumerate(self.disks):
            if disk.state != DiskState.FAILED:
                disk.writable  # noqa: B018 - runs the rate-limited state check
                continue
            try:
                empty = os.path.isdir(disk.path) and not [
                    n for n in os.listdir(disk.path) if not n.startswith(".")]
            except OSError:
                continue
            if not empty:
                continue
            if disk.was_mount_point and not os.path.ismount(disk.path):
                # The disk was unmounted: the empty directory is the mount point on the
                # disk below, and files written there would land on the wrong disk
                # (DESIGN traps). Wait for a disk to be mounted there.
                if not disk.error.startswith("unmounted"):
                    log.error("disk %s is no longer mounted; waiting for a disk there",
                              disk.path)
                    disk.error = f"unmounted: {disk.error}"
                continue
            with contextlib.suppress(Exception):
                disk.close()
            fresh = Disk(disk.path, self.config, self.fs, self.now_ms)
            fresh.open()
            if fresh.state == DiskState.FAILED:
                continue
            for name, info in self._buckets.items():
                with contextlib.suppress(CairnError):
                    fresh.put_bucket(name.encode("ascii"), json.dumps(info).encode())
            if self.rebuild_scope is not None:
                self.rebuild.mark(fresh, self.rebuild_scope())
            self.disks[i] = fresh
            self._retired_failures += disk.failures + 1  # the disk epoch moves on
            self._order_cache.clear()
            with self._digest_lock:
                self._digests.clear()
            reopened.append(disk.path)
            log.warning("disk %s was empty and is in use again; repair refills it", disk.path)
        return reopened

    def answers_for(self, partition: int) -> None:
        """Raise unless this node's heads for ``partition`` are complete enough to count
        in a quorum read: not while the partition is still to be refilled after a disk
        came back empty, nor while a disk is failed (what it held is unknown here).

        Raises:
            Rebuilding: the answer would not be authoritative; ask another replica.
        """
        if partition in self.rebuild:
            raise Rebuilding(f"partition {partition} is being refilled from the other "
                             "replicas after a disk came back empty; ask another replica")
        self._no_failed_disk()

    def answers_for_all(self) -> None:
        """Raise unless this node's answers for every partition count (a listing spans
        them all); see ``answers_for``.

        Raises:
            Rebuilding: some partition is still being refilled, or a disk is failed.
        """
        if len(self.rebuild):
            raise Rebuilding(f"{len(self.rebuild)} partition(s) are being refilled from "
                             "the other replicas after a disk came back empty")
        self._no_failed_disk()

    def _no_failed_disk(self) -> None:
        if len(self.disks) > 1:
            failed = [d.path for d in self.disks if d.state == DiskState.FAILED]
            if failed:
                raise Rebuilding(f"disk {', '.join(failed)} is failed: what it held is "
                                 "unknown here; ask another replica")

    def compact(self, *, force: bool = False) -> builtins.list[CompactionReport]:
        """Rewrite sealed segments below ``compaction_live_ratio`` on every writable disk,
        purging tombstones older than ``tombstone_grace_s``. Reads and writes go on."""
        grace_ms = int(self.config.tombstone_grace_s * 1000)
        with self._digest_lock:
            self._digests.clear()  # purged tombstones change the trees
        return [
            compact_disk(disk, live_ratio=self.config.compaction_live_ratio,
                         tombstone_grace_ms=grace_ms, now_ms=self.now_ms(), force=force)
            for disk in self.disks if disk.state in (DiskState.OK, DiskState.FULL)
        ]

    def scrub(self, *, rate_bytes_s: float | None = None) -> builtins.list[ScrubReport]:
        """Verify every record on every readable disk; damaged copies are flagged (never
        served again) and listed, one report per disk."""
        return [scrub_disk(disk, rate_bytes_s=rate_bytes_s) for disk in self._readable()]

    # ------------------------------------------------------------------ status

    def status(self) -> builtins.list[DiskStatus]:
        """One line of health and usage per disk."""
        out = []
        for disk in self.disks:
            used = free = 0
            try:
                st = self.fs.statvfs(disk.path)
                free = st.f_bavail * st.f_frsize
                used = (st.f_blocks - st.f_bfree) * st.f_frsize
            except OSError:
                pass
            s = disk.stats
            out.append(DiskStatus(
                disk.path, disk.disk_id, str(disk.state), disk.error, s.objects, s.tombstones,
                s.segments,
                s.live_bytes, s.dead_bytes, used, free, s.integrity_errors,
            ))
        return out
