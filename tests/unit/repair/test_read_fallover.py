"""Quorum reads fall over past damaged copies (found by the chaos suite's ``flip``
faults): a copy whose first block fails its CRC, on the holders the quorum named and
then on the replica the quorum did not hear, never fails a read another replica can
serve. In process: three real engines, the two remote ones reached through an
in-memory ``Peers`` that serves them as the replica service would."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.errors import DataLoss, IntegrityError, NotFound
from cairn.node.coordinator import Coordinator, RemoteRead
from cairn.node.storage import Engine
from cairn.node.storage.aio import AsyncEngine
from cairn.types import Version
from tests.unit.engines import node_engines

pytestmark = pytest.mark.unit

V = Version(1_700_000_000_000, 0, 1)
VALUE = b"cairn-fallover-" * 20_000  # 300 KB: several blocks


class EnginePeers:
    def __init__(self, engines: dict[int, Engine]) -> None:
        self.engines = engines

    async def head(self, node, bucket, key, timeout_s):
        try:
            return self.engines[node].head(bucket, key, include_deleted=True)
        except NotFound:
            return None

    async def read(self, node, bucket, key, version, start, end, timeout_s):
        reader = self.engines[node].get(bucket, key, start=start, end=end)

        async def chunks():
            try:
                for chunk in reader:
                    yield chunk
            finally:
                reader.close()

        return RemoteRead(reader.info, reader.start, reader.end, chunks())


@pytest.fixture
def engines(tmp_path):
    with node_engines(tmp_path) as opened:
        for e in opened.values():
            e.put("app", b"k", VALUE, version=V)
        yield opened


def damage(engine: Engine) -> None:
    """Flip a byte of the value's first block in the engine's segment file."""
    disk = engine.disks[0]
    for seg in sorted((Path(disk.path) / "segments").glob("*.seg")):
        data = bytearray(seg.read_bytes())
        at = data.find(VALUE[:64])
        if at >= 0:
            data[at + 10] ^= 0xFF
            seg.write_bytes(bytes(data))
            return
    raise AssertionError("value not found in any segment")


def coordinator(engines: dict[int, Engine]) -> Coordinator:
    nodes = tuple(NodeInfo(NodeId(i), f"127.0.0.1:{i}", "") for i in (1, 2, 3))
    cmap = ClusterMap(epoch=1, nodes=nodes, replicas_n=3, write_quorum=2, read_quorum=2,
                      partitions=16)
    return Coordinator(AsyncEngine(engines[1]), HybridClock(NodeId(1)), cmap, NodeId(1),
                       EnginePeers(engines))


async def read_all(c: Coordinator) -> bytes:
    result = await c.read("app", b"k", None, None)
    return b"".join([chunk async for chunk in result.chunks])


async def test_a_damaged_first_block_on_this_node_falls_over_to_a_peer(engines):
    damage(engines[1])
    c = coordinator(engines)
    assert await read_all(c) == VALUE
    _info, data = await c.read_small("app", b"k", 1 << 20)
    assert data == VALUE


async def test_damaged_copies_on_every_named_holder_fall_over_to_the_unasked_replica(engines):
    # The quorum hears nodes 1 and 2 (this node first, then a peer): both copies are
    # damaged, node 3's is whole.
    damage(engines[1])
    damage(engines[2])
    c = coordinator(engines)
    assert await read_all(c) == VALUE
    _info, data = await c.read_small("app", b"k", 1 << 20)
    assert data == VALUE


async def test_every_copy_damaged_is_data_loss(engines):
    for n in (1, 2, 3):
        damage(engines[n])
    c = coordinator(engines)
    with pytest.raises(DataLoss):
        await read_all(c)
    with pytest.raises(DataLoss):
        await c.read_small("app", b"k", 1 << 20)


BIG = bytes(range(256)) * 12_000  # 3 MB: three 1 MiB chunks


def damage_at(engine: Engine, value: bytes, offset: int) -> None:
    """Flip the byte ``offset`` of ``value`` where the engine stored it."""
    for seg in sorted((Path(engine.disks[0].path) / "segments").glob("*.seg")):
        data = bytearray(seg.read_bytes())
        at = data.find(value[:4096])
        if at >= 0:
            data[at + offset] ^= 0xFF
            seg.write_bytes(bytes(data))
            return
    raise AssertionError("value not found in any segment")


async def test_a_block_damaged_past_the_first_chunk_goes_on_from_another_replica(engines):
    """Found by the chaos suite (hunt seed 3009): a large get failed with IntegrityError
    on a block damaged past the first chunk (the first is checked before the stream is
    handed out). The stream now goes on from another replica at the byte it stopped."""
    for e in engines.values():
        e.put("app", b"big", BIG, version=V)
    damage_at(engines[1], BIG, 2_500_000)
    c = coordinator(engines)
    result = await c.read("app", b"big", None, None)
    assert b"".join([chunk async for chunk in result.chunks]) == BIG
    result = await c.read("app", b"big", 1_000_000, 2_900_000)  # a range, too
    assert b"".join([chunk async for chunk in result.chunks]) == BIG[1_000_000:2_900_000]


async def test_a_block_damaged_everywhere_past_the_first_chunk_fails_the_stream(engines):
    for e in engines.values():
        e.put("app", b"big", BIG, version=V)
        damage_at(e, BIG, 2_500_000)
    c = coordinator(engines)
    result = await c.read("app", b"big", None, None)
    with pytest.raises(IntegrityError):
        _ = [chunk async for chunk in result.chunks]
