"""The identifiers of the cluster: node ids and partition ids, with their limits.

Both are plain ``int`` at run time; ``NewType`` keeps a node id from being passed where a
partition id is expected. A node id is the same number that ends every version stamp
(``cairn.types.Version.node_id``), so the clock of node 7 issues ``<ms>.<n>.7``.
"""

from __future__ import annotations

from typing import Final, NewType

__all__ = [
    "MAX_NODE_ID",
    "MAX_PARTITIONS",
    "MIN_NODE_ID",
    "MIN_PARTITIONS",
    "NodeId",
    "PartitionId",
]

NodeId = NewType("NodeId", int)
"""A node's permanent id, 1..MAX_NODE_ID. Never reused for another node."""

PartitionId = NewType("PartitionId", int)
"""A partition, 0..partitions-1 of the cluster map."""

MIN_NODE_ID: Final = 1
"""0 is reserved: it is ``Version``'s default node id, i.e. "no node"."""

MAX_NODE_ID: Final = 2**32 - 1
"""Node ids fit an unsigned 32-bit field (version stamps, hints, wire messages)."""

MIN_PARTITIONS: Final = 1
MAX_PARTITIONS: Final = 65536
"""Partition ids fit an unsigned 16-bit field; more would only grow per-partition state."""
