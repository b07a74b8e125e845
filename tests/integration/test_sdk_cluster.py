"""The SDK against a local cluster of 3 node processes: routing by placement, failover.

Every test runs with Client and AsyncClient alike (one ``async`` body drives both:
``call`` awaits what the AsyncClient returns and takes what the Client returns). Which
node coordinated a call is read from the nodes' own Prometheus counters
(``cairn_requests_total{method=...,code="OK"}``): a call that reaches a node is counted
there, and replica traffic between nodes runs through other methods.

The cluster is shared by the module; tests that kill nodes restart them before they
end, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import cairn
from cairn.cluster.clustermap import ClusterMap
from cairn.cluster.launcher import LocalCluster
from cairn.cluster.placement import placement

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(180)]

MiB = 1 << 20
QUICK_S = 5.0
"""What "quickly" means for a call that cannot reach a quorum (the default timeout is 30 s)."""
COMEBACK_S = 45.0
"""How long a restarted node may take to be used again (recheck backoff + reconnect)."""
WHOLE_S = 60.0
"""How long the nodes may take to reach each other again after a restart."""
PROBE_BUCKET = "probe"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("sdk-cluster"), nodes=3,
                      metrics_base_port=0) as running:
        with cairn.Client(running.seeds) as c:
            c.create_bucket(PROBE_BUCKET)
        yield running


@pytest.fixture(params=["sync", "async"])
def kind(request) -> str:
    return request.param


def new_client(kind: str, seeds: Any, **kwargs: Any) -> Any:
    return (cairn.Client if kind == "sync" else cairn.AsyncClient)(seeds, **kwargs)


async def call(client: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call on either client; ``list`` is collected into a list."""
    result = getattr(client, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    if name == "list":
        if hasattr(result, "__aiter__"):
            return [x async for x in result]
        return list(result)
    return result


@pytest.fixture
async def client(kind, cluster) -> AsyncIterator[Any]:
    c = new_client(kind, cluster.seeds)
    yield c
    result = c.close()
    if inspect.isawaitable(result):
        await result


@pytest.fixture
async def bucket(client) -> str:
    name = f"t-{uuid.uuid4().hex[:20]}"
    deadline = time.monotonic() + WHOLE_S
    while True:
        try:
            await call(client, "create_bucket", name)
            return name
        except cairn.AlreadyExists:
            return name  # an earlier try created it
        except cairn.Unavailable:
            # Right after a restart a node may still count its peers as down and create
            # the bucket on itself only (a node-side delay, not the SDK's concern here).
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@contextlib.contextmanager
def killed(cluster: LocalCluster, *node_ids: int) -> Iterator[None]:
    """SIGKILL nodes for the body; start them again afterwards, whatever happened, and
    wait until the cluster is whole."""
    for node_id in node_ids:
        cluster.kill(node_id)
    try:
        yield
    finally:
        for node_id in node_ids:
            if not cluster.is_running(node_id):
                cluster.start_node(node_id)
        wait_whole(cluster)


def wait_whole(cluster: LocalCluster) -> None:
    """Wait until every node, as coordinator, reaches every replica again.

    A restarted node answers its health check at once, but the other nodes reconnect
    to it after their own gRPC backoff; until then a write through them misses it.
    """
    m = cluster.map
    deadline = time.monotonic() + WHOLE_S
    with cairn.Client(cluster.seeds, timeout=5) as c:
        for node_id in m.node_ids:
            key = keys_led_by(m, PROBE_BUCKET, node_id, 1)[0]
            while True:
                try:
                    c.put(PROBE_BUCKET, key, b"probe", consistency="all")
                    break
                except cairn.Unavailable:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


# --- which node coordinated: the nodes' own request counters ----------------------------

_SAMPLE = re.compile(r'^cairn_requests_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)$', re.M)


def requests_served(cluster: LocalCluster, node_id: int, method: str) -> int:
    """How many ``method`` calls node ``node_id`` answered OK (0 if it is down)."""
    if not cluster.is_running(node_id):
        return 0
    address = cluster.metrics_address(node_id)
    assert address is not None
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for match in _SAMPLE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("method") == method and labels.get("code") == "OK":
            total += float(match.group("value"))
    return int(total)


def served(cluster: LocalCluster, method: str) -> dict[int, int]:
    return {n: requests_served(cluster, n, method) for n in cluster.node_ids}


def delta(before: dict[int, int], after: dict[int, int]) -> dict[int, int]:
    return {n: after[n] - before[n] for n in after if after[n] != before[n]}


def first_replica(m: ClusterMap, bucket: str, key: str) -> int:
    return int(placement(m, bucket, key.encode()).replicas[0])


def keys_led_by(m: ClusterMap, bucket: str, node_id: int, count: int) -> list[str]:
    """``count`` keys whose first replica is ``node_id``."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        key = f"key-{i}"
        if first_replica(m, bucket, key) == node_id:
            found.append(key)
        i += 1
    return found


# --- the admin calls ------------------------------------------------------------------


async def test_cluster_map_and_node_status(client, cluster):
    m = await call(client, "cluster_map")
    assert isinstance(m, ClusterMap)
    assert m == cluster.map
    assert client._router.by_placement
    for node in m.nodes:
        status = await call(client, "node_status", node.address)
        assert isinstance(status, cairn.NodeStatus)
        assert status.node_id == node.id
        assert status.epoch == m.epoch
        assert status.disks and all(isinstance(d, cairn.DiskStatus) and d.ok
                                    for d in status.disks)


async def test_the_client_learns_the_map_and_sends_its_epoch(client, cluster, bucket):
    await call(client, "put", bucket, "k", b"v")
    assert client._router.cluster_map == cluster.map
    assert client._router.by_placement
    assert client._session.map_epoch == cluster.map.epoch
    assert client._session.header("r").epoch == cluster.map.epoch


# --- routing ----------------------------------------------------------------------------


async def test_a_put_goes_to_the_first_replica_of_its_key(client, cluster, bucket):
    m = cluster.map
    await call(client, "list", bucket)  # first use: the client fetches the map
    for node_id in m.node_ids:
        for key in keys_led_by(m, bucket, node_id, 2):
            before = served(cluster, "PutSmall")
            await call(client, "put", bucket, key, b"value")
            assert delta(before, served(cluster, "PutSmall")) == {node_id: 1}, key
            before = served(cluster, "GetSmall")
            assert await call(client, "get", bucket, key) == b"value"
            assert delta(before, served(cluster, "GetSmall")) == {node_id: 1}, key


async def test_one_channel_per_node_kept_across_failures(client, cluster, bucket):
    m = cluster.map
    for i in range(12):
        await call(client, "put", bucket, f"c{i}", i, codec="json")
    channels = dict(client._transport._channels)
    assert set(channels) == {n.address for n in m.nodes}
    victim = first_replica(m, bucket, "c0")
    with killed(cluster, victim):
        for i in range(12):
            assert await call(client, "get", bucket, f"c{i}") == i
    for i in range(12):
        assert await call(client, "get", bucket, f"c{i}") == i
    assert client._transport._channels == channels  # the very same channel objects


# --- failures ---------------------------------------------------------------------------


async def test_with_one_node_killed_every_call_succeeds_at_quorum(client, cluster, bucket,
                                                                  tmp_path):
    m = cluster.map
    victim = 2
    keys = keys_led_by(m, bucket, victim, 3) + keys_led_by(m, bucket, 1, 2)
    for key in keys:
        await call(client, "put", bucket, key, {"before": key}, codec="json")
    source = tmp_path / "blob"
    source.write_bytes(os.urandom(3 * MiB + 5))
    with killed(cluster, victim):
        started = time.monotonic()
        for key in keys:
            assert await call(client, "get", bucket, key) == {"before": key}
            info = await call(client, "put", bucket, key, {"after": key}, codec="json")
            assert (await call(client, "head", bucket, key)).version == info.version
        assert [o.key for o in await call(client, "list", bucket)] == sorted(keys)
        await call(client, "delete", bucket, keys[0])
        with pytest.raises(cairn.NotFound):
            await call(client, "get", bucket, keys[0])
        await call(client, "upload", bucket, "blob", source)
        await call(client, "download", bucket, "blob", tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == source.read_bytes()
        other = f"t-{uuid.uuid4().hex[:20]}"
        await call(client, "create_bucket", other)  # a majority of nodes is enough
        assert other in await call(client, "list_buckets")
        # The dead node costs a refused connection now and then, never a timeout.
        assert time.monotonic() - started < 20


async def test_with_two_nodes_killed_quorum_fails_fast_and_one_still_reads(client, cluster,
                                                                          bucket):
    keys = [f"two-{i}" for i in range(6)]
    for key in keys:
        await call(client, "put", bucket, key, key, consistency="all")
    with killed(cluster, 2, 3):
        for key in keys:  # node 1 holds every key (N = 3 of 3 nodes)
            assert await call(client, "get", bucket, key, consistency="one") == key
        slowest = 0.0
        for key in keys:
            for name, args in (("get", ()), ("head", ()), ("put", ("new",))):
                started = time.monotonic()
                with pytest.raises(cairn.Unavailable) as caught:
                    await call(client, name, bucket, f"{key}-{name}", *args)
                slowest = max(slowest, time.monotonic() - started)
                assert not isinstance(caught.value, cairn.Timeout)
        # The first write after its peers died waits for the coordinator's own replica
        # deadline (5 s by default); every other call fails at once.
        assert slowest < QUICK_S + 5


async def test_a_restarted_node_is_used_again(client, cluster, bucket):
    m = cluster.map
    victim = 3
    keys = keys_led_by(m, bucket, victim, 4)
    for key in keys:
        await call(client, "put", bucket, key, b"x")
    with killed(cluster, victim):
        for key in keys:
            await call(client, "put", bucket, key, b"y")
        assert victim in client._router.health.down()
    # killed() started it again: within a while, keys it leads go to it again.
    deadline = time.monotonic() + COMEBACK_S
    while True:
        before = requests_served(cluster, victim, "PutSmall")
        await call(client, "put", bucket, keys[0], b"z")
        if requests_served(cluster, victim, "PutSmall") > before:
            break
        assert time.monotonic() < deadline, "the restarted node was not used again"
        await asyncio.sleep(0.2)
    assert victim not in client._router.health.down()
    for key in keys:
        before = requests_served(cluster, victim, "PutSmall")
        await call(client, "put", bucket, key, b"w")
        assert requests_served(cluster, victim, "PutSmall") == before + 1


# --- streams --------------------------------------------------------------------------


def _file_of(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(MiB)
    with path.open("wb") as f:
        left = size
        while left:
            piece = block[: min(left, MiB)]
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


async def test_64_mib_round_trips_through_one_coordinator(client, cluster, bucket, tmp_path):
    m = cluster.map
    source = tmp_path / "big"
    expected = _file_of(source, 64 * MiB)
    key = "big.bin"
    before_put, before_get = served(cluster, "Put"), served(cluster, "Get")
    info = await call(client, "upload", bucket, key, source)
    assert info.size == 64 * MiB
    got = await call(client, "download", bucket, key, tmp_path / "back")
    assert got.checksum == info.checksum
    assert _sha256(tmp_path / "back") == expected
    leader = first_replica(m, bucket, key)
    # one stream each way, both through the key's first replica
    assert delta(before_put, served(cluster, "Put")) == {leader: 1}
    assert delta(before_get, served(cluster, "Get")) == {leader: 1}
