"""Anti-entropy between two in-sync replicas of a 100,000-object partition moves no object
data and finishes in bounded time (issue 5). In process: the real engine and the real
AntiEntropy worker, with the other replica reached through an in-memory ``Peers`` that
counts the bytes a gRPC exchange would carry."""

from __future__ import annotations

import asyncio
import time

import pytest

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.cluster.placement import partition_of, replicas
from cairn.node.coordinator import Coordinator
from cairn.node.repair import AntiEntropy, RateLimiter
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.aio import AsyncEngine
from cairn.node.storage.digest import DIGEST_BYTES, Digest
from cairn.types import Version

pytestmark = [pytest.mark.unit, pytest.mark.timeout(300)]

OBJECTS = 100_000
LEAVES = 64


class CountingPeers:
    """The one other replica, answering from its engine; counts bytes and calls."""

    def __init__(self, other: Engine) -> None:
        self.other = other
        self.bytes = 0
        self.calls: dict[str, int] = {}

    def _count(self, name: str, size: int) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.bytes += size

    async def partition_digest(self, node, partition, leaf_count, timeout_s) -> Digest:
        digest = await asyncio.to_thread(self.other.partition_digest, partition, leaf_count)
        self._count("partition_digest", DIGEST_BYTES * (leaf_count + 1) + 16)
        return digest

    async def list_partition(self, node, partition, leaves, leaf_count, timeout_s):
        infos = await asyncio.to_thread(
            lambda: list(self.other.iter_partition(partition, leaves, leaf_count)))
        self._count("list_partition", sum(60 + len(i.key) for i in infos))
        return infos

    async def write(self, *args, **kwargs):
        raise AssertionError("an in-sync pass must not copy objects")

    write_stream = read = write


@pytest.fixture(scope="module")
def replicas_in_sync(tmp_path_factory):
    nodes = (NodeInfo(NodeId(1), "127.0.0.1:1", ""), NodeInfo(NodeId(2), "127.0.0.1:2", ""))
    cmap = ClusterMap(epoch=1, nodes=nodes, replicas_n=2, write_quorum=1, read_quorum=1,
                      partitions=16)
    engines = []
    for name in ("a", "b"):
        d = tmp_path_factory.mktemp(name)
        engine = Engine(EngineConfig(disks=(str(d),), min_free_bytes=0)).open()
        engine.create_bucket("app")
        engines.append(engine)
    target = 7
    keys = []
    i = 0
    while len(keys) < OBJECTS:  # keys of one partition, as placement computes it
        key = b"key-%08d" % i
        if partition_of("app", key, cmap.partitions) == target:
            keys.append(key)
        i += 1
    for engine in engines:
        futures = [engine.submit_put("app", k, k, version=Version(1_700_000_000_000, 0, 1),
                                     partition=target) for k in keys]
        for f in futures:
            f.result()
    yield cmap, engines, target
    for engine in engines:
        engine.close()


async def _pass(cmap, engines, target):
    a, b = engines
    peers = CountingPeers(b)
    coordinator = Coordinator(AsyncEngine(a), HybridClock(NodeId(1)), cmap, NodeId(1), peers)
    worker = AntiEntropy(coordinator, RateLimiter(0), interval_s=3600, leaves=LEAVES)
    started = time.monotonic()
    result = await worker.sync_partition(target)
    return result, peers, time.monotonic() - started


def test_in_sync_partition_of_100k_objects_moves_no_object_data(replicas_in_sync):
    cmap, engines, target = replicas_in_sync
    assert NodeId(1) in replicas(cmap, target)
    first, peers, cold_s = asyncio.run(_pass(cmap, engines, target))
    assert (first.pulled, first.pushed, first.bytes) == (0, 0, 0)
    assert "list_partition" not in peers.calls, "equal roots: no leaf was listed"
    assert peers.bytes < 10_000
    second, _peers2, warm_s = asyncio.run(_pass(cmap, engines, target))
    assert (second.pulled, second.pushed) == (0, 0)
    # Cold, both replicas hash 100k index entries; warm, the trees are cached.
    assert cold_s < 60
    assert warm_s < 1.0
    print(f"\nanti-entropy, in-sync partition of {OBJECTS} objects: cold {cold_s:.2f} s, "
          f"warm {warm_s:.3f} s, {peers.bytes} bytes exchanged per pass, "
          f"calls {peers.calls}")


def test_a_difference_lists_only_differing_leaves(replicas_in_sync):
    _cmap, engines, target = replicas_in_sync
    a, b = engines
    key = next(i.key for i in a.iter_partition(target))
    b.put("app", key, b"newer", version=Version(1_800_000_000_000, 0, 2), partition=target)
    digest_a = a.partition_digest(target, LEAVES)
    digest_b = b.partition_digest(target, LEAVES)
    assert len(digest_a.differing(digest_b)) == 1
    listed = list(b.iter_partition(target, digest_a.differing(digest_b), LEAVES))
    assert len(listed) < OBJECTS / LEAVES * 2
