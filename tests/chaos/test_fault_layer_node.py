"""The test-only I/O fault layer on a real node process (``fault_control``, docs/storage.md):
a power loss, a torn segment write and fsync EIO, each followed by a restart on the same
data. Whatever was acknowledged is there after the restart; what was not is never served.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import grpc
import pytest

from cairn.v1 import object_pb2
from tests.support.cluster import Raw
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

BUCKET = "iofaults"
DIE_TIMEOUT_S = 20.0


def control(path: Path, **wanted: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted))
    os.replace(tmp, path)


def wait_dead(node: NodeProcess) -> None:
    assert node.proc is not None
    node.proc.wait(timeout=DIE_TIMEOUT_S)
    assert node.proc.returncode == -9, node.proc.returncode  # SIGKILL, by itself


def events(node: NodeProcess) -> list[str]:
    return [str(e.get("event")) for e in node.log]


class OneNode:
    """One node with the fault layer on, and the values it acknowledged."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "faults.json"
        control(self.path)
        self.node = NodeProcess(tmp_path / "data", env={"CAIRN_FAULT_CONTROL": str(self.path)})
        self.acked: dict[bytes, bytes] = {}
        self.raw: Raw | None = None

    def start(self) -> None:
        self.node.start()
        if self.raw is not None:
            self.raw.close()
        self.raw = Raw(self.node.address)

    def put(self, key: bytes, value: bytes) -> None:
        assert self.raw is not None
        self.raw.put(BUCKET, key, value, timeout=10)
        self.acked[key] = value

    def check(self, gone: list[bytes]) -> None:
        assert self.raw is not None
        for key, value in self.acked.items():
            assert self.raw.get(BUCKET, key) == value, key
        for key in gone:
            with pytest.raises(grpc.RpcError) as caught:
                self.raw.get(BUCKET, key)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND, key
        disks = self.raw.status().disks
        assert [d.state for d in disks] == ["ok"], disks

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()
        self.node.kill()


@pytest.fixture
def one(tmp_path):
    n = OneNode(tmp_path)
    try:
        n.start()
        assert any("TEST-ONLY I/O FAULT LAYER IS ON" in e for e in events(n.node))
        assert n.raw is not None
        n.raw.objects.CreateBucket(object_pb2.CreateBucketRequest(bucket=BUCKET.encode()))
        for i in range(20):
            n.put(b"k%d" % i, os.urandom(2000 + i * 300))
        yield n
    finally:
        n.close()


@pytest.mark.parametrize("when", [True, "at_sync"], ids=["now", "at-sync"])
def test_power_loss_keeps_every_acknowledged_write(one, when):
    stop = threading.Event()

    def write() -> None:  # writes in flight when the power goes
        i = 0
        while not stop.is_set():
            i += 1
            try:
                one.put(b"busy%d" % i, os.urandom(5000))
            except grpc.RpcError:
                return

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.5)
    control(one.path, power_loss=when)
    wait_dead(one.node)
    stop.set()
    writer.join(20)
    said = [e for e in events(one.node) if e.startswith("fault layer: power loss")]
    assert said, events(one.node)[-5:]
    if when == "at_sync":  # the writes that fsync was for were lost with it
        assert "of 0 files" not in said[-1], said
    control(one.path)
    one.start()
    one.check(gone=[])


def test_a_torn_segment_write_is_cut_and_never_served(one):
    control(one.path, torn_write={"keep_bytes": 700})
    time.sleep(0.3)  # the node sees the file within 50 ms
    assert one.raw is not None
    with pytest.raises(grpc.RpcError):
        one.raw.put(BUCKET, b"torn", os.urandom(4000), timeout=10)
    wait_dead(one.node)
    control(one.path)
    one.start()
    assert any("cutting 700 bytes past the last commit" in e for e in events(one.node))
    one.check(gone=[b"torn"])


def test_fsync_eio_fails_the_disk_and_a_restart_serves_only_what_was_acknowledged(one):
    control(one.path, fsync_eio=True)
    time.sleep(0.3)
    assert one.raw is not None
    with pytest.raises(grpc.RpcError) as caught:
        one.raw.put(BUCKET, b"unsynced", os.urandom(4000), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert [d.state for d in one.raw.status().disks] == ["failed"]
    control(one.path)  # fsyncs work again, but the page cache is not trusted: restart
    time.sleep(0.3)
    with pytest.raises(grpc.RpcError):
        one.raw.put(BUCKET, b"after", b"x", timeout=10)
    one.node.stop()
    one.start()
    one.check(gone=[b"unsynced", b"after"])
    one.put(b"later", b"works again")
    one.check(gone=[])
