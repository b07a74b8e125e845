"""HealthView: consecutive failures mark a node down, one success brings it back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.cluster import HealthView, ManualClock, NodeHealth, NodeId
from cairn.errors import InvalidArgument

pytestmark = pytest.mark.unit

A, B, C, D = NodeId(1), NodeId(2), NodeId(3), NodeId(4)


def test_unknown_nodes_are_up():
    view = HealthView(clock=ManualClock(0))
    assert view.is_up(A)
    assert view.status(A) == NodeHealth(node_id=A, up=True)
    assert view.down() == frozenset()


def test_down_after_threshold_consecutive_failures_and_up_on_success():
    clock = ManualClock(100)
    view = HealthView(fail_threshold=3, clock=clock)
    assert view.record_failure(A) is False
    assert view.record_failure(A) is False
    assert view.is_up(A)
    clock.set(250)
    assert view.record_failure(A) is True  # the transition is reported once
    assert not view.is_up(A)
    assert view.status(A) == NodeHealth(A, up=False, consecutive_failures=3, since_ms=250,
                                        last_success_ms=None, last_failure_ms=250)
    clock.set(300)
    assert view.record_failure(A) is False  # still down, still counting
    assert view.status(A).consecutive_failures == 4
    assert view.status(A).since_ms == 250
    clock.set(400)
    assert view.record_success(A) is True
    assert view.status(A) == NodeHealth(A, up=True, consecutive_failures=0, since_ms=400,
                                        last_success_ms=400, last_failure_ms=300)


def test_a_success_resets_the_count():
    view = HealthView(fail_threshold=2, clock=ManualClock(0))
    view.record_failure(A)
    view.record_success(A)
    view.record_failure(A)
    assert view.is_up(A)
    view.record_failure(A)
    assert not view.is_up(A)


def test_success_of_an_up_node_keeps_its_since_time():
    clock = ManualClock(10)
    view = HealthView(clock=clock)
    assert view.record_success(A) is False
    clock.set(20)
    view.record_success(A)
    assert view.status(A).since_ms == 10
    assert view.status(A).last_success_ms == 20


def test_threshold_of_one():
    view = HealthView(fail_threshold=1, clock=ManualClock(0))
    assert view.record_failure(A) is True
    assert view.down() == {A}


def test_order_puts_up_nodes_first_keeping_placement_order():
    view = HealthView(fail_threshold=1, clock=ManualClock(0))
    view.record_failure(B)
    view.record_failure(D)
    view.record_success(C)
    assert view.order((D, A, B, C)) == (A, C, D, B)
    assert view.order([]) == ()
    assert view.order(iter([B, A])) == (A, B)


def test_forget_and_snapshot():
    view = HealthView(fail_threshold=1, clock=ManualClock(0))
    view.record_failure(A)
    view.record_success(B)
    assert set(view.snapshot()) == {A, B}
    view.forget(A)
    view.forget(NodeId(99))
    assert view.is_up(A)
    assert set(view.snapshot()) == {B}


@pytest.mark.parametrize("threshold", [0, -1, True])
def test_bad_threshold_is_refused(threshold):
    with pytest.raises(InvalidArgument, match="fail_threshold"):
        HealthView(fail_threshold=threshold)


@given(
    threshold=st.integers(1, 5),
    events=st.lists(st.tuples(st.sampled_from([A, B, C]), st.booleans()), max_size=60),
)
def test_matches_a_model(threshold, events):
    view = HealthView(fail_threshold=threshold, clock=ManualClock(0))
    failures = {A: 0, B: 0, C: 0}
    for node_id, ok in events:
        if ok:
            view.record_success(node_id)
            failures[node_id] = 0
        else:
            view.record_failure(node_id)
            failures[node_id] += 1
        for n, count in failures.items():
            assert view.is_up(n) == (count < threshold)
    ordered = view.order((C, B, A))
    ups = [n for n in (C, B, A) if failures[n] < threshold]
    assert ordered == (*ups, *[n for n in (C, B, A) if n not in ups])
