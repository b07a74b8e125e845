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
from cairn.v1 import object_pb2
from tests.support.cluster import Cluster

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
