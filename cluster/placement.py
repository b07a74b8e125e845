"""Placement: which partition a key is in, and which nodes hold each partition.

Two pure functions, shared by the SDK (to route a request) and the node (to coordinate
it), so both always agree for the same map:

- ``partition_of(bucket, key, P)``: BLAKE2b-64 of a length-prefixed encoding of
  (bucket, key), mod P. The encoding is injective, so ("ab", "c") and ("a", "bc")
  are different inputs.
- ``replicas(map, partition)``: weighted rendezvous hashing (highest random weight).
  Every node gets a score per partition, ``-weight / ln(u)`` with ``u`` a uniform
  number in (0, 1) drawn from BLAKE2b of (partition, node id); the N best scores win,
  on distinct zones when the map has zones. A node's score depends only on the
  partition, its own id and its own weight, so adding or removing a node moves only
  the partitions that gain or lose it.

Results are cached per map value (the map is immutable and hashable); a partition's
replicas are computed on first use. See docs/placement.md for the reasoning and the
measured balance.

Entry points: ``placement``, ``partition_of``, ``replicas``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.ids import MAX_PARTITIONS, MIN_PARTITIONS, NodeId, PartitionId
from cairn.errors import InvalidArgument

__all__ = [
    "MAP_CACHE_SIZE",
    "PLACEMENT_NAME",
    "Placement",
    "changed_partitions",
    "partition_of",
    "placement",
    "replica_counts",
    "replicas",
]

PLACEMENT_NAME: Final = "cairn-hrw-blake2b-v1"
"""The name of this placement function, sent with the cluster map: a client that does
not know it must not compute replicas itself (docs/protocol.md)."""

_KEY_PERSON: Final = b"cairn.partition"
"""BLAKE2b personalization of the key hash: a different hash than any other in cairn."""
_SCORE_PERSON: Final = b"cairn.hrw"
"""BLAKE2b personalization of the rendezvous hash."""
_DIGEST_BYTES: Final = 8

_LENGTH: Final = struct.Struct(">I")
_SCORE_INPUT: Final = struct.Struct(">II")  # partition id, node id
_UNIFORM_BITS: Final = 53  # the mantissa of a double: every u is exact
_UNIFORM_SHIFT: Final = _DIGEST_BYTES * 8 - _UNIFORM_BITS
_UNIFORM_SCALE: Final = 2.0**-_UNIFORM_BITS

MAP_CACHE_SIZE: Final = 8
"""How many maps keep their placement tables; a client rarely holds more than two."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one key lives.

    Attributes:
        partition: the key's partition.
        replicas: the N nodes that hold it, in preference order: the first is the
            partition's first replica (it uploads to the cold tier, for example), and
            with zones the first replicas are on distinct zones.
    """

    partition: PartitionId
    replicas: tuple[NodeId, ...]


def _check_partitions(partitions: int) -> None:
    if (
        not isinstance(partitions, int)
        or isinstance(partitions, bool)
        or not MIN_PARTITIONS <= partitions <= MAX_PARTITIONS
    ):
        raise InvalidArgument(
            f"partitions must be an integer in {MIN_PARTITIONS}..{MAX_PARTITIONS}, "
            f"not {partitions!r}"
        )


def partition_of(bucket: str, key: bytes | str, partitions: int) -> PartitionId:
    """Return the partition of (bucket, key).

    The hash is the first 8 bytes of BLAKE2b (personalized ``cairn.partition``) over
    ``u32be(len(bucket)) || bucket || u32be(len(key)) || key`` with both encoded as
    UTF-8, read as a big-endian integer, mod ``partitions``. It never changes within
    a format: golden values in the tests pin it.

    Args:
        bucket: the bucket name.
        key: the key, as UTF-8 bytes (a ``str`` is encoded as UTF-8 first, which gives
            the same partition).
        partitions: P, 1..65536.

    Raises:
        InvalidArgument: P is out of range, or bucket or key has the wrong type.
    """
    _check_partitions(partitions)
    if not isinstance(bucket, str):
        raise InvalidArgument(f"bucket must be a string, not {type(bucket).__name__}")
    if isinstance(key, str):
        key = key.encode("utf-8")
    elif not isinstance(key, bytes):
        raise InvalidArgument(f"key must be bytes or str, not {type(key).__name__}")
    bucket_bytes = bucket.encode("utf-8")
    hasher = hashlib.blake2b(digest_size=_DIGEST_BYTES, person=_KEY_PERSON)
    hasher.update(_LENGTH.pack(len(bucket_bytes)))
    hasher.update(bucket_bytes)
    hasher.update(_LENGTH.pack(len(key)))
    hasher.update(key)
    # 2**64 mod P is at most P - 1 out of 2**64: the modulo bias is below 1e-14.
    return PartitionId(int.from_bytes(hasher.digest(), "big") % partitions)


def _score_hash(partition: int, node_id: int) -> int:
    digest = hashlib.blake2b(
        _SCORE_INPUT.pack(partition, node_id), digest_size=_DIGEST_BYTES, person=_SCORE_PERSON
    ).digest()
    return int.from_bytes(digest, "big")


class _Table:
    """The placement of every partition of one map, filled in on first use.

    Zoneless maps give each node a zone of its own, so one algorithm serves both.
    """

    __slots__ = ("_equal_weights", "_nodes", "_replicas_n", "_rows")

    def __init__(self, cluster_map: ClusterMap) -> None:
        self._nodes: tuple[tuple[NodeId, float, object], ...] = tuple(
            (node.id, node.weight, node.zone if node.zone else ("node", node.id))
            for node in cluster_map.nodes
        )
        self._equal_weights = len({node.weight for node in cluster_map.nodes}) == 1
        self._replicas_n = cluster_map.replicas_n
        # Filled lazily; a race between threads computes the same row twice, harmlessly.
        self._rows: list[tuple[NodeId, ...] | None] = [None] * cluster_map.partitions

    def row(self, partition: int) -> tuple[NodeId, ...]:
        found = self._rows[partition]
        if found is None:
            found = self._compute(partition)
            self._rows[partition] = found
        return found

    def _compute(self, partition: int) -> tuple[NodeId, ...]:
        ranked: list[tuple[float | int, NodeId, object]] = []
        for node_id, weight, zone in self._nodes:
            h = _score_hash(partition, node_id)
            if self._equal_weights:
                # -w/ln(u) is increasing in u: with equal weights the raw hash ranks the
                # nodes the same way, exactly, with no floating point (and no libm) at all.
                score: float | int = h
            else:
                u = ((h >> _UNIFORM_SHIFT) + 0.5) * _UNIFORM_SCALE  # in (0, 1), never 0 or 1
                score = -weight / math.log(u)
            ranked.append((score, node_id, zone))
        # Highest score first; the node id breaks (astronomically unlikely) ties.
        ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return _choose(ranked, self._replicas_n)


def _choose(ranked: Iterable[tuple[float | int, NodeId, object]], n: int) -> tuple[NodeId, ...]:
    """Pick n nodes from a best-first ranking, one per zone while unused zones remain.

    A node whose zone is already used is passed over; if the zones run out before n
    nodes are chosen, the passed-over nodes fill the remaining places, best first.
    """
    chosen: list[NodeId] = []
    passed_over: list[NodeId] = []
    used_zones: set[object] = set()
    for _, node_id, zone in ranked:
        if len(chosen) == n:
            break
        if zone in used_zones:
            passed_over.append(node_id)
        else:
            used_zones.add(zone)
            chosen.append(node_id)
    # The loop stops early only when chosen is full, so passed_over is complete here.
    chosen.extend(passed_over[: n - len(chosen)])
    return tuple(chosen)


@functools.lru_cache(maxsize=MAP_CACHE_SIZE)
def _table(cluster_map: ClusterMap) -> _Table:
    return _Table(cluster_map)


def replicas(cluster_map: ClusterMap, partition: PartitionId | int) -> tuple[NodeId, ...]:
    """Return the N nodes that hold ``partition``, in preference order.

    Weighted rendezvous hashing over the map's nodes: the N highest scores
    ``-weight / ln(u(partition, node))``, on distinct zones while there are zones
    not yet used (then the best remaining nodes of used zones).

    Raises:
        InvalidArgument: the partition is not in 0..P-1 of this map.
    """
    if (
        not isinstance(partition, int)
        or isinstance(partition, bool)
        or not 0 <= partition < cluster_map.partitions
    ):
        raise InvalidArgument(
            f"partition {partition!r} is not in 0..{cluster_map.partitions - 1}"
        )
    return _table(cluster_map).row(partition)


def placement(cluster_map: ClusterMap, bucket: str, key: bytes | str) -> Placement:
    """Return the partition of (bucket, key) and its replicas under ``cluster_map``.

    Raises:
        InvalidArgument: bucket or key has the wrong type.
    """
    partition = partition_of(bucket, key, cluster_map.partitions)
    return Placement(partition, _table(cluster_map).row(partition))


def replica_counts(cluster_map: ClusterMap) -> dict[NodeId, int]:
    """Return how many partitions each node holds a replica of (for status and balance)."""
    counts = {node_id: 0 for node_id in cluster_map.node_ids}
    table = _table(cluster_map)
    for partition in range(cluster_map.partitions):
        for node_id in table.row(partition):
            counts[node_id] += 1
    return counts


def changed_partitions(old: ClusterMap, new: ClusterMap) -> tuple[PartitionId, ...]:
    """Return the partitions whose replica set differs between two maps.

    Order within a replica tuple is ignored: only partitions that gain or lose a node
    need data moved.

    Raises:
        InvalidArgument: the maps have different numbers of partitions.
    """
    if old.partitions != new.partitions:
        raise InvalidArgument(
            f"the maps have different partition counts ({old.partitions} and "
            f"{new.partitions}); every partition would move"
        )
    old_table, new_table = _table(old), _table(new)
    return tuple(
        PartitionId(p)
        for p in range(old.partitions)
        if set(old_table.row(p)) != set(new_table.row(p))
    )
