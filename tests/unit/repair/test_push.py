"""Coordinator.push says what it achieved (COPIED, HELD or FAILED), so repair counts
only the copies a target took. In process: real engines, the target reached through an
in-memory ``Peers`` that applies writes to its engine as the replica service would."""

from __future__ import annotations

import pytest

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.errors import NotFound, Unavailable
from cairn.node.coordinator import Coordinator, Pushed, RemoteRead, ReplicaAck
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.aio import AsyncEngine
from cairn.types import Version

pytestmark = pytest.mark.unit

OLD = Version(1_700_000_000_000, 0, 1)
NEW = Version(1_800_000_000_000, 0, 2)


class EnginePeers:
    """Node 2 is ``target``; node 3 cannot be reached."""

    def __init__(self, target: Engine) -> None:
        self.target = target

    async def write(self, node, w, value, timeout_s) -> ReplicaAck:
        result = self.target.put(w.bucket, w.key, value, version=w.version,
                                 partition=w.partition)
        if result.applied:
            return ReplicaAck(True)
        held = result.info.version
        return ReplicaAck(held == w.version, None if held == w.version else held)

    async def read(self, node, *args, **kwargs):
        raise Unavailable(f"node {node} is down")


@pytest.fixture
def engines(tmp_path):
    opened = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        engine = Engine(EngineConfig(disks=(str(tmp_path / name),), min_free_bytes=0)).open()
        engine.create_bucket("app")
        opened.append(engine)
    yield opened
    for engine in opened:
        engine.close()


def coordinator(here: Engine, peers: EnginePeers) -> Coordinator:
    nodes = tuple(NodeInfo(NodeId(i), f"127.0.0.1:{i}", "") for i in (1, 2, 3))
    cmap = ClusterMap(epoch=1, nodes=nodes, replicas_n=3, write_quorum=2, read_quorum=2,
                      partitions=16)
    return Coordinator(AsyncEngine(here), HybridClock(NodeId(1)), cmap, NodeId(1), peers)


async def test_push_copies_to_a_target_that_lacks_the_version(engines):
    a, b = engines
    a.put("app", b"k", b"value", version=OLD)
    assert await coordinator(a, EnginePeers(b)).push(NodeId(2), "app", b"k") is Pushed.COPIED
    assert b.get("app", b"k").read() == b"value"


async def test_a_target_holding_a_newer_version_is_held_not_copied(engines):
    a, b = engines
    a.put("app", b"k", b"old", version=OLD)
    b.put("app", b"k", b"new", version=NEW)
    outcome = await coordinator(a, EnginePeers(b)).push(NodeId(2), "app", b"k")
    assert outcome is Pushed.HELD and outcome  # held: the target has it (true)
    assert b.get("app", b"k").read() == b"new"


async def test_no_readable_source_fails(engines):
    a, b = engines
    a.put("app", b"k", b"old", version=OLD)
    info = a.head("app", b"k")
    outcome = await coordinator(a, EnginePeers(b)).push(NodeId(2), "app", b"k", info,
                                                        holders=[NodeId(3)])
    assert outcome is Pushed.FAILED and not outcome
    assert await coordinator(a, EnginePeers(b)).push(NodeId(2), "app", b"none") \
        is Pushed.FAILED


class ShortSource(EnginePeers):
    """Node 3 holds the version but its stream stops early, cleanly (as a source that
    lost bytes on the way would look): the copy must not be stored."""

    def __init__(self, target: Engine, source: Engine, keep: int) -> None:
        super().__init__(target)
        self.source, self.keep = source, keep

    async def read(self, node, bucket, key, version, start, end, timeout_s):
        reader = self.source.get(bucket, key)
        data = reader.read()[: self.keep]

        async def chunks():
            yield data

        return RemoteRead(reader.info, 0, len(data), chunks())


async def test_a_copy_that_arrives_short_is_not_stored_under_the_version(engines):
    """Found by the chaos hunt (seed 3005): a replica held a large object's version with
    a third of its bytes. A copy is now checked against the version's size and checksum
    before it is stored."""
    a, b = engines
    value = bytes(range(256)) * 40_000  # 10 MB: streamed, not sent whole
    b.put("app", b"big", value, version=NEW)
    info = b.head("app", b"big")
    c = coordinator(a, ShortSource(a, b, keep=3_000_000))
    outcome = await c.push(NodeId(1), "app", b"big", info, [NodeId(3)])
    assert outcome is Pushed.FAILED
    with pytest.raises(NotFound):
        a.head("app", b"big")
