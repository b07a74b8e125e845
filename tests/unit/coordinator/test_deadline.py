"""The caller's deadline bounds the calls a coordinator makes to other nodes for it
(``CALL_DEADLINE``, set by the service from the gRPC deadline): with replicas that do
not answer, a call with 0.5 s left gives up on them after 0.5 s, not after the 5 s
``replica_timeout_s``. Background work started by the call is not bound by it."""

from __future__ import annotations

import asyncio
import time

import pytest

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.errors import Timeout, Unavailable
from cairn.node.coordinator import CALL_DEADLINE, Coordinator
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.aio import AsyncEngine

pytestmark = pytest.mark.unit

CMAP = ClusterMap(epoch=1, nodes=tuple(NodeInfo(NodeId(i), f"127.0.0.1:{i}", "")
                                       for i in (1, 2, 3)),
                  replicas_n=3, write_quorum=2, read_quorum=2, partitions=16)


class SilentPeers:
    """Nodes 2 and 3 never answer; each call waits out the deadline it was given."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []

    async def _silence(self, timeout_s: float) -> None:
        self.timeouts.append(timeout_s)
        await asyncio.sleep(timeout_s)
        raise Timeout(f"no answer within {timeout_s:.2f} s")

    async def write(self, node, w, value, timeout_s):
        await self._silence(timeout_s)

    async def head(self, node, bucket, key, timeout_s):
        await self._silence(timeout_s)


@pytest.fixture
def coordinator(tmp_path):
    engine = Engine(EngineConfig(disks=(str(tmp_path),), min_free_bytes=0)).open()
    engine.create_bucket("app")
    peers = SilentPeers()
    yield Coordinator(AsyncEngine(engine), HybridClock(NodeId(1)), CMAP, NodeId(1), peers)
    engine.close()


async def test_a_call_with_little_time_left_gives_up_on_silent_replicas_in_time(coordinator):
    CALL_DEADLINE.set(time.monotonic() + 0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        await coordinator.put("app", b"k", b"v", codec="raw", metadata={}, checksum=None)
    assert time.monotonic() - started < 1.5
    assert all(t <= 0.5 for t in coordinator.peers.timeouts)


async def test_without_a_deadline_the_replica_timeout_applies(coordinator):
    assert CALL_DEADLINE.get() is None
    assert coordinator._replica_timeout() == coordinator.config.replica_timeout_s
    CALL_DEADLINE.set(time.monotonic() - 1)  # already past: the shortest try
    assert coordinator._replica_timeout() == pytest.approx(0.05)
