"""A disk that vanishes under the engine (``umount -l``), then is replaced by an empty
one: the chaos fault ``vanish`` (tests/chaos/faults_disk.py), on one engine.

Needs root (tmpfs mounts, ``tests/support/disks.py``); skipped with the reason
otherwise. Every mount is undone at teardown, after the engine is closed.
"""

from __future__ import annotations

import os
import time

import pytest

from cairn.errors import DiskUnavailable
from cairn.node.storage import Engine, EngineConfig
from cairn.node.storage.disk import IDENTITY_CHECK_INTERVAL_S
from cairn.types import Version
from tests.support import disks

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(60)]

V = Version(1, 0, 1)


def test_vanish_unmounted_disk_is_not_taken_back_until_a_disk_is_mounted(tmp_path):
    """After ``umount -l`` the data directory is the empty mount point on the disk
    below. The engine took any empty failed disk back, so it wrote a new disk onto the
    root file system (DESIGN traps), where a later mount hid it. It must wait for a
    disk to be mounted there, and take that one."""
    why = disks.available()
    if why:
        pytest.skip(why)
    with disks.Disks(tmp_path / "root", size="16m") as d:
        path = d.mount(tmp_path / "root" / "disk")
        engine = Engine(EngineConfig(disks=(str(path),), min_free_bytes=0)).open()
        try:
            engine.create_bucket("app")
            engine.put("app", b"k", b"v", version=V)
            d.vanish(path)
            time.sleep(IDENTITY_CHECK_INTERVAL_S * 2)
            with pytest.raises(DiskUnavailable):
                engine.head("app", b"k")
            assert engine.check_disks() == []
            assert engine.check_disks() == []
            assert os.listdir(path) == []  # nothing written on the disk below
            assert engine.status()[0].state == "failed"
            d.mount(path)  # the replacement disk
            assert engine.check_disks() == [str(path)]
            assert engine.list("app") == []  # empty: anti-entropy refills it
            engine.put("app", b"k", b"v2", version=Version(2, 0, 1))
            assert engine.get("app", b"k").read() == b"v2"
            assert sorted(os.listdir(path)) == ["CAIRN-DISK", "index", "segments"]
        finally:
            engine.close()
