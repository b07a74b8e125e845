"""Regression tests for faults the cluster chaos suite found (docs/chaos.md).

Each is named after the fault it guards against, and stays after the fix.
"""

from __future__ import annotations

import contextlib
import threading
import time

import grpc
import pytest

from cairn.cluster.placement import placement
from cairn.v1 import admin_pb2, object_pb2
from tests.support.cluster import Cluster

from .nemesis import remove_contents

pytestmark = [pytest.mark.chaos, pytest.mark.cluster, pytest.mark.timeout(120)]

RACE_S = 8.0


def test_read_racing_a_newer_write_never_fails_with_conflict(tmp_path):
    """A quorum get racing puts on the same key must return a value (the old or the new
    one), never fail: found by ``python -m tests.chaos`` (seed 7, ``get fail`` Conflict)."""
    with Cluster(tmp_path / "c", nodes=4) as c:
        c.client(1).objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        # A key node 4 does not hold: its reads go to the remote holders every time.
        key = next(k for k in (b"hot-%d" % i for i in range(1000))
                   if 4 not in placement(c.map, "app", k).replicas)
        writer_node = placement(c.map, "app", key).replicas[0]
        c.client(writer_node).put("app", key, b"v0")
        stop = threading.Event()

        def write() -> None:
            i = 0
            while not stop.is_set():
                i += 1
                with contextlib.suppress(grpc.RpcError):
                    c.client(writer_node).put("app", key, b"v%d" % i, timeout=5)

        threads = [threading.Thread(target=write, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        conflicts, reads = 0, 0
        deadline = time.monotonic() + RACE_S
        try:
            while time.monotonic() < deadline:
                reads += 1
                try:
                    c.client(4).get("app", key, timeout=5)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.ABORTED:
                        raise
                    conflicts += 1
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert conflicts == 0, f"{conflicts} of {reads} reads failed with Conflict"


def test_hints_written_after_a_live_wipe_of_their_disk_survive_a_restart(tmp_path):
    """Found with the ``wipe`` and ``vanish`` faults: the hint store lives on the first
    disk and stayed open on the deleted files, so hints written after the disk was
    wiped and taken back were gone at the next start. It is reopened with the disk."""
    with Cluster(tmp_path / "c", nodes=3) as c:
        c.client(1).objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        node_dir = c.root / "node-1"
        remove_contents(node_dir)  # an operator's rm -rf, live
        deadline = time.monotonic() + 30
        while not all(d.state == "ok" for d in c.client(1).status().disks):
            assert time.monotonic() < deadline, "node 1 did not take its disk back"
            time.sleep(0.2)
        while not (node_dir / "hints").exists():
            assert time.monotonic() < deadline, "the hint store stayed on the deleted files"
            time.sleep(0.2)
        c.kill(3)
        for i in range(20):  # W = 2 of nodes 1 and 2; node 3's copies become hints
            c.client(1).put("app", b"k%d" % i, b"v", timeout=10)
        deadline = time.monotonic() + 15  # a late replica failure is hinted after the ack
        while c.client(1).status().pending_hints < 20:
            assert time.monotonic() < deadline, c.client(1).status().pending_hints
            time.sleep(0.2)
        c.procs[1].stop()
        c.restart(1)
        assert c.client(1).status().pending_hints >= 20


def test_wipe_a_disk_taken_back_empty_does_not_count_in_read_quorums(tmp_path):
    """Found by ``--concurrent-faults 2`` (seed 3002: ``powerloss`` on one node, then
    ``wipe`` on another): node 1 was down while node 3 coordinated a write (acked by 3
    and 2), then node 3's disk was wiped and taken back empty. A quorum read hearing
    nodes 1 and 3 found nothing and answered "not found": an acknowledged write lost.
    A disk taken back empty now keeps its node's heads out of read quorums until
    anti-entropy has refilled it; here the read must fail Unavailable, not NotFound,
    and succeed once the refill can run."""
    with Cluster(tmp_path / "c", nodes=3) as c:
        c.client(3).objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        c.kill(1)
        value = b"acknowledged" * 5000  # 60 KB
        c.client(3).put("app", b"k", value, timeout=10)  # on nodes 3 and 2
        # Node 3's refill may not copy anything yet (1 byte/s: the copy waits for hours).
        c.client(3).admin.SetRepairRate(admin_pb2.SetRepairRateRequest(rate_bytes_s=1),
                                        timeout=10)
        node_dir = c.root / "node-3"
        remove_contents(node_dir)  # an operator's rm -rf, live
        deadline = time.monotonic() + 30
        while not (node_dir / "CAIRN-DISK").exists() or not all(
                d.state == "ok" for d in c.client(3).status().disks):
            assert time.monotonic() < deadline, "node 3 did not take its disk back"
            time.sleep(0.2)
        assert c.client(3).local("app", b"k") is None  # the wipe took node 3's copy
        _unavailable_until_the_whole_copy_returns(c, value)
        c.client(3).repair(wait=True)
        assert c.client(3).local("app", b"k") is not None


def test_replace_a_node_restarted_on_an_empty_disk_does_not_count_in_read_quorums(tmp_path):
    """The same loss through the ``replace`` fault (seed 3002 again, after the fix
    above): the node is stopped, its disk swapped for an empty one and the node started
    again. A node started on a disk it created, while the other nodes hold data, is a
    replacement (or a new member): it refills before its answers count."""
    with Cluster(tmp_path / "c", nodes=3) as c:
        c.client(3).objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        c.kill(1)
        value = b"acknowledged" * 5000
        c.client(3).put("app", b"k", value, timeout=10)  # on nodes 3 and 2
        c.procs[3].stop()
        remove_contents(c.root / "node-3")  # the new, empty disk
        # Its refill may not copy anything yet (1 byte/s: the copy waits for hours).
        c.procs[3].env = {**(c.procs[3].env or {}), "CAIRN_REPAIR_RATE_BYTES_S": "1"}
        c.restart(3)
        assert c.client(3).local("app", b"k") is None
        _unavailable_until_the_whole_copy_returns(c, value)


def test_a_new_cluster_answers_reads_at_once(tmp_path):
    """Nodes started together on empty disks are a new cluster, not replacements:
    nothing to refill, and a read right after the first write is answered."""
    with Cluster(tmp_path / "c", nodes=3) as c:
        c.client(1).objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=b"app"))
        c.client(1).put("app", b"k", b"v", timeout=10)
        for n in (1, 2, 3):
            assert c.client(n).get("app", b"k", timeout=10) == b"v"
        with pytest.raises(grpc.RpcError) as caught:
            c.client(2).get("app", b"absent", timeout=10)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def _unavailable_until_the_whole_copy_returns(c: Cluster, value: bytes) -> None:
    """Nodes 1 (missed the write) and 3 (lost its copy, refill held back) are up, node 2
    (the one whole copy) goes down: reads and listings through node 1 must fail
    UNAVAILABLE, never answer without the key; once node 2 is back and node 3 may
    refill, the read returns the value."""
    c.kill(2)
    c.restart(1)
    with pytest.raises(grpc.RpcError) as caught:
        c.client(1).get("app", b"k", timeout=15)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert "REBUILDING" in caught.value.details() or "refilled" in caught.value.details()
    with pytest.raises(grpc.RpcError) as caught:
        c.client(1).objects.List(object_pb2.ListRequest(bucket=b"app"), timeout=15)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    c.restart(2)
    c.client(3).admin.SetRepairRate(admin_pb2.SetRepairRateRequest(rate_bytes_s=0),
                                    timeout=10)
    deadline = time.monotonic() + 60
    while (got := _get_or_unavailable(c.client(1), b"k")) is None:
        assert time.monotonic() < deadline, "the read stayed unavailable"
        time.sleep(0.5)
    assert got == value


def _get_or_unavailable(client, key: bytes) -> bytes | None:
    """The value, or None while the read is UNAVAILABLE (any other error fails)."""
    try:
        return client.get("app", key, timeout=10)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None
