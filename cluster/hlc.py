"""Hybrid logical clocks: version stamps that never go backwards and never lose a later write.

A stamp is ``Version(physical_ms, logical, node_id)`` (``cairn.types``). The clock
follows Kulkarni et al., "Logical Physical Clocks and Consistent Snapshots in Globally
Distributed Databases" (2014): ``physical_ms`` is the largest wall-clock reading seen
(locally or in any message received), ``logical`` counts events within one
millisecond, and the node id breaks ties between nodes.

- ``now()`` stamps a local event (a write this node coordinates).
- ``update(remote)`` stamps the receipt of a message carrying ``remote``: the result
  is greater than ``remote`` and than every stamp issued before.
- ``advance_past(v)`` is the same operation, named for the coordinator's use: a
  replica answered "I hold the newer version v", so the next attempt must beat it.

Remote stamps far ahead of our wall clock are accepted, never refused (refusing would
refuse writes), and counted: see ``HybridClock.drift_events`` and docs/placement.md.

The wall clock comes in through the ``Clock`` protocol so tests and chaos runs can
skew it (``OffsetClock``) or drive it by hand (``ManualClock``).

Entry points: ``HybridClock``, ``Clock``, ``SystemClock``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from cairn.cluster.ids import MAX_NODE_ID, MIN_NODE_ID, NodeId
from cairn.errors import InvalidArgument
from cairn.types import Version

__all__ = [
    "DEFAULT_MAX_DRIFT_MS",
    "MAX_LOGICAL",
    "MAX_PHYSICAL_MS",
    "Clock",
    "ClockStats",
    "HybridClock",
    "ManualClock",
    "OffsetClock",
    "SystemClock",
]

DEFAULT_MAX_DRIFT_MS: Final = 5_000
"""A remote stamp more than this far ahead of our wall clock is counted as drift.

Only counted, never refused. 5 s is far above NTP error (milliseconds) and ordinary
pauses, so the counter stays at zero on a healthy cluster, and well below the skews of
minutes that chaos tests inject, so those show up. See docs/placement.md.
"""

MAX_LOGICAL: Final = 2**32 - 1
"""The logical counter fits an unsigned 32-bit field. Past it, the clock borrows 1 ms."""

MAX_PHYSICAL_MS: Final = 2**63 - 1
"""Physical time fits a signed 64-bit field (the year 292 million)."""


@runtime_checkable
class Clock(Protocol):
    """A wall clock in milliseconds since the Unix epoch. It may jump, even backwards."""

    def now_ms(self) -> int:
        """Return the current wall-clock time in milliseconds."""
        ...


class SystemClock:
    """The machine's wall clock (``time.time_ns``)."""

    __slots__ = ()

    def now_ms(self) -> int:
        """Return the system time in milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000


class OffsetClock:
    """Another clock shifted by a fixed offset: a skewed node, for tests and chaos.

    Args:
        offset_ms: added to every reading; negative for a clock that runs behind.
        base: the clock to shift (the system clock by default).
    """

    __slots__ = ("base", "offset_ms")

    def __init__(self, offset_ms: int, base: Clock | None = None) -> None:
        self.offset_ms = offset_ms
        self.base: Clock = base if base is not None else SystemClock()

    def now_ms(self) -> int:
        """Return the base clock's time plus the offset."""
        return self.base.now_ms() + self.offset_ms


class ManualClock:
    """A clock that moves only when told to: deterministic tests and simulation.

    Args:
        start_ms: the first reading.
    """

    __slots__ = ("_lock", "_now_ms")

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """Return the time last set."""
        with self._lock:
            return self._now_ms

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (backwards too: wall clocks do that)."""
        with self._lock:
            self._now_ms = now_ms

    def advance(self, delta_ms: int) -> None:
        """Move by ``delta_ms`` (negative moves backwards)."""
        with self._lock:
            self._now_ms += delta_ms


@dataclass(frozen=True, slots=True)
class ClockStats:
    """What a ``HybridClock`` has seen, for metrics.

    Attributes:
        last: the last stamp issued (physical 0 before the first).
        drift_events: remote stamps that were more than ``max_drift_ms`` ahead of
            the local wall clock when received.
        max_drift_seen_ms: the largest lead of a remote stamp over the local wall
            clock seen so far (0 if none was ahead).
        logical_overflows: times the logical counter ran out and the clock moved
            its physical part 1 ms ahead of the wall clock instead.
    """

    last: Version
    drift_events: int
    max_drift_seen_ms: int
    logical_overflows: int


def _check_stamp(stamp: Version) -> None:
    # A remote stamp comes off the wire: reject nonsense, but never drift (see module doc).
    if not isinstance(stamp, Version):
        raise InvalidArgument(f"expected a Version stamp, not {type(stamp).__name__}")
    if not 0 <= stamp.physical_ms <= MAX_PHYSICAL_MS:
        raise InvalidArgument(f"stamp {stamp}: physical_ms is not in 0..{MAX_PHYSICAL_MS}")
    if not 0 <= stamp.logical <= MAX_LOGICAL:
        raise InvalidArgument(f"stamp {stamp}: logical is not in 0..{MAX_LOGICAL}")


class HybridClock:
    """One node's hybrid logical clock. Thread-safe: every method takes one short lock.

    Args:
        node_id: the id stamped into every version this clock issues.
        clock: the wall clock (the system clock by default).
        max_drift_ms: remote stamps further than this ahead of the wall clock are
            counted in ``drift_events`` (still accepted).

    Raises:
        InvalidArgument: node_id or max_drift_ms is out of range.
    """

    __slots__ = (
        "_clock",
        "_drift_events",
        "_last_logical",
        "_last_physical_ms",
        "_lock",
        "_logical_overflows",
        "_max_drift_seen_ms",
        "max_drift_ms",
        "node_id",
    )

    def __init__(
        self,
        node_id: NodeId,
        clock: Clock | None = None,
        *,
        max_drift_ms: int = DEFAULT_MAX_DRIFT_MS,
    ) -> None:
        if isinstance(node_id, bool) or not MIN_NODE_ID <= node_id <= MAX_NODE_ID:
            raise InvalidArgument(f"node id {node_id} is not in {MIN_NODE_ID}..{MAX_NODE_ID}")
        if max_drift_ms < 0:
            raise InvalidArgument(f"max_drift_ms must be >= 0, not {max_drift_ms}")
        self.node_id = node_id
        self.max_drift_ms = max_drift_ms
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._last_physical_ms = 0
        self._last_logical = 0
        self._drift_events = 0
        self._max_drift_seen_ms = 0
        self._logical_overflows = 0

    def now(self) -> Version:
        """Stamp a local event.

        physical = max(last physical, wall clock); logical goes up by one if the
        physical part did not advance, else restarts at 0. A wall clock that jumps
        backwards therefore never makes a smaller stamp.
        """
        with self._lock:
            wall_ms = self._clock.now_ms()
            if wall_ms > self._last_physical_ms:
                return self._issue(wall_ms, 0)
            return self._issue(self._last_physical_ms, self._last_logical + 1)

    def update(self, remote: Version) -> Version:
        """Stamp the receipt of a message that carried ``remote`` (the HLC receive rule).

        The result is strictly greater than ``remote`` (in physical and logical parts,
        so whatever the node ids) and than every stamp this clock issued before.
        A remote stamp far ahead of the wall clock is accepted and counted.

        Raises:
            InvalidArgument: ``remote`` is not a Version or its fields are out of range.
        """
        _check_stamp(remote)
        with self._lock:
            wall_ms = self._clock.now_ms()
            lead_ms = remote.physical_ms - wall_ms
            if lead_ms > 0:
                self._max_drift_seen_ms = max(self._max_drift_seen_ms, lead_ms)
                if lead_ms > self.max_drift_ms:
                    self._drift_events += 1
            last_ms, last_logical = self._last_physical_ms, self._last_logical
            physical_ms = max(last_ms, remote.physical_ms, wall_ms)
            if physical_ms == last_ms == remote.physical_ms:
                logical = max(last_logical, remote.logical) + 1
            elif physical_ms == last_ms:
                logical = last_logical + 1
            elif physical_ms == remote.physical_ms:
                logical = remote.logical + 1
            else:
                logical = 0
            return self._issue(physical_ms, logical)

    def advance_past(self, version: Version) -> Version:
        """Return a stamp greater than ``version`` and than everything issued before.

        Used when a replica reports that it holds a newer version than a write's:
        the coordinator re-stamps the write with this and tries again.

        Raises:
            InvalidArgument: ``version`` is not a Version or its fields are out of range.
        """
        return self.update(version)

    @property
    def last(self) -> Version:
        """The last stamp issued (physical 0 before the first)."""
        with self._lock:
            return Version(self._last_physical_ms, self._last_logical, self.node_id)

    @property
    def drift_events(self) -> int:
        """Remote stamps received more than ``max_drift_ms`` ahead of the wall clock."""
        with self._lock:
            return self._drift_events

    def stats(self) -> ClockStats:
        """Return a consistent snapshot of the clock's counters."""
        with self._lock:
            return ClockStats(
                last=Version(self._last_physical_ms, self._last_logical, self.node_id),
                drift_events=self._drift_events,
                max_drift_seen_ms=self._max_drift_seen_ms,
                logical_overflows=self._logical_overflows,
            )

    def _issue(self, physical_ms: int, logical: int) -> Version:
        # Caller holds the lock.
        if logical > MAX_LOGICAL:
            # Millions of events within one millisecond, or a wall clock left far behind
            # by a remote stamp: borrow one millisecond rather than wrap the counter.
            # Still monotonic; the cost is running 1 ms further ahead of real time.
            self._logical_overflows += 1
            physical_ms, logical = physical_ms + 1, 0
        if physical_ms > MAX_PHYSICAL_MS:
            # Only a remote stamp at the very limit of the field can get here.
            raise InvalidArgument(f"the clock would pass physical_ms {MAX_PHYSICAL_MS}")
        self._last_physical_ms, self._last_logical = physical_ms, logical
        return Version(physical_ms, logical, self.node_id)
