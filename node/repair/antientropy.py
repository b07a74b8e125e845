"""Anti-entropy: replicas compare partition hash trees and copy only what differs.

A pass first surveys every partition this node holds: its own tree against each other
replica's (one small RPC each; trees are cached by the engine until a write touches the
partition, so an in-sync pass reads almost nothing). That survey is what status reports:
partitions below full redundancy and bytes still to copy. Then, partition by partition,
the differing leaves are listed on both sides and each object goes where it is missing
or older, in both directions, the newest version winning (tombstones included, so
deletes propagate and nothing is resurrected). A wiped disk or a node that lost its data
is rebuilt the same way. Copies are throttled by the repair rate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from cairn.cluster.ids import NodeId
from cairn.cluster.placement import replicas
from cairn.errors import CairnError
from cairn.node.coordinator import Coordinator, Pushed
from cairn.node.storage.digest import Digest
from cairn.node.storage.reader import ObjectInfo

from .worker import RateLimiter, Worker

__all__ = ["AntiEntropy", "PartitionResult"]

log = logging.getLogger("cairn.repair")

SURVEY_CONCURRENCY: Final = 16
COPY_CONCURRENCY: Final = 4
REBUILD_RETRY_S: Final = 5.0  # the next pass, while partitions are still to refill
SURVEY_ATTEMPTS: Final = 3  # a survey spanning a disk failure starts again, this often


@dataclass
class PartitionResult:
    partition: int
    compared: int = 0
    pulled: int = 0
    pushed: int = 0
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


class AntiEntropy(Worker):
    """Keeps this node's partitions level with their other replicas."""

    name = "antientropy"

    def __init__(self, coordinator: Coordinator, limiter: RateLimiter, *, interval_s: float,
                 leaves: int = 64, timeout_s: float = 5.0) -> None:
        super().__init__(idle_s=min(interval_s, 1.0))
        self.coordinator = coordinator
        self.limiter = limiter
        self.interval_s = interval_s
        self.leaves = leaves
        self.timeout_s = timeout_s
        self.passes = 0
        self.last_pass_ms = 0
        self.pulled = 0
        self.pushed = 0
        self.bytes_copied = 0
        self.below: dict[int, int] = {}  # partition -> estimated bytes still to copy
        self.held = 0
        self._held_for = -1
        self._todo: list[int] = []
        self._pass_started = 0.0
        self._rate_ema = 0.0
        # The first pass waits a full interval: right after a start, hints and read
        # repair cover a short absence, and a disk that came back empty kicks a pass.
        self._next_pass_at = time.monotonic() + interval_s
        if len(coordinator.engine.engine.rebuild):  # a refill was under way at the stop
            self._next_pass_at = time.monotonic()
        self._sem = asyncio.Semaphore(COPY_CONCURRENCY)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        m = self.coordinator.cluster_map
        if self._held_for != m.epoch:  # recomputed once per map, not per status call
            self.held, self._held_for = len(self.held_partitions()), m.epoch
        left = sum(self.below.values())
        rate = self.limiter.rate_bytes_s or self._rate_ema
        return {
            **super().status(),
            "partitions_held": self.held,
            "partitions_below_redundancy": len(self.below),
            "bytes_to_copy": left,
            "eta_s": (left / rate) if (left and rate) else 0.0,
            "passes": self.passes,
            "last_pass_ms": self.last_pass_ms,
            "objects_pulled": self.pulled,
            "objects_pushed": self.pushed,
            "bytes_copied": self.bytes_copied,
        }

    def held_partitions(self) -> list[int]:
        m = self.coordinator.cluster_map
        me = self.coordinator.node_id
        return [p for p in range(m.partitions) if me in replicas(m, p)]

    # ------------------------------------------------------------------ the loop

    async def run_once(self) -> bool:
        """Survey when a pass is due, else level one partition. True if it worked."""
        if not self._todo:
            now = time.monotonic()
            if not self.pass_requested and now < self._next_pass_at:
                return False
            self.pass_requested = False
            await self.survey()
            self._next_pass_at = time.monotonic() + self._next_pass_in()
            if not self._todo:
                self._finish_pass()
                return False
        partition = self._todo.pop(0)
        await self.sync_partition(partition)
        if not self._todo:
            self._finish_pass()
        return True

    def _next_pass_in(self) -> float:
        """The pass interval; sooner while partitions are still to be refilled (a peer
        was unreachable): this node's reads of them wait on it."""
        if len(self.coordinator.engine.engine.rebuild):
            return min(self.interval_s, REBUILD_RETRY_S)
        return self.interval_s

    def _finish_pass(self) -> None:
        self.passes += 1
        self.last_pass_ms = time.time_ns() // 1_000_000

    async def survey(self, only: list[int] | None = None) -> None:
        """Compare trees of every held partition (or ``only``) with the other replicas."""
        self._pass_started = time.monotonic()
        held = self.held_partitions()
        self.held = len(held)
        targets = only if only is not None else held
        sem = asyncio.Semaphore(SURVEY_CONCURRENCY)
        below: dict[int, int] = {}

        level: set[int] = set()  # every replica answered with the same tree

        async def one(partition: int) -> None:
            async with sem:
                estimate = await self._compare(partition)
            if estimate is not None:
                below[partition] = estimate
            else:
                level.add(partition)

        engine = self.coordinator.engine.engine
        for _attempt in range(SURVEY_ATTEMPTS):
            epoch = engine.disk_epoch
            since = engine.rebuild.generation
            below.clear()
            level.clear()
            await asyncio.gather(*(one(p) for p in targets))
            if engine.disk_epoch == epoch:
                for p in level:
                    engine.rebuild.done(p, since)  # nothing to refill there
                break
            # A disk failed or came back during the survey: trees compared before that
            # describe data this node may no longer hold. Survey again.
            log.warning("a disk failed or came back during the anti-entropy survey; again")
        if only is None:
            self.below = below
        else:
            for p in only:
                self.below.pop(p, None)
            self.below.update(below)
        self._todo = sorted(below)

    async def _compare(self, partition: int) -> int | None:
        """None if every reachable replica matches; else the bytes likely to copy."""
        local = await self._local_digest(partition)
        peers = self._peers_of(partition)
        estimate: int | None = None
        for peer in peers:
            try:
                remote = await self._remote_digest(peer, partition)
            except CairnError:
                estimate = estimate or 0  # unreachable: redundancy is not whole
                continue
            if remote.root != local.root:
                gap = abs(remote.value_bytes - local.value_bytes)
                estimate = (estimate or 0) + gap
        return estimate

    def _peers_of(self, partition: int) -> list[NodeId]:
        m = self.coordinator.cluster_map
        return [n for n in replicas(m, partition) if n != self.coordinator.node_id]

    async def _local_digest(self, partition: int) -> Digest:
        engine = self.coordinator.engine.engine
        return await asyncio.to_thread(engine.partition_digest, partition, self.leaves)

    async def _remote_digest(self, peer: NodeId, partition: int) -> Digest:
        assert self.coordinator.peers is not None
        return await self.coordinator.peers.partition_digest(peer, partition, self.leaves,
                                                             self.timeout_s)

    # ------------------------------------------------------------------ levelling

    async def sync_partition(self, partition: int) -> PartitionResult:
        """Copy what differs between this node and each other replica of ``partition``,
        both ways. Only the node with the smaller id of each pair does it (the other
        would copy the same objects again), except that a partition this node finds
        empty here is always pulled (a rebuild must not wait for its peers)."""
        result = PartitionResult(partition)
        rebuild = self.coordinator.engine.engine.rebuild
        rebuilding, since = partition in rebuild, rebuild.generation
        local = await self._local_digest(partition)
        for peer in self._peers_of(partition):
            # A partition being refilled levels with every peer itself: it is refilled
            # only once each of them was levelled without an error.
            if peer < self.coordinator.node_id and local.entries and not rebuilding:
                continue
            try:
                remote = await self._remote_digest(peer, partition)
            except CairnError as exc:
                result.errors.append(str(exc))
                continue
            diff = local.differing(remote)
            if not diff:
                continue
            result.compared += 1
            await self._level(partition, peer, diff, result)
            local = await self._local_digest(partition)
        if rebuilding and not result.errors:
            rebuild.done(partition, since)
        still = await self._compare(partition)
        if still is None:
            self.below.pop(partition, None)
        else:
            self.below[partition] = still
        return result

    async def _level(self, partition: int, peer: NodeId, diff: list[int],
                     result: PartitionResult) -> None:
        coord = self.coordinator
        assert coord.peers is not None
        engine = coord.engine.engine
        mine = await asyncio.to_thread(
            lambda: {(i.bucket, i.key): i for i in engine.iter_partition(partition, diff,
                                                                            self.leaves)})
        try:
            theirs = {(i.bucket, i.key): i for i in await coord.peers.list_partition(
                peer, partition, diff, self.leaves, self.timeout_s)}
        except CairnError as exc:
            result.errors.append(str(exc))
            return
        jobs = []
        for name in sorted(set(mine) | set(theirs)):
            here, there = mine.get(name), theirs.get(name)
            if there is not None and (here is None or there.version > here.version):
                jobs.append(self._copy(coord.node_id, there, [peer], result, pull=True))
            elif here is not None and (there is None or here.version > there.version):
                jobs.append(self._copy(peer, here, [coord.node_id], result, pull=False))
        await asyncio.gather(*jobs)

    async def _copy(self, to: NodeId, info: ObjectInfo, holders: list[NodeId],
                    result: PartitionResult, *, pull: bool) -> None:
        async with self._sem:
            size = 0 if info.deleted else info.size
            await self.limiter.acquire(max(size, 1))
            started = time.monotonic()
            try:
                done = await self.coordinator.push(to, info.bucket, info.key, info, holders)
            except CairnError as exc:
                result.errors.append(f"{info.bucket}/{info.key!r}: {exc}")
                return
            if done is Pushed.FAILED:
                result.errors.append(f"{info.bucket}/{info.key!r}: no copy reached node {to}")
                return
            if done is not Pushed.COPIED:  # the target had it (or newer) meanwhile
                return
            if pull:
                result.pulled += 1
                self.pulled += 1
            else:
                result.pushed += 1
                self.pushed += 1
            result.bytes += size
            self.bytes_copied += size
            left = self.below.get(info.partition)
            if left:
                self.below[info.partition] = max(0, left - size)
            took = max(time.monotonic() - started, 1e-6)
            self._rate_ema = 0.8 * self._rate_ema + 0.2 * (size / took) if self._rate_ema \
                else size / took
