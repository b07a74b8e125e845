"""Routing: which nodes get a call, in which order, and how long each attempt may take.

Pure decisions, no I/O, no sleeping: the facades (``cairn._async_client``) fetch the
cluster map, send the calls and report each node's outcome here; this module decides.

- ``Router``: holds the cluster map the client fetched and a client-side ``HealthView``.
  When the map's placement function is the one this SDK knows
  (``cairn.cluster.placement.PLACEMENT_NAME``), a call on a key goes to the key's
  replicas (``placement(map, bucket, key)``), healthy ones first, in placement order;
  a call without a key (listing, buckets) goes to any node, the one that answered last
  first. Without a usable map it falls back on ``SeedRouter``. It also decides when the
  map is (re)fetched and from where.
- ``SeedRouter``: any seed, the one that answered last first.
- ``attempt_timeout_s``: the share of a call's remaining time one attempt may take, so
  that a node that hangs cannot eat the whole deadline.
- ``is_failover``, ``is_node_failure``, ``retry_delay_s``: what an error means for the
  next step.

Health: a node that failed to answer (never reached, timed out, or an UNAVAILABLE that
came from gRPC rather than from a cairn handler) is down at once (``fail_threshold=1``)
and goes to the back of every route; one answer makes it up again. A down node gets a
recheck: after ``recheck_after_s(failures)`` (1 s, doubling to 30 s) one call routes
to it in its placement position again, so a node that came back is used again without
any background probing (the SDK starts no thread).

``docs/sdk.md`` ("Routing, failover and deadlines") explains the decisions to users.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from typing import Final

from cairn._retry import NOT_SENT, Deadline, RandomSource, Retry
from cairn._values import FetchedMap
from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.health import HealthView, NodeHealth
from cairn.cluster.ids import NodeId
from cairn.cluster.placement import PLACEMENT_NAME, placement
from cairn.errors import CairnError, InvalidArgument, Timeout, Unavailable

__all__ = [
    "ANSWERED",
    "CLIENT_FAIL_THRESHOLD",
    "MAP_FETCH_SHARE",
    "MAP_RETRY_S",
    "MIN_ATTEMPT_TIMEOUT_S",
    "RECHECK_BASE_S",
    "RECHECK_MAX_S",
    "Router",
    "SeedRouter",
    "attempt_deadline",
    "attempt_route",
    "attempt_timeout_s",
    "avoid",
    "health_order",
    "is_failover",
    "is_node_failure",
    "map_fetch_deadline",
    "recheck_after_s",
    "retry_delay_s",
    "telling_error",
]

ANSWERED: Final = "answered"
"""Key of ``CairnError.details``: true when a cairn node's handler produced the error (it
sent a ``cairn-error-code``). The node is alive, whatever the error says (a quorum that
failed behind it, a full disk), so its health is not marked down for it."""

MIN_ATTEMPT_TIMEOUT_S: Final = 1.0
"""The least time an attempt gets when the call's deadline is shared between attempts
(unless less than that is left of the whole call)."""

CLIENT_FAIL_THRESHOLD: Final = 1
"""One failure to answer sends a node to the back of the routes: the next replica
coordinates just as well, at the cost of a hop at most."""

RECHECK_BASE_S: Final = 1.0
"""A down node is tried again after this long, then after twice as long, ..."""
RECHECK_MAX_S: Final = 30.0
"""... up to this interval: a node that hangs costs one attempt's share this often."""

MAP_RETRY_S: Final = 5.0
"""After the cluster map could not be fetched, calls route by seeds for this long
before the next fetch."""

MAP_FETCH_SHARE: Final = 0.5
"""At most this share of a call's remaining time goes to fetching the map first."""


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


class _MonotonicMs:
    """``HealthView``'s clock over the client's monotonic seconds."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    def now_ms(self) -> int:
        return _now_ms(self._clock)


# --- what an error means --------------------------------------------------------------


def is_failover(error: CairnError) -> bool:
    """Whether to try the next address at once, within the same attempt.

    Only when the request provably never left this process (connection refused, no
    channel): then no other node can have seen it, whatever the call.
    """
    return isinstance(error, Unavailable) and bool(error.details.get(NOT_SENT))


def is_node_failure(error: CairnError) -> bool:
    """Whether ``error`` says the node failed to answer (its health goes down).

    True for a request that never reached it, a timeout, and an UNAVAILABLE or
    CANCELLED status from gRPC itself (reset connection, node stopping). False for
    anything a cairn handler answered (``details[ANSWERED]``), a quorum that failed
    behind a live coordinator included, and for the caller's own errors.
    """
    if is_failover(error) or isinstance(error, Timeout):
        return True
    return isinstance(error, Unavailable) and not error.details.get(ANSWERED)


def attempt_timeout_s(
    left_s: float,
    *,
    attempts_left: int,
    nodes: int,
    idempotent: bool,
    floor_s: float = MIN_ATTEMPT_TIMEOUT_S,
) -> float:
    """The seconds one attempt may take out of the ``left_s`` the call has left.

    ``min(left_s, max(left_s / attempts_left, floor_s))``: a node that hangs (SIGSTOP
    still completes TCP handshakes) then leaves time for the other attempts, which go
    to other replicas. The whole remaining time is given when there is nothing to fail
    over to: the last attempt, a route of one node, or a call that is not idempotent
    (it is not repeated once sent, so a share would only cut it short).

    Args:
        left_s: seconds until the call's deadline.
        attempts_left: attempts the retry policy still allows, this one included.
        nodes: distinct nodes the call can go to.
        idempotent: whether the call may be repeated after it was sent.
        floor_s: the least an attempt gets.
    """
    if left_s <= 0:
        return 0.0
    if not idempotent or attempts_left <= 1 or nodes <= 1:
        return left_s
    return min(left_s, max(left_s / attempts_left, floor_s))


def attempt_deadline(
    deadline: Deadline, now: float, *, attempts_left: int, nodes: int, idempotent: bool
) -> Deadline:
    """The deadline of one attempt started at ``now``: its share of the call's
    (``attempt_timeout_s``), never past the call's own ``deadline``."""
    share_s = attempt_timeout_s(
        deadline.left_s(now), attempts_left=attempts_left, nodes=nodes, idempotent=idempotent
    )
    return Deadline(min(deadline.at_s, now + share_s))


def map_fetch_deadline(deadline: Deadline, now: float) -> Deadline:
    """How long fetching the cluster map may take before the call it precedes:
    ``MAP_FETCH_SHARE`` of the call's time left, so the call itself keeps the rest."""
    return Deadline(now + deadline.left_s(now) * MAP_FETCH_SHARE)


def retry_delay_s(
    policy: Retry,
    error: CairnError,
    attempt: int,
    *,
    idempotent: bool,
    deadline_left_s: float,
    fresh_node: bool,
    rng: RandomSource | None = None,
) -> float | None:
    """How long to wait before the next attempt, or None to give up (raise ``error``).

    The policy decides whether to retry at all. Then:

    - the next attempt goes at once when it goes to a node this call has not tried and
      that is not known to be down (``fresh_node``: another replica, nothing to wait for);
    - otherwise an error that a node answered (``details[ANSWERED]``: a quorum that
      failed behind a live coordinator, a full disk) is not repeated: that coordinator
      already tried every replica within its deadline, and asking it again at once would
      only make a call that cannot succeed slower;
    - otherwise (the node failed to answer: timeout, reset connection, not sent) the
      policy's backoff, then the same nodes again.
    """
    if fresh_node:
        ok = policy.should_retry(
            error, attempt, idempotent=idempotent, deadline_left_s=deadline_left_s, delay_s=0.0
        )
        return 0.0 if ok else None
    if error.details.get(ANSWERED):
        return None
    return policy.next_delay_s(
        error, attempt, idempotent=idempotent, deadline_left_s=deadline_left_s, rng=rng
    )


def telling_error(best: CairnError | None, error: CairnError) -> CairnError:
    """The error a failed call should raise after ``error``, ``best`` so far: what a
    node answered tells more than a later "not sent" to nodes that are down."""
    if best is not None and is_failover(error) and not is_failover(best):
        return best
    return error


# --- orders ---------------------------------------------------------------------------


def recheck_after_s(failures: int) -> float:
    """How long after its last failure a down node is tried again.

    ``RECHECK_BASE_S`` doubled for each consecutive failure after the first, at most
    ``RECHECK_MAX_S``: a node that died is retried soon, one that stays dead ever less.
    """
    if failures <= 1:
        return RECHECK_BASE_S
    return min(RECHECK_MAX_S, RECHECK_BASE_S * 2.0 ** min(failures - 1, 32))


def _recheck_due(state: NodeHealth, now_ms: int, recheck_ms: int | None) -> bool:
    last = max(state.last_failure_ms or 0, recheck_ms or 0)
    return now_ms - last >= recheck_after_s(state.consecutive_failures) * 1000


def health_order(
    nodes: Sequence[NodeId],
    health: HealthView,
    now_ms: int,
    rechecks: dict[NodeId, int] | None = None,
) -> tuple[NodeId, ...]:
    """``nodes`` with the usable ones first, each group in the given (placement) order.

    Usable: up, or down but due for a recheck (``recheck_after_s`` since its last
    failure and since its last recheck, ``rechecks[node]``). Down nodes stay in the
    result, last: when every replica is down, trying one beats failing without a call.
    """
    usable: list[NodeId] = []
    back: list[NodeId] = []
    for node in nodes:
        state = health.status(node)
        if state.up or _recheck_due(state, now_ms, (rechecks or {}).get(node)):
            usable.append(node)
        else:
            back.append(node)
    return (*usable, *back)


def avoid(route: Sequence[str], tried: Collection[str]) -> tuple[str, ...]:
    """``route`` with the addresses this call already tried moved to the back."""
    return (*(a for a in route if a not in tried), *(a for a in route if a in tried))


def attempt_route(route: Sequence[str], tried: Collection[str]) -> tuple[str, ...]:
    """The nodes one attempt may walk: those this call has not sent to yet, or, when it
    has tried them all, the whole route again (a plain retry after a backoff).

    So the failover inside an attempt, on a request that was not sent, never ends on a
    node that already got this request: that would be a retry of it, without the
    retry policy's say.
    """
    fresh = tuple(a for a in route if a not in tried)
    return fresh or tuple(route)


# --- seeds ----------------------------------------------------------------------------


class SeedRouter:
    """Any seed, the last one that answered first: the routing without a cluster map.

    With one node, or before the client knows a map whose placement it can compute,
    every node can coordinate every call.
    """

    def __init__(self, seeds: Sequence[str]) -> None:
        if not seeds:
            raise InvalidArgument("a router needs at least one address")
        self._seeds = tuple(seeds)
        self._preferred = 0

    @property
    def addresses(self) -> tuple[str, ...]:
        return self._seeds

    def route(self, bucket: bytes | None = None, key: bytes | None = None) -> tuple[str, ...]:
        """Addresses to try for one attempt, in order (every seed, the preferred first)."""
        p = self._preferred
        return self._seeds[p:] + self._seeds[:p]

    def succeeded(self, address: str) -> None:
        """``address`` answered: keep sending there."""
        if address in self._seeds:
            self._preferred = self._seeds.index(address)

    def failed(self, address: str, error: CairnError) -> None:
        """``address`` failed with a retryable error: prefer the next seed from now on."""
        if error.retryable and self._seeds[self._preferred] == address:
            self._preferred = (self._preferred + 1) % len(self._seeds)


# --- the router -----------------------------------------------------------------------


class Router:
    """Which nodes get a call, from the cluster map, the client's health view and seeds.

    Thread-safe (the sync client may be shared between threads); every method is a
    short critical section, so the async client may call it from its loop.

    Args:
        seeds: the client's seed addresses.
        clock: monotonic seconds (the facade's clock, so tests can drive it).
    """

    def __init__(self, seeds: Sequence[str], clock: Callable[[], float]) -> None:
        self._seeds = SeedRouter(seeds)
        self._clock = clock
        self.health = HealthView(CLIENT_FAIL_THRESHOLD, _MonotonicMs(clock))
        self._lock = threading.Lock()
        self._map: ClusterMap | None = None
        self._placement = ""
        self._ids: dict[str, NodeId] = {}
        self._addresses: dict[NodeId, str] = {}
        self._extra_seeds: tuple[str, ...] = ()
        self._last_ok: NodeId | None = None
        self._rechecks: dict[NodeId, int] = {}
        self._fetching = False
        self._asked_epoch = 0
        self._failed_at: float | None = None

    # --- the map ----------------------------------------------------------------------

    @property
    def cluster_map(self) -> ClusterMap | None:
        """The newest cluster map this client fetched (None: none yet)."""
        return self._map

    @property
    def epoch(self) -> int:
        """The epoch of that map; 0 without one (what request headers carry)."""
        return 0 if self._map is None else self._map.epoch

    @property
    def by_placement(self) -> bool:
        """Whether calls on a key go to the key's replicas (else: seed routing)."""
        return self._map is not None and self._placement == PLACEMENT_NAME

    @property
    def seeds(self) -> tuple[str, ...]:
        """The seeds in the order to ask them (the last that answered first)."""
        return self._seeds.route()

    def install(self, fetched: FetchedMap) -> bool:
        """Use ``fetched`` if it is newer than the map held (a map never goes back).

        Returns:
            Whether it was installed.
        """
        new = fetched.map
        with self._lock:
            if self._map is not None and new.epoch <= self._map.epoch:
                return False
            self._map = new
            self._placement = fetched.placement
            self._addresses = {n.id: n.address for n in new.nodes}
            self._ids = {n.address: n.id for n in new.nodes}
            self._extra_seeds = tuple(s for s in self._seeds.addresses if s not in self._ids)
            for node in set(self.health.snapshot()) - set(self._addresses):
                self.health.forget(node)  # it left the cluster
            self._rechecks = {n: t for n, t in self._rechecks.items() if n in self._addresses}
            if self._last_ok not in self._addresses:
                self._last_ok = None
            return True

    def begin_map_fetch(self, newest_epoch: int, reporter: int = 0) -> tuple[str, ...] | None:
        """Whether to fetch the cluster map now, and from where; claims the fetch.

        A fetch is due on first use (then again ``MAP_RETRY_S`` after a failed one),
        and when a node reported an epoch newer than the map's: at most once per
        epoch, so a node that reports an epoch it cannot serve yet does not make every
        call fetch. One fetch at a time: other calls route with what is known meanwhile.

        Args:
            newest_epoch: the newest epoch any node reported (``Session.newest_epoch``).
            reporter: the id of the node that reported it (asked first: it has that map).

        Returns:
            The addresses to ask in order, or None when no fetch is due. After a
            non-None answer the caller must call ``end_map_fetch``, whatever happens.
        """
        with self._lock:
            if self._fetching:
                return None
            if self._map is None:
                failed_at = self._failed_at
                if failed_at is not None and self._clock() - failed_at < MAP_RETRY_S:
                    return None
            elif newest_epoch <= self._map.epoch or newest_epoch <= self._asked_epoch:
                return None
            self._fetching = True
            self._asked_epoch = max(self._asked_epoch, newest_epoch)
            sources: list[str] = []
            if NodeId(reporter) in self._addresses:
                sources.append(self._addresses[NodeId(reporter)])
            if self._map is not None:
                ids = health_order(self._map.node_ids, self.health, _now_ms(self._clock))
                sources += [self._addresses[n] for n in ids]
            sources += self._seeds.route()
            return tuple(dict.fromkeys(sources))

    def end_map_fetch(self, fetched: FetchedMap | None, *, failed: bool = True) -> bool:
        """The fetch claimed by ``begin_map_fetch`` ended with ``fetched``.

        Args:
            fetched: the map, or None when none was had.
            failed: without a map, whether no node could give one (the next fetch then
                waits ``MAP_RETRY_S``) or the fetch was only interrupted (cancelled).

        Returns:
            Whether a new map was installed.
        """
        with self._lock:
            self._fetching = False
            if fetched is None:
                if failed:
                    self._failed_at = self._clock()
                return False
            self._failed_at = None
        return self.install(fetched)

    # --- routes -----------------------------------------------------------------------

    def route(
        self, bucket: bytes | None = None, key: bytes | None = None, tried: Collection[str] = ()
    ) -> tuple[str, ...]:
        """The addresses to try for the next attempt of a call, in order.

        With a map whose placement this SDK knows: a call on a key goes to its
        replicas, a call without a key to any node of the map (the last that answered
        first); usable nodes first (``health_order``), then seeds that are not in the
        map (last resort: the map's addresses may not be reachable from here).
        Otherwise the seeds, the last that answered first. Addresses ``tried`` by this
        call already go to the back.
        """
        return self.next_route(bucket, key, tried)[0]

    def next_route(
        self, bucket: bytes | None = None, key: bytes | None = None, tried: Collection[str] = ()
    ) -> tuple[tuple[str, ...], bool]:
        """``route(...)``, and whether its first node is fresh: not ``tried`` by this call
        and not known to be down (up, due for a recheck, or outside the map)."""
        with self._lock:
            m = self._map
            if m is None or self._placement != PLACEMENT_NAME:
                route = avoid(self._seeds.route(bucket, key), tried)
                return route, route[0] not in tried
            if bucket is not None and key is not None:
                nodes: Sequence[NodeId] = placement(m, bucket.decode("ascii"), key).replicas
            else:
                nodes = m.node_ids
                if self._last_ok is not None:
                    i = nodes.index(self._last_ok)
                    nodes = (*nodes[i:], *nodes[:i])
            now_ms = _now_ms(self._clock)
            ordered = health_order(nodes, self.health, now_ms, self._rechecks)
            route = avoid((*(self._addresses[n] for n in ordered), *self._extra_seeds), tried)
            first = self._ids.get(route[0])
            usable = True
            if first is not None and not self.health.is_up(first):
                state = self.health.status(first)
                usable = _recheck_due(state, now_ms, self._rechecks.get(first))
                if usable:
                    self._rechecks[first] = now_ms  # one call rechecks it; the others wait
            return route, usable and route[0] not in tried

    def succeeded(self, address: str) -> None:
        """``address`` answered: it is up and preferred for calls without a key."""
        self._seeds.succeeded(address)
        with self._lock:
            node = self._ids.get(address)
            if node is not None:
                self.health.record_success(node)
                self._rechecks.pop(node, None)
                self._last_ok = node

    def failed(self, address: str, error: CairnError) -> None:
        """``address`` failed with ``error``; a failure to answer sends it to the back."""
        self._seeds.failed(address, error)
        if not is_node_failure(error):
            return
        with self._lock:
            node = self._ids.get(address)
            if node is not None:
                self.health.record_failure(node)
