"""Partitions a node must refill from its replicas before its answers about them count.

A disk that comes back empty (wiped, or replaced, and taken back by
``Engine.check_disks``) lost whatever it held. Until anti-entropy has levelled each of
the node's partitions with every other replica, the node's "I do not have it" (or "my
newest is V") may hide a write that only the lost disk and one other replica held; a
quorum read counting that answer could miss an acknowledged write (found by the chaos
suite, seed 3002: a node down during a write, then the coordinator's own disk wiped).

So the partitions the node held when the disk came back are marked, durably, in the
metadata of the disk that came back (``rebuild``: the partition ids as JSON), and
cleared one by one as anti-entropy levels them. The coordinator and the replica service
answer a head for a marked partition with ``Rebuilding``: a quorum read asks another
replica instead. Writes are taken as always (they count toward W).

A node started on a disk it created is marked by the node (``cairn.node.server.app``)
when the other nodes hold data: a replacement or a new member, not a new cluster.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Final, Protocol

from cairn.errors import CairnError

__all__ = ["META_KEY", "RebuildSet"]

log = logging.getLogger("cairn.storage")

META_KEY: Final = b"rebuild"


class _MetaDisk(Protocol):
    path: str

    def meta(self, name: bytes) -> bytes | None: ...

    def put_meta(self, name: bytes, value: bytes | None) -> None: ...


class RebuildSet:
    """The partitions still to refill, per disk that came back empty. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_disk: dict[str, tuple[_MetaDisk, set[int]]] = {}
        self._all: frozenset[int] = frozenset()
        self.generation = 0  # moves at every ``mark``: levelling begun before is stale

    def __contains__(self, partition: object) -> bool:
        return partition in self._all

    def __len__(self) -> int:
        return len(self._all)

    def pending(self) -> frozenset[int]:
        return self._all

    def load(self, disk: _MetaDisk) -> None:
        """Take up what a disk opened at start still had to refill."""
        try:
            raw = disk.meta(META_KEY)
        except CairnError:
            return
        if raw:
            with self._lock:
                self._by_disk[disk.path] = (disk, set(json.loads(raw)))
                self._recount()
            log.warning("disk %s is still being refilled: %d partition(s) to go",
                        disk.path, len(self._by_disk[disk.path][1]))

    def mark(self, disk: _MetaDisk, partitions: Iterable[int]) -> None:
        """Record that ``partitions`` must be refilled before this node's answers about
        them count: at once in memory, and durably on ``disk`` (which came back empty)
        so a restart keeps the marks. If the disk cannot take the record, the marks
        hold until this process ends (logged)."""
        wanted = set(partitions)
        with self._lock:
            self.generation += 1
            self._by_disk[disk.path] = (disk, wanted)
            self._recount()
        try:
            disk.put_meta(META_KEY, json.dumps(sorted(wanted)).encode())
        except CairnError as exc:
            log.error("the rebuild marks of %s could not be stored (%s): a restart before "
                      "the refill ends forgets them", disk.path, exc)

    def done(self, partition: int, since: int) -> None:
        """``partition`` was levelled with every other replica by work that began at
        generation ``since``: clear its mark (unless a disk came back empty meanwhile)."""
        if partition not in self._all:
            return
        with self._lock:
            if self.generation != since:
                return
            for disk, left in self._by_disk.values():
                if partition not in left:
                    continue
                rest = left - {partition}
                try:
                    disk.put_meta(META_KEY, json.dumps(sorted(rest)).encode() if rest else None)
                except CairnError as exc:  # kept in memory; the next levelling clears it
                    log.warning("could not clear the rebuild mark of partition %d on %s: %s",
                                partition, disk.path, exc)
                    continue
                left.discard(partition)
            self._by_disk = {p: v for p, v in self._by_disk.items() if v[1]}
            self._recount()
        if not self._all:
            log.warning("every partition is refilled: this node's answers count again")

    def _recount(self) -> None:
        self._all = frozenset(p for _disk, left in self._by_disk.values() for p in left)
