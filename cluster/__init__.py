"""cairn.cluster: placement, the cluster map and its epochs, clocks, health (pure, no I/O).

What it owns:

- ``placement`` (``placement.py``): key -> partition -> N replicas, by weighted
  rendezvous hashing on distinct zones. Shared by the SDK and the node, so both agree.
- ``ClusterMap`` (``clustermap.py``): nodes, addresses, zones, weights, N/W/R, P, and
  the epoch; an immutable value, changed only by making the next epoch.
- ``HybridClock`` (``hlc.py``): version stamps for last-writer-wins that a skewed wall
  clock cannot make lose a later write.
- ``HealthView`` (``health.py``): up/down per node from call outcomes.

What it does not own: any network or disk I/O (fetching a map, probing nodes, moving
data), which lives in the node and the SDK's transport. It imports only the stdlib,
``cairn.errors`` and ``cairn.types``; never grpc, never ``cairn.node``.

Start reading at ``cairn.cluster.placement.placement(map, bucket, key)`` and
``ClusterMap``; docs/placement.md explains the choices. The function ``placement`` is
deliberately not re-exported here: it would shadow the submodule of the same name
(``import cairn.cluster.placement`` and ``mock.patch("cairn.cluster.placement.x")``
would then find the function instead of the module).
"""

from __future__ import annotations

from cairn.cluster.clustermap import (
    DEFAULT_PARTITIONS,
    DEFAULT_READ_QUORUM,
    DEFAULT_REPLICAS_N,
    DEFAULT_WRITE_QUORUM,
    ClusterMap,
    Consistency,
    NodeInfo,
    QuorumKind,
    local_map,
    parse_address,
)
from cairn.cluster.health import DEFAULT_FAIL_THRESHOLD, HealthView, NodeHealth
from cairn.cluster.hlc import (
    DEFAULT_MAX_DRIFT_MS,
    Clock,
    ClockStats,
    HybridClock,
    ManualClock,
    OffsetClock,
    SystemClock,
)
from cairn.cluster.ids import MAX_NODE_ID, MAX_PARTITIONS, MIN_NODE_ID, NodeId, PartitionId
from cairn.cluster.placement import (
    Placement,
    changed_partitions,
    partition_of,
    replica_counts,
    replicas,
)

__all__ = [
    "DEFAULT_FAIL_THRESHOLD",
    "DEFAULT_MAX_DRIFT_MS",
    "DEFAULT_PARTITIONS",
    "DEFAULT_READ_QUORUM",
    "DEFAULT_REPLICAS_N",
    "DEFAULT_WRITE_QUORUM",
    "MAX_NODE_ID",
    "MAX_PARTITIONS",
    "MIN_NODE_ID",
    "Clock",
    "ClockStats",
    "ClusterMap",
    "Consistency",
    "HealthView",
    "HybridClock",
    "ManualClock",
    "NodeHealth",
    "NodeId",
    "NodeInfo",
    "OffsetClock",
    "PartitionId",
    "Placement",
    "QuorumKind",
    "SystemClock",
    "changed_partitions",
    "local_map",
    "parse_address",
    "partition_of",
    "replica_counts",
    "replicas",
]
