"""The hybrid logical clock: monotonic, past remote stamps, skew-proof, thread-safe."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.cluster import (
    DEFAULT_MAX_DRIFT_MS,
    Clock,
    HybridClock,
    ManualClock,
    NodeId,
    OffsetClock,
    SystemClock,
)
from cairn.cluster.hlc import MAX_LOGICAL
from cairn.errors import InvalidArgument
from cairn.types import Version

pytestmark = pytest.mark.unit

MINUTE_MS = 60_000


def test_clocks_satisfy_the_protocol():
    for clock in (SystemClock(), OffsetClock(5), ManualClock()):
        assert isinstance(clock, Clock)


def test_system_and_offset_clocks():
    before = time.time_ns() // 1_000_000
    now = SystemClock().now_ms()
    assert before <= now <= time.time_ns() // 1_000_000
    base = ManualClock(1_000)
    assert OffsetClock(-300, base).now_ms() == 700
    assert OffsetClock(2 * MINUTE_MS, base).now_ms() == 121_000
    assert abs(OffsetClock(MINUTE_MS).now_ms() - SystemClock().now_ms() - MINUTE_MS) < 1_000


def test_manual_clock():
    clock = ManualClock(10)
    clock.advance(5)
    assert clock.now_ms() == 15
    clock.set(3)
    assert clock.now_ms() == 3


def test_now_follows_the_wall_clock_and_counts_within_a_millisecond():
    wall = ManualClock(1_000)
    hlc = HybridClock(NodeId(7), wall)
    assert hlc.now() == Version(1_000, 0, 7)
    assert hlc.now() == Version(1_000, 1, 7)
    wall.advance(1)
    assert hlc.now() == Version(1_001, 0, 7)
    assert hlc.last == Version(1_001, 0, 7)


def test_now_is_monotonic_when_the_wall_clock_goes_backwards():
    wall = ManualClock(10_000)
    hlc = HybridClock(NodeId(1), wall)
    first = hlc.now()
    wall.set(4_000)  # NTP stepped the clock back 6 s
    second = hlc.now()
    assert second > first
    assert second == Version(10_000, 1, 1)
    wall.set(10_001)
    assert hlc.now() == Version(10_001, 0, 1)


@given(steps=st.lists(st.integers(-5_000, 5_000), max_size=200))
def test_now_is_strictly_increasing_under_any_wall_clock(steps):
    wall = ManualClock(1_000_000)
    hlc = HybridClock(NodeId(1), wall)
    last = hlc.now()
    for step in steps:
        wall.advance(step)
        stamp = hlc.now()
        assert stamp > last
        assert stamp.physical_ms >= wall.now_ms()
        last = stamp


def test_update_past_a_far_ahead_remote_stamp_is_accepted_and_counted():
    wall = ManualClock(1_000_000)
    hlc = HybridClock(NodeId(1), wall)
    remote = Version(1_000_000 + 10 * MINUTE_MS, 4, 2)  # a node 10 minutes ahead
    got = hlc.update(remote)
    assert got == Version(remote.physical_ms, 5, 1)
    assert got > remote
    assert hlc.drift_events == 1
    stats = hlc.stats()
    assert stats.max_drift_seen_ms == 10 * MINUTE_MS
    # Our own later writes stay past the remote one even though our wall clock is behind.
    wall.advance(1)
    assert hlc.now() == Version(remote.physical_ms, 6, 1)


def test_update_within_the_drift_bound_is_not_counted():
    wall = ManualClock(1_000_000)
    hlc = HybridClock(NodeId(1), wall)
    hlc.update(Version(1_000_000 + DEFAULT_MAX_DRIFT_MS, 0, 2))
    hlc.update(Version(999_000, 0, 2))  # behind: never drift
    assert hlc.drift_events == 0
    assert hlc.stats().max_drift_seen_ms == DEFAULT_MAX_DRIFT_MS
    hlc.update(Version(1_000_000 + DEFAULT_MAX_DRIFT_MS + 1, 0, 2))
    assert hlc.drift_events == 1


def test_max_drift_is_configurable():
    hlc = HybridClock(NodeId(1), ManualClock(0), max_drift_ms=0)
    hlc.update(Version(1, 0, 2))
    assert hlc.drift_events == 1


@pytest.mark.parametrize(
    ("last", "remote", "wall", "expected"),
    [
        # the wall clock is ahead of both: take it, logical restarts
        ((100, 5), (90, 9), 200, (200, 0)),
        # remote ahead of both: take it, its logical + 1
        ((100, 5), (150, 9), 120, (150, 10)),
        # ours ahead of both: keep it, our logical + 1
        ((300, 5), (150, 9), 120, (300, 6)),
        # ours equals remote, both ahead of the wall clock: max logical + 1
        ((300, 5), (300, 9), 120, (300, 10)),
        ((300, 12), (300, 9), 120, (300, 13)),
    ],
)
def test_update_follows_the_receive_rule(last, remote, wall, expected):
    clock = ManualClock(last[0])
    hlc = HybridClock(NodeId(1), clock)
    while hlc.last < Version(*last, 1):
        hlc.now()
    assert hlc.last == Version(*last, 1)
    clock.set(wall)
    assert hlc.update(Version(*remote, 2)) == Version(*expected, 1)


@given(
    events=st.lists(
        st.tuples(st.booleans(), st.integers(-3_000, 3_000), st.integers(0, 10),
                  st.integers(0, 2**32 - 1)),
        max_size=100,
    )
)
def test_update_and_now_are_monotonic_and_past_every_remote(events):
    wall = ManualClock(1_000_000)
    hlc = HybridClock(NodeId(1), wall)
    last = hlc.now()
    for is_remote, delta_ms, logical, node_id in events:
        wall.advance(delta_ms // 10)
        if is_remote:
            remote = Version(max(0, wall.now_ms() + delta_ms), logical, node_id)
            stamp = hlc.update(remote)
            assert (stamp.physical_ms, stamp.logical) > (remote.physical_ms, remote.logical)
        else:
            stamp = hlc.now()
        assert stamp > last
        last = stamp


def test_advance_past_beats_the_version_and_everything_before():
    wall = ManualClock(5_000)
    hlc = HybridClock(NodeId(1), wall)
    mine = hlc.now()
    # A replica holds a newer version written by node 9 (a higher node id, same ms):
    theirs = Version(5_000, 3, 9)
    retry = hlc.advance_past(theirs)
    assert retry > theirs
    assert retry > mine
    assert retry.node_id == 1
    # Past an older version it still moves forward.
    again = hlc.advance_past(Version(10, 0, 2))
    assert again > retry


def test_a_later_write_wins_whatever_the_wall_clocks_say():
    # DESIGN: a write that starts after another finished at quorum always wins.
    # Node 1 runs 3 minutes ahead, node 2 behind; node 2's write comes later.
    real = ManualClock(1_000_000)
    fast = HybridClock(NodeId(1), OffsetClock(3 * MINUTE_MS, real))
    slow = HybridClock(NodeId(2), OffsetClock(-MINUTE_MS, real))
    first = fast.now()
    real.advance(10)
    slow.update(first)  # the replica's acknowledgement carried node 1's clock
    second = slow.now()
    assert second > first
    assert slow.drift_events == 1


def test_logical_overflow_borrows_a_millisecond():
    wall = ManualClock(1_000)
    hlc = HybridClock(NodeId(1), wall)
    got = hlc.update(Version(1_000, MAX_LOGICAL, 2))
    assert got == Version(1_001, 0, 1)
    assert hlc.stats().logical_overflows == 1
    assert hlc.now() > got


@pytest.mark.parametrize(
    "remote",
    [Version(-1, 0, 1), Version(1, -1, 1), Version(1, 2**32, 1), Version(2**63, 0, 1), "1.0.1"],
)
def test_malformed_remote_stamps_are_refused(remote):
    hlc = HybridClock(NodeId(1), ManualClock(0))
    with pytest.raises(InvalidArgument):
        hlc.update(remote)


@pytest.mark.parametrize("node_id", [0, -1, 2**32, True])
def test_bad_node_ids_are_refused(node_id):
    with pytest.raises(InvalidArgument, match="node id"):
        HybridClock(node_id, ManualClock(0))


def test_negative_drift_bound_is_refused():
    with pytest.raises(InvalidArgument, match="max_drift_ms"):
        HybridClock(NodeId(1), max_drift_ms=-1)


def test_threads_never_get_equal_or_decreasing_stamps():
    wall = ManualClock(1_000)
    hlc = HybridClock(NodeId(3), wall)
    per_thread = 2_000
    results: list[list[Version]] = []
    barrier = threading.Barrier(4)

    def work(use_update: bool) -> None:
        mine: list[Version] = []
        barrier.wait()
        for i in range(per_thread):
            if i % 100 == 0:
                wall.advance(1 if i % 200 else -2)
            if use_update and i % 3 == 0:
                mine.append(hlc.update(Version(wall.now_ms(), i, 9)))
            else:
                mine.append(hlc.now())
        results.append(mine)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4
    stamps = [s for mine in results for s in mine]
    assert len(set(stamps)) == len(stamps)  # no stamp issued twice
    for mine in results:
        assert all(a < b for a, b in itertools.pairwise(mine))
