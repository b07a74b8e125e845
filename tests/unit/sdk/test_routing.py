"""cairn._routing: the routing decisions, without sockets.

Which nodes a call goes to given a cluster map and the client's health view, when the
map is fetched and from where, how a deadline is shared between attempts, and what an
error means for the next step.
"""

from __future__ import annotations

import random

import pytest

from cairn import _core as core
from cairn import _routing as routing
from cairn._retry import NOT_SENT, Backoff, Deadline, Retry
from cairn.cluster.clustermap import ClusterMap, NodeInfo, local_map
from cairn.cluster.health import HealthView
from cairn.cluster.hlc import ManualClock
from cairn.cluster.ids import NodeId
from cairn.cluster.placement import PLACEMENT_NAME, placement
from cairn.errors import (
    DiskFull,
    IntegrityError,
    InvalidArgument,
    NotFound,
    Timeout,
    Unavailable,
)

pytestmark = pytest.mark.unit

SEEDS = ("seed:1",)


class Clock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def five_nodes() -> ClusterMap:
    return ClusterMap(
        epoch=4,
        nodes=tuple(NodeInfo(NodeId(i), f"n{i}:7000") for i in range(1, 6)),
    )


def router(m: ClusterMap | None = None, name: str = PLACEMENT_NAME, seeds=SEEDS):
    clock = Clock()
    r = routing.Router(seeds, clock)
    if m is not None:
        assert r.install(core.FetchedMap(m, name))
    return r, clock


def addresses_of(m: ClusterMap, ids) -> tuple[str, ...]:
    return tuple(m.node(n).address for n in ids)


def key_whose_first_replica_is(m: ClusterMap, node: int) -> bytes:
    for i in range(10_000):
        key = f"k{i}".encode()
        if placement(m, "app", key).replicas[0] == node:
            return key
    raise AssertionError("no such key")


def refused(address: str = "n1:7000") -> Unavailable:
    return Unavailable(f"{address}: failed to connect", address=address, **{NOT_SENT: True})


def answered_quorum_failure() -> Unavailable:
    return Unavailable("write reached 1 of 3 replicas", answered=True, outcomes={2: "X"})


# --- what an error means ----------------------------------------------------------------


def test_node_failures_are_what_the_node_did_not_answer():
    assert routing.is_node_failure(refused())
    assert routing.is_node_failure(Timeout("deadline exceeded"))
    assert routing.is_node_failure(Unavailable("Socket closed"))  # from gRPC itself
    # A cairn handler answered: the node is alive, whatever it says.
    assert not routing.is_node_failure(answered_quorum_failure())
    assert not routing.is_node_failure(DiskFull("full", answered=True))
    assert not routing.is_node_failure(NotFound("no such object", answered=True))
    assert not routing.is_node_failure(InvalidArgument("bad key"))
    assert not routing.is_node_failure(IntegrityError("bad bytes"))


def test_failover_within_an_attempt_only_when_not_sent():
    assert routing.is_failover(refused())
    assert not routing.is_failover(Unavailable("Socket closed"))
    assert not routing.is_failover(Timeout("slow"))


# --- shares of the deadline --------------------------------------------------------------


def test_an_attempt_gets_its_share_of_the_time_left():
    share = routing.attempt_timeout_s
    assert share(30.0, attempts_left=3, nodes=3, idempotent=True) == 10.0
    assert share(20.0, attempts_left=2, nodes=3, idempotent=True) == 10.0
    assert share(10.0, attempts_left=1, nodes=3, idempotent=True) == 10.0  # the last: all
    # never below the floor, never past what is left
    assert share(2.0, attempts_left=3, nodes=3, idempotent=True) == routing.MIN_ATTEMPT_TIMEOUT_S
    assert share(0.5, attempts_left=3, nodes=3, idempotent=True) == 0.5
    assert share(0.0, attempts_left=3, nodes=3, idempotent=True) == 0.0


def test_the_whole_time_when_there_is_nothing_to_fail_over_to():
    share = routing.attempt_timeout_s
    assert share(30.0, attempts_left=3, nodes=1, idempotent=True) == 30.0  # one node
    assert share(30.0, attempts_left=3, nodes=3, idempotent=False) == 30.0  # not repeated


def test_attempt_deadlines_never_outlive_the_call():
    call = Deadline(130.0)
    d = routing.attempt_deadline(call, 100.0, attempts_left=3, nodes=3, idempotent=True)
    assert d.at_s == 110.0
    d = routing.attempt_deadline(call, 129.5, attempts_left=3, nodes=3, idempotent=True)
    assert d.at_s == 130.0  # the floor would pass the call's deadline


def test_the_map_fetch_takes_at_most_half_of_a_call():
    assert routing.map_fetch_deadline(Deadline(110.0), 100.0).at_s == 105.0


def test_the_next_replica_goes_at_once_the_same_one_after_a_backoff():
    policy = Retry(max_attempts=3, backoff=Backoff(base_s=1.0, max_s=1.0, jitter="none"))
    err = Unavailable("down")
    rng = random.Random(1)
    fresh = routing.retry_delay_s(policy, err, 1, idempotent=True, deadline_left_s=10,
                                  fresh_node=True, rng=rng)
    again = routing.retry_delay_s(policy, err, 1, idempotent=True, deadline_left_s=10,
                                  fresh_node=False, rng=rng)
    assert (fresh, again) == (0.0, 1.0)
    # the policy still decides whether at all
    assert routing.retry_delay_s(policy, err, 3, idempotent=True, deadline_left_s=10,
                                 fresh_node=True) is None
    assert routing.retry_delay_s(policy, err, 1, idempotent=False, deadline_left_s=10,
                                 fresh_node=True) is None
    assert routing.retry_delay_s(policy, NotFound("x"), 1, idempotent=True,
                                 deadline_left_s=10, fresh_node=True) is None


def test_an_answered_error_is_repeated_only_on_another_usable_node():
    policy = Retry(max_attempts=3, backoff=Backoff(base_s=0.0, max_s=0.0))
    quorum = answered_quorum_failure()
    assert routing.retry_delay_s(policy, quorum, 1, idempotent=True, deadline_left_s=10,
                                 fresh_node=True) == 0.0
    # the coordinator already tried every replica: no backoff-and-repeat on it
    assert routing.retry_delay_s(policy, quorum, 1, idempotent=True, deadline_left_s=10,
                                 fresh_node=False) is None
    # a node that failed to answer is retried after the backoff, as before
    assert routing.retry_delay_s(policy, Timeout("slow"), 1, idempotent=True,
                                 deadline_left_s=10, fresh_node=False) == 0.0


def test_the_telling_error_is_what_a_node_answered():
    quorum, refusal = answered_quorum_failure(), refused()
    assert routing.telling_error(None, refusal) is refusal
    assert routing.telling_error(quorum, refusal) is quorum
    later = Timeout("slow")
    assert routing.telling_error(quorum, later) is later
    assert routing.telling_error(refusal, quorum) is quorum


def test_an_attempt_walks_only_nodes_that_did_not_get_the_request():
    assert routing.attempt_route(("b", "c", "a"), {"a"}) == ("b", "c")
    assert routing.attempt_route(("a", "b"), {"a", "b"}) == ("a", "b")  # a plain retry
    assert routing.attempt_route(("a", "b"), ()) == ("a", "b")


# --- health order -------------------------------------------------------------------------


def test_health_order_puts_down_nodes_last_and_rechecks_them_later():
    clock = ManualClock(0)
    health = HealthView(1, clock)
    nodes = (NodeId(3), NodeId(1), NodeId(2))
    assert routing.health_order(nodes, health, 0) == (3, 1, 2)
    health.record_failure(NodeId(3))
    assert routing.health_order(nodes, health, 0) == (1, 2, 3)
    # due for a recheck after RECHECK_BASE_S: back in its place
    later = int(routing.RECHECK_BASE_S * 1000)
    assert routing.health_order(nodes, health, later - 1) == (1, 2, 3)
    assert routing.health_order(nodes, health, later) == (3, 1, 2)
    # a recheck handed out just now makes the others wait
    assert routing.health_order(nodes, health, later, {NodeId(3): later}) == (1, 2, 3)


def test_rechecks_back_off_while_a_node_stays_down():
    assert routing.recheck_after_s(1) == routing.RECHECK_BASE_S
    assert routing.recheck_after_s(2) == 2 * routing.RECHECK_BASE_S
    assert routing.recheck_after_s(3) == 4 * routing.RECHECK_BASE_S
    assert routing.recheck_after_s(10_000) == routing.RECHECK_MAX_S


def test_avoid_moves_tried_addresses_to_the_back():
    assert routing.avoid(("a", "b", "c"), {"a"}) == ("b", "c", "a")
    assert routing.avoid(("a", "b", "c"), {"a", "b"}) == ("c", "a", "b")
    assert routing.avoid(("a", "b", "c"), ()) == ("a", "b", "c")


# --- the router: routes ----------------------------------------------------------------


def test_without_a_map_calls_go_to_the_seeds():
    r, _ = router(seeds=("s:1", "s:2"))
    assert not r.by_placement and r.epoch == 0
    assert r.route(b"app", b"k") == ("s:1", "s:2")
    r.failed("s:1", refused("s:1"))
    assert r.route(b"app", b"k") == ("s:2", "s:1")


def test_a_key_goes_to_its_replicas_in_placement_order():
    m = five_nodes()
    r, _ = router(m)
    assert r.by_placement and r.epoch == 4
    for key in (b"a", b"b", b"config", "ключ".encode()):
        replicas = placement(m, "app", key).replicas
        assert len(replicas) == 3
        # the seed is not in the map: a last resort only
        assert r.route(b"app", key) == (*addresses_of(m, replicas), "seed:1")


def test_an_unknown_placement_falls_back_on_the_seeds():
    r, _ = router(five_nodes(), name="some-other-placement-v9")
    assert not r.by_placement
    assert r.epoch == 4  # the epoch is still known and sent
    assert r.route(b"app", b"k") == SEEDS


def test_a_node_that_failed_to_answer_goes_to_the_back_until_it_answers():
    m = five_nodes()
    r, _clock = router(m)
    key = key_whose_first_replica_is(m, 2)
    first, second, third = addresses_of(m, placement(m, "app", key).replicas)
    r.failed(first, Timeout("slow", address=first))
    assert r.route(b"app", key)[:3] == (second, third, first)
    # an answered error says nothing against the node
    r.failed(second, answered_quorum_failure())
    assert r.route(b"app", key)[:3] == (second, third, first)
    r.succeeded(first)
    assert r.route(b"app", key)[:3] == (first, second, third)


def test_a_down_node_is_rechecked_by_one_call_then_used_again():
    m = five_nodes()
    r, clock = router(m)
    key = key_whose_first_replica_is(m, 2)
    first, second, _third = addresses_of(m, placement(m, "app", key).replicas)
    r.failed(first, refused(first))
    assert r.route(b"app", key)[0] == second
    clock.now += routing.RECHECK_BASE_S
    assert r.route(b"app", key)[0] == first  # this call rechecks it
    assert r.route(b"app", key)[0] == second  # the others do not pile onto it
    r.failed(first, refused(first))  # still down: the next recheck waits longer
    clock.now += routing.RECHECK_BASE_S
    assert r.route(b"app", key)[0] == second
    clock.now += routing.RECHECK_BASE_S
    assert r.route(b"app", key)[0] == first
    r.succeeded(first)  # it came back
    assert r.route(b"app", key)[0] == first
    assert r.route(b"app", key)[0] == first


def test_the_next_route_says_whether_its_first_node_is_fresh():
    m = five_nodes()
    r, clock = router(m)
    key = key_whose_first_replica_is(m, 1)
    first, second, third = addresses_of(m, placement(m, "app", key).replicas)
    assert r.next_route(b"app", key) == ((first, second, third, "seed:1"), True)
    r.failed(first, answered_quorum_failure())
    assert r.next_route(b"app", key, {first}) == ((second, third, "seed:1", first), True)
    r.failed(second, refused(second))
    r.failed(third, refused(third))
    # second and third are down: the call has no fresh node to go to
    route, fresh = r.next_route(b"app", key, {first, "seed:1"})
    assert route[0] == second and not fresh
    # once a recheck is due, the first node gets it, and counts as fresh
    clock.now += routing.RECHECK_BASE_S
    route, fresh = r.next_route(b"app", key, {first, "seed:1"})
    assert route[0] == second and fresh


def test_calls_without_a_key_go_to_any_node_the_last_that_answered_first():
    m = five_nodes()
    r, _ = router(m)
    assert r.route() == ("n1:7000", "n2:7000", "n3:7000", "n4:7000", "n5:7000", "seed:1")
    r.succeeded("n4:7000")
    assert r.route()[:5] == ("n4:7000", "n5:7000", "n1:7000", "n2:7000", "n3:7000")
    r.failed("n4:7000", refused("n4:7000"))
    assert r.route()[:5] == ("n5:7000", "n1:7000", "n2:7000", "n3:7000", "n4:7000")


def test_a_call_moves_the_nodes_it_tried_to_the_back():
    m = five_nodes()
    r, _ = router(m)
    key = key_whose_first_replica_is(m, 1)
    route = r.route(b"app", key)
    assert r.route(b"app", key, {route[0]}) == (*route[1:], route[0])


def test_seeds_in_the_map_are_not_repeated():
    m = local_map(3, 7101)
    r, _ = router(m, seeds=("127.0.0.1:7101", "127.0.0.1:7102"))
    route = r.route(b"app", b"k")
    assert sorted(route) == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]


# --- the router: the map ------------------------------------------------------------------


def test_the_map_is_fetched_on_first_use_from_the_seeds_one_call_at_a_time():
    r, _ = router(seeds=("s:1", "s:2"))
    assert r.begin_map_fetch(0) == ("s:1", "s:2")
    assert r.begin_map_fetch(0) is None  # one fetch at a time; others route by seeds
    assert r.end_map_fetch(core.FetchedMap(five_nodes(), PLACEMENT_NAME))
    assert r.epoch == 4
    assert r.begin_map_fetch(4) is None  # nothing newer was seen


def test_a_failed_fetch_is_retried_after_a_while_meanwhile_seeds():
    r, clock = router()
    assert r.begin_map_fetch(0) == SEEDS
    assert not r.end_map_fetch(None)
    assert r.begin_map_fetch(0) is None
    assert r.route(b"app", b"k") == SEEDS
    clock.now += routing.MAP_RETRY_S
    assert r.begin_map_fetch(0) == SEEDS


def test_an_interrupted_fetch_releases_its_claim_without_waiting():
    r, _ = router()
    assert r.begin_map_fetch(0) == SEEDS
    assert not r.end_map_fetch(None, failed=False)  # cancelled
    assert r.begin_map_fetch(0) == SEEDS


def test_a_newer_epoch_is_fetched_once_from_the_node_that_reported_it_first():
    m = five_nodes()
    r, _ = router(m)
    assert r.begin_map_fetch(4) is None
    sources = r.begin_map_fetch(5, reporter=3)
    assert sources == ("n3:7000", "n1:7000", "n2:7000", "n4:7000", "n5:7000", "seed:1")
    # the node we asked still had epoch 4: no second fetch for epoch 5...
    assert not r.end_map_fetch(core.FetchedMap(m, PLACEMENT_NAME))
    assert r.begin_map_fetch(5, reporter=3) is None
    # ...but epoch 6 is worth one
    assert r.begin_map_fetch(6, reporter=2) is not None
    newer = m.with_node_removed(NodeId(5)).with_node_removed(NodeId(4))
    assert newer.epoch == 6
    assert r.end_map_fetch(core.FetchedMap(newer, PLACEMENT_NAME))
    assert r.epoch == 6
    assert all(a in ("n1:7000", "n2:7000", "n3:7000", "seed:1") for a in r.route())


def test_a_map_never_goes_back_to_an_older_epoch():
    m = five_nodes()
    r, _ = router(m)
    older = ClusterMap(epoch=3, nodes=m.nodes)
    assert not r.install(core.FetchedMap(older, PLACEMENT_NAME))
    assert r.epoch == 4


def test_nodes_that_left_the_map_are_forgotten():
    m = five_nodes()
    r, _ = router(m)
    r.failed("n5:7000", refused("n5:7000"))
    assert NodeId(5) in r.health.down()
    r.install(core.FetchedMap(m.with_node_removed(NodeId(5)), PLACEMENT_NAME))
    assert r.health.down() == frozenset()
    assert "n5:7000" not in r.route()


def test_the_core_reexports_the_router():
    assert core.Router is routing.Router
    assert core.SeedRouter is routing.SeedRouter
