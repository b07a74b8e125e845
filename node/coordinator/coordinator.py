"""The coordinator of requests that reach this node: quorum writes and reads.

Writes: stamp a hybrid-clock version, send the write to every replica of the key's
partition in parallel (this node's engine directly, the others through ``Peers``), and
answer after W replicas acknowledged it durably. A replica that holds a newer version
says so; the coordinator moves its clock past it and writes again, so a write that
starts after another finished at quorum always wins, whatever the wall clocks say.
Replicas that could not be reached get a durable hint, replayed when they answer again.

Reads: ask the replicas for their newest version, take the newest of the first R
answers, stream its bytes from one replica that has it (this node first), and push
that version to the replicas that answered with an older one (read repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.health import HealthView
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.cluster.placement import partition_of, replicas
from cairn.errors import (
    BucketNotFound,
    CairnError,
    Conflict,
    DataLoss,
    FailedPrecondition,
    IntegrityError,
    InternalError,
    InvalidArgument,
    NotFound,
    Rebuilding,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from cairn.node.storage import format as fmt
from cairn.node.storage.aio import AsyncEngine
from cairn.node.storage.hints import Hint, HintStore
from cairn.node.storage.reader import ObjectInfo
from cairn.types import Version

from .peers import Peers, ReplicaAck, ReplicaWrite

__all__ = ["CALL_DEADLINE", "Coordinator", "CoordinatorConfig", "ListPage", "ReadResult"]

log = logging.getLogger("cairn.coordinator")

MAX_STALE_RETRIES: Final = 5
STREAM_QUEUE_DEPTH: Final = 4
HINT_BATCH: Final = 256
REPAIR_CONCURRENCY: Final = 8
# When the request being served must be answered (time.monotonic()), if its caller set
# a deadline: set by the service for each call, read by ``Coordinator._replica_timeout``.
CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "cairn_call_deadline", default=None)
MIN_REPLICA_TIMEOUT_S: Final = 0.05
STRAGGLER_WAIT_S: Final = 0.25
# Replica answers that refuse the request itself, so the same call fails everywhere and
# nothing was written: the only failures a write passes on as they are.
REFUSALS: Final = (BucketNotFound, InvalidArgument, IntegrityError, ResourceExhausted,
                   Unauthenticated)
BUCKET_DELETE_ATTEMPTS: Final = 3
HEDGE_S: Final = 0.2  # a read asks one more replica when the first ones are this slow
READ_RACE_RETRIES: Final = 3  # reads that lost a race with a newer write start over
# A replica that takes no chunk of a streamed upload for this long is dropped from it
# (and hinted): a healthy one takes a chunk within milliseconds, even with a busy disk.
UPLOAD_STALL_S: Final = 2.0


class Pushed(enum.IntEnum):
    """What ``Coordinator.push`` achieved; false only when the target does not hold the
    version (so ``if await push(...)`` asks "does it hold it now?")."""

    FAILED = 0  # no source could be read or the target could not be written
    COPIED = 1  # the target stored the copy sent
    HELD = 2  # the target refused the copy: it held a newer version already


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    """Attributes:
    replica_timeout_s: deadline of one call to another node (seconds, default 5).
    small_object_bytes: values up to this size travel whole on the replication stream.
    read_repair: push the newest version to stale replicas seen by a read.
    """

    replica_timeout_s: float = 5.0
    small_object_bytes: int = 1024 * 1024
    read_repair: bool = True


@dataclass(frozen=True, slots=True)
class ReadResult:
    """An object's information and its verified bytes ``[start, end)``."""

    info: ObjectInfo
    start: int
    end: int
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of a merged listing; ``resume_after`` is set when more may follow."""

    objects: list[ObjectInfo]
    resume_after: bytes | None


@dataclass
class _Tally:
    acks: list[NodeId] = field(default_factory=list)
    failures: dict[NodeId, CairnError] = field(default_factory=dict)
    newer: Version | None = None


def _describe(failures: Mapping[NodeId, BaseException]) -> str:
    parts = []
    for node, err in sorted(failures.items()):
        text = str(err)
        parts.append(text if text.startswith(f"node {node}:") else f"node {node}: {text}")
    return "; ".join(parts)


class Coordinator:
    """Versioned, replicated object operations for requests that reach this node."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: HybridClock,
        cluster_map: ClusterMap,
        node_id: NodeId,
        peers: Peers | None = None,
        hints: HintStore | None = None,
        health: HealthView | None = None,
        config: CoordinatorConfig | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.cluster_map = cluster_map
        self.node_id = node_id
        self.peers = peers
        self.hints = hints
        self.health = health or HealthView()
        self.config = config or CoordinatorConfig()
        self._background: set[asyncio.Task[object]] = set()
        self._repairs = asyncio.Semaphore(REPAIR_CONCURRENCY)
        self._fetching_epoch = cluster_map.epoch
        self.stats = {"read_repairs": 0, "hints_replayed": 0, "hints_written": 0,
                      "hints_lost": 0}

    # ------------------------------------------------------------------ placement

    def partition(self, bucket: str, key: bytes) -> int:
        return int(partition_of(bucket, key, self.cluster_map.partitions))

    def placement(self, bucket: str, key: bytes) -> tuple[int, tuple[NodeId, ...]]:
        partition = self.partition(bucket, key)
        return partition, replicas(self.cluster_map, partition)

    def observe(self, remote: Version | None, epoch: int = 0, sender: int = 0) -> None:
        """Advance the clock past a stamp seen in a message (every message carries one),
        and fetch the cluster map from a node that sent a newer epoch than ours."""
        if remote is not None and remote.physical_ms:
            self.clock.update(remote)
        if epoch > self.cluster_map.epoch and sender and self.peers is not None and (
                epoch > self._fetching_epoch):
            self._fetching_epoch = epoch
            self._spawn(self._fetch_map(NodeId(sender), epoch))

    async def _fetch_map(self, sender: NodeId, epoch: int) -> None:
        assert self.peers is not None
        try:
            new = await self.peers.fetch_map(sender, self.config.replica_timeout_s)
        except CairnError as exc:
            log.warning("could not fetch map epoch %d from node %s: %s", epoch, sender, exc)
            self._fetching_epoch = self.cluster_map.epoch
            return
        self.use_map(new)

    def use_map(self, new: ClusterMap) -> bool:
        """Swap in a newer cluster map (an immutable value: one assignment swaps it)."""
        if new.epoch <= self.cluster_map.epoch:
            return False
        log.info("cluster map epoch %d -> %d", self.cluster_map.epoch, new.epoch)
        self.cluster_map = new
        if self.peers is not None:
            self.peers.use_map(new)
        return True

    def _replica_timeout(self) -> float:
        """The deadline of one call to another node: ``replica_timeout_s``, or less when
        the request this work serves has less time left (``CALL_DEADLINE``), so a read
        falls over to another replica while its caller still waits for the answer."""
        timeout = self.config.replica_timeout_s
        deadline = CALL_DEADLINE.get()
        if deadline is None:
            return timeout
        return max(MIN_REPLICA_TIMEOUT_S, min(timeout, deadline - time.monotonic()))

    def _spawn(self, coro: Coroutine[object, object, object]) -> None:
        # Background work (read repair, hints) outlives the request: a fresh context,
        # so the request's deadline does not bound it.
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            coro, context=contextvars.Context())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def drain(self) -> None:
        """Wait for background replication, repairs and hint writes (shutdown, tests)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _quorum(self, consistency: str, kind: Literal["read", "write"], n: int) -> int:
        return min(self.cluster_map.quorum_for(_level(consistency), kind), n)

    # ------------------------------------------------------------------ buckets

    async def ensure_bucket(self, bucket: str) -> None:
        """Raises BucketNotFound unless the bucket exists here or on another node (then
        it is created here too: this node missed the creation while it was down)."""
        if self.engine.engine.has_bucket(bucket):
            return
        if self.peers is not None:
            for node in self.cluster_map.node_ids:
                if node == self.node_id:
                    continue
                try:
                    await self.peers.list(node, bucket, b"", b"", 0,
                                          self._replica_timeout())
                except CairnError:
                    continue
                await self._create_local_bucket(bucket)
                return
        raise BucketNotFound(f"bucket {bucket!r} does not exist")

    async def _create_local_bucket(self, bucket: str) -> bool:
        try:
            await self.engine.create_bucket(bucket)
            return False
        except CairnError as exc:
            if exc.code == "ALREADY_EXISTS":
                return True
            raise

    async def create_bucket(self, name: str) -> None:
        """Create the bucket on every node that answers (a majority at least).

        Raises:
            AlreadyExists: the bucket existed on this node.
            Unavailable: fewer than a majority of nodes answered.
        """
        await self.engine.create_bucket(name)
        others = [n for n in self.cluster_map.node_ids if n != self.node_id]
        if not others or self.peers is None:
            return
        peers = self.peers
        results = await asyncio.gather(
            *(peers.bucket(n, name, False, 0, self._replica_timeout()) for n in others),
            return_exceptions=True,
        )
        answered = 1 + sum(1 for r in results if not isinstance(r, BaseException))
        if answered * 2 <= len(self.cluster_map.node_ids):
            raise Unavailable(f"bucket {name!r} was created on only {answered} of "
                              f"{len(self.cluster_map.node_ids)} nodes; it will spread as "
                              "objects are written")

    async def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket everywhere; every node must answer.

        Raises:
            BucketNotFound, FailedPrecondition (not empty), Unavailable.
        """
        await self.ensure_bucket(name)
        page = await self.list(name, prefix=b"", start_after=b"", limit=1,
                               include_deleted=False, consistency="all")
        if page.objects:
            raise FailedPrecondition(f"bucket {name!r} is not empty")
        others = [n for n in self.cluster_map.node_ids if n != self.node_id]
        failed: dict[NodeId, BaseException] = {}
        for _attempt in range(BUCKET_DELETE_ATTEMPTS):
            failed = {}
            if others and self.peers is not None:
                peers = self.peers
                results = await asyncio.gather(
                    *(peers.bucket(n, name, True, 0, self._replica_timeout())
                      for n in others), return_exceptions=True)
                failed = {n: r for n, r in zip(others, results, strict=True)
                          if isinstance(r, BaseException)}
            if not failed:
                break
            # A replica that missed some deletes (a tombstone still in flight, or the
            # node was down) still holds objects the merged listing showed deleted:
            # level it with the newest versions, then ask again.
            for node, err in failed.items():
                if isinstance(err, FailedPrecondition):
                    await self._level_bucket(node, name)
            others = list(failed)
        if failed:
            raise Unavailable(f"bucket {name!r} could not be deleted everywhere: "
                              f"{_describe(failed)}")
        try:
            await self.engine.delete_bucket(name)
        except FailedPrecondition:
            await self._level_bucket(self.node_id, name)
            await self.engine.delete_bucket(name)

    async def _level_bucket(self, node: NodeId, bucket: str) -> None:
        """Push the newest version of every object ``node`` still shows in ``bucket``."""
        if node == self.node_id:
            live = await self.engine.list(bucket, prefix=b"", start_after=b"", limit=10_000,
                                          include_deleted=False)
        else:
            assert self.peers is not None
            live = [i for i in await self.peers.list(node, bucket, b"", b"", 10_000,
                                                     self._replica_timeout())
                    if not i.deleted]
        for info in live:
            partition, targets = self.placement(bucket, info.key)
            answers = await self._gather_heads(bucket, info.key, partition, targets,
                                               len(targets))
            found = [(i, n) for n, i in answers if i is not None]
            if not found:
                continue
            newest = max(i.version for i, _ in found)
            holders = [n for i, n in found if i.version == newest]
            best = next(i for i, _ in found if i.version == newest)
            if best.version > info.version:
                await self.push(node, bucket, info.key, best, holders)

    def local_buckets(self) -> dict[str, int]:
        """This node's own buckets: name -> created (ms since the epoch)."""
        engine = self.engine.engine
        out: dict[str, int] = {}
        for name in engine.list_buckets():
            with contextlib.suppress(BucketNotFound):  # deleted meanwhile
                out[name] = engine.bucket_created_ms(name)
        return out

    async def list_buckets(self) -> dict[str, int]:
        """Every bucket any node that answers knows, with its creation time: a node
        that was down when a bucket was created lists it too (a deleted bucket is gone
        from every node: deletion needs them all)."""
        merged = self.local_buckets()
        if self.peers is None:
            return merged
        peers = self.peers
        others = [n for n in self.cluster_map.node_ids if n != self.node_id]
        answers = await asyncio.gather(
            *(peers.list_buckets(n, self._replica_timeout()) for n in others),
            return_exceptions=True)
        for answer in answers:
            if isinstance(answer, dict):
                for name, created in answer.items():
                    # the earliest creation time a node knows (0: it did not record one)
                    merged[name] = min(filter(None, (merged.get(name), created)), default=0)
        return merged

    # ------------------------------------------------------------------ local replica ops

    async def _local_write(self, w: ReplicaWrite, value: bytes | None,
                           chunks: AsyncIterator[bytes] | None = None) -> ReplicaAck:
        if w.deleted:
            result = await self.engine.delete(w.bucket, w.key, version=w.version,
                                              partition=w.partition)
        elif chunks is not None:
            # Size and checksum of a stream are checked by whoever frames it (the
            # service against PutEnd, the replica service against its PutEnd), and here
            # against the version's own when they are known (a copy of a stored version
            # always knows them; an upload, its size if the client announced it): a
            # copy that lost bytes on the way is never stored under the full version.
            result = await self.engine.put_stream(
                w.bucket, w.key, chunks, version=w.version, partition=w.partition,
                codec=w.codec, metadata=w.metadata, size=w.size or None,
                checksum=w.checksum or None)
        else:
            assert value is not None
            result = await self.engine.put(
                w.bucket, w.key, value, version=w.version, partition=w.partition,
                codec=w.codec, metadata=w.metadata, checksum=w.checksum)
        return _ack_of(result.applied, result.info.version, w.version)

    async def apply_replica_write(self, w: ReplicaWrite, value: bytes | None,
                                  chunks: AsyncIterator[bytes] | None = None) -> ReplicaAck:
        """A write sent by another node's coordinator: apply it here (creating the bucket
        if this node missed its creation)."""
        try:
            return await self._local_write(w, value, chunks)
        except BucketNotFound:
            await self._create_local_bucket(w.bucket)
            return await self._local_write(w, value, chunks)

    async def replica_head(self, bucket: str, key: bytes, partition: int | None = None
                           ) -> ObjectInfo | None:
        """This node's answer to a quorum read's head: its newest version (None if it
        has never heard of the key). ``partition``: the key's, if the caller knows it.

        Raises:
            Rebuilding: this node's answer would not count (it is refilling a disk that
                came back empty, or a disk is failed); the read asks another replica.
        """
        self.engine.engine.answers_for(
            self.partition(bucket, key) if partition is None else partition)
        return await self.local_head(bucket, key)

    async def replica_list(self, bucket: str, prefix: bytes, start_after: bytes, limit: int
                           ) -> list[ObjectInfo]:
        """This node's own listing for a merged one (tombstones included).

        Raises:
            Rebuilding: this node is refilling a lost disk, so its listing would not
                count toward any partition's coverage; the merge goes without it.
        """
        self.engine.engine.answers_for_all()
        return await self.engine.list(bucket, prefix=prefix, start_after=start_after,
                                      limit=limit, include_deleted=True)

    async def local_head(self, bucket: str, key: bytes) -> ObjectInfo | None:
        """The newest version this node holds, tombstones included (None if none)."""
        try:
            return await self.engine.head(bucket, key, include_deleted=True)
        except NotFound:
            return None

    # ------------------------------------------------------------------ fan-out

    def _start(self, targets: tuple[NodeId, ...],
               op: Callable[[NodeId], Awaitable[ReplicaAck]]
               ) -> dict[asyncio.Task[ReplicaAck], NodeId]:
        return {asyncio.ensure_future(op(n)): n for n in targets}

    async def _fan_out(self, targets: tuple[NodeId, ...], need: int,
                       op: Callable[[NodeId], Awaitable[ReplicaAck]],
                       on_late_failure: Callable[[NodeId, BaseException], None]) -> _Tally:
        """Run ``op`` on every target; see ``_collect``."""
        return await self._collect(self._start(targets, op), need, on_late_failure)

    async def _collect(self, tasks: dict[asyncio.Task[ReplicaAck], NodeId], need: int,
                       on_late_failure: Callable[[NodeId, BaseException], None]) -> _Tally:
        """Return once ``need`` targets acknowledged, a newer version was reported, or
        the quorum became impossible. Calls still running go on in the background;
        their failures reach ``on_late_failure``."""
        targets = tuple(tasks.values())
        tally = _Tally()
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                node = tasks[task]
                exc = _failure_of(task)
                if exc is not None:
                    tally.failures[node] = _as_cairn(exc)
                    self._note_failure(node, exc)
                    continue
                ack = task.result()
                if ack.applied:
                    tally.acks.append(node)
                elif ack.current is not None:
                    tally.newer = max(tally.newer or ack.current, ack.current)
            if len(tally.acks) >= need or tally.newer is not None:
                break
            if len(tally.failures) > len(targets) - need:
                # The quorum is lost; give quick stragglers (this node's own write) a
                # moment so the error says truthfully how far the write got.
                done = set()
                if pending:
                    done, pending = await asyncio.wait(pending, timeout=STRAGGLER_WAIT_S)
                for task in done:
                    failure = _failure_of(task)
                    if failure is None and task.result().applied:
                        tally.acks.append(tasks[task])
                    elif failure is not None:
                        tally.failures[tasks[task]] = _as_cairn(failure)
                break
        for task in pending:
            node = tasks[task]

            def late(t: asyncio.Task[ReplicaAck], node: NodeId = node) -> None:
                if t.cancelled():
                    on_late_failure(node, asyncio.CancelledError())
                elif t.exception() is not None:
                    self._note_failure(node, t.exception())  # type: ignore[arg-type]
                    on_late_failure(node, t.exception())  # type: ignore[arg-type]

            task.add_done_callback(late)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return tally

    def _note_failure(self, node: NodeId, exc: BaseException) -> None:
        if (isinstance(exc, Unavailable) and not isinstance(exc, Rebuilding)
                and node != self.node_id):
            self.health.record_failure(node)

    def _target_op(self, w: ReplicaWrite, value: bytes | None
                   ) -> Callable[[NodeId], Awaitable[ReplicaAck]]:
        async def op(node: NodeId) -> ReplicaAck:
            if node == self.node_id:
                return await self._local_write(w, value)
            assert self.peers is not None
            return await self.peers.write(node, w, value or b"", self._replica_timeout())

        return op

    def _hint_later(self, w: ReplicaWrite) -> Callable[[NodeId, BaseException], None]:
        def hint(node: NodeId, exc: BaseException) -> None:
            if node != self.node_id:
                self._spawn(self._write_hints(w, [node]))

        return hint

    async def _write_hints(self, w: ReplicaWrite, nodes: list[NodeId]) -> None:
        if self.hints is None or not nodes:
            return
        hints = [Hint(int(n), w.bucket, w.key, w.version, w.deleted, w.partition)
                 for n in nodes if n != self.node_id]
        if not hints:
            return
        try:
            await asyncio.to_thread(self.hints.add, hints)
        except CairnError as exc:
            # The write's outcome does not depend on its hints: anti-entropy brings the
            # missed replicas up to date without them, only later.
            self.stats["hints_lost"] += len(hints)
            log.warning("%d hint(s) for %s/%r not stored: %s", len(hints), w.bucket, w.key, exc)
            return
        self.stats["hints_written"] += len(hints)

    async def _replicate(self, bucket: str, key: bytes, consistency: str,
                         make: Callable[[Version, int], ReplicaWrite], value: bytes | None
                         ) -> ReplicaWrite:
        """Write to the key's replicas until W acknowledged; retry past newer versions."""
        partition, targets = self.placement(bucket, key)
        need = self._quorum(consistency, "write", len(targets))
        version = self.clock.now()
        for _attempt in range(MAX_STALE_RETRIES):
            w = make(version, partition)
            tally = await self._fan_out(targets, need, self._target_op(w, value),
                                        self._hint_later(w))
            await self._write_hints(w, [n for n in tally.failures if n != self.node_id])
            if len(tally.acks) >= need:
                return w
            if tally.newer is not None:
                version = self.clock.advance_past(tally.newer)
                continue
            self._raise_quorum(tally, need, len(targets), "write")
        raise Unavailable("the write kept losing to newer versions; try again")

    @staticmethod
    def _raise_quorum(tally: _Tally, need: int, total: int, kind: str) -> None:
        """Raise why a write missed its quorum. A refusal of the request itself (no
        bucket, a bad argument or checksum) is raised as it is when no replica took the
        write; anything else is Unavailable, which says the write may have happened: a
        replica that acknowledged, or one still running, keeps it, and a read may see it."""
        if not tally.acks:
            for err in tally.failures.values():
                if isinstance(err, REFUSALS):
                    raise err
        raise Unavailable(
            f"{kind} reached {len(tally.acks)} of {total} replicas, {need} needed: "
            f"{_describe(tally.failures)}",
            outcomes={int(n): e.code for n, e in tally.failures.items()},
        )

    # ------------------------------------------------------------------ writes

    async def put(self, bucket: str, key: bytes, value: bytes, *, codec: str,
                  metadata: Mapping[str, str], checksum: int | None,
                  consistency: str = "quorum") -> ObjectInfo:
        """Store a whole value as a new version on W replicas.

        Raises:
            IntegrityError: ``checksum`` does not match ``value``.
            BucketNotFound, InvalidArgument, Unavailable (fewer than W replicas).
        """
        actual = fmt.crc32c(value)
        if checksum is not None and checksum != actual:
            raise IntegrityError(
                f"checksum mismatch: the bytes received have CRC32C {actual:#010x}, the "
                f"client sent {checksum:#010x}; nothing was stored")
        await self.ensure_bucket(bucket)

        def make(version: Version, partition: int) -> ReplicaWrite:
            return ReplicaWrite(bucket, key, version, partition, False, codec, metadata,
                                len(value), actual)

        w = await self._replicate(bucket, key, consistency, make, value)
        return _info_of(w)

    async def delete(self, bucket: str, key: bytes, consistency: str = "quorum") -> Version:
        """Write a tombstone on W replicas; returns its version."""
        await self.ensure_bucket(bucket)

        def make(version: Version, partition: int) -> ReplicaWrite:
            return ReplicaWrite(bucket, key, version, partition, deleted=True)

        w = await self._replicate(bucket, key, consistency, make, None)
        return w.version

    async def put_stream(self, bucket: str, key: bytes, chunks: AsyncIterator[bytes], *,
                         codec: str, metadata: Mapping[str, str], size: int | None,
                         checksum: int | None, consistency: str = "quorum") -> ObjectInfo:
        """Stream a value to all replicas at once (memory bounded by a few chunks each).

        The stream cannot be sent twice, so the version is chosen after asking the
        replicas what they hold.

        Raises:
            as ``put``; an error raised by ``chunks`` aborts every replica's copy.
        """
        await self.ensure_bucket(bucket)
        partition, targets = self.placement(bucket, key)
        need = self._quorum(consistency, "write", len(targets))
        version = self.clock.now()
        # Ask enough replicas that their set meets every write quorum, so the stamp is
        # newer than any write acknowledged before this stream began.
        enough = len(targets) - need + 1
        for _node, info in await self._gather_heads(bucket, key, partition, targets, enough):
            if info is not None and info.version >= version:
                version = self.clock.advance_past(info.version)
        box = {"size": 0, "crc": 0}
        w = ReplicaWrite(bucket, key, version, partition, False, codec, metadata, size or 0,
                         checksum or 0)
        queues: dict[NodeId, asyncio.Queue[object]] = {
            n: asyncio.Queue(maxsize=STREAM_QUEUE_DEPTH) for n in targets}
        end = object()

        async def source(node: NodeId) -> AsyncIterator[bytes]:
            q = queues[node]
            given = 0
            while True:
                item = await q.get()
                if item is end:
                    if given != box["size"]:  # a chunk went missing on its way here
                        log.error("upload of %s/%r: replica %s was handed %d of %d bytes; "
                                  "its copy is aborted", bucket, key, node, given, box["size"])
                        raise InternalError(f"replica {node} was handed {given} of "
                                            f"{box['size']} bytes of the upload")
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, bytes)
                given += len(item)
                yield item

        tasks: dict[NodeId, asyncio.Task[ReplicaAck]] = {}

        async def op(node: NodeId) -> ReplicaAck:
            if node == self.node_id:
                return await self._local_write(w, None, source(node))
            assert self.peers is not None
            return await self.peers.write_stream(node, w, source(node),
                                                 self.config.replica_timeout_s)

        async def feed() -> None:
            async for chunk in chunks:
                box["size"] += len(chunk)
                box["crc"] = fmt.crc32c(chunk, box["crc"])
                await self._offer(queues, tasks, chunk)
            await self._offer(queues, tasks, end)

        started = self._start(targets, op)
        tasks.update({node: task for task, node in started.items()})
        fan = asyncio.ensure_future(self._collect(started, need, self._hint_later(w)))
        try:
            await feed()
        except BaseException as exc:
            for q in queues.values():
                _force_put(q, exc if isinstance(exc, Exception) else Unavailable("cancelled"))
            fan.add_done_callback(_swallow)
            raise
        tally = await fan
        await self._write_hints(w, [n for n in tally.failures if n != self.node_id])
        if len(tally.acks) < need and tally.newer is None:
            self._raise_quorum(tally, need, len(targets), "write")
        # With ``tally.newer`` set, a write that began while this stream was flowing
        # holds a newer version: last writer wins orders this upload before it, so the
        # upload succeeded and was superseded (it could not be re-stamped and resent).
        return _info_of(ReplicaWrite(bucket, key, version, partition, False, codec, metadata,
                                     box["size"], box["crc"]))

    async def _offer(self, queues: dict[NodeId, asyncio.Queue[object]],
                     tasks: dict[NodeId, asyncio.Task[ReplicaAck]], item: object) -> None:
        """Put ``item`` on every live target's queue, waiting for the slowest (bounded
        memory), but never for a target whose write already ended, nor for one that took
        nothing for ``UPLOAD_STALL_S``: that copy is cancelled (the write is hinted to
        it), so a replica cut off mid-upload does not hold the others back until gRPC
        notices the dead connection (its keepalive, 5 s)."""
        for node, q in queues.items():
            delay = 0.0002
            blocked_at = 0.0
            while True:
                try:
                    q.put_nowait(item)
                    break
                except asyncio.QueueFull:
                    task = tasks.get(node)
                    if task is not None and task.done():
                        break
                    now = time.monotonic()
                    blocked_at = blocked_at or now
                    if task is not None and now - blocked_at > UPLOAD_STALL_S:
                        log.warning("replica %s took no chunk for %.1f s: its copy of this "
                                    "upload is dropped and hinted", node, UPLOAD_STALL_S)
                        task.cancel()
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.002)

    # ------------------------------------------------------------------ reads

    async def _gather_heads(self, bucket: str, key: bytes, partition: int,
                            targets: tuple[NodeId, ...],
                            need: int) -> list[tuple[NodeId, ObjectInfo | None]]:
        """Ask replicas for their newest version; return once ``need`` answered.

        Raises:
            Unavailable: fewer than ``need`` replicas answered.
        """
        async def ask(node: NodeId) -> ObjectInfo | None:
            if node == self.node_id:
                return await self.replica_head(bucket, key, partition)
            assert self.peers is not None
            return await self.peers.head(node, bucket, key, self._replica_timeout())

        # Ask ``need`` replicas first (this node, then the healthy ones); the others only
        # when one of those fails or is slow (a hedge), so a quorum read costs one peer
        # call, not two.
        order = sorted(targets, key=lambda n: (n != self.node_id, not self.health.is_up(n)))
        waiting = list(order)
        tasks: dict[asyncio.Task[ObjectInfo | None], NodeId] = {}

        def launch(count: int) -> None:
            for _ in range(min(count, len(waiting))):
                node = waiting.pop(0)
                tasks[asyncio.ensure_future(ask(node))] = node

        launch(need)
        answers: list[tuple[NodeId, ObjectInfo | None]] = []
        failures: dict[NodeId, CairnError] = {}
        pending = set(tasks)
        while pending and len(answers) < need:
            done, pending = await asyncio.wait(pending, timeout=HEDGE_S if waiting else None,
                                               return_when=asyncio.FIRST_COMPLETED)
            if not done:  # slow: ask one more replica alongside
                before = set(tasks)
                launch(1)
                pending |= set(tasks) - before
                continue
            for task in done:
                node = tasks[task]
                if task.exception() is not None:
                    failures[node] = _as_cairn(task.exception())  # type: ignore[arg-type]
                    self._note_failure(node, task.exception())  # type: ignore[arg-type]
                    before = set(tasks)
                    launch(1)
                    pending |= set(tasks) - before
                else:
                    answers.append((node, task.result()))
            if len(failures) > len(targets) - need:
                break
        for task in pending:
            task.add_done_callback(_swallow)
        if len(answers) < need:
            for err in failures.values():
                if not err.retryable and not isinstance(err, IntegrityError):
                    raise err
            raise Unavailable(
                f"read reached {len(answers)} of {len(targets)} replicas, {need} needed: "
                f"{_describe(failures)}",
                outcomes={int(n): e.code for n, e in failures.items()},
            )
        return answers

    async def _newest(self, bucket: str, key: bytes, consistency: str
                      ) -> tuple[ObjectInfo, list[NodeId]]:
        """The newest version among R replicas and the replicas holding it; stale ones
        are repaired in the background.

        Raises:
            NotFound: no replica has it, or the newest is a tombstone.
        """
        await self.ensure_bucket(bucket)
        partition, targets = self.placement(bucket, key)
        need = self._quorum(consistency, "read", len(targets))
        answers = await self._gather_heads(bucket, key, partition, targets, need)
        found = [info for _n, info in answers if info is not None]
        if not found:
            raise NotFound(f"object {bucket}/{key.decode('utf-8', 'replace')} not found")
        newest = max(found, key=lambda i: i.version)
        holders = [n for n, info in answers if info is not None and info.version == newest.version]
        stale = [n for n, info in answers if info is None or info.version < newest.version]
        if stale and self.config.read_repair:
            self._spawn(self._repair(newest, holders, stale))
        if newest.deleted:
            raise NotFound(f"object {bucket}/{key.decode('utf-8', 'replace')} not found")
        holders.sort(key=lambda n: n != self.node_id)  # this node first
        return newest, holders

    async def head(self, bucket: str, key: bytes, consistency: str = "quorum") -> ObjectInfo:
        info, _holders = await self._newest(bucket, key, consistency)
        return info

    async def read(self, bucket: str, key: bytes, start: int | None, end: int | None,
                   consistency: str = "quorum") -> ReadResult:
        """Open a verified read of the newest version's bytes ``[start, end)``."""
        for _attempt in range(READ_RACE_RETRIES):
            info, holders = await self._newest(bucket, key, consistency)
            errors: dict[NodeId, CairnError] = {}
            async for node in self._candidates(info, holders):
                try:
                    try:
                        result = await _first_chunk_read(await self._open(node, info, start,
                                                                          end))
                    except Conflict:
                        # The holder moved past the quorum's newest: a write overlaps
                        # this read, so its newer version is a correct answer.
                        result = await self._open(node, info, start, end, exact=False)
                        if result.info.version < info.version:
                            raise
                        result = await _first_chunk_read(result)
                    return self._resuming(result, node, holders)
                except (IntegrityError, Unavailable, Conflict) as exc:
                    errors[node] = exc
            if not _raced(errors):
                raise _read_failure(info, errors)
        raise Unavailable(f"{bucket}/{key!r} kept changing while it was read; try again")

    def _resuming(self, result: ReadResult, source: NodeId, holders: list[NodeId]
                  ) -> ReadResult:
        """``result`` whose stream, if its source fails midway (a damaged block further
        on, the node gone), goes on from another replica holding the same version, at
        the byte where it stopped: the caller sees one whole stream (found by the chaos
        suite: a large get failed on a block damaged past the first)."""
        version = result.info.version

        async def chunks() -> AsyncIterator[bytes]:
            offset, current, at, tried = result.start, result.chunks, source, {source}
            while True:
                try:
                    async for chunk in current:
                        offset += len(chunk)
                        yield chunk
                    return
                except (IntegrityError, Unavailable) as exc:
                    log.warning("read of %s/%r failed at byte %d on node %s: %s; going on "
                                "from another replica", result.info.bucket, result.info.key,
                                offset, at, exc)
                    resumed = await self._resume(result.info, offset, result.end, tried,
                                                 holders)
                    if resumed is None or resumed[1].info.version != version:
                        raise
                    at, current = resumed[0], resumed[1].chunks

        return ReadResult(result.info, result.start, result.end, chunks())

    async def _resume(self, info: ObjectInfo, offset: int, end: int, tried: set[NodeId],
                      holders: list[NodeId]) -> tuple[NodeId, ReadResult] | None:
        """The exact version ``info`` from ``offset`` on, from a replica not ``tried``
        (the holders first), and that replica; None when none can serve it."""
        _partition, targets = self.placement(info.bucket, info.key)
        for node in [*holders, *targets]:
            if node in tried:
                continue
            tried.add(node)
            try:
                return node, await _first_chunk_read(await self._open(node, info, offset,
                                                                      end))
            except (IntegrityError, Unavailable, Conflict) as exc:
                log.info("resuming the read from node %s failed: %s", node, exc)
        return None

    async def _candidates(self, info: ObjectInfo, holders: list[NodeId]
                          ) -> AsyncIterator[NodeId]:
        """The nodes to read ``info``'s version from: the holders the quorum named, then,
        if a read is still wanted (they all failed: a damaged copy, a node gone), the
        other replicas that turn out to hold that version too (a quorum read hears only R
        answers, so one damaged copy on the only holder named must not fail the read)."""
        for node in holders:
            yield node
        _partition, targets = self.placement(info.bucket, info.key)
        others = [n for n in targets if n not in holders]
        if not others:
            return
        heads = await asyncio.gather(
            *(self._peer_or_local_head(n, info.bucket, info.key) for n in others),
            return_exceptions=True)
        for node, head in zip(others, heads, strict=True):
            if isinstance(head, ObjectInfo) and head.version >= info.version:
                yield node

    async def _peer_or_local_head(self, node: NodeId, bucket: str, key: bytes
                                  ) -> ObjectInfo | None:
        if node == self.node_id:
            return await self.local_head(bucket, key)
        assert self.peers is not None
        return await self.peers.head(node, bucket, key, self._replica_timeout())

    async def _open(self, node: NodeId, info: ObjectInfo, start: int | None, end: int | None,
                    exact: bool = True) -> ReadResult:
        """Open ``info``'s version on ``node`` (with ``exact`` False: its newest, which a
        read may return once a holder showed it moved past the quorum's answer)."""
        if node == self.node_id:
            reader = await self.engine.get(info.bucket, info.key, start=start, end=end)
            return ReadResult(reader.info, reader.start, reader.end,
                              self.engine.chunks(reader))
        assert self.peers is not None
        remote = await self.peers.read(node, info.bucket, info.key,
                                       info.version if exact else None, start, end,
                                       self._replica_timeout())
        return ReadResult(remote.info, remote.start, remote.end, remote.chunks)

    async def read_small(self, bucket: str, key: bytes, max_bytes: int,
                         consistency: str = "quorum") -> tuple[ObjectInfo, bytes | None]:
        """The whole value if it is at most ``max_bytes``, else only the info."""
        for _attempt in range(READ_RACE_RETRIES):
            info, holders = await self._newest(bucket, key, consistency)
            if info.size > max_bytes:
                return info, None
            errors: dict[NodeId, CairnError] = {}
            async for node in self._candidates(info, holders):
                if node == self.node_id:
                    try:
                        local, data = await self.engine.read_small(bucket, key, max_bytes)
                    except (IntegrityError, Unavailable) as exc:
                        errors[node] = exc
                        continue
                    if local.version >= info.version:
                        return local, data
                try:
                    try:
                        result = await self._open(node, info, None, None)
                    except Conflict:  # as in read(): a newer version is a correct answer
                        result = await self._open(node, info, None, None, exact=False)
                        if result.info.version < info.version:
                            raise
                        if result.info.size > max_bytes:
                            return result.info, None
                    data = b"".join([c async for c in result.chunks])
                    if fmt.crc32c(data) != result.info.checksum:
                        raise IntegrityError(f"value from node {node} failed its checksum")
                    return result.info, data
                except (IntegrityError, Unavailable, Conflict) as exc:
                    errors[node] = exc
            if not _raced(errors):
                raise _read_failure(info, errors)
        raise Unavailable(f"{bucket}/{key!r} kept changing while it was read; try again")

    # ------------------------------------------------------------------ repair

    async def _repair(self, newest: ObjectInfo, holders: list[NodeId], stale: list[NodeId]
                      ) -> None:
        async with self._repairs:
            for node in stale:
                try:
                    if await self.push(node, newest.bucket, newest.key, newest, holders):
                        self.stats["read_repairs"] += 1
                except CairnError as exc:
                    log.info("read repair of %s/%r on node %s failed: %s", newest.bucket,
                             newest.key, node, exc)

    async def push(self, node: NodeId, bucket: str, key: bytes, info: ObjectInfo | None = None,
                   holders: list[NodeId] | None = None) -> Pushed:
        """Send the newest copy this node can find of (bucket, key) to ``node``: COPIED
        if ``node`` took it, HELD if it held a newer version already, FAILED if no
        source could be read or ``node`` could not be written. (A target that held that
        very version answers "applied" on the replica protocol, so it counts as COPIED.)"""
        if info is None:
            info = await self.local_head(bucket, key)
            holders = [self.node_id]
            if info is None:
                return Pushed.FAILED
        w = ReplicaWrite(bucket, key, info.version, info.partition, info.deleted, info.codec,
                         info.metadata, info.size, info.checksum)
        if node == self.node_id:
            send: Callable[..., Awaitable[ReplicaAck]] = self._local_write_any
        else:
            assert self.peers is not None
            send = self._peer_write_any
        if info.deleted:
            return _pushed(await send(node, w, b"", None))
        for source in holders or [self.node_id]:
            if source == node:
                continue
            try:
                result = await self._open(source, info, None, None)
                if result.info.version != info.version:
                    continue
                if info.size <= self.config.small_object_bytes:
                    data = b"".join([c async for c in result.chunks])
                    if fmt.crc32c(data) != info.checksum:
                        raise IntegrityError(f"copy from node {source} failed its checksum")
                    ack = await send(node, w, data, None)
                else:
                    ack = await send(node, w, None, result.chunks)
            except (IntegrityError, InvalidArgument, Unavailable) as exc:
                # A bad or unreachable source is never used: try the next holder. (A
                # copy that arrived short or changed fails the target's size or checksum
                # check: InvalidArgument or IntegrityError.)
                log.info("copy of %s/%r from node %s failed: %s", bucket, key, source, exc)
                continue
            return _pushed(ack)
        return Pushed.FAILED

    async def repair_copy(self, bucket: str, key: bytes) -> str:
        """Replace this node's damaged copy of (bucket, key) with a verified copy of the
        newest version another replica holds. Returns "repaired", "lost" (every other
        replica answered, and none has a good copy at least as new), "deferred" (some
        replica did not answer: try again later) or "gone" (nothing to repair any
        more)."""
        try:
            local = await self.local_head(bucket, key)
        except IntegrityError:
            local = None  # the index entry itself is corrupt: any good copy replaces it
        else:
            if local is None:
                return "gone"
        _partition, targets = self.placement(bucket, key)
        others = [n for n in targets if n != self.node_id]
        if self.peers is None or not others:
            return "lost"
        peers = self.peers
        answers = await asyncio.gather(
            *(peers.head(n, bucket, key, self._replica_timeout()) for n in others),
            return_exceptions=True)
        found = [(info, n) for n, info in zip(others, answers, strict=True)
                 if isinstance(info, ObjectInfo)
                 and (local is None or info.version >= local.version)]
        for version in sorted({i.version for i, _ in found}, reverse=True):
            holders = [n for i, n in found if i.version == version]
            info = next(i for i, _ in found if i.version == version)
            if await self.push(self.node_id, bucket, key, info, holders):
                return "repaired"
        if any(isinstance(a, BaseException) for a in answers):
            return "deferred"  # the replica that did not answer may hold a good copy
        return "lost"

    async def _local_write_any(self, node: NodeId, w: ReplicaWrite, value: bytes | None,
                               chunks: AsyncIterator[bytes] | None) -> ReplicaAck:
        return await self.apply_replica_write(w, value, chunks)

    async def _peer_write_any(self, node: NodeId, w: ReplicaWrite, value: bytes | None,
                              chunks: AsyncIterator[bytes] | None) -> ReplicaAck:
        assert self.peers is not None
        if chunks is not None:
            return await self.peers.write_stream(node, w, chunks, self.config.replica_timeout_s)
        return await self.peers.write(node, w, value or b"", self._replica_timeout())

    async def replay_hints(self) -> int:
        """Deliver pending hints to nodes that are up; returns how many were delivered."""
        if self.hints is None:
            return 0
        delivered = 0
        for target in list((await asyncio.to_thread(self.hints.targets)).keys()):
            node = NodeId(target)
            if not self.health.is_up(node) or node not in self.cluster_map.node_ids:
                continue
            batch = await asyncio.to_thread(self.hints.pending, target, HINT_BATCH)
            for hint in batch:
                try:
                    done = await self.push(node, hint.bucket, hint.key)
                except CairnError as exc:
                    log.info("hint replay to node %s stopped: %s", node, exc)
                    break
                if done or await self.local_head(hint.bucket, hint.key) is None:
                    await asyncio.to_thread(self.hints.remove, hint)
                    delivered += 1
        self.stats["hints_replayed"] += delivered
        return delivered

    async def probe_peers(self) -> None:
        """Update the health view by asking every other node's health service."""
        if self.peers is None:
            return
        peers = self.peers
        others = [n for n in self.cluster_map.node_ids if n != self.node_id]
        results = await asyncio.gather(*(peers.ping(n, 1.0) for n in others),
                                       return_exceptions=True)
        for node, ok in zip(others, results, strict=True):
            if ok is True:
                self.health.record_success(node)
            else:
                self.health.record_failure(node)

    # ------------------------------------------------------------------ listing

    async def list(self, bucket: str, *, prefix: bytes, start_after: bytes, limit: int,
                   include_deleted: bool, consistency: str = "quorum") -> ListPage:
        """Merge the sorted listings of the nodes: newest version per key wins.

        Raises:
            Unavailable: some partition has fewer than R replicas among the nodes that
                answered.
        """
        await self.ensure_bucket(bucket)
        nodes = list(self.cluster_map.node_ids)
        fetch = limit + 1

        async def one(node: NodeId) -> list[ObjectInfo]:
            if node == self.node_id:
                return await self.replica_list(bucket, prefix, start_after, fetch)
            assert self.peers is not None
            return await self.peers.list(node, bucket, prefix, start_after, fetch,
                                         self._replica_timeout())

        results = await asyncio.gather(*(one(n) for n in nodes), return_exceptions=True)
        answered = {n: r for n, r in zip(nodes, results, strict=True)
                    if not isinstance(r, BaseException)}
        failed = {n: r for n, r in zip(nodes, results, strict=True)
                  if isinstance(r, BaseException)}
        for err in failed.values():
            if isinstance(err, CairnError) and not err.retryable:
                raise err
        self._check_coverage(set(answered), consistency, failed)
        bound: bytes | None = None
        for items in answered.values():
            if len(items) >= fetch:
                last = items[-1].key
                bound = last if bound is None else min(bound, last)
        newest: dict[bytes, ObjectInfo] = {}
        for items in answered.values():
            for info in items:
                if bound is not None and info.key > bound:
                    break
                seen = newest.get(info.key)
                if seen is None or info.version > seen.version:
                    newest[info.key] = info
        out: list[ObjectInfo] = []
        resume: bytes | None = None
        for k in sorted(newest):
            info = newest[k]
            if info.deleted and not include_deleted:
                continue
            if len(out) == limit:
                resume = out[-1].key
                break
            out.append(info)
        if resume is None and bound is not None:
            resume = out[-1].key if out and out[-1].key >= bound else bound
        return ListPage(out, resume)

    def _check_coverage(self, answered: set[NodeId], consistency: str,
                        failed: Mapping[NodeId, BaseException]) -> None:
        if not failed:
            return
        m = self.cluster_map
        need = min(m.quorum_for(_level(consistency), "read"), m.replicas_n)
        for partition in range(m.partitions):
            have = sum(1 for n in replicas(m, partition) if n in answered)
            if have < need:
                raise Unavailable(
                    f"listing needs {need} replicas of every partition; partition {partition} "
                    f"has {have} among the {len(answered)} nodes that answered: "
                    f"{_describe(failed)}")


def _level(consistency: str) -> Literal["one", "quorum", "all"]:
    if consistency == "one":
        return "one"
    if consistency == "all":
        return "all"
    return "quorum"


def _ack_of(applied: bool, stored: Version, sent: Version) -> ReplicaAck:
    if applied or stored == sent:
        return ReplicaAck(True)
    if stored > sent:
        return ReplicaAck(False, stored)
    return ReplicaAck(False)  # pragma: no cover - a stale write always leaves newer data


def _failure_of(task: asyncio.Task[ReplicaAck]) -> BaseException | None:
    """A finished replica call's error; a cancelled one (a copy dropped because its
    replica stalled) counts as that replica being unavailable."""
    if task.cancelled():
        return Unavailable("the copy to this replica was dropped: it took no chunk for "
                           f"{UPLOAD_STALL_S:g} s")
    return task.exception()


def _pushed(ack: ReplicaAck) -> Pushed:
    return Pushed.COPIED if ack.applied else Pushed.HELD


def _info_of(w: ReplicaWrite) -> ObjectInfo:
    return ObjectInfo(
        bucket=w.bucket, key=w.key, version=w.version, size=w.size, checksum=w.checksum,
        codec=w.codec, metadata=MappingProxyType(dict(w.metadata or {})),
        partition=w.partition, deleted=w.deleted, stored_ms=w.version.physical_ms,
    )


def _as_cairn(exc: BaseException) -> CairnError:
    if isinstance(exc, CairnError):
        return exc
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return Unavailable(f"timed out: {exc}")
    if isinstance(exc, asyncio.CancelledError):
        return Unavailable("cancelled")
    log.error("unexpected error from a replica call", exc_info=exc)
    return InternalError(f"unexpected error: {exc!r}")


async def _first_chunk_read(result: ReadResult) -> ReadResult:
    """``result`` with its first chunk already read, so a copy whose first block fails
    its checksum fails here, while another replica can still serve the read (nothing
    has reached the client yet); later blocks fail the stream itself."""
    chunks = result.chunks
    try:
        first: bytes | None = await anext(chunks)
    except StopAsyncIteration:
        first = None

    async def again() -> AsyncIterator[bytes]:
        if first is None:
            return
        yield first
        async for chunk in chunks:
            yield chunk

    return ReadResult(result.info, result.start, result.end, again())


def _raced(errors: Mapping[NodeId, CairnError]) -> bool:
    """A holder moved on to a newer version between the quorum heads and the read:
    the read overlaps that write, so reading again (and returning it) is correct."""
    return any(isinstance(e, Conflict) for e in errors.values())


def _read_failure(info: ObjectInfo, errors: Mapping[NodeId, CairnError]) -> CairnError:
    if errors and all(isinstance(e, IntegrityError) for e in errors.values()):
        return DataLoss(f"every copy of {info.bucket}/{info.key!r} version {info.version} "
                        f"that was asked failed its checksum: {_describe(errors)}")
    return Unavailable(f"no replica could serve {info.bucket}/{info.key!r}: "
                       f"{_describe(errors)}")


def _force_put(q: asyncio.Queue[object], item: object) -> None:
    while True:
        try:
            q.put_nowait(item)
            return
        except asyncio.QueueFull:
            q.get_nowait()


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


def _swallow(task: asyncio.Task[object]) -> None:
    if not task.cancelled():
        task.exception()
