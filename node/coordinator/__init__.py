"""cairn.node.coordinator: turns a client request into versioned writes and reads.

Owns: stamping hybrid-clock versions, last-writer-wins retries, and (with the cluster
issue) quorum replication, hinted handoff and read repair. Does not own: gRPC (the
server converts messages to the plain values used here) or bytes on disk (the engine).

Entry point: ``Coordinator``.
"""

from __future__ import annotations

from .coordinator import (
    CALL_DEADLINE,
    Coordinator,
    CoordinatorConfig,
    ListPage,
    Pushed,
    ReadResult,
)
from .peers import Peers, RemoteRead, ReplicaAck, ReplicaWrite

__all__ = ["CALL_DEADLINE", "Coordinator", "CoordinatorConfig", "ListPage", "Peers", "Pushed",
           "ReadResult", "RemoteRead", "ReplicaAck", "ReplicaWrite"]
