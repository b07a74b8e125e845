"""The facades' routing loop against a scripted transport (no sockets), Client and AsyncClient.

The client fetches the map on first use, sends each key to its first healthy replica,
fails over to the next replica at once, gives each attempt a share of the deadline,
refetches the map once per newer epoch, and sends its epoch in every header.
"""

from __future__ import annotations

import time

import pytest

import cairn
from cairn import _core as core
from cairn import _routing as routing
from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.ids import NodeId
from cairn.cluster.placement import PLACEMENT_NAME, placement
from cairn.errors import Timeout, Unavailable
from cairn.types import Version
from tests.unit.sdk.test_client_loop import AsyncScript, Script, call, info

pytestmark = pytest.mark.unit

SLOW_BACKOFF = cairn.Retry(max_attempts=3, backoff=cairn.Backoff(base_s=5, max_s=5,
                                                                  jitter="none"))
MAP = ClusterMap(epoch=4, nodes=tuple(NodeInfo(NodeId(i), f"n{i}:1") for i in range(1, 6)))


def make(kind: str, *, seeds=("seed:1",), cluster_map=MAP, name=PLACEMENT_NAME, **kwargs):
    cls = cairn.Client if kind == "sync" else cairn.AsyncClient
    client = cls(list(seeds), retry=kwargs.pop("retry", SLOW_BACKOFF), **kwargs)
    script = Script(client._session)
    script.on_map = lambda address: core.FetchedMap(cluster_map, name)
    client._transport = script if kind == "sync" else AsyncScript(script)
    return client, script


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


def refused(address: str = "x:1") -> Unavailable:
    return Unavailable(f"{address}: connection refused", address=address, not_sent=True)


def replicas_of(key: str) -> tuple[str, ...]:
    return tuple(MAP.node(n).address for n in placement(MAP, "app", key.encode()).replicas)


def key_on(node: int) -> str:
    return next(f"k{i}" for i in range(10_000)
                if placement(MAP, "app", f"k{i}".encode()).replicas[0] == node)


async def test_the_map_is_fetched_once_and_a_put_goes_to_the_first_replica(kind):
    client, script = make(kind)
    script.on_call = lambda a, r: info(r.value, key=r.head.key.decode())
    for node in (1, 2, 3):
        key = key_on(node)
        await call(client, "put", "app", key, b"v")
        assert script.calls[-1][0] == f"n{node}:1"
        assert script.calls[-1][1].head.header.epoch == 4  # the client's epoch travels
    assert [a for a, _ in script.map_calls] == ["seed:1"]


async def test_an_unknown_placement_routes_by_seeds(kind):
    client, script = make(kind, name="not-this-one", seeds=("s:1", "s:2"))
    script.on_call = lambda a, r: info(r.value)
    await call(client, "put", "app", key_on(3), b"v")
    assert script.calls[-1][0] == "s:1"
    assert script.calls[-1][1].head.header.epoch == 4


async def test_without_a_map_calls_route_by_seeds_and_ask_again_later(kind):
    client, script = make(kind, seeds=("s:1", "s:2"))
    script.on_map = lambda address: (_ for _ in ()).throw(refused())
    script.on_call = lambda a, r: info(b"x")
    await call(client, "head", "app", "k")
    await call(client, "head", "app", "k")
    assert [a for a, _ in script.calls] == ["s:1", "s:1"]
    assert [a for a, _ in script.map_calls] == ["s:1", "s:2"]  # once, both seeds
    assert script.calls[-1][1].header.epoch == 0
    now = time.monotonic() + routing.MAP_RETRY_S
    client._clock = lambda: now
    script.on_map = lambda address: core.FetchedMap(MAP, PLACEMENT_NAME)
    await call(client, "head", "app", key_on(5))
    assert script.calls[-1][0] == "n5:1"


async def test_a_replica_that_times_out_hands_over_to_the_next_at_once(kind):
    client, script = make(kind, timeout=30)
    key = key_on(2)
    first, second, _third = replicas_of(key)
    seen: list[tuple[str, float]] = []

    def answer(address, request):
        if address == first:
            raise Timeout(f"{address}: deadline exceeded", address=address)
        return info(b"x", key=key)

    script.on_call = answer
    original = script.call

    def call_with_timeout(address, request, timeout_s):
        seen.append((address, timeout_s))
        return original(address, request, timeout_s)

    script.call = call_with_timeout
    started = time.monotonic()
    await call(client, "head", "app", key)
    assert time.monotonic() - started < 2  # no backoff before another replica
    data = [(a, t) for a, t in seen if a != "seed:1"]
    assert [a for a, _ in data] == [first, second]
    # each attempt had a share of the deadline: a third of the 30 s, then half the rest
    # (the timeout here came at once, so the rest is still about 30 s)
    assert 9 < data[0][1] <= 10
    assert 14 < data[1][1] <= 15
    # the node that timed out is now at the back for every call
    await call(client, "head", "app", key)
    assert script.calls[-1][0] == second


async def test_an_attempt_that_was_not_sent_costs_no_attempt(kind):
    client, script = make(kind, retry=cairn.Retry(max_attempts=1))
    key = key_on(4)
    first, second, _third = replicas_of(key)

    def answer(address, request):
        if address == first:
            raise refused(address)
        return info(b"x", key=key)

    script.on_call = answer
    await call(client, "head", "app", key)
    assert [a for a, _ in script.calls] == [first, second]


async def test_a_call_that_is_not_idempotent_gets_the_whole_deadline_and_one_send(kind):
    client, script = make(kind, timeout=30)
    timeouts: list[float] = []
    original = script.call

    def record(address, request, timeout_s):
        if not isinstance(request, core.ClusterMapRequest):
            timeouts.append(timeout_s)
        return original(address, request, timeout_s)

    script.call = record

    def answer(address, request):
        raise Unavailable("lost after sending")

    script.on_call = answer
    with pytest.raises(Unavailable):
        await call(client, "create_bucket", "app")
    assert len(timeouts) == 1 and timeouts[0] > 25


async def test_all_replicas_failing_is_unavailable_after_each_was_tried(kind):
    client, script = make(kind, retry=cairn.Retry(max_attempts=3,
                                                  backoff=cairn.Backoff(base_s=0, max_s=0)))
    key = key_on(1)

    def answer(address, request):
        raise Unavailable(f"{address}: quorum failed", answered=True)

    script.on_call = answer
    with pytest.raises(Unavailable):
        await call(client, "head", "app", key)
    assert [a for a, _ in script.calls] == list(replicas_of(key))


async def test_a_quorum_failure_with_the_other_replicas_down_fails_at_once(kind):
    client, script = make(kind, retry=cairn.Retry(max_attempts=3,
                                                  backoff=cairn.Backoff(base_s=0, max_s=0)))
    key = key_on(1)
    first, second, third = replicas_of(key)

    def answer(address, request):
        if address == first:
            raise Unavailable("write reached 1 of 3 replicas", answered=True)
        raise refused(address)

    script.on_call = answer
    for _ in range(2):
        with pytest.raises(Unavailable, match="reached 1 of 3") as caught:
            await call(client, "put", "app", key, b"v")
        assert caught.value.details.get("answered")
    # the first call learned that the others are down; neither call asked the
    # coordinator twice
    sent = [a for a, _ in script.calls]
    assert sent == [first, second, third, "seed:1", first]  # the seed: a last resort


async def test_a_newer_epoch_is_fetched_once_from_the_node_that_reported_it(kind):
    client, script = make(kind)
    key = key_on(1)
    newer = ClusterMap(epoch=5, nodes=MAP.nodes[:4])  # node 5 left

    def answer(address, request):
        script.session.observe(core.ResponseHeader(5, Version(0), 3))
        return info(b"x", key=key)

    script.on_call = answer
    script.on_map = lambda address: core.FetchedMap(MAP, PLACEMENT_NAME)
    await call(client, "head", "app", key)  # first use: epoch 4 from the seed
    script.on_map = lambda address: core.FetchedMap(newer, PLACEMENT_NAME)
    await call(client, "head", "app", key)  # node 3 said 5: fetched from node 3
    await call(client, "head", "app", key)
    assert [a for a, _ in script.map_calls] == ["seed:1", "n3:1"]
    assert script.calls[-1][1].header.epoch == 5
    assert (await call(client, "cluster_map")).epoch == 5


async def test_streams_go_to_one_coordinator(kind, tmp_path):
    client, script = make(kind)
    key = key_on(3)
    data = bytes(range(256)) * 8192  # 2 MiB: streamed
    path = tmp_path / "f"
    path.write_bytes(data)
    script.on_put = lambda address, messages: info(data, key=key)
    await call(client, "upload", "app", key, path)
    await call(client, "put", "app", key, data)
    assert [a for a, _ in script.calls] == ["n3:1", "n3:1"]


async def test_listing_and_buckets_go_to_any_node(kind):
    client, script = make(kind)
    script.on_call = lambda a, r: (core.ListPage((), b"") if isinstance(r, core.ListRequest)
                                   else [])
    await call(client, "list_buckets")
    await call(client, "list", "app")
    assert {a for a, _ in script.calls} <= {n.address for n in MAP.nodes}


async def test_cluster_map_asks_the_seeds_in_turn(kind):
    client, script = make(kind, seeds=("s:1", "s:2"))

    def answer(address):
        if address == "s:1":
            raise refused(address)
        return core.FetchedMap(MAP, PLACEMENT_NAME)

    script.on_map = answer
    got = await call(client, "cluster_map")
    assert got == MAP
    assert [a for a, _ in script.map_calls] == ["s:1", "s:2"]
    assert client._router.epoch == 4


async def test_node_status_goes_to_that_node_only(kind):
    client, script = make(kind, retry=cairn.Retry(max_attempts=3,
                                                  backoff=cairn.Backoff(base_s=0, max_s=0)))
    status = core.NodeStatus(node_id=2, address="n2:1", disks=(core.DiskStatus("/d", "i", "ok"),))
    script.on_call = lambda a, r: status
    assert await call(client, "node_status", "n2:1") == status
    assert [a for a, _ in script.calls] == ["n2:1"]
    assert isinstance(script.calls[0][1], core.NodeStatusRequest)
    assert script.map_calls == []  # no map needed to ask one node

    def down(address, request):
        raise refused(address)

    script.on_call = down
    with pytest.raises(Unavailable):
        await call(client, "node_status", "n3:1")
    assert [a for a, _ in script.calls[1:]] == ["n3:1"] * 3  # retried there, nowhere else
    with pytest.raises(cairn.InvalidArgument):
        await call(client, "node_status", "not an address")


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "request_type", "answer"),
    [
        ("scrub", (), {}, core.ScrubRequest, None),
        ("repair", (), {}, core.RepairRequest, core.RepairResult()),
        ("repair", (), {"partition": 0, "wait": True}, core.RepairRequest,
         core.RepairResult(1, 2, 3)),
        ("set_repair_rate", (1 << 20,), {}, core.SetRepairRateRequest, None),
    ],
)
async def test_repair_calls_go_to_that_node_only(kind, name, args, kwargs, request_type,
                                                 answer):
    client, script = make(kind, retry=cairn.Retry(max_attempts=3,
                                                  backoff=cairn.Backoff(base_s=0, max_s=0)))
    script.on_call = lambda a, r: answer
    assert await call(client, name, "n2:1", *args, **kwargs) == answer
    assert [a for a, _ in script.calls] == ["n2:1"]
    assert isinstance(script.calls[0][1], request_type)
    assert script.map_calls == []  # no map needed to ask one node

    def down(address, request):
        raise refused(address)

    script.on_call = down
    with pytest.raises(Unavailable):
        await call(client, name, "n3:1", *args, **kwargs)
    assert [a for a, _ in script.calls[1:]] == ["n3:1"] * 3  # retried there, nowhere else


async def test_repair_sends_its_partition_and_wait(kind):
    client, script = make(kind)
    script.on_call = lambda a, r: core.RepairResult(1, 4, 0)
    got = await call(client, "repair", "n1:1", partition=7, wait=True, timeout=5)
    assert got == core.RepairResult(partitions=1, objects_pulled=4, objects_pushed=0)
    request = script.calls[-1][1]
    assert (request.partition, request.wait) == (7, True)
    await call(client, "repair", "n1:1")
    request = script.calls[-1][1]
    assert (request.partition, request.wait) == (None, False)
    await call(client, "set_repair_rate", "n1:1", 0)  # 0 = unlimited
    assert script.calls[-1][1].rate_bytes_s == 0


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("scrub", ("nope",), {}),
        ("repair", ("nope",), {}),
        ("repair", ("n1:1",), {"partition": -1}),
        ("repair", ("n1:1",), {"partition": True}),
        ("repair", ("n1:1",), {"partition": "3"}),
        ("repair", ("n1:1",), {"partition": 1 << 32}),
        ("set_repair_rate", ("n1:1", -1), {}),
        ("set_repair_rate", ("n1:1", 1.5), {}),
        ("set_repair_rate", ("n1:1", "1MiB"), {}),
        ("set_repair_rate", ("n1:1", 1 << 64), {}),
        ("set_repair_rate", ("nope", 1), {}),
    ],
)
async def test_repair_calls_check_their_arguments_before_sending(kind, name, args, kwargs):
    client, script = make(kind)
    with pytest.raises(cairn.InvalidArgument):
        await call(client, name, *args, **kwargs)
    assert script.calls == []
