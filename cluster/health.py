"""HealthView: which nodes look up or down, from the outcomes of calls and probes.

A pure state machine, fed by whoever talks to nodes (the SDK's transport, the node's
peers, a probing loop elsewhere) and read by whoever picks a replica to call. It does
no I/O and starts no thread; the time of each transition comes from an injected
``Clock``.

Per node::

            success                     failure (count < fail_threshold)
        +------------+                 +------------+
        v            |                 v            |
      [ up ] --------+-- failure --> [ up, count n ]
        ^                                  | count reaches fail_threshold
        |                                  v
        +----------- success ---------- [ down ] <-- failure (count keeps growing)

A node never heard of is up: the first calls to a new node are not refused.

Entry points: ``HealthView``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cairn.cluster.hlc import Clock, SystemClock
from cairn.cluster.ids import NodeId
from cairn.errors import InvalidArgument

__all__ = ["DEFAULT_FAIL_THRESHOLD", "HealthView", "NodeHealth"]

DEFAULT_FAIL_THRESHOLD: Final = 3
"""Consecutive failures that mark a node down: one lost packet or slow call is not enough."""


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """A snapshot of what the view knows about one node.

    Attributes:
        node_id: the node.
        up: whether it is considered up.
        consecutive_failures: failures since its last success.
        since_ms: when it entered its current state (None: never observed).
        last_success_ms: time of the last success (None: none yet).
        last_failure_ms: time of the last failure (None: none yet).
    """

    node_id: NodeId
    up: bool
    consecutive_failures: int = 0
    since_ms: int | None = None
    last_success_ms: int | None = None
    last_failure_ms: int | None = None


class HealthView:
    """Up/down state per node from consecutive failures. Thread-safe.

    Args:
        fail_threshold: consecutive failures after which a node is down (>= 1).
        clock: where timestamps come from (the system clock by default).

    Raises:
        InvalidArgument: fail_threshold is below 1.
    """

    __slots__ = ("_clock", "_lock", "_nodes", "fail_threshold")

    def __init__(
        self, fail_threshold: int = DEFAULT_FAIL_THRESHOLD, clock: Clock | None = None
    ) -> None:
        if isinstance(fail_threshold, bool) or fail_threshold < 1:
            raise InvalidArgument(f"fail_threshold must be >= 1, not {fail_threshold!r}")
        self.fail_threshold = fail_threshold
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._nodes: dict[NodeId, NodeHealth] = {}
        self._lock = threading.Lock()

    def is_up(self, node_id: NodeId) -> bool:
        """Return whether the node is considered up (unknown nodes are)."""
        with self._lock:
            state = self._nodes.get(node_id)
        return state is None or state.up

    def status(self, node_id: NodeId) -> NodeHealth:
        """Return what the view knows about the node."""
        with self._lock:
            return self._nodes.get(node_id) or NodeHealth(node_id=node_id, up=True)

    def snapshot(self) -> dict[NodeId, NodeHealth]:
        """Return the state of every node observed so far."""
        with self._lock:
            return dict(self._nodes)

    def down(self) -> frozenset[NodeId]:
        """Return the nodes currently considered down."""
        with self._lock:
            return frozenset(n for n, state in self._nodes.items() if not state.up)

    def record_success(self, node_id: NodeId) -> bool:
        """Record a call or probe that succeeded; the node is up again.

        Returns:
            True if this changed the node from down to up.
        """
        now_ms = self._clock.now_ms()
        with self._lock:
            old = self._nodes.get(node_id)
            came_up = old is not None and not old.up
            since_ms = now_ms if old is None or came_up else old.since_ms
            self._nodes[node_id] = NodeHealth(
                node_id=node_id,
                up=True,
                consecutive_failures=0,
                since_ms=since_ms,
                last_success_ms=now_ms,
                last_failure_ms=None if old is None else old.last_failure_ms,
            )
            return came_up

    def record_failure(self, node_id: NodeId) -> bool:
        """Record a call or probe that failed (unreachable, timed out, UNAVAILABLE).

        Errors that are the caller's fault (NOT_FOUND, INVALID_ARGUMENT) are not
        failures of the node and must not be recorded here.

        Returns:
            True if this changed the node from up to down.
        """
        now_ms = self._clock.now_ms()
        with self._lock:
            old = self._nodes.get(node_id) or NodeHealth(node_id=node_id, up=True)
            failures = old.consecutive_failures + 1
            up = old.up and failures < self.fail_threshold
            went_down = old.up and not up
            since_ms = now_ms if went_down or old.since_ms is None else old.since_ms
            self._nodes[node_id] = NodeHealth(
                node_id=node_id,
                up=up,
                consecutive_failures=failures,
                since_ms=since_ms,
                last_success_ms=old.last_success_ms,
                last_failure_ms=now_ms,
            )
            return went_down

    def forget(self, node_id: NodeId) -> None:
        """Drop what is known about a node (e.g. it left the cluster map)."""
        with self._lock:
            self._nodes.pop(node_id, None)

    def order(self, replicas: Iterable[NodeId]) -> tuple[NodeId, ...]:
        """Return the replicas with up nodes first, each group in its placement order.

        Down nodes stay in the result (last): when every replica is down, trying one
        is still better than failing without a call.
        """
        ordered = tuple(replicas)  # outside the lock: the caller's iterable may be slow
        with self._lock:
            down = {n for n in ordered if (s := self._nodes.get(n)) is not None and not s.up}
        return (*(n for n in ordered if n not in down), *(n for n in ordered if n in down))
