"""What a write that did not fully succeed tells its caller (found by the chaos suite,
seed 2875690964: ``enospc`` on one node overlapping ``fsync-eio`` on another).

- A write that reached its quorum succeeds even when its hints cannot be stored (the
  hint store's disk is full): anti-entropy brings the missed replica up to date.
- A write that missed its quorum after some replica took it fails with Unavailable
  (it may have happened), never with a replica's own refusal: a later read can see it.

In process: three real engines, the two remote ones reached through an in-memory
``Peers`` that applies writes as the replica service does, or fails as a node that is
down (Unavailable) or answers INTERNAL would.
"""

from __future__ import annotations

import pytest

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.errors import BucketNotFound, CairnError, InternalError, NotFound, Unavailable
from cairn.node.coordinator import Coordinator
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.aio import AsyncEngine
from cairn.node.storage.hints import HintStore
from tests.support import disks as tmpfs
from tests.unit.engines import node_engines

UNIT = pytest.mark.unit
# Mounts a tmpfs (a subprocess, root): a disk test, not a pure in-process one.
DISK = pytest.mark.chaos

CMAP = ClusterMap(epoch=1, nodes=tuple(NodeInfo(NodeId(i), f"127.0.0.1:{i}", "")
                                       for i in (1, 2, 3)),
                  replicas_n=3, write_quorum=2, read_quorum=2, partitions=16)


class InMemoryPeers:
    """Nodes 2 and 3: a real replica (a coordinator over its own engine) or a failure."""

    def __init__(self, replicas: dict[int, Coordinator | CairnError]) -> None:
        self.replicas = replicas

    def _replica(self, node: int) -> Coordinator:
        replica = self.replicas[node]
        if isinstance(replica, CairnError):
            raise replica
        return replica

    async def write(self, node, w, value, timeout_s):
        return await self._replica(node).apply_replica_write(w, value)

    async def head(self, node, bucket, key, timeout_s):
        try:
            return await self._replica(node).engine.head(bucket, key, include_deleted=True)
        except NotFound:
            return None


@pytest.fixture
def engines(tmp_path):
    with node_engines(tmp_path) as opened:
        yield opened


def cluster(engines: dict[int, Engine], failing: dict[int, CairnError],
            hints: HintStore | None = None) -> Coordinator:
    replicas: dict[int, Coordinator | CairnError] = {}
    for n in (2, 3):
        replicas[n] = failing.get(n) or Coordinator(AsyncEngine(engines[n]),
                                                    HybridClock(NodeId(n)), CMAP, NodeId(n))
    return Coordinator(AsyncEngine(engines[1]), HybridClock(NodeId(1)), CMAP, NodeId(1),
                       InMemoryPeers(replicas), hints=hints)


def down(node: int) -> Unavailable:
    return Unavailable(f"node {node}: failed to connect to all addresses")


@DISK
async def test_a_write_at_quorum_succeeds_when_its_hints_cannot_be_stored(engines, tmp_path):
    why = tmpfs.available()
    if why:
        pytest.skip(why)
    with tmpfs.Disks(tmp_path / "mnt", size="8m") as disks:
        hint_disk = disks.mount(tmp_path / "mnt" / "hints")
        store = HintStore(str(hint_disk))
        try:
            disks.fill(hint_disk)
            c = cluster(engines, {3: down(3)}, hints=store)
            info = await c.put("app", b"k", b"v1", codec="raw", metadata={}, checksum=None)
            assert c.stats["hints_lost"] == 1 and c.stats["hints_written"] == 0
            assert len(store) == 0
            for n in (1, 2):
                assert engines[n].head("app", b"k").version == info.version
            # Room again: the next missed replica is hinted as before.
            disks.unfill(hint_disk)
            await c.put("app", b"k", b"v2", codec="raw", metadata={}, checksum=None)
            assert c.stats["hints_written"] == 1 and len(store) == 1
        finally:
            store.close()


@UNIT
@pytest.mark.parametrize("refusal", [InternalError("internal error in PutSmall: disk full"),
                                     BucketNotFound("bucket 'app' does not exist")],
                         ids=["internal", "bucket-not-found"])
async def test_a_write_taken_by_one_replica_that_missed_its_quorum_is_indeterminate(
        engines, refusal):
    c = cluster(engines, {2: refusal, 3: down(3)})
    with pytest.raises(Unavailable) as caught:
        await c.put("app", b"k", b"v1", codec="raw", metadata={}, checksum=None)
    assert "1 of 3" in str(caught.value)
    # This node took it, so a quorum read that hears this node returns it: a refusal
    # passed on as it was would have told the caller it never happened.
    assert engines[1].head("app", b"k").size == 2


@UNIT
async def test_a_refusal_from_every_replica_that_answered_is_passed_on(engines, tmp_path):
    # Node 1 takes nothing: its disk is below the free-space floor (DiskFull).
    engines[1].close()
    engines[1] = Engine(EngineConfig(disks=(str(tmp_path / "n1"),),
                                     min_free_bytes=1 << 62)).open()
    gone = BucketNotFound("bucket 'app' does not exist")
    c = cluster(engines, {2: gone, 3: gone})
    with pytest.raises(BucketNotFound):
        await c.put("app", b"k", b"v1", codec="raw", metadata={}, checksum=None)
